//! The fail-safe through a PostgreSQL outage: a cluster of the test's own
//! (`persistence_testing::local::LocalPg`, own port and data directory) is
//! killed and started again under a cached repository.
//!
//! * During the outage cached reads answer from their stale copies, with no
//!   error, within `fail_safe.max_age`; past it they fail with `Unavailable`.
//! * A write acknowledged before the outage is never shadowed by an older
//!   stale value (its key's stale copy died with the write).
//! * After the restart a changed row is read fresh in one reload.
//!
//! `availability_benchmark` (ignored; run on demand) measures the share of
//! successful reads through a 30 s outage (`PERSISTENCE_OUTAGE_SECS` to
//! change it) with the fail-safe on and off.
mod common;

use std::time::{Duration, Instant};

use common::{Item, item};
use persistence_cache::{CacheLayer, CachedRepository, FailSafe, ReadPolicy, Served};
use persistence_core::{ErrorKind, Repository};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};
use persistence_testing::local::{LocalPg, or_skip};

type Repo = CachedRepository<Item, RelationalRepository<Item>>;

const TTL: Duration = Duration::from_millis(100);
const SCHEMA: &str = "stale_pg";

async fn start() -> Option<(LocalPg, RelationalStore)> {
    let pg = tokio::task::spawn_blocking(LocalPg::start)
        .await
        .expect("start task");
    let pg = or_skip("PostgreSQL outage under the cache fail-safe", pg)?;
    let config = RelationalConfig::new(LocalPg::url_at(pg.port()))
        .schema(SCHEMA)
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1));
    let store = RelationalStore::connect(&config).await.expect("connect");
    Some((pg, store))
}

async fn cached(store: &RelationalStore, policy: ReadPolicy) -> Repo {
    let layer = CacheLayer::builder()
        .prefix(common::prefix("stalepg"))
        .ttl(TTL)
        .jitter(0.0)
        .read_policy(policy)
        // About loads after writes: writes only invalidate.
        .write_through(false)
        .build()
        .expect("layer");
    let repo = layer.wrap(store.repository::<Item>());
    repo.ensure_schema().await.expect("schema");
    repo
}

async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f).await.expect("blocking task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_served_from_stale_within_max_age() {
    let Some((pg, store)) = start().await else {
        return;
    };
    let pg = std::sync::Arc::new(pg);
    let (max_age, throttle) = (Duration::from_secs(20), Duration::from_secs(2));
    let policy = ReadPolicy::default().fail_safe(FailSafe::new(max_age).with_throttle(throttle));
    let repo = cached(&store, policy).await;
    for id in 1..=10 {
        repo.insert(&item(id, "v1", 0)).await.expect("insert");
    }
    // Id 1: cached, written (acknowledged), read again: its copy is the written value.
    assert_eq!(repo.get(&1).await.expect("get").map(|i| i.n), Some(0));
    let one = repo.get(&1).await.expect("get").expect("row");
    repo.update(&Item { n: 1, ..one }).await.expect("update");
    assert_eq!(repo.get(&1).await.expect("get").map(|i| i.n), Some(1));
    // Id 2: cached, then written and not read again: nothing servable is left.
    let two = repo.get(&2).await.expect("get").expect("row");
    repo.update(&Item { n: 1, ..two }).await.expect("update");
    let loaded_at = Instant::now();
    for id in 3..=10 {
        assert_eq!(repo.get(&id).await.expect("get").map(|i| i.n), Some(0));
    }

    let p = pg.clone();
    blocking(move || p.kill9()).await;
    tokio::time::sleep(TTL * 2).await;
    // The outage, well within max_age: every cached key answers, stale.
    // (Concurrently: a failing load waits for the pool's acquire timeout.)
    let ids = [1, 3, 4, 5, 6, 7, 8, 9, 10];
    let mut errors = 0;
    let mut rounds = 0;
    let phase = Instant::now();
    // At least 10 rounds, and past one throttle period (a second failed reload).
    while rounds < 10 || phase.elapsed() < throttle + Duration::from_millis(500) {
        rounds += 1;
        let reads = ids.map(|id| {
            let repo = repo.clone();
            async move { (id, repo.get_served(&id).await) }
        });
        for (id, out) in futures_util::future::join_all(reads).await {
            match out {
                Ok((Some(i), served)) => {
                    assert_eq!(i.n, i64::from(id == 1), "id {id}: an older value");
                    assert_eq!(served, Served::Stale);
                }
                Ok((None, _)) => panic!("id {id} vanished"),
                Err(e) => {
                    eprintln!("id {id}: {e}");
                    errors += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        loaded_at.elapsed() < max_age,
        "the machine is too slow for this test's max age"
    );
    assert_eq!(errors, 0, "errors reached callers during the outage");
    let stats = repo.stats();
    assert!(stats.stale_served >= rounds * 9, "{stats:?}");
    // Reloads were tried, then throttled: at most a few per key, not one per read.
    assert!(
        stats.load_errors >= 9 && stats.load_errors < rounds * 9,
        "{stats:?}"
    );
    // The write to id 2 is never shadowed by the value it replaced.
    let e = repo.get(&2).await.expect_err("id 2 has no servable copy");
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{e}"
    );

    // Back: a row changed meanwhile (outside the cache) is read fresh once
    // its throttle has passed, in one reload.
    let p = pg.clone();
    blocking(move || {
        p.start_server();
        p.psql(&format!(
            "UPDATE {SCHEMA}.cache_items SET n = 7 WHERE id = 3"
        ));
    })
    .await;
    tokio::time::sleep(throttle + Duration::from_millis(200)).await;
    let loads = repo.stats().loads;
    let (got, served) = repo.get_served(&3).await.expect("get after restart");
    assert_eq!((got.map(|i| i.n), served), (Some(7), Served::Fresh));
    assert_eq!(repo.stats().loads, loads + 1);

    // Down again, past the max age of the copies loaded before the first outage.
    let p = pg.clone();
    blocking(move || p.kill9()).await;
    let left = max_age.saturating_sub(loaded_at.elapsed());
    tokio::time::sleep(left + Duration::from_millis(300)).await;
    let e = repo.get(&4).await.expect_err("past max_age");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e}");
    store.close().await;
}

/// One reader per id of `repo` (a read, then 10 ms of rest) for `outage`
/// with PostgreSQL down: (successful reads, reads).
async fn outage_reads(repo: &Repo, keys: i64, outage: Duration) -> (u64, u64) {
    let start = Instant::now();
    let readers = (1..=keys).map(|id| {
        let repo = repo.clone();
        tokio::spawn(async move {
            let (mut ok, mut all) = (0u64, 0u64);
            while start.elapsed() < outage {
                all += 1;
                ok += u64::from(repo.get(&id).await.is_ok());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, all)
        })
    });
    let mut total = (0, 0);
    for r in futures_util::future::join_all(readers).await {
        let (ok, all) = r.expect("reader");
        total = (total.0 + ok, total.1 + all);
    }
    total
}

/// The benchmark's outage: `PERSISTENCE_OUTAGE_SECS` seconds, 30 by default.
fn outage_length() -> Duration {
    let secs = std::env::var("PERSISTENCE_OUTAGE_SECS")
        .ok()
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .unwrap_or_else(|| {
                    panic!(
                        "PERSISTENCE_OUTAGE_SECS must be a whole number of seconds > 0, not {v:?}"
                    )
                })
        })
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// On demand: `cargo nextest run -p persistence-cache --all-features --test
/// stale_postgres --run-ignored only --no-capture` (`PERSISTENCE_OUTAGE_SECS=10`
/// for a shorter outage than the default 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand with --ignored --nocapture"]
async fn availability_benchmark() {
    let Some((pg, store)) = start().await else {
        return;
    };
    let keys = 50;
    let on = cached(
        &store,
        ReadPolicy::default().fail_safe(FailSafe::new(Duration::from_secs(600))),
    )
    .await;
    let off = cached(&store, ReadPolicy::default()).await;
    for id in 1..=keys {
        on.insert(&item(id, "v", id)).await.expect("insert");
    }
    for id in 1..=keys {
        on.get(&id).await.expect("warm");
        off.get(&id).await.expect("warm");
    }
    blocking(move || {
        pg.kill9();
        // Dropped (stopped and deleted) here: the rest runs without it.
        drop(pg);
    })
    .await;
    let outage = outage_length();
    let (on, off) = tokio::join!(
        outage_reads(&on, keys, outage),
        outage_reads(&off, keys, outage)
    );
    for ((ok, all), name) in [(on, "on"), (off, "off")] {
        println!(
            "fail-safe {name}: {ok}/{all} reads succeeded ({:.1} %) during a {outage:?} PostgreSQL outage \
             ({keys} keys, one reader each, TTL {TTL:?}, pool acquire timeout 1s)",
            100.0 * ok as f64 / all as f64
        );
    }
    assert!(on.0 > off.0);
}
