//! Coherence through manual failovers of a Redis Cluster with replicas: a
//! cluster of the test's own (`LocalRedisCluster`, 3 masters + 3 replicas,
//! node ports from `PERSISTENCE_CLUSTER_PORTS`, killed on drop), three
//! cache instances over one backing repository — A writes an entity and
//! invalidates a tag in a loop (L1 + L2 + backplane), B reads both (L2
//! only), C reads the entity (L1 + L2 + backplane). Mid-run, `CLUSTER
//! FAILOVER` is run on the replica of the master of the entity type's slot,
//! then of the tag's slots and of the node the backplane subscribes on,
//! then the entity's shard fails back; each time the test waits for the
//! role change to reach every node and the cluster to be ok (events, no
//! fixed sleeps), then for reads and acknowledged writes to go on.
//!
//! Asserted:
//! * B never returns a value (entity or tagged) older than the newest write
//!   of A acknowledged with its invalidation (the write returned with
//!   nothing queued) before B's read began: no acknowledged invalidation is
//!   lost by a failover, and tags still invalidate across it.
//! * C (L1) never returns a value older than the newest write acknowledged
//!   more than 3x the backplane's stated bound before its read began (the
//!   bound of `cluster_faults`): the backplane goes on through the failover
//!   of the node it subscribes on (a replica gets the cluster's messages too).
//! * The cluster client follows the new slot map: after each failover
//!   writes are acknowledged with their invalidations again (the tag's
//!   slot is written only by scripts) and B's L2 lookups succeed, and a raw
//!   cluster connection made before the failovers writes and reads the
//!   failed-over slot at the first try (the old master answers `MOVED`).
//!   A's writes never fail; everyone converges on the last value, and the
//!   tag still invalidates at the end. (This is what caught the cluster
//!   client's `READONLY` connections: a demoted master ran the tag
//!   scripts, which failed with `READONLY` for ever; see
//!   `persistence_cache::client`.)
//!
//! Why nothing acknowledged is lost: a *manual* failover (`CLUSTER
//! FAILOVER` without `FORCE`/`TAKEOVER`) makes the master pause its
//! writers and send its replication offset; the replica takes over only
//! once it has applied everything up to that offset, so every write the old
//! master acknowledged (the gen token replaced and the entries deleted by an
//! invalidation, a tag's token replaced by `invalidate_tag`) is on the new
//! master before it serves. Writers paused meanwhile are answered `MOVED`
//! and the cluster client resends to the new master (an invalidation that
//! outlives the L2 time-out is queued and resent: not acknowledged, and not
//! counted as such here).
//!
//! What an automatic failover after a crash bounds it to (not tested here):
//! replication is asynchronous, and a replica promoted after
//! `cluster-node-timeout` without its master keeps only what it had
//! received. Invalidations the dead master acknowledged within its
//! replication lag (usually well under a millisecond on a LAN, but not
//! bounded by Redis) can be lost: the deleted entry and the old gen / tag
//! token come back on the new master. The old entry then reads as live in
//! L2 (and instances whose L1 the backplane cleared reload it) until its
//! L2 TTL, unless sooner the key is written again, or an instance whose L2
//! operation failed during the outage (it needs only touch that entity type)
//! resets the type's tokens when Redis answers again, which kills every
//! older entry. Invalidations attempted while the slot had no master fail,
//! are queued and are sent to the new master (not lost).
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Item, item};
use parking_lot::Mutex;
use persistence_cache::{CacheLayer, CachedRepository, RedisEndpoint};
use persistence_core::{Entity, MemoryRepository, Repository};
use persistence_testing::local::{LocalRedisCluster, or_skip};

const HEARTBEAT: Duration = Duration::from_millis(250);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(750);
const DEGRADED_TTL: Duration = Duration::from_secs(1);
/// Longer than a manual failover pauses writers on a loaded machine, so
/// that writes are normally acknowledged with their invalidation.
const L2_TIMEOUT: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(60);
const TAG: &str = "tg";
const TAGGED: &str = "tv";
/// Progress (acknowledged writes, reads) required after each failover.
const PROGRESS: u64 = 20;
/// Bound of every wait on progress (generous: a loaded machine).
const WAIT: Duration = Duration::from_secs(60);

/// The backplane's bound on C's staleness (see `cluster_faults`).
fn stated_bound() -> Duration {
    (HEARTBEAT_TIMEOUT + HEARTBEAT_TIMEOUT / 4).max(DEGRADED_TTL) + L2_TIMEOUT
}

type Repo = CachedRepository<Item, MemoryRepository<Item>>;

fn instance(nodes: &[String], prefix: &str, l1: bool) -> CacheLayer {
    let mut b = CacheLayer::builder()
        .prefix(prefix)
        .ttl(TTL)
        .l2_timeout(L2_TIMEOUT)
        .redis_endpoint(RedisEndpoint::cluster(nodes.iter().cloned()).expect("nodes"));
    b = if l1 {
        b.backplane(true)
            .heartbeat(HEARTBEAT)
            .heartbeat_timeout(HEARTBEAT_TIMEOUT)
            .backplane_degraded_ttl(DEGRADED_TTL)
    } else {
        b.without_l1()
    };
    b.build().expect("layer")
}

/// Acknowledged writes: (value, when the write returned, whether its L2
/// invalidations — the entity's and the tag's — were acknowledged by then).
type Acks = Arc<Mutex<Vec<(i64, Instant, bool)>>>;

/// The newest value acknowledged before `t` (with its invalidation, when
/// `invalidated`).
fn acked_before(acks: &Acks, t: Instant, invalidated: bool) -> i64 {
    acks.lock()
        .iter()
        .rev()
        .find(|(_, at, inv)| *at < t && (*inv || !invalidated))
        .map_or(0, |(n, _, _)| *n)
}

fn acked_with_invalidation(acks: &Acks) -> u64 {
    acks.lock().iter().filter(|(_, _, inv)| *inv).count() as u64
}

/// What the readers found.
#[derive(Default)]
struct Reads {
    /// B's entity reads, B's tagged reads, C's reads.
    b: AtomicU64,
    b_tagged: AtomicU64,
    c: AtomicU64,
    bad: Mutex<Vec<String>>,
}

/// B: the entity and the tagged value, both checked strictly.
fn reader_b(
    repo: Repo,
    layer: CacheLayer,
    truth: Arc<AtomicI64>,
    acks: Acks,
    reads: Arc<Reads>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let began = Instant::now();
            if let Ok(Some(got)) = repo.get(&1).await {
                reads.b.fetch_add(1, Ordering::SeqCst);
                let floor = acked_before(&acks, began, true);
                if got.n < floor {
                    reads.bad.lock().push(format!(
                        "B read entity {} after {floor} was acknowledged with its invalidation",
                        got.n
                    ));
                }
            }
            let began = Instant::now();
            let truth = truth.clone();
            let tagged = layer
                .get_or_load_tagged(TAGGED, &[TAG], move || async move {
                    Ok(truth.load(Ordering::SeqCst))
                })
                .await;
            if let Ok(v) = tagged {
                reads.b_tagged.fetch_add(1, Ordering::SeqCst);
                let floor = acked_before(&acks, began, true);
                if v < floor {
                    reads.bad.lock().push(format!(
                        "B read tagged {v} after {floor} was acknowledged with its tag invalidation"
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

/// C: the entity through its L1, checked against the backplane's bound.
fn reader_c(
    repo: Repo,
    acks: Acks,
    reads: Arc<Reads>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slack = stated_bound() * 3;
        while !stop.load(Ordering::SeqCst) {
            let began = Instant::now();
            if let Ok(Some(got)) = repo.get(&1).await {
                reads.c.fetch_add(1, Ordering::SeqCst);
                let floor = began
                    .checked_sub(slack)
                    .map_or(0, |t| acked_before(&acks, t, false));
                if got.n < floor {
                    reads.bad.lock().push(format!(
                        "C read {} after {floor} was acknowledged more than {slack:?} before",
                        got.n
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Successful L2 lookups of a cached repository.
fn lookups(repo: &Repo) -> u64 {
    let s = repo.stats();
    s.l2_hits + s.l2_misses
}

/// Wait until writes acknowledged with their invalidation, every reader's
/// reads and B's successful L2 lookups have each grown by [`PROGRESS`].
async fn wait_progress(acks: &Acks, reads: &Reads, b: &Repo, what: &str) {
    let counts = || {
        [
            acked_with_invalidation(acks),
            reads.b.load(Ordering::SeqCst),
            reads.b_tagged.load(Ordering::SeqCst),
            reads.c.load(Ordering::SeqCst),
            lookups(b),
        ]
    };
    let before = counts();
    let start = Instant::now();
    loop {
        let now = counts();
        if now.iter().zip(&before).all(|(n, b)| *n >= b + PROGRESS) {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "no progress {what} within {WAIT:?}: [acked writes, B reads, B tagged reads, \
             C reads, B L2 lookups] went from {before:?} to {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manual_failovers_lose_no_acknowledged_invalidation() {
    use redis::AsyncCommands as _;
    // The layer's warnings (a failed invalidation names its Redis error),
    // shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_test_writer()
        .try_init();
    let started = tokio::task::spawn_blocking(|| LocalRedisCluster::start_with_replicas(3, 1))
        .await
        .expect("start task");
    let Some(cluster) = or_skip("redis cluster with replicas", started) else {
        return;
    };
    let cluster = Arc::new(cluster);
    let nodes = cluster.urls();
    let prefix = common::prefix("cfover");
    let (la, lb, lc) = (
        instance(&nodes, &prefix, true),
        instance(&nodes, &prefix, false),
        instance(&nodes, &prefix, true),
    );
    common::wait_connected(&la).await;
    common::wait_connected(&lc).await;
    let mem = MemoryRepository::<Item>::new();
    let (a, b, c): (Repo, Repo, Repo) = (la.wrap(mem.clone()), lb.wrap(mem.clone()), lc.wrap(mem));
    a.insert(&item(1, "v", 0)).await.expect("insert");

    // The slots whose masters fail over: the entity type's (entries and
    // tokens), the tag's (set and token), the tagged value's, and the
    // shard of node 0, which the backplanes subscribe on.
    let entity_tag = format!(
        "{{{prefix}:{}:{}}}",
        Item::meta().name,
        Item::meta().schema_version
    );
    let tag_token = format!("{prefix}:!tagv:{{{prefix}:{TAG}}}");
    let tagged_value = format!("{prefix}:!val:{TAGGED}");
    let c2 = cluster.clone();
    let (entity_master, victims) = tokio::task::spawn_blocking(move || {
        let entity_master = c2.node_of(&entity_tag);
        let node0_master = c2.master_of(0).unwrap_or(0);
        let mut victims = Vec::new();
        for m in [
            entity_master,
            c2.node_of(&tag_token),
            c2.node_of(&tagged_value),
            node0_master,
        ] {
            if !victims.contains(&m) {
                victims.push(m);
            }
        }
        (entity_master, victims)
    })
    .await
    .expect("slots");
    println!("entity shard: node {entity_master}; shards to fail over: {victims:?}");

    // A raw connection of the cluster client, made before the failovers,
    // on the entity type's slot.
    let raw_client = redis::cluster::ClusterClient::new(nodes.clone()).expect("client");
    let mut raw = raw_client.get_async_connection().await.expect("connect");
    let raw_key = format!(
        "{prefix}:{{{prefix}:{}:{}}}:raw",
        Item::meta().name,
        Item::meta().schema_version
    );
    let () = raw.set(&raw_key, 0).await.expect("raw set");

    let acks: Acks = Arc::new(Mutex::new(vec![(0, Instant::now(), true)]));
    let truth = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(Reads::default());
    let writer = {
        let (a, la, acks, stop, truth) = (
            a.clone(),
            la.clone(),
            acks.clone(),
            stop.clone(),
            truth.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let cur = a.get(&1).await.expect("get").expect("found");
                let mut next = cur.clone();
                next.n = n;
                a.update(&next).await.expect("a write never fails");
                truth.store(n, Ordering::SeqCst);
                la.invalidate_tag(TAG).await;
                let invalidated = la.status().queued_invalidations == 0;
                acks.lock().push((n, Instant::now(), invalidated));
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            n
        })
    };
    let rb = reader_b(
        b.clone(),
        lb.clone(),
        truth.clone(),
        acks.clone(),
        reads.clone(),
        stop.clone(),
    );
    let rc = reader_c(c.clone(), acks.clone(), reads.clone(), stop.clone());
    wait_progress(&acks, &reads, &b, "before the first failover").await;

    // Fail every victim shard over to its replica, then fail the entity
    // type's shard back to its first master (a replica of its own by then).
    let mut promote: Vec<Option<usize>> = victims.iter().map(|_| None).collect();
    promote.push(Some(entity_master));
    for (step, target) in promote.into_iter().enumerate() {
        let step = step as i64 + 1;
        let master = victims.get(step as usize - 1).copied();
        let c2 = cluster.clone();
        let (promoted, demoted) = tokio::task::spawn_blocking(move || {
            let replica = target.unwrap_or_else(|| {
                let m = master.expect("a victim");
                c2.replica_of(m)
                    .unwrap_or_else(|| panic!("master {m} has no replica"))
            });
            (replica, c2.failover(replica))
        })
        .await
        .expect("failover");
        if let Some(m) = master {
            assert_eq!(demoted, m);
        }
        println!("failover {step}: node {promoted} took over from node {demoted}");
        // The raw cluster connection follows the new slot map at once.
        let () = raw
            .set(&raw_key, step)
            .await
            .expect("raw set after failover");
        let got: i64 = raw.get(&raw_key).await.expect("raw get after failover");
        assert_eq!(got, step);
        wait_progress(&acks, &reads, &b, &format!("after failover {step}")).await;
    }
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.expect("writer");
    rb.await.expect("reader b");
    rc.await.expect("reader c");
    let queued = acks.lock().iter().filter(|(_, _, inv)| !inv).count();
    println!(
        "{last} writes, {queued} with an invalidation queued; B read {} entities and {} tagged \
         values ({} L2 hits, {} L2 errors), C read {}",
        reads.b.load(Ordering::SeqCst),
        reads.b_tagged.load(Ordering::SeqCst),
        b.stats().l2_hits,
        b.stats().l2_errors,
        reads.c.load(Ordering::SeqCst),
    );
    let bad = reads.bad.lock().clone();
    assert!(bad.is_empty(), "stale reads across failovers: {bad:?}");

    // Once over, everyone converges on the last value, and the tag still
    // invalidates.
    let start = Instant::now();
    loop {
        let (gb, gc) = (b.get(&1).await, c.get(&1).await);
        let n = |r: persistence_core::Result<Option<Item>>| r.ok().flatten().map(|e| e.n);
        if n(gb) == Some(last) && n(gc) == Some(last) {
            break;
        }
        assert!(start.elapsed() < WAIT, "no convergence on {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The tagged value: B's cached copy if it was loaded after A's last
    // invalidation, else loaded now; cached either way, until A
    // invalidates the tag once more.
    let load = |v: i64| move || async move { Ok(v) };
    let tagged = |v: i64| lb.get_or_load_tagged(TAGGED, &[TAG], load(v));
    assert_eq!(
        tagged(truth.load(Ordering::SeqCst)).await.expect("tagged"),
        last
    );
    assert_eq!(tagged(last + 1).await.expect("tagged"), last, "cached");
    la.invalidate_tag(TAG).await;
    assert_eq!(la.status().queued_invalidations, 0);
    assert_eq!(tagged(last + 1).await.expect("tagged"), last + 1);
}
