//! The process side of `tests/lease.rs`: the child roles (a burst of
//! concurrent misses, a burst whose first load hangs, a benchmark loop),
//! the load-counting source, the start barrier and the children's reports.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Item, item};
use deadpool_redis::redis;
use persistence_cache::{CacheLayer, Lease, Stats};
use persistence_core::layer::{Around, BoxFuture, Call, Layered, Op};
use persistence_core::{MemoryRepository, Repository, Result};
use persistence_testing::TestRedis;

pub const ROLE: &str = "PERSISTENCE_LEASE_ROLE";
pub const PREFIX: &str = "PERSISTENCE_LEASE_PREFIX";
pub const RUN: &str = "PERSISTENCE_LEASE_RUN";
pub const LEASE_MS: &str = "PERSISTENCE_LEASE_TTL_MS";
pub const BENCH_SECS: &str = "PERSISTENCE_LEASE_BENCH_SECS";
pub const BENCH_L1: &str = "PERSISTENCE_LEASE_BENCH_L1";
pub const PROCS: usize = 4;
pub const READERS: usize = 250;
/// Longest a child may take before it fails instead of hanging.
pub const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Counts loads (`get`) in the Redis counter `{prefix}:loads:{run}`; with
/// `hang`, the first load of the run (counter = 1) records its pid in
/// `{prefix}:holder:{run}` and never returns.
pub struct CountLoads {
    conn: redis::aio::MultiplexedConnection,
    counter: String,
    holder: String,
    hang: bool,
    delay: Duration,
}

impl Around for CountLoads {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            if op == Op::Get {
                let mut c = self.conn.clone();
                let n: i64 = redis::cmd("INCR")
                    .arg(&self.counter)
                    .query_async(&mut c)
                    .await
                    .expect("count the load");
                if self.hang && n == 1 {
                    let _: i64 = redis::cmd("RPUSH")
                        .arg(&self.holder)
                        .arg(std::process::id())
                        .query_async(&mut c)
                        .await
                        .expect("record the holder");
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(self.delay).await;
            }
            call().await
        })
    }
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"))
}

pub async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

pub async fn get_i64(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<i64> {
    redis::cmd("GET")
        .arg(key)
        .query_async(c)
        .await
        .expect("GET")
}

/// The hot row's id in run `run` (a number): a fresh key per run.
pub fn hot(run: &str) -> i64 {
    run.parse().expect("runs are numbered")
}

/// One process's cache over its own copy of the hot row of `run`.
pub async fn process_cache(
    url: &str,
    prefix: &str,
    run: &str,
    lease: Option<Duration>,
    hang: bool,
    ttl: Option<Duration>,
    l1: bool,
) -> persistence_cache::CachedRepository<Item, Layered<MemoryRepository<Item>, CountLoads>> {
    let mem = MemoryRepository::<Item>::new();
    mem.insert(&item(hot(run), "hot", 1)).await.expect("insert");
    let hook = CountLoads {
        conn: connect(url).await,
        counter: format!("{prefix}:loads:{run}"),
        holder: format!("{prefix}:holder:{run}"),
        hang,
        delay: Duration::from_millis(if ttl.is_some() { 5 } else { 20 }),
    };
    // A check of coordination, not of timing (see `TEST_L2_TIMEOUT`): a
    // late answer counts as an outage, in which the cache rightly loads
    // without the lease.
    let mut b = CacheLayer::builder()
        .prefix(prefix)
        .redis_url(url)
        .l2_timeout(crate::common::TEST_L2_TIMEOUT);
    if let Some(t) = ttl {
        b = b.ttl(t).negative_ttl(t);
    }
    if !l1 {
        b = b.without_l1();
    }
    if let Some(l) = lease {
        b = b.lease(Lease::with_ttl(l));
    }
    b.build().expect("layer").wrap(Layered::new(mem, hook))
}

/// Every child says it is ready, then waits for the parent's go.
pub async fn barrier(c: &mut redis::aio::MultiplexedConnection, prefix: &str, run: &str) {
    let _: i64 = redis::cmd("INCR")
        .arg(format!("{prefix}:ready:{run}"))
        .query_async(c)
        .await
        .expect("ready");
    while get_i64(c, &format!("{prefix}:go:{run}")).await.is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub fn report(ok: usize, reads: u64, s: Stats) {
    println!(
        "LEASE-RESULT ok={ok} reads={reads} loads={} acquired={} waits={} expired={} l2_errors={}",
        s.loads, s.leases_acquired, s.lease_waits, s.leases_expired, s.l2_errors
    );
}

/// 250 concurrent `get`s of the hot key `id`; how many returned it.
pub async fn burst<R: Repository<Item> + Clone + 'static>(repo: &R, id: i64) -> usize {
    let tasks: Vec<_> = (0..READERS)
        .map(|_| {
            let r = repo.clone();
            tokio::spawn(async move { r.get(&id).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(Some(i))) = t.await {
            ok += usize::from(i.name == "hot");
        }
    }
    ok
}

/// The child process's work, by role.
pub async fn child_role(role: &str) {
    let url = crate::common::redis_url().expect("redis");
    let (prefix, run) = (env(PREFIX), env(RUN));
    let lease = match env(LEASE_MS).parse::<u64>().expect("ms") {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    };
    let mut c = connect(&url).await;
    match role {
        "burst" | "hang" => {
            let repo = process_cache(&url, &prefix, &run, lease, role == "hang", None, true).await;
            barrier(&mut c, &prefix, &run).await;
            let ok = tokio::time::timeout(CHILD_LIMIT, burst(&repo, hot(&run)))
                .await
                .expect("the burst stalled");
            report(ok, READERS as u64, repo.stats());
        }
        "bench" => {
            let secs: u64 = env(BENCH_SECS).parse().expect("secs");
            let ttl = Some(Duration::from_millis(100));
            let l1 = env(BENCH_L1) == "1";
            let repo = process_cache(&url, &prefix, &run, lease, false, ttl, l1).await;
            barrier(&mut c, &prefix, &run).await;
            let until = Instant::now() + Duration::from_secs(secs);
            let id = hot(&run);
            let readers: Vec<_> = (0..16)
                .map(|_| {
                    let r = repo.clone();
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < until {
                            r.get(&id).await.expect("get").expect("hot row");
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut reads = 0;
            for r in readers {
                reads += r.await.expect("reader");
            }
            report(0, reads, repo.stats());
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child process's report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub ok: u64,
    pub reads: u64,
    pub loads: u64,
    pub acquired: u64,
    pub waits: u64,
    pub expired: u64,
    /// Redis calls that failed or timed out (each one a reason to load
    /// without the lease).
    pub l2_errors: u64,
}

pub fn parse(out: &std::process::Output) -> Report {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find_map(|l| l.split_once("LEASE-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from the child:\n{text}"));
    let mut r = Report::default();
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=').expect("k=v");
        let v: u64 = v.parse().expect("number");
        match k {
            "ok" => r.ok = v,
            "reads" => r.reads = v,
            "loads" => r.loads = v,
            "acquired" => r.acquired = v,
            "waits" => r.waits = v,
            "expired" => r.expired = v,
            "l2_errors" => r.l2_errors = v,
            _ => {}
        }
    }
    r
}

/// Start `PROCS` children of `role` for `run`, and give them the go once
/// all are ready.
pub async fn start_children(
    redis: &TestRedis,
    role: &str,
    run: &str,
    lease: Option<Duration>,
    extra: &[(&str, String)],
) -> Vec<Child> {
    let exe = std::env::current_exe().expect("test binary");
    let lease_ms = lease.map_or(0, |d| d.as_millis()).to_string();
    let children: Vec<Child> = (0..PROCS)
        .map(|_| {
            let mut cmd = Command::new(&exe);
            cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
                .env(ROLE, role)
                .env(PREFIX, redis.prefix())
                .env(RUN, run)
                .env(LEASE_MS, &lease_ms)
                .env("REDIS_URL", redis.url())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in extra {
                cmd.env(k, v);
            }
            cmd.spawn().expect("spawn a child process")
        })
        .collect();
    let mut c = redis.connection().await.expect("redis");
    let ready = redis.key(&format!("ready:{run}"));
    let start = Instant::now();
    while get_i64(&mut c, &ready).await.unwrap_or(0) < PROCS as i64 {
        assert!(start.elapsed() < CHILD_LIMIT, "children never got ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _: () = redis::cmd("SET")
        .arg(redis.key(&format!("go:{run}")))
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("go");
    children
}

pub async fn wait_all(children: Vec<Child>) -> Vec<Report> {
    tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| parse(&c.wait_with_output().expect("wait")))
            .collect()
    })
    .await
    .expect("join")
}

pub async fn loads(redis: &TestRedis, run: &str) -> i64 {
    let mut c = redis.connection().await.expect("redis");
    get_i64(&mut c, &redis.key(&format!("loads:{run}")))
        .await
        .unwrap_or(0)
}
