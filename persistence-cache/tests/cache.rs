//! Focused tests of the cache layer: read-through, invalidation, negative
//! caching, keys, encoding, stampede and stale-set protection, over L1 only,
//! L2 only and L1+L2 (Redis from REDIS_URL or 127.0.0.1:6379).
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Gate, Item, Levels, Probe, item};
use persistence_cache::CachedRepository;
use persistence_core::conformance::entities::{AllTypes, Person, person, sample_all_types};
use persistence_core::{Entity, Filter, MemoryRepository, Query, Repository};

type Repo<E> = CachedRepository<E, Probe<MemoryRepository<E>>>;

/// The levels to run: L2 variants only when Redis answers (SKIPPED otherwise, outside CI).
fn levels() -> Vec<Levels> {
    let mut v = vec![Levels::L1];
    if common::redis_url().is_some() {
        v.push(Levels::L2);
        v.push(Levels::Both);
    }
    v
}

struct Fixture<E: Entity> {
    repo: Repo<E>,
    mem: MemoryRepository<E>,
    reads: Arc<std::sync::atomic::AtomicU64>,
    prefix: String,
}

fn fixture<E: Entity>(levels: Levels, tag: &str) -> Fixture<E> {
    fixture_with(levels, tag, None)
}

fn fixture_with<E: Entity>(levels: Levels, tag: &str, gate: Option<Arc<Gate>>) -> Fixture<E> {
    let prefix = common::prefix(tag);
    let layer = common::layer(levels, &prefix).expect("layer");
    let mem = MemoryRepository::<E>::new();
    let mut probe = Probe::new(mem.clone());
    probe.gate = gate;
    let reads = probe.reads.clone();
    Fixture {
        repo: layer.wrap(probe),
        mem,
        reads,
        prefix,
    }
}

impl<E: Entity> Fixture<E> {
    fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
    async fn cleanup(&self) {
        if let Some(url) = common::redis_url() {
            common::delete_keys(&url, &self.prefix).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_and_write_invalidation() {
    for lv in levels() {
        let f = fixture::<Item>(lv, "rt");
        let r = &f.repo;
        let a = r.insert(&item(1, "a", 1)).await.expect("insert");
        assert_eq!(r.get(&1).await.expect("get"), Some(a.clone()), "{lv:?}");
        let reads = f.reads();
        assert_eq!(r.get(&1).await.expect("get"), Some(a.clone()));
        assert_eq!(f.reads(), reads, "{lv:?}: second get is a hit");

        let q = Query::filter(Filter::field("n").gte(1)).limit(10);
        assert_eq!(r.find(&q).await.expect("find"), vec![a.clone()]);
        assert_eq!(r.count(&Filter::all()).await.expect("count"), 1);
        assert!(
            r.exists(&Filter::field("name").eq("a"))
                .await
                .expect("exists")
        );
        let reads = f.reads();
        assert_eq!(r.find(&q).await.expect("find"), vec![a.clone()]);
        assert_eq!(r.count(&Filter::all()).await.expect("count"), 1);
        assert!(
            r.exists(&Filter::field("name").eq("a"))
                .await
                .expect("exists")
        );
        assert_eq!(f.reads(), reads, "{lv:?}: queries are hits");

        // update: entity and every query of the type see it
        let mut b = a.clone();
        b.name = "b".into();
        let b = r.update(&b).await.expect("update");
        assert_eq!(r.get(&1).await.expect("get"), Some(b.clone()), "{lv:?}");
        assert_eq!(r.find(&q).await.expect("find"), vec![b.clone()]);
        assert!(
            !r.exists(&Filter::field("name").eq("a"))
                .await
                .expect("exists")
        );

        // insert through the cache invalidates queries
        let c = r.insert(&item(2, "c", 5)).await.expect("insert");
        assert_eq!(r.find(&q).await.expect("find"), vec![b.clone(), c.clone()]);
        assert_eq!(r.count(&Filter::all()).await.expect("count"), 2);
        assert_eq!(
            r.get_many(&[2, 1, 2, 3]).await.expect("get_many"),
            vec![c.clone(), b.clone()]
        );

        // upsert, delete, insert_many, delete_many
        let mut c2 = c.clone();
        c2.n = 6;
        let c2 = r.upsert(&c2).await.expect("upsert");
        assert_eq!(r.get(&2).await.expect("get"), Some(c2.clone()));
        assert!(r.delete(&1).await.expect("delete"));
        assert_eq!(r.get(&1).await.expect("get"), None);
        assert_eq!(r.get_many(&[1, 2]).await.expect("gm"), vec![c2.clone()]);
        r.insert_many(&[item(3, "x", 3), item(4, "y", 4)])
            .await
            .expect("insert_many");
        assert_eq!(r.get_many(&[3, 4]).await.expect("gm").len(), 2);
        assert_eq!(r.count(&Filter::all()).await.expect("count"), 3);
        assert_eq!(
            r.delete_many(&Filter::field("n").lte(4)).await.expect("dm"),
            2
        );
        assert_eq!(
            r.get(&3).await.expect("get"),
            None,
            "{lv:?}: delete_many kills entity entries"
        );
        assert_eq!(r.get_many(&[3, 4, 2]).await.expect("gm"), vec![c2.clone()]);
        assert_eq!(r.count(&Filter::all()).await.expect("count"), 1);
        f.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_entries_are_cached_and_insert_invalidates_them() {
    for lv in levels() {
        let f = fixture::<Item>(lv, "neg");
        assert_eq!(f.repo.get(&7).await.expect("get"), None);
        let reads = f.reads();
        assert_eq!(f.repo.get(&7).await.expect("get"), None);
        assert_eq!(f.reads(), reads, "{lv:?}: not-found is cached");
        assert!(f.repo.get_many(&[7]).await.expect("gm").is_empty());
        assert_eq!(f.reads(), reads, "{lv:?}: get_many uses the negative entry");
        let seven = f.repo.insert(&item(7, "s", 7)).await.expect("insert");
        assert_eq!(f.repo.get(&7).await.expect("get"), Some(seven), "{lv:?}");
        f.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_ttl_is_shorter() {
    let prefix = common::prefix("negttl");
    let layer = common::layer_with(Levels::L1, &prefix, |b| {
        b.ttl(Duration::from_secs(60))
            .negative_ttl(Duration::from_millis(50))
            .jitter(0.0)
    })
    .expect("layer");
    let mem = MemoryRepository::<Item>::new();
    let probe = Probe::new(mem.clone());
    let reads = probe.reads.clone();
    let r = layer.wrap(probe);
    r.insert(&item(1, "a", 1)).await.expect("insert");
    assert!(r.get(&1).await.expect("get").is_some());
    assert_eq!(r.get(&2).await.expect("get"), None);
    // Written behind the cache's back: visible once the negative entry expires.
    mem.insert(&item(2, "b", 2)).await.expect("insert");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = reads.load(Ordering::SeqCst);
    assert!(
        r.get(&2).await.expect("get").is_some(),
        "negative entry expired"
    );
    assert!(r.get(&1).await.expect("get").is_some());
    assert_eq!(
        reads.load(Ordering::SeqCst),
        before + 1,
        "positive entry still cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_namespaced_and_bounded() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let f = fixture::<Item>(Levels::L2, "keys");
    f.repo.insert(&item(42, "a", 1)).await.expect("insert");
    f.repo.get(&42).await.expect("get");
    let long = "x".repeat(10_000);
    f.repo
        .find(&Query::filter(Filter::field("name").eq(long.as_str())))
        .await
        .expect("find");
    let client = deadpool_redis::redis::Client::open(url.as_str()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{}:*", f.prefix))
        .query_async(&mut c)
        .await
        .expect("keys");
    let sv = Item::meta().schema_version;
    // The entity type's hash tag (one Redis Cluster slot) follows the prefix.
    let entity_key = format!("{p}:{{{p}:cache_items:{sv}}}:42", p = f.prefix);
    assert!(keys.contains(&entity_key), "{keys:?}");
    assert!(keys.iter().all(|k| k.len() < 200), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(":?find:")), "{keys:?}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_entities_round_trip_through_l2() {
    if common::redis_url().is_none() {
        return;
    }
    let f = fixture::<AllTypes>(Levels::L2, "rtall");
    let mut samples = vec![sample_all_types(1), sample_all_types(2)];
    samples[1].f64v = f64::NAN;
    samples[1].f32v = -0.0;
    samples[1].opt_nested = Some(samples[0].nested.clone());
    samples[1].ts += chrono::Duration::nanoseconds(789);
    for s in &samples {
        f.repo.insert(s).await.expect("insert");
    }
    let ids: Vec<_> = samples.iter().map(|s| s.id).collect();
    let first = f.repo.get_many(&ids).await.expect("load");
    let reads = f.reads();
    let second = f.repo.get_many(&ids).await.expect("hit");
    assert_eq!(f.reads(), reads, "served from L2");
    let stored = f.mem.get_many(&ids).await.expect("mem");
    for (a, b) in second.iter().zip(&stored) {
        // NaN != NaN: compare through the debug form, which shows NaN and -0.0.
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
    assert_eq!(first.len(), 2);
    assert!(f.repo.stats().l2_hits >= 2, "{:?}", f.repo.stats());

    let pf = fixture::<Person>(Levels::L2, "rtperson");
    let p = pf.repo.insert(&person(3)).await.expect("insert");
    pf.repo.get(&3).await.expect("load");
    assert_eq!(pf.repo.get(&3).await.expect("hit"), Some(p));
    let q = Query::filter(Filter::field("profile.city").eq("Oslo"));
    let rows = pf.repo.find(&q).await.expect("find");
    assert_eq!(pf.repo.find(&q).await.expect("find"), rows);
    assert!(pf.repo.stats().l2_hits >= 2);
    f.cleanup().await;
    pf.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_entry_is_a_miss_not_an_error() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let f = fixture::<Item>(Levels::L2, "dec");
    let a = f.repo.insert(&item(5, "a", 1)).await.expect("insert");
    f.repo.get(&5).await.expect("load");
    let key = format!(
        "{p}:{{{p}:cache_items:{}}}:5",
        Item::meta().schema_version,
        p = f.prefix
    );
    let client = deadpool_redis::redis::Client::open(url.as_str()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let stored: Vec<u8> = deadpool_redis::redis::cmd("GET")
        .arg(&key)
        .query_async(&mut c)
        .await
        .expect("get");
    // Keep format byte and stamp, garble the body.
    let mut bad = stored[..9].to_vec();
    bad.extend_from_slice(&[0xff; 5]);
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(&key)
        .arg(bad)
        .query_async(&mut c)
        .await
        .expect("set");
    let reads = f.reads();
    assert_eq!(f.repo.get(&5).await.expect("no error"), Some(a.clone()));
    assert_eq!(f.reads(), reads + 1, "fell through to the repository");
    assert_eq!(f.repo.stats().decode_errors, 1);
    // A value of an unknown format is a miss too.
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(&key)
        .arg("garbage")
        .query_async(&mut c)
        .await
        .expect("set");
    assert_eq!(f.repo.get(&5).await.expect("no error"), Some(a));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stampede_of_1000_gets_loads_once() {
    for lv in levels() {
        let f = fixture::<Item>(lv, "stampede");
        f.mem.insert(&item(1, "cold", 1)).await.expect("insert");
        let mut tasks = Vec::with_capacity(1000);
        let start = Arc::new(tokio::sync::Barrier::new(1000));
        for _ in 0..1000 {
            let r = f.repo.clone();
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                r.get(&1).await
            }));
        }
        for t in tasks {
            let got = t.await.expect("join").expect("get");
            assert_eq!(got.map(|i| i.name), Some("cold".to_string()));
        }
        assert_eq!(f.reads(), 1, "{lv:?}: loader ran exactly once");
        assert_eq!(f.repo.loads_in_flight(), 0);

        // The same for a query.
        let q = Query::filter(Filter::field("n").eq(1));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let r = f.repo.clone();
            let q = q.clone();
            tasks.push(tokio::spawn(async move { r.find(&q).await }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("join").expect("find").len(), 1);
        }
        assert_eq!(f.reads(), 2, "{lv:?}: query loader ran exactly once");
        f.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_errors_reach_every_waiter_and_are_not_cached() {
    let f = fixture::<Item>(Levels::L1, "err");
    // An invalid filter is rejected before caching; the repository's error comes back.
    let bad = f.repo.count(&Filter::field("nope").eq(1)).await;
    assert!(bad.expect_err("invalid").kind() == &persistence_core::ErrorKind::InvalidInput);
}

/// A load that started before a write must not store its old result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_set_is_prevented_for_gets() {
    for lv in levels() {
        let gate = Gate::armed();
        let f = fixture_with::<Item>(lv, "staleget", Some(gate.clone()));
        let v1 = f.mem.insert(&item(1, "v1", 1)).await.expect("insert");
        // The loader reads v1 from the repository, then pauses.
        let r = f.repo.clone();
        let entered = gate.entered.notified();
        let pending = tokio::spawn(async move { r.get(&1).await });
        entered.await;
        let mut v2 = v1.clone();
        v2.name = "v2".into();
        let v2 = f.repo.update(&v2).await.expect("update");
        gate.release.notify_one();
        let old = pending.await.expect("join").expect("get");
        assert_eq!(old, Some(v1), "{lv:?}: the racing read itself may see v1");
        assert_eq!(
            f.repo.get(&1).await.expect("get"),
            Some(v2.clone()),
            "{lv:?}"
        );
        assert!(
            f.repo.stats().stale_sets_prevented >= 1,
            "{lv:?}: {:?}",
            f.repo.stats()
        );
        if lv != Levels::L1 {
            // A fresh instance (empty L1) over the same Redis sees v2 as well.
            let layer = common::layer(lv, &f.prefix).expect("layer");
            let other = layer.wrap(f.mem.clone());
            assert_eq!(
                other.get(&1).await.expect("get"),
                Some(v2),
                "{lv:?}: L2 not poisoned"
            );
        }
        f.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_set_is_prevented_for_queries() {
    for lv in levels() {
        let gate = Gate::armed();
        let f = fixture_with::<Item>(lv, "staleq", Some(gate.clone()));
        f.mem.insert(&item(1, "v1", 1)).await.expect("insert");
        let q = Query::filter(Filter::field("n").gte(0));
        let (r, q2) = (f.repo.clone(), q.clone());
        let entered = gate.entered.notified();
        let pending = tokio::spawn(async move { r.find(&q2).await });
        entered.await;
        let two = f.repo.insert(&item(2, "v2", 2)).await.expect("insert");
        gate.release.notify_one();
        assert_eq!(pending.await.expect("join").expect("find").len(), 1);
        let rows = f.repo.find(&q).await.expect("find");
        assert_eq!(rows.len(), 2, "{lv:?}");
        assert_eq!(rows[1], two);
        if lv != Levels::L1 {
            let layer = common::layer(lv, &f.prefix).expect("layer");
            let other = layer.wrap(f.mem.clone());
            assert_eq!(other.find(&q).await.expect("find").len(), 2, "{lv:?}");
        }
        f.cleanup().await;
    }
}

/// Readers that start after a write never join a load that started before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_after_write_does_not_join_an_older_load() {
    let gate = Gate::armed();
    let f = fixture_with::<Item>(Levels::L1, "join", Some(gate.clone()));
    let v1 = f.mem.insert(&item(1, "v1", 1)).await.expect("insert");
    let r = f.repo.clone();
    let entered = gate.entered.notified();
    let pending = tokio::spawn(async move { r.get(&1).await });
    entered.await;
    let mut v2 = v1.clone();
    v2.name = "v2".into();
    let v2 = f.repo.update(&v2).await.expect("update");
    // The first load is still paused: this read must not wait for it or return v1.
    assert_eq!(f.repo.get(&1).await.expect("get"), Some(v2));
    gate.release.notify_one();
    pending.await.expect("join").expect("get");
}

/// A read cancelled while its load is in flight leaves no flight behind,
/// and the next read loads afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_read_leaves_no_flight() {
    let gate = Gate::armed();
    let f = fixture_with::<Item>(Levels::L1, "cancel", Some(gate.clone()));
    f.mem.insert(&item(1, "v1", 1)).await.expect("insert");
    let r = f.repo.clone();
    let entered = gate.entered.notified();
    let pending = tokio::spawn(async move { r.get(&1).await });
    entered.await;
    assert_eq!(f.repo.loads_in_flight(), 1);
    pending.abort();
    let _ = pending.await;
    assert_eq!(f.repo.loads_in_flight(), 0);
    assert!(f.repo.get(&1).await.expect("get").is_some());
}

/// Per-call TTL: a handle from `with_ttl` stores entries with its own TTLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_ttl() {
    let prefix = common::prefix("callttl");
    let layer = common::layer_with(Levels::L1, &prefix, |b| {
        b.ttl(Duration::from_secs(60)).jitter(0.0)
    })
    .expect("layer");
    let mem = MemoryRepository::<Item>::new();
    let r = layer.wrap(mem.clone());
    mem.insert(&item(1, "a", 1)).await.expect("insert");
    mem.insert(&item(2, "b", 2)).await.expect("insert");
    let short =
        persistence_cache::EntityTtl::new(Duration::from_millis(50), Duration::from_millis(50));
    r.with_ttl(short).get(&1).await.expect("get");
    r.get(&2).await.expect("get");
    // Changed behind the cache's back.
    for id in [1, 2] {
        let mut x = mem.get(&id).await.expect("get").expect("row");
        x.name = "changed".into();
        mem.update(&x).await.expect("update");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        r.get(&1).await.expect("get").map(|x| x.name),
        Some("changed".into())
    );
    assert_eq!(
        r.get(&2).await.expect("get").map(|x| x.name),
        Some("b".into()),
        "default TTL"
    );
}

/// `nearest` results are cached like `find` (a repeat is a hit, another
/// `k`, vector or filter is not) and every write of the type drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_is_cached_and_invalidated_by_writes() {
    use persistence_core::NearestExt as _;
    use persistence_core::conformance::entities::{Doc, doc};
    for lv in levels() {
        let f = fixture::<Doc>(lv, "near");
        let r = &f.repo;
        r.insert_many(&(1..=20).map(doc).collect::<Vec<_>>())
            .await
            .expect("insert");
        let q = [1.0, 0.5, -0.5, 2.0];
        let first = r.nearest(Doc::EMB, &q, 3).await.expect("nearest");
        let reads = f.reads();
        let again = r.nearest(Doc::EMB, &q, 3).await.expect("nearest");
        assert_eq!(f.reads(), reads, "{lv:?}: a repeated nearest is a hit");
        let ids = |v: &[(Doc, f64)]| v.iter().map(|(d, _)| d.id).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&again));
        assert_eq!(
            first.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
            again.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
            "{lv:?}: distances kept exactly"
        );
        for (k, v, filter) in [
            (4, q, Filter::all()),
            (3, [1.0, 0.5, -0.5, 2.125], Filter::all()),
            (3, q, Doc::LANG.eq("en")),
        ] {
            let reads = f.reads();
            r.nearest(Doc::EMB, &v, k)
                .filter(filter)
                .await
                .expect("nearest");
            assert_eq!(f.reads(), reads + 1, "{lv:?}: another query is a miss");
        }
        // A write drops the cached answer: the new exact match comes first.
        let mut exact = doc(99);
        exact.emb = q.to_vec();
        r.insert(&exact).await.expect("insert");
        let hits = r.nearest(Doc::EMB, &q, 3).await.expect("nearest");
        assert_eq!(hits[0].0.id, 99, "{lv:?}: the write is seen");
        assert_eq!(f.mem.count(&Filter::all()).await.expect("count"), 21);
        f.cleanup().await;
    }
}

/// `search_text` results are cached like `find` (a repeat is a hit; another
/// search string, limit or filter is not) and every write of the type
/// drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_search_is_cached_and_invalidated_by_writes() {
    use persistence_core::TextSearchExt as _;
    use persistence_core::conformance::corpus::{Article, articles};
    for lv in levels() {
        let f = fixture::<Article>(lv, "text");
        let r = &f.repo;
        r.insert_many(&articles()).await.expect("insert");
        let first = r.search_text("tomatoes").await.expect("search");
        let reads = f.reads();
        let again = r.search_text("tomatoes").await.expect("search");
        assert_eq!(f.reads(), reads, "{lv:?}: a repeated search is a hit");
        let ids = |v: &[(Article, f64)]| v.iter().map(|(a, _)| a.id).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&again));
        assert_eq!(ids(&first)[0], 11);
        assert_eq!(
            first.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            again.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            "{lv:?}: scores kept exactly"
        );
        for (text, limit, filter) in [
            ("tomato", 100, Filter::all()),
            ("tomatoes", 2, Filter::all()),
            ("tomatoes", 100, Filter::field("topic").eq("garden")),
        ] {
            let reads = f.reads();
            r.search_text(text)
                .limit(limit)
                .filter(filter)
                .await
                .expect("search");
            assert_eq!(f.reads(), reads + 1, "{lv:?}: another search is a miss");
        }
        // A write drops the cached answer.
        r.insert(&Article {
            id: 31,
            topic: "garden".into(),
            title: "Tomatoes, tomatoes, tomatoes".into(),
            body: Some("More tomatoes".into()),
        })
        .await
        .expect("insert");
        let hits = r.search_text("tomatoes").await.expect("search");
        assert_eq!(hits[0].0.id, 31, "{lv:?}: the write is seen");
        f.cleanup().await;
    }
}
