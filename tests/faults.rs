//! The fault suite (issue #12 item 8): what the framework guarantees while
//! its servers restart, crash, hang or lose the network.
//!
//! Starts its own PostgreSQL cluster, redis-server and SecantusDB
//! (MongoDB-wire) server on free loopback ports, each behind a loopback TCP
//! proxy ([`persistence_testing::proxy`]). Two application instances (two
//! `Persistence` managers built from YAML, each with its own L1 cache, Redis
//! as L2) talk to the servers only through the proxies. Instance A runs 16
//! writer tasks (12 on PostgreSQL, 4 on MongoDB) doing inserts and
//! optimistic updates; instance B runs readers that compare what they read
//! with the writes A had acknowledged. Then, one after the other:
//! PostgreSQL `pg_ctl restart`, kill -9 + start, SIGSTOP/SIGCONT, a proxy
//! stall, a proxy drop, close-on-accept; Redis kill -9 + start and
//! SIGSTOP; MongoDB kill -9 + start.
//!
//! Checked at the end, against the servers directly (a trigger fills a
//! history table with every row version PostgreSQL committed):
//! * no acknowledged write lost (history, final rows and documents);
//! * an error that says its write was not applied really was not applied;
//! * no read on B staler than the stated bound;
//! * every call returned within its documented bound (retries included);
//! * the first successful write after each server came back, within a
//!   generous bound (the measured value is printed; the goal is 0.5 s);
//! * no panic, no hang.
//!
//! Prints a table: fault × acknowledged writes, lost, unknown outcome
//! (applied / not), stale beyond bound, recovery, max latency.
//!
//! Missing binaries (PostgreSQL in /usr/lib/postgresql, redis-server,
//! secantusd-py) fail the test under `CI=true`, otherwise it says SKIPPED.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lock::Mutex;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::layer::metric_names;
use persistence::{
    DynRepository, Entity, Error, Persistence, Query, SharedRepository, WriteOutcome,
};
use persistence_testing::local::{LocalMongo, LocalPg, LocalRedis, Missing, or_skip};
use persistence_testing::proxy::{Mode, Proxy};
use serde::{Deserialize, Serialize};

#[path = "faults/report.rs"]
mod report;
#[path = "faults/workload.rs"]
mod workload;
use report::*;
use workload::*;

/// `std::sync::Mutex` that shrugs off poisoning (a panicking task is
/// reported by its join handle, not by every later lock).
mod lock {
    pub struct Mutex<T>(std::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub fn new(v: T) -> Self {
            Mutex(std::sync::Mutex::new(v))
        }
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

// ------------------------------------------------------------------ settings

/// Per-attempt timeout of every database call (`databases.*.timeout`).
const TIMEOUT: Duration = Duration::from_secs(2);
/// `retry.max_attempts`.
const ATTEMPTS: u32 = 3;
/// `retry.max_delay`.
const MAX_DELAY: Duration = Duration::from_millis(200);
/// `breaker.open_for`: long (the README's value), so recovery must come from
/// the half-open probe of the recovery checker, not from waiting it out.
const OPEN_FOR: Duration = Duration::from_secs(10);
/// The L1 TTL: long, so that only invalidation keeps B fresh.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// The documented bound of one call: every attempt may use its whole
/// timeout, plus the backoffs between attempts, plus the cache's Redis
/// round trips (250 ms budget each; a read and its write-back, a write's
/// invalidation), plus 2 s of scheduling allowance on a loaded 2-core
/// machine.
fn call_bound() -> Duration {
    TIMEOUT * ATTEMPTS
        + MAX_DELAY * (ATTEMPTS - 1)
        + Duration::from_millis(1000)
        + Duration::from_secs(2)
}

/// How stale a read on instance B may be after A's write was acknowledged:
/// the stated bound — max(backplane delivery, heartbeat timeout 750 ms,
/// degraded L1 TTL 1 s while the backplane is down) = 1 s — plus 0.5 s
/// allowance for the reader's own scheduling on a loaded machine.
const STALE_BOUND: Duration = Duration::from_millis(1500);

/// Generous bound of the first successful write after a server is back
/// (the goal is 0.5 s; the measured value is printed). Far below
/// `OPEN_FOR`: recovery comes from the breaker's half-open probe.
const RECOVERY_BOUND: Duration = Duration::from_secs(3);

/// Longest any single call may run before the suite calls it a hang.
const HANG: Duration = Duration::from_secs(60);

/// Guarantees this branch does not deliver yet: measured and printed, not
/// asserted. Each entry names the missing piece; remove it when it lands.
const NOT_YET_ASSERTED: &[(&str, &str)] = &[];

fn asserted(what: &str) -> bool {
    !NOT_YET_ASSERTED.iter().any(|(k, _)| *k == what)
}

// ------------------------------------------------------------------- phases

struct Phase {
    name: &'static str,
    /// The store whose writes show recovery.
    store: Store,
    start: Instant,
    /// When the server (or network) was back.
    back: Option<Instant>,
    /// Writes of unknown outcome the library resolved before this phase
    /// began: (applied, not applied).
    resolved_before: (u64, u64),
}

/// Writes of unknown outcome the retry layer resolved so far, from its
/// `persistence_write_resolutions_total` counter: (found applied, found not
/// applied and repeated). Such writes return `Ok` to the caller, so only the
/// counter tells them apart.
fn resolutions(snap: &Snapshotter) -> (u64, u64) {
    let mut out = (0, 0);
    for (key, _, _, value) in snap.snapshot().into_vec() {
        if key.key().name() != metric_names::WRITE_RESOLUTIONS {
            continue;
        }
        let DebugValue::Counter(n) = value else {
            continue;
        };
        match key
            .key()
            .labels()
            .find(|l| l.key() == metric_names::LABEL_RESULT)
            .map(|l| l.value())
        {
            Some("applied") => out.0 += n,
            Some("not_applied") => out.1 += n,
            _ => {}
        }
    }
    out
}

fn yaml(pg: u16, redis: u16, mongo: u16, app: &str) -> String {
    let t = TIMEOUT.as_millis();
    let d = MAX_DELAY.as_millis();
    let o = OPEN_FOR.as_millis();
    let ttl = CACHE_TTL.as_secs();
    format!(
        r#"
databases:
  main:
    kind: postgres
    url: "postgres://postgres@127.0.0.1:{pg}/postgres"
    schema: faults
    pool: {{ max_connections: 16, acquire_timeout: 1s, application_name: {app} }}
    timeout: {t}ms
    retry: {{ max_attempts: {ATTEMPTS}, base_delay: 20ms, max_delay: {d}ms }}
    breaker: {{ failure_threshold: 5, open_for: {o}ms }}
  docs:
    kind: mongo
    url: "mongodb://127.0.0.1:{mongo}/?directConnection=true"
    database: faults
    timeout: {t}ms
    retry: {{ max_attempts: {ATTEMPTS}, base_delay: 20ms, max_delay: {d}ms }}
    breaker: {{ failure_threshold: 5, open_for: {o}ms }}
  cache:
    kind: redis
    url: "redis://127.0.0.1:{redis}"
cache:
  default: {{ ttl: {ttl}s, negative_ttl: 10s, l2: cache }}
"#
    )
}

fn manager(yaml: &str) -> Persistence {
    let config: PersistenceConfig = ConfigLoader::new()
        .text("faults.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("fault suite config");
    Persistence::new(config).expect("manager")
}

/// Start the servers; `None` (SKIPPED) when one is missing outside CI.
fn servers() -> Option<(LocalPg, LocalRedis, LocalMongo)> {
    let started = (|| -> Result<_, Missing> {
        let pg = LocalPg::start()?;
        let redis = LocalRedis::start()?;
        let mongo = LocalMongo::start()?;
        Ok((pg, redis, mongo))
    })();
    or_skip("fault suite", started)
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_suite() {
    let suite_start = Instant::now();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the fault suite installs the only metrics recorder of its process");
    let Some((pg, mut redis, mut mongo)) = blocking(servers) else {
        return;
    };
    let pg_proxy = Proxy::start(([127, 0, 0, 1], pg.port()).into())
        .await
        .expect("pg proxy");
    let redis_proxy = Proxy::start(([127, 0, 0, 1], redis.port()).into())
        .await
        .expect("redis proxy");
    let mongo_proxy = Proxy::start(([127, 0, 0, 1], mongo.port()).into())
        .await
        .expect("mongo proxy");
    let (pp, rp, mp) = (pg_proxy.port(), redis_proxy.port(), mongo_proxy.port());
    let a = manager(&yaml(pp, rp, mp, "faults_a"));
    let b = manager(&yaml(pp, rp, mp, "faults_b"));
    let a_rows = a.repo::<Row>().await.expect("rows on A (schema ensured)");
    let a_docs = a.repo_in::<Doc>("docs").await.expect("docs on A");
    let b_rows = b.repo::<Row>().await.expect("rows on B");
    let b_docs = b.repo_in::<Doc>("docs").await.expect("docs on B");

    // Every committed row version, recorded by PostgreSQL itself.
    blocking(|| {
        pg.psql(
            "CREATE TABLE faults.history (id bigint NOT NULL, seq bigint NOT NULL, \
               version bigint NOT NULL, op text NOT NULL);
             CREATE FUNCTION faults.record() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO faults.history VALUES (NEW.id, NEW.seq, NEW.version, TG_OP);
               RETURN NEW; END $$;
             CREATE TRIGGER record AFTER INSERT OR UPDATE ON faults.fault_rows
               FOR EACH ROW EXECUTE FUNCTION faults.record();",
        )
    });

    let shared = Arc::new(Shared {
        t0: Instant::now(),
        stop: AtomicBool::new(false),
        calls: Mutex::new(Vec::new()),
        acks: Mutex::new(HashMap::new()),
        recent: Mutex::new(Vec::new()),
        last_ok: [AtomicU64::new(0), AtomicU64::new(0)],
    });
    let mut tasks = Vec::new();
    for w in 0..16i64 {
        let shared = shared.clone();
        if w < 12 {
            let repo = a_rows.clone();
            tasks.push(tokio::spawn(writer(
                w,
                Store::Pg,
                repo,
                |id, writer, seq, version| Row {
                    id,
                    writer,
                    seq,
                    version,
                },
                |r: &Row| (r.seq, r.version),
                shared,
            )));
        } else {
            let repo = a_docs.clone();
            tasks.push(tokio::spawn(writer(
                w,
                Store::Mongo,
                repo,
                |id, writer, seq, version| Doc {
                    id,
                    writer,
                    seq,
                    version,
                },
                |d: &Doc| (d.seq, d.version),
                shared,
            )));
        }
    }
    for _ in 0..2 {
        tasks.push(tokio::spawn(reader(
            b_rows.clone(),
            b_docs.clone(),
            shared.clone(),
        )));
    }

    // ---------------------------------------------------------- the faults
    let mut phases: Vec<Phase> = Vec::new();
    let sleep = |d: Duration| tokio::time::sleep(d);
    macro_rules! phase {
        ($name:expr, $store:expr, $fault:block) => {{
            let start = Instant::now();
            phases.push(Phase {
                name: $name,
                store: $store,
                start,
                back: None,
                resolved_before: resolutions(&snapshotter),
            });
            $fault;
            let back = Instant::now();
            if let Some(p) = phases.last_mut() {
                p.back = Some(back);
            }
            // Wait for the first successful write after the server is back
            // (bounded), then let readers see the settled state.
            let limit = back + Duration::from_secs(20);
            while shared.last_ok($store) < back && Instant::now() < limit {
                sleep(Duration::from_millis(20)).await;
            }
            sleep(Duration::from_secs(3)).await;
        }};
    }

    phase!("no fault (baseline)", Store::Pg, {
        sleep(Duration::from_secs(3)).await;
    });
    phase!("pg: pg_ctl restart", Store::Pg, {
        blocking(|| pg.restart());
    });
    phase!("pg: kill -9, start", Store::Pg, {
        blocking(|| pg.kill9());
        sleep(Duration::from_secs(1)).await;
        blocking(|| pg.start_server());
    });
    phase!("pg: SIGSTOP 3s", Store::Pg, {
        blocking(|| pg.pause());
        sleep(Duration::from_secs(3)).await;
        blocking(|| pg.resume());
    });
    phase!("pg: proxy stall 3s", Store::Pg, {
        pg_proxy.set(Mode::Stall);
        sleep(Duration::from_secs(3)).await;
        pg_proxy.set(Mode::Pass);
    });
    phase!("pg: proxy drop 1.5s", Store::Pg, {
        pg_proxy.set(Mode::Drop);
        sleep(Duration::from_millis(1500)).await;
        pg_proxy.set(Mode::Pass);
    });
    phase!("pg: close-on-accept 1.5s", Store::Pg, {
        pg_proxy.set(Mode::CloseOnAccept);
        pg_proxy.reset_all();
        sleep(Duration::from_millis(1500)).await;
        pg_proxy.set(Mode::Pass);
    });
    phase!("redis: kill -9, start", Store::Pg, {
        blocking(|| redis.kill9());
        sleep(Duration::from_secs(2)).await;
        blocking(|| redis.start_server());
    });
    phase!("redis: SIGSTOP 3s", Store::Pg, {
        blocking(|| redis.pause());
        sleep(Duration::from_secs(3)).await;
        blocking(|| redis.resume());
    });
    phase!("mongo: kill -9, start", Store::Mongo, {
        blocking(|| mongo.kill9());
        sleep(Duration::from_secs(1)).await;
        blocking(|| mongo.start_server());
    });
    let end = Instant::now();

    shared.stop.store(true, Ordering::Relaxed);
    let mut panics = Vec::new();
    for t in tasks {
        if let Err(e) = tokio::time::timeout(HANG * 2, t)
            .await
            .unwrap_or_else(|_| panic!("a worker did not stop within {:?}", HANG * 2))
        {
            panics.push(e.to_string());
        }
    }

    // ------------------------------------------------------ the ground truth
    let history: HashMap<(i64, i64), u32> =
        blocking(|| pg.psql("SELECT id, seq FROM faults.history"))
            .lines()
            .filter_map(parse_pair)
            .fold(HashMap::new(), |mut m, k| {
                *m.entry(k).or_insert(0) += 1;
                m
            });
    let final_rows: HashMap<i64, i64> =
        blocking(|| pg.psql("SELECT id, seq FROM faults.fault_rows"))
            .lines()
            .filter_map(parse_pair)
            .collect();
    // MongoDB: straight to the server, no cache, no proxy.
    let direct = manager(&format!(
        r#"
databases:
  docs:
    kind: mongo
    url: "mongodb://127.0.0.1:{}/?directConnection=true"
    database: faults
    timeout: 30s
cache: {{ default: {{ disabled: true }} }}
"#,
        mongo.port()
    ));
    let final_docs: HashMap<i64, i64> = direct
        .repo_in::<Doc>("docs")
        .await
        .expect("docs, direct")
        .find(&Query::all())
        .await
        .expect("all documents")
        .into_iter()
        .map(|d| (d.id, d.seq))
        .collect();

    let calls = std::mem::take(&mut *shared.calls.lock());
    let resolved_at_end = resolutions(&snapshotter);
    let report = Report::build(
        &phases,
        (end, resolved_at_end),
        &calls,
        &history,
        &final_rows,
        &final_docs,
    );
    println!("{}", report.table);
    println!(
        "fault suite: {} calls, {:.0} s in all",
        calls.len(),
        suite_start.elapsed().as_secs_f64()
    );
    println!(
        "errors: {} write errors whose write was applied were conflicts (a retry that met itself)",
        report.false_conflicts
    );
    println!(
        "errors: {} write errors said retryable although the write was applied",
        report.retryable_applied
    );
    for (_, e) in &report.examples {
        println!("error: {e}");
    }
    for (what, why) in NOT_YET_ASSERTED {
        println!("NOT YET ASSERTED ({what}): {why}");
    }

    a.shutdown().await;
    b.shutdown().await;
    direct.shutdown().await;

    // ----------------------------------------------------------- assertions
    let mut failures = Vec::new();
    if !panics.is_empty() {
        failures.push(format!("worker panics: {panics:?}"));
    }
    if report.hangs > 0 {
        failures.push(format!("{} calls hung for {HANG:?}", report.hangs));
    }
    if report.pg_lost > 0 {
        failures.push(format!(
            "{} acknowledged PostgreSQL writes lost: {:?}",
            report.pg_lost, report.lost_examples
        ));
    }
    if report.mongo_lost > 0 && asserted("mongo_lost") {
        failures.push(format!(
            "{} acknowledged MongoDB writes lost",
            report.mongo_lost
        ));
    }
    if report.duplicates > 0 {
        failures.push(format!(
            "{} writes applied more than once",
            report.duplicates
        ));
    }
    if report.not_applied_but_applied > 0 && asserted("not_applied") {
        failures.push(format!(
            "{} errors said NotApplied but the write was applied",
            report.not_applied_but_applied
        ));
    }
    if report.retryable_applied > 0 && asserted("retryable_applied") {
        failures.push(format!(
            "{} write errors said retryable although the write was applied",
            report.retryable_applied
        ));
    }
    if report.false_conflicts > 0 && asserted("false_conflicts") {
        failures.push(format!(
            "{} writes failed with a conflict although they were applied",
            report.false_conflicts
        ));
    }
    if report.stale_beyond > 0 && asserted("stale") {
        failures.push(format!(
            "{} reads on B staler than {STALE_BOUND:?} (max {:?})",
            report.stale_beyond, report.max_stale
        ));
    }
    if report.max_latency > call_bound() {
        failures.push(format!(
            "a call took {:?}, more than its bound {:?}: {}",
            report.max_latency,
            call_bound(),
            report.slowest
        ));
    }
    for (name, rec) in &report.recovery {
        match rec {
            Some(r) if *r <= RECOVERY_BOUND => {}
            Some(r) => failures.push(format!(
                "{name}: first successful write {r:?} after the server was back (bound {RECOVERY_BOUND:?})"
            )),
            None => failures.push(format!("{name}: no successful write after the server was back")),
        }
    }
    if report.examples.iter().any(|(what, _)| asserted(what)) {
        failures.extend(report.examples.iter().map(|(_, e)| e.clone()));
    }
    assert!(
        failures.is_empty(),
        "fault suite failed:\n{}",
        failures.join("\n")
    );
}

fn parse_pair(line: &str) -> Option<(i64, i64)> {
    let (a, b) = line.split_once('|')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}
