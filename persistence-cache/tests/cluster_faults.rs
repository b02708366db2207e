//! Coherence on a Redis Cluster whose nodes restart mid-run: a 3-master
//! cluster of the test's own (`LocalRedisCluster`, node ports from
//! `PERSISTENCE_CLUSTER_PORTS`), three cache instances over one backing
//! repository — A writes (L1 + L2 + backplane), B reads (L1 + L2 +
//! backplane), C reads (L2 only). A updates one entity in a loop while the
//! node serving the entity type's slot is killed (SIGKILL: it comes back
//! empty, nothing is persisted) and started again, then the node B's
//! backplane subscribes on.
//!
//! Asserted:
//! * C never returns a value older than the last update whose L2
//!   invalidation Redis acknowledged before C's read began (the write
//!   returned with nothing queued) — no acknowledged invalidation is lost:
//!   an entity type's entries and tokens live on one node, so they die
//!   together, and an acknowledged invalidation can only be undone by
//!   losing that node's data, which loses the entries too.
//! * C never returns a value older than the last update acknowledged
//!   (invalidation queued or not) more than 3x the stated bound before the
//!   read began: an invalidation that failed (its node down, or the client
//!   still re-routing after another node's restart) is queued and sent as
//!   soon as the node answers.
//! * B (L1) never returns a value older than the last update acknowledged
//!   more than the stated bound before its read began (the backplane's:
//!   max(heartbeat timeout + its check granularity, degraded TTL) + one L2
//!   timeout; checked at 3x, generous for a loaded machine).
//! * A's writes never fail; B and C see the last value once it is over.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Item, item};
use parking_lot::Mutex;
use persistence_cache::{CacheLayer, CachedRepository, RedisEndpoint};
use persistence_core::{Entity, MemoryRepository, Repository};
use persistence_testing::local::{LocalRedisCluster, or_skip};

const HEARTBEAT: Duration = Duration::from_millis(250);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(750);
const DEGRADED_TTL: Duration = Duration::from_secs(1);
const L2_TIMEOUT: Duration = Duration::from_millis(250);
const TTL: Duration = Duration::from_secs(60);

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

/// Acknowledged updates: (value, when its write returned, whether its L2
/// invalidation was acknowledged by then: nothing left queued).
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

/// Read in a loop until `stop`; returns the reads and the violations: a
/// value older than the newest write acknowledged `slack` before the read,
/// or (`strict`) older than the newest write whose invalidation was
/// acknowledged before the read.
fn reader(
    repo: Repo,
    acks: Acks,
    stop: Arc<AtomicBool>,
    slack: Duration,
    strict: bool,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut reads, mut bad) = (0u64, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let began = Instant::now();
            let Ok(Some(got)) = repo.get(&1).await else {
                continue;
            };
            reads += 1;
            let floor = began
                .checked_sub(slack)
                .map_or(0, |t| acked_before(&acks, t, false));
            if got.n < floor {
                bad.push(format!("read {} after {floor} was acknowledged", got.n));
            }
            let invalidated = acked_before(&acks, began, true);
            if strict && got.n < invalidated {
                bad.push(format!(
                    "read {} after {invalidated} was acknowledged with its invalidation",
                    got.n
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (reads, bad)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_restarts_lose_no_acknowledged_invalidation() {
    let Some(mut cluster) = or_skip("redis cluster", LocalRedisCluster::start(3)) else {
        return;
    };
    let nodes = cluster.urls();
    let prefix = common::prefix("cfault");
    let (la, lb, lc) = (
        instance(&nodes, &prefix, true),
        instance(&nodes, &prefix, true),
        instance(&nodes, &prefix, false),
    );
    let start = Instant::now();
    while !(la.backplane_connected() && lb.backplane_connected()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "backplane did not connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mem = MemoryRepository::<Item>::new();
    let (a, b, c): (Repo, Repo, Repo) = (la.wrap(mem.clone()), lb.wrap(mem.clone()), lc.wrap(mem));
    a.insert(&item(1, "v", 0)).await.expect("insert");

    let acks: Acks = Arc::new(Mutex::new(vec![(0, Instant::now(), true)]));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (a, acks, stop, la) = (a.clone(), acks.clone(), stop.clone(), la.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let cur = a.get(&1).await.expect("get").expect("found");
                let mut next = cur.clone();
                next.n = n;
                a.update(&next).await.expect("a write never fails");
                let invalidated = la.status().queued_invalidations == 0;
                acks.lock().push((n, Instant::now(), invalidated));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let rb = reader(
        b.clone(),
        acks.clone(),
        stop.clone(),
        stated_bound() * 3,
        false,
    );
    let rc = reader(
        c.clone(),
        acks.clone(),
        stop.clone(),
        stated_bound() * 3,
        true,
    );

    // The entity type's node, then the node B subscribes on first.
    let tag = format!(
        "{{{prefix}:{}:{}}}",
        Item::meta().name,
        Item::meta().schema_version
    );
    let entity_node = cluster.node_of(&tag);
    let mut victims = vec![entity_node];
    if entity_node != 0 {
        victims.push(0);
    }
    for v in victims {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = acks.lock().len();
        tokio::task::block_in_place(|| {
            cluster.node(v).kill9();
            std::thread::sleep(Duration::from_millis(300));
            cluster.node(v).start_server();
            cluster.wait_ok();
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            acks.lock().len() > before,
            "writes went on through the restart of node {v}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.expect("writer");
    let queued = acks.lock().iter().filter(|(_, _, inv)| !inv).count();
    println!("{last} writes, {queued} with their invalidation queued");
    let (b_reads, b_bad) = rb.await.expect("reader b");
    let (c_reads, c_bad) = rc.await.expect("reader c");
    assert!(b_reads > 0 && c_reads > 0);
    assert!(c_bad.is_empty(), "C (L2 only) read stale values: {c_bad:?}");
    println!("B read {b_reads} times, C {c_reads} times");
    assert!(
        b_bad.is_empty(),
        "B (L1) read values staler than the bound: {b_bad:?}"
    );
    // Once over, everyone converges on the last value.
    let start = Instant::now();
    loop {
        let (gb, gc) = (b.get(&1).await, c.get(&1).await);
        let n = |r: persistence_core::Result<Option<Item>>| r.ok().flatten().map(|e| e.n);
        if n(gb) == Some(last) && n(gc) == Some(last) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no convergence on {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
