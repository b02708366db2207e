//! Leases: cross-process stampede protection (`ReadPolicy::lease`).
//!
//! The multi-process tests re-execute this test binary (`child --exact`,
//! the role in `PERSISTENCE_LEASE_ROLE`): 4 real OS processes, each with its
//! own cache layer (its own L1 and Redis pool), all on the shared Redis
//! under one fresh key prefix. The source of each is a `MemoryRepository`
//! holding the same row behind a hook that counts every load in a Redis
//! counter under that prefix (so loads are counted across processes) and
//! takes 20 ms, which widens the window in which misses overlap.
//! Run alone (no role), `child` is the single-process case.
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Gate, Item, Levels, Probe, item};
use deadpool_redis::redis;
use persistence_cache::{CacheLayer, EntityTtl, FailSafe, Lease, ReadPolicy, Served, Stats};
use persistence_core::layer::{Around, BoxFuture, Call, Layered, Op};
use persistence_core::{ErrorKind, MemoryRepository, Repository, Result};
use persistence_testing::TestRedis;

const ROLE: &str = "PERSISTENCE_LEASE_ROLE";
const PREFIX: &str = "PERSISTENCE_LEASE_PREFIX";
const RUN: &str = "PERSISTENCE_LEASE_RUN";
const LEASE_MS: &str = "PERSISTENCE_LEASE_TTL_MS";
const BENCH_SECS: &str = "PERSISTENCE_LEASE_BENCH_SECS";
const BENCH_L1: &str = "PERSISTENCE_LEASE_BENCH_L1";
const PROCS: usize = 4;
const READERS: usize = 250;
/// Longest a child may take before it fails instead of hanging.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Counts loads (`get`) in the Redis counter `{prefix}:loads:{run}`; with
/// `hang`, the first load of the run (counter = 1) records its pid in
/// `{prefix}:holder:{run}` and never returns.
struct CountLoads {
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

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"))
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis")
}

async fn get_i64(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<i64> {
    redis::cmd("GET")
        .arg(key)
        .query_async(c)
        .await
        .expect("GET")
}

/// The hot row's id in run `run` (a number): a fresh key per run.
fn hot(run: &str) -> i64 {
    run.parse().expect("runs are numbered")
}

/// One process's cache over its own copy of the hot row of `run`.
async fn process_cache(
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
    let mut b = CacheLayer::builder().prefix(prefix).redis_url(url);
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
async fn barrier(c: &mut redis::aio::MultiplexedConnection, prefix: &str, run: &str) {
    let _: i64 = redis::cmd("INCR")
        .arg(format!("{prefix}:ready:{run}"))
        .query_async(c)
        .await
        .expect("ready");
    while get_i64(c, &format!("{prefix}:go:{run}")).await.is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn report(ok: usize, reads: u64, s: Stats) {
    println!(
        "LEASE-RESULT ok={ok} reads={reads} loads={} acquired={} waits={} expired={}",
        s.loads, s.leases_acquired, s.lease_waits, s.leases_expired
    );
}

/// 250 concurrent `get`s of the hot key `id`; how many returned it.
async fn burst<R: Repository<Item> + Clone + 'static>(repo: &R, id: i64) -> usize {
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
async fn child_role(role: &str) {
    let url = common::redis_url().expect("redis");
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
struct Report {
    ok: u64,
    reads: u64,
    loads: u64,
    acquired: u64,
    waits: u64,
    expired: u64,
}

fn parse(out: &std::process::Output) -> Report {
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
            _ => {}
        }
    }
    r
}

/// Start `PROCS` children of `role` for `run`, and give them the go once
/// all are ready.
async fn start_children(
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

async fn wait_all(children: Vec<Child>) -> Vec<Report> {
    tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| parse(&c.wait_with_output().expect("wait")))
            .collect()
    })
    .await
    .expect("join")
}

async fn loads(redis: &TestRedis, run: &str) -> i64 {
    let mut c = redis.connection().await.expect("redis");
    get_i64(&mut c, &redis.key(&format!("loads:{run}")))
        .await
        .unwrap_or(0)
}

/// The entry point of child processes; run alone, the single-process case:
/// 250 concurrent misses of one key in one process load once, under one
/// lease, which is released afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    if let Ok(role) = std::env::var(ROLE) {
        child_role(&role).await;
        return;
    }
    let Some(redis) = TestRedis::tagged("lease1").await else {
        return;
    };
    let repo = process_cache(
        redis.url(),
        redis.prefix(),
        "1",
        Some(Duration::from_secs(3)),
        false,
        None,
        true,
    )
    .await;
    assert_eq!(burst(&repo, 1).await, READERS);
    let s = repo.stats();
    assert_eq!((s.loads, s.leases_acquired, s.lease_waits), (1, 1, 0));
    assert_eq!(loads(&redis, "1").await, 1);
    let keys = redis.keys().await.expect("keys");
    assert!(
        !keys.iter().any(|k| k.ends_with(":!lease")),
        "the lease was not released: {keys:?}"
    );
}

/// 4 processes × 250 concurrent misses of one key: at most 2 loads, over
/// 20 runs (the counts are printed); without leases for contrast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_missing_one_key_load_it_at_most_twice() {
    let Some(redis) = TestRedis::tagged("lease4").await else {
        return;
    };
    let mut counts = Vec::new();
    for run in 0..20 {
        let run = run.to_string();
        let lease = Some(Duration::from_secs(3));
        let children = start_children(&redis, "burst", &run, lease, &[]).await;
        let reports = wait_all(children).await;
        for r in &reports {
            assert_eq!(r.ok, READERS as u64, "every read got the row: {r:?}");
        }
        let n = loads(&redis, &run).await;
        let acquired: u64 = reports.iter().map(|r| r.acquired).sum();
        assert!((1..=2).contains(&n), "run {run}: {n} loads ({reports:?})");
        assert_eq!(n.unsigned_abs(), acquired, "every load held a lease");
        counts.push(n);
    }
    let children = start_children(&redis, "burst", "100", None, &[]).await;
    wait_all(children).await;
    println!(
        "loads per run with leases (4 processes x 250 misses, 20 runs): {counts:?}; without leases: {}",
        loads(&redis, "100").await
    );
}

/// The lease holder is killed (SIGKILL) mid-load: the other 3 processes
/// all get the row, from one more load, done by one of them after the
/// holder's lease expired (the holder never released it: its load never
/// returned and it was killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_does_not_stall_the_others() {
    let Some(redis) = TestRedis::tagged("leasekill").await else {
        return;
    };
    let lease = Some(Duration::from_secs(2));
    let mut children = start_children(&redis, "hang", "1", lease, &[]).await;
    let mut c = redis.connection().await.expect("redis");
    let holder_key = redis.key("holder:1");
    let start = Instant::now();
    let holder: u32 = loop {
        let pid: Option<u32> = redis::cmd("LINDEX")
            .arg(&holder_key)
            .arg(0)
            .query_async(&mut c)
            .await
            .expect("LINDEX");
        if let Some(pid) = pid {
            break pid;
        }
        assert!(start.elapsed() < CHILD_LIMIT, "no load started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let i = children
        .iter()
        .position(|ch| ch.id() == holder)
        .expect("the holder is a child");
    let mut killed = children.remove(i);
    killed.kill().expect("SIGKILL the holder");
    let status = killed.wait().expect("reap");
    assert!(!status.success(), "the holder was killed: {status}");

    let reports = wait_all(children).await;
    for r in &reports {
        assert_eq!(
            r.ok, READERS as u64,
            "a survivor did not get the row: {r:?}"
        );
    }
    let survivors_loads: u64 = reports.iter().map(|r| r.loads).sum();
    let acquired: u64 = reports.iter().map(|r| r.acquired).sum();
    let waits: u64 = reports.iter().map(|r| r.waits).sum();
    let expired: u64 = reports.iter().map(|r| r.expired).sum();
    println!("killed holder: survivors {reports:?}");
    // The holder's load (never finished) and exactly one more.
    assert_eq!(loads(&redis, "1").await, 2);
    assert_eq!(survivors_loads, 1, "{reports:?}");
    // That load held a lease: taken after the dead holder's expired.
    assert_eq!(acquired, 1, "{reports:?}");
    assert!(expired <= waits, "{reports:?}");
}

fn leased(
    prefix: &str,
    f: impl FnOnce(persistence_cache::CacheLayerBuilder) -> persistence_cache::CacheLayerBuilder,
) -> Option<CacheLayer> {
    common::layer_with(Levels::Both, prefix, |b| {
        f(b.lease(Lease::with_ttl(Duration::from_secs(3))))
    })
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A write lands while instance A holds the lease and has read the old
/// row; B misses after the write and waits on A's lease. A's store is
/// refused (stale-set rule), its lease released, and B takes over and
/// loads the new row: the waiter never reads the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_the_lease_never_lets_a_waiter_read_the_old_value() {
    let Some(redis) = TestRedis::tagged("leasewrite").await else {
        return;
    };
    let (Some(la), Some(lb)) = (leased(redis.prefix(), |b| b), leased(redis.prefix(), |b| b))
    else {
        return;
    };
    let mem = MemoryRepository::<Item>::new();
    let v1 = mem.insert(&item(1, "v1", 1)).await.expect("insert");
    let gate = Gate::armed();
    let mut probe = Probe::new(mem.clone());
    probe.gate = Some(gate.clone());
    let a = la.wrap(probe);
    let b = lb.wrap(mem.clone());

    let ta = tokio::spawn({
        let a = a.clone();
        async move { a.get(&1).await }
    });
    gate.entered.notified().await; // A holds the lease and has read v1
    let mut v2 = v1.clone();
    v2.name = "v2".into();
    b.update(&v2).await.expect("update");
    let tb = tokio::spawn({
        let b = b.clone();
        async move { b.get(&1).await }
    });
    until("B never waited on A's lease", || b.stats().lease_waits == 1).await;
    gate.release.notify_one();
    ta.await.expect("join").expect("A's read");
    let got = tb.await.expect("join").expect("B's read").expect("row");
    assert_eq!(got.name, "v2", "the waiter read the old value");
    assert_eq!(a.stats().stale_sets_prevented, 1);
    assert_eq!(a.stats().leases_acquired, 1);
    let sb = b.stats();
    assert_eq!((sb.loads, sb.leases_acquired, sb.leases_expired), (1, 1, 1));
}

/// With the fail-safe, a reader whose L1 holds a stale (still current)
/// value serves it at once while another instance holds the lease, instead
/// of waiting for that load or loading itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_with_a_stale_value_serves_it_at_once() {
    let Some(redis) = TestRedis::tagged("leasestale").await else {
        return;
    };
    let instance = || leased(redis.prefix(), |b| b.backplane(true).jitter(0.0));
    let (Some(la), Some(lb)) = (instance(), instance()) else {
        return;
    };
    until("backplane", || {
        la.backplane_connected() && lb.backplane_connected()
    })
    .await;
    let mem = MemoryRepository::<Item>::new();
    mem.insert(&item(1, "v1", 1)).await.expect("insert");
    let gate = Arc::new(Gate::default());
    let mut probe = Probe::new(mem.clone());
    probe.gate = Some(gate.clone());
    let ttl = Duration::from_millis(100);
    let policy = ReadPolicy::default()
        .fail_safe(FailSafe::new(Duration::from_secs(600)))
        .lease(Lease::with_ttl(Duration::from_secs(3)));
    let a = la
        .wrap(probe)
        .with_ttl(EntityTtl::new(ttl, ttl))
        .with_read_policy(policy)
        .expect("policy");
    let b = lb
        .wrap(mem.clone())
        .with_ttl(EntityTtl::new(ttl, ttl))
        .with_read_policy(policy)
        .expect("policy");
    assert_eq!(a.get_served(&1).await.expect("a").1, Served::Fresh);
    assert_eq!(b.get_served(&1).await.expect("b").1, Served::Fresh); // an L2 hit
    tokio::time::sleep(ttl * 3).await; // both levels expired
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let ta = tokio::spawn({
        let a = a.clone();
        async move { a.get_served(&1).await }
    });
    gate.entered.notified().await; // A holds the lease, its load is blocked
    let (row, served) = b.get_served(&1).await.expect("b's stale read");
    assert_eq!(served, Served::Stale);
    assert_eq!(row.expect("row").name, "v1");
    let sb = b.stats();
    assert_eq!((sb.loads, sb.lease_waits, sb.stale_served), (0, 1, 1));
    gate.release.notify_one();
    assert_eq!(ta.await.expect("join").expect("a").1, Served::Fresh);
    assert_eq!(a.stats().leases_acquired, 2, "its first load and this one");
    // A stored its load in L2: B's next read is fresh, without a load.
    assert_eq!(b.get_served(&1).await.expect("b").1, Served::Fresh);
    assert_eq!(b.stats().loads, 0);
}

#[test]
fn a_lease_needs_l2() {
    let err = CacheLayer::builder()
        .lease(Lease::default())
        .build()
        .expect_err("no L2");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("lease needs L2"), "{err}");
    let err = CacheLayer::builder()
        .entity_read_policy(
            "x",
            ReadPolicy::default().lease(Lease::with_ttl(Duration::ZERO)),
        )
        .build()
        .expect_err("zero ttl");
    assert!(err.to_string().contains("lease.ttl"), "{err}");
    // Capped by the hard timeout.
    let p = ReadPolicy::default()
        .lease(Lease::default())
        .hard_timeout(Duration::from_secs(1));
    assert_eq!(p.lease_ttl(), Some(Duration::from_secs(1)));
}

/// On demand (a measurement, not a check): `cargo nextest run -p
/// persistence-cache --test lease --run-ignored only --no-capture`.
/// Loads per second of one hot key whose entries live 100 ms, read by 16
/// tasks in each of 4 processes for 5 s, without and with leases (one run,
/// side by side; the loads take 5 ms), with L1 + L2 and with L2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark, run on demand"]
async fn bench_loads_per_hot_key_with_and_without_leases() {
    let Some(redis) = TestRedis::tagged("leasebench").await else {
        return;
    };
    let secs = 5u64;
    let lease = Some(Duration::from_secs(3));
    for (levels, l1, runs) in [("L1 + L2", "1", ["1", "2"]), ("L2 only", "0", ["3", "4"])] {
        let mut rows = Vec::new();
        for (run, name, lease) in [
            (runs[0], "without leases", None),
            (runs[1], "with leases", lease),
        ] {
            let extra = [(BENCH_SECS, secs.to_string()), (BENCH_L1, l1.to_string())];
            let children = start_children(&redis, "bench", run, lease, &extra).await;
            let reports = wait_all(children).await;
            let reads: u64 = reports.iter().map(|r| r.reads).sum();
            let n = loads(&redis, run).await;
            #[allow(clippy::cast_precision_loss)]
            let (per_sec, reads_per_sec) = (n as f64 / secs as f64, reads as f64 / secs as f64);
            println!(
                "{levels}, {name:>14}: {per_sec:6.1} loads/s, {reads_per_sec:8.0} reads/s (4 processes)"
            );
            rows.push(per_sec);
        }
        println!(
            "{levels}: loads without / with leases = {:.2}",
            rows[0] / rows[1].max(f64::MIN_POSITIVE)
        );
    }
}
