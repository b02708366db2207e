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
//!
//! Both rules of `through` run: `Item` has a version field (one round trip
//! per write, ordered by the row's version), `Plain` has none (the writer
//! registers in Redis before its write).
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Item, Levels, Probe, item};
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::layer::{Around, BoxFuture, Call, Layered, Op};
use persistence_core::{Entity, Guard, MemoryRepository, Repository, Result, Update};
use serde::{Deserialize, Serialize};

/// `Item` without a version field: write-through registers first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "cache_plain_items")]
struct Plain {
    #[entity(id)]
    id: i64,
    n: i64,
}

/// What the hammer needs of an entity: a counter `n`, incremented by a patch.
trait Counter: Entity<Id = i64> + Clone {
    fn seed(id: i64) -> Self;
    fn n(&self) -> i64;
    fn inc() -> Update<Self>;
}

impl Counter for Item {
    fn seed(id: i64) -> Self {
        item(id, "hot", 0)
    }
    fn n(&self) -> i64 {
        self.n
    }
    fn inc() -> Update<Self> {
        Update::new().inc(Item::N, 1)
    }
}

impl Counter for Plain {
    fn seed(id: i64) -> Self {
        Plain { id, n: 0 }
    }
    fn n(&self) -> i64 {
        self.n
    }
    fn inc() -> Update<Self> {
        Update::new().inc(Plain::N, 1)
    }
}

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
async fn hammer<E: Counter, R>(
    repos: &[CachedRepository<E, R>],
    (writers, readers): (usize, usize),
    run: Duration,
) -> (u64, u64, u64)
where
    R: Repository<E> + Send + Sync + 'static,
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
                    let stored = repo.patch(&id, &E::inc(), &Guard::none()).await;
                    let stored = stored.expect("patch");
                    acked[id as usize].fetch_max(stored.n(), Ordering::SeqCst);
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
                    let got = repo.get(&id).await.expect("get").expect("row").n();
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

async fn seeded<E: Counter>() -> Layered<MemoryRepository<E>, Jitter> {
    let mem = MemoryRepository::<E>::new();
    for id in 0..KEYS {
        mem.insert(&E::seed(id)).await.expect("seed");
    }
    Layered::new(mem, Jitter { max_us: 300 })
}

/// Every instance agrees with the source on every key (polled: other
/// instances' L1 learn of writes over the backplane).
async fn converged<E: Counter, R: Repository<E> + 'static>(
    repos: &[CachedRepository<E, R>],
    source: &impl Repository<E>,
) {
    for id in 0..KEYS {
        let want = source.get(&id).await.expect("source").expect("row").n();
        for r in repos {
            common::until(async || r.get(&id).await.expect("get").expect("row").n() == want).await;
        }
    }
}

/// Three instances sharing Redis without L1 (so without a backplane), four
/// writers and four readers each: a reader that joins another reader's load
/// after another instance's write was acknowledged must not get that
/// load's older value (`crate::singleflight`: it reads again).
async fn l2_instances_never_read_older_than_the_last_acknowledged_write<E: Counter>(
    write_through: bool,
) {
    let prefix = common::prefix(if write_through { "wthru" } else { "wthru0" });
    let instance = || common::layer_with(Levels::L2, &prefix, |b| b.write_through(write_through));
    let layers: Vec<CacheLayer> = match (instance(), instance(), instance()) {
        (Some(a), Some(b), Some(c)) => vec![a, b, c],
        _ => return,
    };
    let source = seeded::<E>().await;
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
    l2_instances_never_read_older_than_the_last_acknowledged_write::<Item>(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unversioned_instances_sharing_redis_never_read_older_than_the_last_acknowledged_write() {
    l2_instances_never_read_older_than_the_last_acknowledged_write::<Plain>(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_write_through_instances_sharing_redis_never_read_older_than_the_last_acknowledged_write()
 {
    l2_instances_never_read_older_than_the_last_acknowledged_write::<Item>(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_with_l1_and_l2_converge_and_never_read_older_than_their_own_writes() {
    l1_l2_instances_converge::<Item>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unversioned_instances_with_l1_and_l2_converge_and_never_read_older_than_their_own_writes()
{
    l1_l2_instances_converge::<Plain>().await;
}

async fn l1_l2_instances_converge<E: Counter>() {
    let prefix = common::prefix("wthru12");
    let instance = || common::layer_with(Levels::Both, &prefix, |b| b.backplane(true));
    let layers: Vec<CacheLayer> = match (instance(), instance()) {
        (Some(a), Some(b)) => vec![a, b],
        _ => return,
    };
    for l in &layers {
        common::wait_connected(l).await;
    }
    let source = seeded::<E>().await;
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
    let source = seeded::<Item>().await;
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

/// Holds the next patch after it landed in the source until released.
#[derive(Debug, Clone, Default)]
struct Hold {
    armed: Arc<std::sync::atomic::AtomicBool>,
    landed: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Around for Hold {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let out = call().await;
            if op == Op::Patch && self.armed.swap(false, Ordering::SeqCst) {
                self.landed.notify_one();
                self.release.notified().await;
            }
            out
        })
    }
}

/// What lands between a held patch's database write and its end script.
#[derive(Debug, Clone, Copy)]
enum Between {
    Nothing,
    Delete,
    UpdateWhere,
    NewerPatch,
}

/// A write of a versioned entity (one round trip, no registration) that
/// landed before another instance's write but ends after it never stores
/// its older row: the next reader of a third instance sees the source.
async fn late_versioned_end(between: Between) {
    let prefix = common::prefix("wthrulate");
    let instance = || common::layer(Levels::L2, &prefix);
    let (Some(a), Some(b), Some(c)) = (instance(), instance(), instance()) else {
        return;
    };
    let mem = MemoryRepository::<Item>::new();
    mem.insert(&item(1, "a", 0)).await.expect("seed");
    let hold = Hold::default();
    let held = a.wrap(Layered::new(mem.clone(), hold.clone()));
    let other = b.wrap(mem.clone());
    let reader = c.wrap(mem.clone());
    // A first read: the instance learns the epoch, so the write may store.
    assert!(held.get(&1).await.expect("get").is_some());
    hold.armed.store(true, Ordering::SeqCst);
    let writer = held.clone();
    let write = tokio::spawn(async move {
        let inc = Update::<Item>::new().inc(Item::N, 1);
        writer.patch(&1, &inc, &Guard::none()).await
    });
    hold.landed.notified().await;
    let inc = Update::<Item>::new().inc(Item::N, 10);
    match between {
        Between::Nothing => {}
        Between::Delete => assert!(other.delete(&1).await.expect("delete")),
        Between::UpdateWhere => {
            let all = persistence_core::Filter::all();
            let n = other.update_where(&all, &inc).await;
            assert_eq!(n.expect("update_where"), 1);
        }
        Between::NewerPatch => {
            let got = other.patch(&1, &inc, &Guard::none()).await.expect("patch");
            assert_eq!((got.n, got.version), (11, 3));
        }
    }
    hold.release.notify_one();
    let written = write.await.expect("task").expect("patch");
    assert_eq!(written.n, 1);
    let source = mem.get(&1).await.expect("source");
    assert_eq!(reader.get(&1).await.expect("get"), source, "{between:?}");
    let through = held.stats().write_throughs;
    match between {
        // The control: with nothing in between the row is written through.
        Between::Nothing => assert_eq!((through, reader.stats().l2_hits), (1, 1)),
        _ => assert_eq!(through, 0, "{between:?}: the older row was stored"),
    }
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}

#[tokio::test]
async fn a_versioned_write_with_nothing_in_between_is_written_through() {
    late_versioned_end(Between::Nothing).await;
}

#[tokio::test]
async fn a_versioned_write_ending_after_a_delete_stores_nothing() {
    late_versioned_end(Between::Delete).await;
}

#[tokio::test]
async fn a_versioned_write_ending_after_a_write_of_unknown_keys_stores_nothing() {
    late_versioned_end(Between::UpdateWhere).await;
}

#[tokio::test]
async fn a_versioned_write_ending_after_a_newer_write_stores_nothing() {
    late_versioned_end(Between::NewerPatch).await;
}

/// Versions start over when a row is deleted by a write of unknown keys
/// (which leaves the key's version mark) and inserted again: a write of
/// the new row whose version is not above the mark must still replace
/// what another instance loaded into L2 in between. Once the new row's
/// version passes the mark, writes are written through again.
#[tokio::test]
async fn a_row_inserted_again_after_a_write_of_unknown_keys_is_never_read_old() {
    let prefix = common::prefix("wthruagain");
    let instance = || common::layer(Levels::L2, &prefix);
    let (Some(a), Some(c)) = (instance(), instance()) else {
        return;
    };
    let mem = MemoryRepository::<Item>::new();
    let writer = a.wrap(mem.clone());
    let reader = c.wrap(mem.clone());
    for n in 0..3 {
        let row = writer.upsert(&item(1, "a", n)).await.expect("upsert");
        assert_eq!(row.version, n + 1);
    }
    let all = persistence_core::Filter::all();
    assert_eq!(writer.delete_many(&all).await.expect("delete_many"), 1);
    let through = writer.stats().write_throughs;
    for n in 10..16 {
        let row = writer.upsert(&item(1, "a", n)).await.expect("upsert");
        assert_eq!(row.version, n - 9, "versions started over");
        // Loads the row into L2 when the write did not store it.
        let got = reader.get(&1).await.expect("get").map(|i| i.n);
        assert_eq!(
            got,
            Some(n),
            "version {}: an older row was read",
            row.version
        );
    }
    // Versions 1..=3 only invalidated (the mark stood at 3); 4..=6 stored.
    assert_eq!(writer.stats().write_throughs - through, 3);
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}
