//! Load generator: drives a running bookstore on this machine with a
//! realistic mix (mostly catalog reads, some logins, reviews, price changes
//! and checkouts), bounded by a request count **and** a time limit, and
//! reports throughput and latency percentiles when it ends.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use persistence::{Error, Result};
use serde_json::json;

use crate::client::Client;
use crate::seed;

/// Limits and shape of a run.
#[derive(Debug, Clone)]
pub struct LoadgenOptions {
    /// The server (loopback only).
    pub target: SocketAddr,
    /// Most requests in total (at least 1).
    pub requests: u64,
    /// Longest run.
    pub duration: Duration,
    /// Concurrent clients (1..=64), each on its own keep-alive connection.
    pub concurrency: usize,
    /// Seed of the request mix.
    pub seed: u64,
}

impl LoadgenOptions {
    /// 20 000 requests, at most 30 s, 8 clients.
    pub fn new(target: SocketAddr) -> Self {
        LoadgenOptions {
            target,
            requests: 20_000,
            duration: Duration::from_secs(30),
            concurrency: 8,
            seed: 42,
        }
    }
}

/// The kinds of request in the mix, with their weights (out of 100).
const MIX: [(Kind, u32); 9] = [
    (Kind::Product, 40),
    (Kind::List, 15),
    (Kind::TopRated, 8),
    (Kind::Me, 10),
    (Kind::Orders, 5),
    (Kind::Price, 5),
    (Kind::Review, 5),
    (Kind::Checkout, 7),
    (Kind::Shop, 5),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Product,
    List,
    TopRated,
    Me,
    Orders,
    Price,
    Review,
    Checkout,
    Shop,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Product => "GET product",
            Kind::List => "GET product list",
            Kind::TopRated => "GET top-rated",
            Kind::Me => "GET me (session)",
            Kind::Orders => "GET orders",
            Kind::Price => "PUT price",
            Kind::Review => "POST review",
            Kind::Checkout => "POST checkout",
            Kind::Shop => "GET shop items",
        }
    }
}

/// Counts and latencies of one kind.
#[derive(Debug, Clone, Default)]
pub struct KindReport {
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Expected refusals (409 out of stock, 501 shops on SQLite).
    pub refused: u64,
    /// Other answers and transport errors.
    pub errors: u64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Requests completed.
    pub requests: u64,
    /// Failed requests (5xx, unexpected 4xx, transport).
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency percentiles (p50, p95, p99).
    pub p50: Duration,
    /// 95th.
    pub p95: Duration,
    /// 99th.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
    /// Clients.
    pub concurrency: usize,
    /// Per kind, in mix order.
    pub kinds: Vec<(&'static str, KindReport)>,
}

impl Report {
    /// Completed requests per second.
    pub fn ops_per_s(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "loadgen: {} requests in {:.2} s with {} clients = {:.0} ops/s; {} errors",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.concurrency,
            self.ops_per_s(),
            self.errors
        )?;
        writeln!(
            f,
            "latency: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(self.p50),
            ms(self.p95),
            ms(self.p99),
            ms(self.max)
        )?;
        writeln!(
            f,
            "{:<18} {:>9} {:>9} {:>9} {:>9}",
            "request", "sent", "2xx", "refused", "errors"
        )?;
        for (name, k) in &self.kinds {
            writeln!(
                f,
                "{name:<18} {:>9} {:>9} {:>9} {:>9}",
                k.requests, k.ok, k.refused, k.errors
            )?;
        }
        Ok(())
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn pick(rng: &mut Rng) -> Kind {
    let mut r = rng.below(100) as u32;
    for (k, w) in MIX {
        if r < w {
            return k;
        }
        r -= w;
    }
    Kind::Product
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn one(client: &mut Client, kind: Kind, rng: &mut Rng) -> Result<StatusCode> {
    let sku = seed::sku(rng.below(40) as usize);
    let reply = match kind {
        Kind::Product => client.get(&format!("/api/products/{sku}")).await?,
        Kind::List => {
            let c = seed::CATEGORIES[rng.below(5) as usize];
            client
                .get(&format!("/api/products?category={c}&limit=20"))
                .await?
        }
        Kind::TopRated => client.get("/api/top-rated").await?,
        Kind::Me => client.get("/api/me").await?,
        Kind::Orders => client.get("/api/orders").await?,
        Kind::Price => {
            let price = 999 + rng.below(3000) as i64;
            client
                .put(
                    &format!("/api/products/{sku}"),
                    &json!({ "price_cents": price }),
                )
                .await?
        }
        Kind::Review => {
            let rating = 1 + rng.below(5);
            client
                .post(
                    &format!("/api/products/{sku}/reviews"),
                    &json!({ "rating": rating, "text": "loadgen review" }),
                )
                .await?
        }
        Kind::Checkout => {
            client
                .post(
                    "/api/checkout",
                    &json!({ "items": [{ "sku": sku, "qty": 1 }] }),
                )
                .await?
        }
        Kind::Shop => {
            let shop = crate::app::SHOPS[rng.below(2) as usize];
            client.get(&format!("/api/shops/{shop}/items")).await?
        }
    };
    Ok(reply.status)
}

/// Run the load. Errors only when the target is not a loopback address or
/// no client could log in; failed requests are counted in the report.
pub async fn run(options: LoadgenOptions) -> Result<Report> {
    if !options.target.ip().is_loopback() {
        return Err(Error::invalid_input(
            "the load generator only targets loopback addresses",
        ));
    }
    let concurrency = options.concurrency.clamp(1, 64);
    let budget = Arc::new(AtomicU64::new(options.requests.max(1)));
    let start = Instant::now();
    let deadline = start + options.duration;
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let budget = budget.clone();
        let target = options.target;
        let seed = options.seed.wrapping_add(w as u64 * 0x9E37_79B9).max(1);
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(target)?;
            client.login_as(w % seed::CUSTOMERS).await?;
            let mut rng = Rng(seed);
            let mut latencies = Vec::new();
            let mut kinds: Vec<(Kind, KindReport)> = Vec::new();
            while Instant::now() < deadline
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let kind = pick(&mut rng);
                let t0 = Instant::now();
                let outcome = tokio::time::timeout_at(
                    tokio::time::Instant::from_std(deadline + Duration::from_secs(5)),
                    one(&mut client, kind, &mut rng),
                )
                .await;
                latencies.push(t0.elapsed());
                let k = match kinds.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, r)) => r,
                    None => {
                        kinds.push((kind, KindReport::default()));
                        &mut kinds.last_mut().expect("just pushed").1
                    }
                };
                k.requests += 1;
                match outcome {
                    Ok(Ok(s)) if s.is_success() => k.ok += 1,
                    Ok(Ok(StatusCode::CONFLICT)) if kind == Kind::Checkout => k.refused += 1,
                    Ok(Ok(StatusCode::NOT_IMPLEMENTED)) if kind == Kind::Shop => k.refused += 1,
                    _ => k.errors += 1,
                }
            }
            Ok::<_, Error>((latencies, kinds))
        }));
    }
    let mut latencies = Vec::new();
    let mut kinds: Vec<(Kind, KindReport)> = Vec::new();
    for w in workers {
        let (l, k) = w
            .await
            .map_err(|e| Error::backend(format!("load worker failed: {e}")))??;
        latencies.extend(l);
        for (kind, r) in k {
            let e = match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, e)) => e,
                None => {
                    kinds.push((kind, KindReport::default()));
                    &mut kinds.last_mut().expect("just pushed").1
                }
            };
            e.requests += r.requests;
            e.ok += r.ok;
            e.refused += r.refused;
            e.errors += r.errors;
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    kinds.sort_by_key(|(k, _)| *k);
    Ok(Report {
        requests: latencies.len() as u64,
        errors: kinds.iter().map(|(_, r)| r.errors).sum(),
        elapsed,
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        concurrency,
        kinds: kinds.into_iter().map(|(k, r)| (k.name(), r)).collect(),
    })
}
