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
mod lease_procs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Gate, Item, Levels, Probe, item};
use deadpool_redis::redis;
use lease_procs::{
    BENCH_L1, BENCH_SECS, CHILD_LIMIT, READERS, ROLE, burst, child_role, loads, process_cache,
    start_children, wait_all,
};
use persistence_cache::{CacheLayer, EntityTtl, FailSafe, Lease, ReadPolicy, Served};
use persistence_core::{ErrorKind, MemoryRepository, Repository};
use persistence_testing::TestRedis;

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
        // About misses after writes: writes only invalidate.
        f(b.lease(Lease::with_ttl(Duration::from_secs(3)))
            .write_through(false))
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
