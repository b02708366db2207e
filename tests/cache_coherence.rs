//! Caches built by the manager are coherent across instances: two
//! `Persistence` managers ("two application instances") from one YAML, over
//! one PostgreSQL schema and one Redis (L2 + backplane, on by default with L2).
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, Filter, Guard, Persistence, Repository, SoftDeleteExt as _, Update};
use persistence_testing::{TestPostgres, TestRedis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "coh_notes")]
struct Note {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    version: i64,
    n: i64,
}

/// A soft-deletable entity (issue 15 item 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "coh_memos")]
struct Memo {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    version: i64,
    #[entity(updated_at)]
    updated_at: DateTime<Utc>,
    #[entity(soft_delete)]
    deleted_at: Option<DateTime<Utc>>,
}

fn config(yaml: &str, vars: &[(&str, &str)]) -> persistence::Result<PersistenceConfig> {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .load()
}

/// Two managers ("two application instances") from one YAML over one
/// PostgreSQL schema and one Redis (L2 + backplane), TTL 10 minutes: only
/// invalidation can make an instance see the other's write. The schema and
/// the Redis keys are removed when dropped.
struct TwoInstances {
    a: Persistence,
    b: Persistence,
    _keys: TestRedis,
    _redis: TestRedis,
    _pg: TestPostgres,
}

impl TwoInstances {
    async fn new() -> Option<TwoInstances> {
        let (Some(pg), Some(redis)) = (TestPostgres::schema().await, TestRedis::new().await) else {
            return None;
        };
        let schema = pg.name().to_string();
        let keys = TestRedis::adopt(redis.url(), &format!("persistence.main.{schema}"));
        let yaml = format!(
            "databases:\n  main: {{ kind: postgres, url: \"${{PG}}\", schema: {schema}, pool: {{ max_connections: 4 }} }}\n  cache: {{ kind: redis, url: \"${{REDIS}}\" }}\ncache:\n  default: {{ ttl: 10m, l2: cache }}\n"
        );
        let cfg = config(&yaml, &[("PG", pg.url()), ("REDIS", redis.url())]).expect("config");
        Some(TwoInstances {
            a: Persistence::new(cfg.clone()).expect("instance A"),
            b: Persistence::new(cfg).expect("instance B"),
            _keys: keys,
            _redis: redis,
            _pg: pg,
        })
    }
}

/// The README's bound with the default settings: max(heartbeat timeout plus
/// its check granularity, degraded TTL) plus one L2 timeout.
const STATED_BOUND: Duration = Duration::from_millis(1250);

async fn wait_connected(p: &Persistence) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let s = p.cache_status();
        if !s.is_empty() && s.iter().all(|l| l.status.backplane_connected == Some(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backplane not connected: {:?}", p.cache_status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_see_each_others_writes_within_the_bound() {
    let (Some(pg), Some(redis)) = (TestPostgres::schema().await, TestRedis::new().await) else {
        return;
    };
    let schema = pg.name().to_string();
    // The manager's cache prefix is `persistence.{database}.{schema}`: removed when dropped.
    let _keys = TestRedis::adopt(redis.url(), &format!("persistence.main.{schema}"));
    // A TTL far longer than the test: only invalidation can make B see a write.
    let yaml = format!(
        "databases:\n  main: {{ kind: postgres, url: \"${{PG}}\", schema: {schema}, pool: {{ max_connections: 4 }} }}\n  cache: {{ kind: redis, url: \"${{REDIS}}\" }}\ncache:\n  default: {{ ttl: 10m, l2: cache }}\n"
    );
    let cfg = config(&yaml, &[("PG", pg.url()), ("REDIS", redis.url())]).expect("config");
    let (pa, pb) = (
        Persistence::new(cfg.clone()).expect("instance A"),
        Persistence::new(cfg).expect("instance B"),
    );
    let a = pa.repo::<Note>().await.expect("repo A");
    let b = pb.repo::<Note>().await.expect("repo B");
    let status = pb.cache_status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(status[0].backplane, "backplane on by default with L2");
    assert_eq!(status[0].l2.as_deref(), Some("cache"));
    wait_connected(&pa).await;
    wait_connected(&pb).await;

    let mut cur = a
        .insert(&Note {
            id: 1,
            version: 0,
            n: 0,
        })
        .await
        .expect("insert");
    // B caches the row in L1 (the insert's own message may arrive after its first read).
    let start = Instant::now();
    loop {
        assert_eq!(b.get(&1).await.expect("get").map(|x| x.n), Some(0));
        if pb.cache_stats("main", "coh_notes").expect("stats").l1_hits >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "B never hit L1");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut worst = Duration::ZERO;
    for i in 1..=30 {
        // B holds the current value in L1 ...
        assert_eq!(b.get(&1).await.expect("get").map(|x| x.n), Some(i - 1));
        let mut next = cur.clone();
        next.n = i;
        cur = a.update(&next).await.expect("update");
        let acked = Instant::now();
        // ... and returns the new one once A's message arrived.
        loop {
            if b.get(&1).await.expect("get").map(|x| x.n) == Some(i) {
                break;
            }
            assert!(
                acked.elapsed() < STATED_BOUND * 3,
                "B still served n = {} {:?} after the write of n = {i} was acknowledged",
                i - 1,
                acked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        worst = worst.max(acked.elapsed());
    }
    let stats = pb.cache_stats("main", "coh_notes").expect("stats");
    eprintln!(
        "manager-built caches, no fault: B saw each of 30 updates of A within {worst:?} (stated bound {STATED_BOUND:?}); B stats {stats:?}"
    );
    assert!(
        stats.l1_hits >= 30,
        "B served from L1 between writes: {stats:?}"
    );
    let s = pa.cache_status();
    assert!(s[0].status.is_healthy(), "{s:?}");
    assert_eq!(s[0].status.queued_invalidations, 0);
    pa.shutdown().await;
    pb.shutdown().await;
}

/// Issue 15: `patch` and `update_where` through manager-built caches. The
/// writing instance never serves the value from before its own write (L1 and
/// L2); the other instance serves the new value once the backplane message
/// arrived, and never the old one after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_updates_invalidate_both_instances() {
    let Some(two) = TwoInstances::new().await else {
        return;
    };
    let (pa, pb) = (&two.a, &two.b);
    let a = pa.repo::<Note>().await.expect("repo A");
    let b = pb.repo::<Note>().await.expect("repo B");
    wait_connected(pa).await;
    wait_connected(pb).await;
    for id in 1..=3 {
        a.insert(&Note {
            id,
            version: 0,
            n: 0,
        })
        .await
        .expect("insert");
    }
    let n_of = |r: Option<Note>| r.map(|x| x.n);
    for round in 1..=10i64 {
        // Both instances hold every row (L1 and L2) ...
        for id in 1..=3 {
            assert_eq!(n_of(a.get(&id).await.expect("get")), Some(10 * (round - 1)));
            await_value(&b, id, 10 * (round - 1)).await;
        }
        // ... A patches row 1 and sets rows 2 and 3 by filter.
        let patched = a
            .patch(&1, &Update::<Note>::new().inc(Note::N, 10), &Guard::none())
            .await
            .expect("patch");
        assert_eq!(patched.n, 10 * round);
        assert_eq!(patched.version, round + 1, "one version bump per write");
        let count = a
            .update_where(
                &Note::ID.gte(2),
                &Update::<Note>::new().set(Note::N, 10 * round),
            )
            .await
            .expect("update_where");
        assert_eq!(count, 2);
        // A reads its own writes at once.
        for id in 1..=3 {
            assert_eq!(
                n_of(a.get(&id).await.expect("get")),
                Some(10 * round),
                "A, id {id}"
            );
        }
        // B converges, and never goes back.
        for id in 1..=3 {
            await_value(&b, id, 10 * round).await;
        }
        for id in 1..=3 {
            assert_eq!(
                n_of(b.get(&id).await.expect("get")),
                Some(10 * round),
                "B, id {id}"
            );
        }
    }
    pa.shutdown().await;
    pb.shutdown().await;
}

/// Poll `r` until row `id` has `n` (bounded: the backplane's stated bound, thrice).
async fn await_value<R: Repository<Note>>(r: &R, id: i64, n: i64) {
    let start = Instant::now();
    loop {
        let got = r.get(&id).await.expect("get").map(|x| x.n);
        if got == Some(n) {
            return;
        }
        assert!(
            start.elapsed() < STATED_BOUND * 3,
            "row {id}: still {got:?}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn backplane_switches_in_yaml() {
    // Without L2 there is no backplane, whatever the default.
    let yaml = "databases:\n  main: { kind: memory }\n  cache: { kind: redis, url: \"redis://127.0.0.1:1\" }\ncache:\n  default: { ttl: 1m }\n  entities:\n    coh_notes: { ttl: 1m, l2: cache, backplane: false }\n  heartbeat: 100ms\n  heartbeat_timeout: 400ms\n  degraded_ttl: 500ms\n  max_queued_invalidations: 100\n";
    let cfg = config(yaml, &[]).expect("config");
    assert!(!cfg.cache.backplane_for(&cfg.cache.default));
    assert!(!cfg.cache.backplane_for(cfg.cache_policy("coh_notes")));
    let p = Persistence::new(cfg).expect("manager");
    let notes = p.repo::<Note>().await.expect("repo");
    // Redis is unreachable: the write still succeeds and its invalidation waits.
    notes
        .insert(&Note {
            id: 1,
            version: 0,
            n: 0,
        })
        .await
        .expect("insert");
    let s = p.cache_status();
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(!s[0].backplane, "switched off for the entity: {s:?}");
    assert_eq!(s[0].status.backplane_connected, None);
    assert_eq!(s[0].status.l2_up, Some(false));
    assert!(s[0].status.queued_invalidations >= 1, "{s:?}");

    // `cache.backplane: false` switches it off wherever a policy does not say.
    let off = config(
        "databases:\n  main: { kind: memory }\n  cache: { kind: redis, url: \"redis://127.0.0.1:1\" }\ncache:\n  default: { l2: cache }\n  backplane: false\n",
        &[],
    )
    .expect("config");
    assert!(!off.cache.backplane_for(&off.cache.default));
    let on = config(
        "databases:\n  main: { kind: memory }\n  cache: { kind: redis, url: \"redis://127.0.0.1:1\" }\ncache:\n  default: { l2: cache }\n",
        &[],
    )
    .expect("config");
    assert!(on.cache.backplane_for(&on.cache.default), "default with L2");

    // Mistakes name the key.
    for (yaml, key) in [
        (
            "databases:\n  main: { kind: memory }\ncache:\n  entities:\n    coh_notes: { backplane: true }\n",
            "cache.entities.coh_notes.backplane",
        ),
        (
            "databases:\n  main: { kind: memory }\ncache:\n  heartbeat: 500ms\n  heartbeat_timeout: 500ms\n",
            "cache.heartbeat_timeout",
        ),
        (
            "databases:\n  main: { kind: memory }\ncache:\n  degraded_ttl: 0s\n",
            "cache.degraded_ttl",
        ),
    ] {
        let err = config(yaml, &[])
            .and_then(|c| c.validate().map(|()| c))
            .expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    p.shutdown().await;
}

/// Issue 15 item 7: soft delete, restore and purge through manager-built
/// caches. The writing instance never serves a deleted row again (L1 and
/// L2); the other instance stops serving it once the backplane message
/// arrived, and serves a restored row again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soft_deletes_are_invisible_to_both_instances() {
    let Some(two) = TwoInstances::new().await else {
        return;
    };
    let (pa, pb) = (&two.a, &two.b);
    let a = pa.repo::<Memo>().await.expect("repo A");
    let b = pb.repo::<Memo>().await.expect("repo B");
    wait_connected(pa).await;
    wait_connected(pb).await;
    for id in 1..=3 {
        let memo = Memo {
            id,
            version: 0,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            deleted_at: None,
        };
        a.insert(&memo).await.expect("insert");
    }
    // Both instances hold every row, and a query result, in their caches.
    for id in 1..=3 {
        assert!(a.get(&id).await.expect("get").is_some());
        await_visible(&b, id, true).await;
    }
    assert_eq!(b.count(&Filter::all()).await.expect("count"), 3);

    assert!(a.delete(&1).await.expect("delete"), "soft delete");
    assert!(a.get(&1).await.expect("get").is_none(), "A: at once");
    await_visible(&b, 1, false).await;
    await_count(&b, 2).await;
    assert!(a.restore(&1).await.expect("restore"));
    assert!(
        a.get(&1).await.expect("get").is_some(),
        "A: restored at once"
    );
    await_visible(&b, 1, true).await;
    assert_eq!(a.delete_many(&Filter::all()).await.expect("delete_many"), 3);
    for id in 1..=3 {
        assert!(a.get(&id).await.expect("get").is_none());
        await_visible(&b, id, false).await;
    }
    await_count(&b, 0).await;
    let trash = Filter::all().only_deleted();
    assert_eq!(b.count(&trash).await.expect("count"), 3);
    assert_eq!(a.purge(&trash).await.expect("purge"), 3);
    let start = Instant::now();
    while b.count(&trash).await.expect("count") != 0 {
        assert!(
            start.elapsed() < STATED_BOUND * 3,
            "B still counts purged rows"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    pa.shutdown().await;
    pb.shutdown().await;
}

/// Poll `r` until row `id` is (in)visible to `get` (bounded as `await_value`).
async fn await_visible<R: Repository<Memo>>(r: &R, id: i64, visible: bool) {
    let start = Instant::now();
    while r.get(&id).await.expect("get").is_some() != visible {
        assert!(
            start.elapsed() < STATED_BOUND * 3,
            "row {id}: expected visible = {visible}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Poll `r` until it counts `n` live rows.
async fn await_count<R: Repository<Memo>>(r: &R, n: u64) {
    let start = Instant::now();
    loop {
        let got = r.count(&Filter::all()).await.expect("count");
        if got == n {
            return;
        }
        assert!(
            start.elapsed() < STATED_BOUND * 3,
            "still {got} live rows, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
