//! Write-through (see `src/repository/through.rs`): after a write the next
//! read is a hit, and concurrent writers and readers of a few hot keys,
//! through several instances sharing Redis (and through one L1-only
//! instance), never read a value older than the last acknowledged write.
//!
//! The writes increment `n` in the source (`patch` with `inc`), so the
//! source's value of a key grows with every write that lands, and each
//! write returns the value it produced; a hook delays writes at random
//! before and after they land, so writers of one key overlap and answer
//! out of order. A read that starts after a write returning `n` was
//! acknowledged must return at least `n`.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Item, Levels, Probe, item};
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::layer::{Around, BoxFuture, Call, Layered, Op};
use persistence_core::{Guard, MemoryRepository, Repository, Result, Update};

/// Delays every write by up to `max_us` before and after it lands.
#[derive(Debug, Clone)]
struct Jitter {
    max_us: u64,
}

impl Around for Jitter {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            if !op.is_write() {
                return call().await;
            }
            let pause = || Duration::from_micros(fastrand::u64(0..=self.max_us));
            tokio::time::sleep(pause()).await;
            let out = call().await;
            tokio::time::sleep(pause()).await;
            out
        })
    }
}

const KEYS: i64 = 3;

/// Per key: the highest `n` a write of it returned, recorded once acknowledged.
fn acked() -> Arc<Vec<AtomicI64>> {
    Arc::new((0..KEYS).map(|_| AtomicI64::new(0)).collect())
}

/// `writers` + `readers` tasks per repository for `run`, over keys
/// `0..KEYS`: returns (writes, reads, stale reads).
async fn hammer<R>(
    repos: &[CachedRepository<Item, R>],
    (writers, readers): (usize, usize),
    run: Duration,
) -> (u64, u64, u64)
where
    R: Repository<Item> + Send + Sync + 'static,
{
    let acked = acked();
    let (writes, reads, stale) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for repo in repos {
        for _ in 0..writers {
            let (repo, acked, writes) = (repo.clone(), acked.clone(), writes.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let id = fastrand::i64(0..KEYS);
                    let update = Update::<Item>::new().inc(Item::N, 1);
                    let stored = repo.patch(&id, &update, &Guard::none()).await;
                    let stored = stored.expect("patch");
                    acked[id as usize].fetch_max(stored.n, Ordering::SeqCst);
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for _ in 0..readers {
            let (repo, acked, reads, stale) =
                (repo.clone(), acked.clone(), reads.clone(), stale.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let id = fastrand::i64(0..KEYS);
                    let floor = acked[id as usize].load(Ordering::SeqCst);
                    let got = repo.get(&id).await.expect("get").expect("row").n;
                    if got < floor {
                        stale.fetch_add(1, Ordering::Relaxed);
                        eprintln!("stale read of {id}: {got} after {floor} was acknowledged");
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    (
        writes.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed),
    )
}

async fn seeded() -> Layered<MemoryRepository<Item>, Jitter> {
    let mem = MemoryRepository::<Item>::new();
    for id in 0..KEYS {
        mem.insert(&item(id, "hot", 0)).await.expect("seed");
    }
    Layered::new(mem, Jitter { max_us: 300 })
}

/// Every instance agrees with the source on every key (polled: other
/// instances' L1 learn of writes over the backplane).
async fn converged<R: Repository<Item> + 'static>(
    repos: &[CachedRepository<Item, R>],
    source: &impl Repository<Item>,
) {
    for id in 0..KEYS {
        let want = source.get(&id).await.expect("source").expect("row").n;
        for r in repos {
            common::until(async || r.get(&id).await.expect("get").expect("row").n == want).await;
        }
    }
}

/// Three instances sharing Redis without L1 (so without a backplane), four
/// writers and four readers each: a reader that joins another reader's load
/// after another instance's write was acknowledged must not get that
/// load's older value (`crate::singleflight`: it reads again).
async fn l2_instances_never_read_older_than_the_last_acknowledged_write(write_through: bool) {
    let prefix = common::prefix(if write_through { "wthru" } else { "wthru0" });
    let instance = || common::layer_with(Levels::L2, &prefix, |b| b.write_through(write_through));
    let layers: Vec<CacheLayer> = match (instance(), instance(), instance()) {
        (Some(a), Some(b), Some(c)) => vec![a, b, c],
        _ => return,
    };
    let source = seeded().await;
    let repos: Vec<_> = layers.iter().map(|l| l.wrap(source.clone())).collect();
    let (writes, reads, stale) = hammer(&repos, (4, 4), Duration::from_secs(3)).await;
    let stats: Vec<_> = repos.iter().map(|r| r.stats()).collect();
    let through: u64 = stats.iter().map(|s| s.write_throughs).sum();
    let hits: u64 = stats.iter().map(|s| s.l2_hits).sum();
    let rereads: u64 = stats.iter().map(|s| s.rereads).sum();
    eprintln!(
        "L2 x3: {writes} writes ({through} written through), {reads} reads ({hits} hits, {rereads} read again)"
    );
    assert_eq!(stale, 0, "stale reads");
    assert!(writes > 0 && reads > 0);
    assert_eq!(through > 0, write_through, "writes written through");
    converged(&repos, &source).await;
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_redis_never_read_older_than_the_last_acknowledged_write() {
    l2_instances_never_read_older_than_the_last_acknowledged_write(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_write_through_instances_sharing_redis_never_read_older_than_the_last_acknowledged_write()
 {
    l2_instances_never_read_older_than_the_last_acknowledged_write(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_with_l1_and_l2_converge_and_never_read_older_than_their_own_writes() {
    let prefix = common::prefix("wthru12");
    let instance = || common::layer_with(Levels::Both, &prefix, |b| b.backplane(true));
    let layers: Vec<CacheLayer> = match (instance(), instance()) {
        (Some(a), Some(b)) => vec![a, b],
        _ => return,
    };
    for l in &layers {
        common::wait_connected(l).await;
    }
    let source = seeded().await;
    let repos: Vec<_> = layers.iter().map(|l| l.wrap(source.clone())).collect();
    // Other instances' L1 lag by the backplane's delay, so each instance is
    // checked against its own acknowledged writes, then all converge.
    let mut runs = Vec::new();
    for r in &repos {
        let one = vec![r.clone()];
        runs.push(tokio::spawn(async move {
            hammer(&one, (4, 4), Duration::from_secs(3)).await
        }));
    }
    for run in runs {
        let (writes, reads, stale) = run.await.expect("run");
        eprintln!("L1+L2: {writes} writes, {reads} reads");
        assert_eq!(stale, 0, "stale reads");
    }
    assert!(repos.iter().map(|r| r.stats().write_throughs).sum::<u64>() > 0);
    converged(&repos, &source).await;
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn l1_only_never_reads_older_than_the_last_acknowledged_write() {
    let layer = common::layer(Levels::L1, &common::prefix("wthrul1")).expect("layer");
    let source = seeded().await;
    // Two handles on one cache, as tasks of one process share it.
    let repo = layer.wrap(source.clone());
    let repos = vec![repo.clone(), repo];
    let (writes, reads, stale) = hammer(&repos, (4, 4), Duration::from_secs(3)).await;
    let s = repos[0].stats();
    eprintln!(
        "L1: {writes} writes ({} written through), {reads} reads ({} hits)",
        s.write_throughs, s.l1_hits
    );
    assert_eq!(stale, 0, "stale reads");
    assert!(s.write_throughs > 0);
    converged(&repos, &source).await;
}

/// After each kind of write the next read is a hit (no load), at every
/// level; deletes still invalidate; off, writes only invalidate.
async fn next_read_is_a_hit(levels: Levels) {
    let prefix = common::prefix("wthruhit");
    let Some(layer) = common::layer(levels, &prefix) else {
        return;
    };
    let probe = Probe::new(MemoryRepository::<Item>::new());
    let loads = probe.reads.clone();
    let repo = layer.wrap(probe);
    let loaded = || loads.load(Ordering::SeqCst);

    repo.insert(&item(1, "a", 1)).await.expect("insert");
    assert_eq!(repo.get(&1).await.expect("get").map(|i| i.n), Some(1));
    assert_eq!(loaded(), 0, "{levels:?}: read after insert loaded");

    let mut v = repo.get(&1).await.expect("get").expect("row");
    v.n = 2;
    let stored = repo.update(&v).await.expect("update");
    assert_eq!(repo.get(&1).await.expect("get"), Some(stored));
    assert_eq!(loaded(), 0, "{levels:?}: read after update loaded");

    let update = Update::<Item>::new().inc(Item::N, 5);
    let stored = repo
        .patch(&1, &update, &Guard::none())
        .await
        .expect("patch");
    assert_eq!(stored.n, 7);
    assert_eq!(repo.get(&1).await.expect("get"), Some(stored.clone()));
    assert_eq!(loaded(), 0, "{levels:?}: read after patch loaded");

    let up = repo.upsert(&item(2, "b", 3)).await.expect("upsert");
    assert_eq!(repo.get(&2).await.expect("get"), Some(up));
    assert_eq!(loaded(), 0, "{levels:?}: read after upsert loaded");
    assert_eq!(repo.stats().write_throughs, 4);

    assert!(repo.delete(&2).await.expect("delete"));
    assert_eq!(repo.get(&2).await.expect("get"), None);
    assert_eq!(loaded(), 1, "{levels:?}: a delete stays an invalidation");

    let off = repo.with_write_through(false);
    let update = Update::<Item>::new().inc(Item::N, 1);
    off.patch(&1, &update, &Guard::none()).await.expect("patch");
    assert_eq!(off.get(&1).await.expect("get").map(|i| i.n), Some(8));
    assert_eq!(loaded(), 2, "{levels:?}: write-through off still loads");
    assert_eq!(repo.stats().write_throughs, 4);
    if levels != Levels::L1 {
        common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
    }
}

#[tokio::test]
async fn after_a_write_the_next_read_is_a_hit_l1() {
    next_read_is_a_hit(Levels::L1).await;
}

#[tokio::test]
async fn after_a_write_the_next_read_is_a_hit_l2() {
    next_read_is_a_hit(Levels::L2).await;
}

#[tokio::test]
async fn after_a_write_the_next_read_is_a_hit_l1_l2() {
    next_read_is_a_hit(Levels::Both).await;
}

/// Another instance's read after the write is an L2 hit too.
#[tokio::test]
async fn another_instance_reads_the_written_row_from_l2() {
    let prefix = common::prefix("wthruother");
    let (Some(la), Some(lb)) = (
        common::layer(Levels::Both, &prefix),
        common::layer(Levels::Both, &prefix),
    ) else {
        return;
    };
    let probe = Probe::new(MemoryRepository::<Item>::new());
    let loads = probe.reads.clone();
    let mem = probe.inner.clone();
    let a = la.wrap(probe);
    let b = lb.wrap(mem);
    a.insert(&item(1, "a", 1)).await.expect("insert");
    assert_eq!(b.get(&1).await.expect("get").map(|i| i.n), Some(1));
    assert_eq!(b.stats().l2_hits, 1);
    assert_eq!(b.stats().loads, 0);
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}
