//! Failover, replicas, health and the circuit breaker against PostgreSQL
//! clusters the tests start, pause (SIGSTOP) and stop themselves.
//! The shared server on 5432 is only ever used as a healthy backup.

mod local_pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use local_pg::{LocalPg, within};
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{
    DynRepository, Entity, ErrorKind, HealthState, Persistence, Role, SharedRepository, Topology,
};
use persistence_testing::TestPostgres;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "fo_items")]
struct Item {
    #[entity(id)]
    id: i64,
    label: String,
}

fn item(id: i64) -> Item {
    Item {
        id,
        label: format!("item {id}"),
    }
}

fn manager(yaml: &str) -> Persistence {
    let config: PersistenceConfig = ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    Persistence::new(config).expect("manager")
}

/// Generous bound for "traffic has moved": a few check rounds plus slack for a loaded machine.
const MOVE_BOUND: Duration = Duration::from_secs(20);

fn calls(t: &Topology, role: Role) -> u64 {
    t.endpoints()
        .iter()
        .find(|e| e.role == role)
        .map_or(0, |e| e.calls)
}

fn up(t: &Topology, role: Role) -> Option<bool> {
    t.endpoints().iter().find(|e| e.role == role)?.up
}

/// The health report once every database is `Healthy` (within
/// [`MOVE_BOUND`]; the last report in the panic message otherwise).
async fn healthy(p: &Persistence) -> persistence::HealthReport {
    let last = std::sync::Mutex::new(None);
    let seen = &last;
    let got = within(MOVE_BOUND, move || async move {
        let r = p.health().await;
        let ok = r.databases.iter().all(|d| d.state == HealthState::Healthy);
        *seen.lock().expect("lock") = Some(format!("{r:?}"));
        ok.then_some(r)
    })
    .await;
    match got {
        Some((r, _)) => r,
        None => panic!("not healthy: {:?}", last.lock().expect("lock")),
    }
}

async fn wait_for_state(t: &Topology, role: Role, want: bool) -> Duration {
    within(MOVE_BOUND, || async {
        (up(t, role) == Some(want)).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{role} not marked up={want} within {MOVE_BOUND:?}"))
    .1
}

async fn read_ok(repo: &SharedRepository<Item>, id: i64) -> bool {
    matches!(repo.get(&id).await, Ok(Some(_)))
}

#[tokio::test]
async fn reads_go_to_the_replica_and_move_off_it_while_it_hangs() {
    let primary = LocalPg::start();
    let mut replica = LocalPg::replica_of(&primary);
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    replicas: ["{}"]
    pool: {{ acquire_timeout: 2s, max_connections: 4 }}
    timeout: 3s
    retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}
    failover: {{ check_interval: 200ms, check_timeout: 500ms }}
cache: {{ default: {{ disabled: true }} }}
"#,
        primary.url(),
        replica.url()
    ));
    let items = p.repo::<Item>().await.expect("repo");
    let topology = p.topology("main").expect("failover topology");
    items.insert(&item(1)).await.expect("insert on the primary");
    assert_eq!(
        calls(&topology, Role::Replica(0)),
        0,
        "writes never go to a replica"
    );

    // Streaming replication: the replica serves the primary's write.
    within(Duration::from_secs(30), || async {
        read_ok(&items, 1).await.then_some(())
    })
    .await
    .expect("the replica sees the primary's write");
    let on_replica = calls(&topology, Role::Replica(0));
    let on_primary = calls(&topology, Role::Primary);
    assert!(on_replica > 0, "reads went to the replica");
    assert_eq!(
        items
            .count(&persistence::Filter::all())
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        calls(&topology, Role::Primary),
        on_primary,
        "reads stay off the primary"
    );

    // Both endpoints answer. A check that takes longer than the 500 ms
    // time-out marks its endpoint down, correctly; on a loaded machine that
    // can happen to a live server once, so the test waits for the verdict
    // the servers deserve rather than timing a single check.
    let report = healthy(&p).await;
    let main = &report.databases[0];
    assert_eq!(main.endpoints.len(), 2);
    assert!(main.endpoints.iter().all(|e| e.up == Some(true)));

    // Hang the replica: TCP still connects, nothing answers.
    replica.pause();
    let moved_after = wait_for_state(&topology, Role::Replica(0), false).await;
    eprintln!("replica marked down {moved_after:?} after SIGSTOP");
    let before = calls(&topology, Role::Primary);
    let frozen = calls(&topology, Role::Replica(0));
    for _ in 0..5 {
        assert!(read_ok(&items, 1).await, "reads are served by the primary");
    }
    assert!(calls(&topology, Role::Primary) >= before + 5);
    assert_eq!(
        calls(&topology, Role::Replica(0)),
        frozen,
        "no read to the hung replica"
    );

    let start = Instant::now();
    let report = p.health().await;
    let elapsed = start.elapsed();
    let main = &report.databases[0];
    assert!(
        elapsed < Duration::from_millis(500) + Duration::from_secs(5),
        "health took {elapsed:?} against a hung replica"
    );
    assert_eq!(main.state, HealthState::Degraded, "{main:?}");
    assert!(main.since.is_some() && main.error.is_some());
    let r = &main.endpoints[1];
    assert_eq!((r.role, r.up), (Role::Replica(0), Some(false)));
    assert!(r.since.is_some() && r.error.is_some());

    // Back again: reads return to the replica.
    replica.resume();
    wait_for_state(&topology, Role::Replica(0), true).await;
    let back = calls(&topology, Role::Replica(0));
    within(MOVE_BOUND, || async {
        (read_ok(&items, 1).await && calls(&topology, Role::Replica(0)) > back).then_some(())
    })
    .await
    .expect("reads return to the replica");
    p.shutdown().await;
}

#[tokio::test]
async fn writes_fail_over_to_the_backup_and_return_to_the_primary() {
    // The backup's schema on the shared server, dropped by the guard (also on panic).
    let Some(backup) = TestPostgres::schema().await else {
        return;
    };
    let (shared, schema) = (backup.url().to_string(), backup.name().to_string());
    let primary = LocalPg::start();
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    backup: "{shared}"
    schema: {schema}
    pool: {{ acquire_timeout: 1s, max_connections: 4 }}
    timeout: 3s
    retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}
    failover: {{ check_interval: 200ms, check_timeout: 500ms }}
cache: {{ default: {{ disabled: true }} }}
"#,
        primary.url()
    ));
    let items = p
        .repo::<Item>()
        .await
        .expect("repo (schema on primary and backup)");
    let topology = p.topology("main").expect("topology");
    items.insert(&item(1)).await.expect("insert on the primary");
    assert_eq!(calls(&topology, Role::Backup), 0);

    primary.stop_server();
    let moved_after = wait_for_state(&topology, Role::Primary, false).await;
    eprintln!("primary marked down {moved_after:?} after pg_ctl stop");
    items
        .insert(&item(2))
        .await
        .expect("the backup takes writes while the primary is down");
    assert!(calls(&topology, Role::Backup) > 0);
    assert!(items.get(&2).await.expect("read from backup").is_some());

    let report = p.health().await;
    let main = &report.databases[0];
    assert_eq!(main.state, HealthState::Degraded, "{main:?}");
    let since = main.since.expect("failing since");
    assert_eq!(main.endpoints[0].up, Some(false));
    assert!(main.endpoints[0].error.is_some());
    assert_eq!(main.endpoints[1].up, Some(true));
    let again = p.health().await;
    assert_eq!(
        again.databases[0].since,
        Some(since),
        "one streak, one start"
    );

    primary.start_server();
    wait_for_state(&topology, Role::Primary, true).await;
    items
        .insert(&item(3))
        .await
        .expect("writes return to the primary");
    assert!(items.get(&3).await.expect("get").is_some());
    // The documented consistency: what the backup took is not copied back.
    assert!(items.get(&2).await.expect("get").is_none());
    let report = healthy(&p).await;
    assert_eq!(report.databases[0].since, None);
    p.shutdown().await;

    backup.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn health_stays_within_its_timeout_against_a_paused_server() {
    let mut pg = LocalPg::start();
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    pool: {{ acquire_timeout: 2s, max_connections: 4 }}
    failover: {{ check_timeout: 1s }}
cache: {{ default: {{ disabled: true }} }}
"#,
        pg.url()
    ));
    let items = p.repo::<Item>().await.expect("repo");
    items.insert(&item(1)).await.expect("insert");
    let report = p.health().await;
    assert_eq!(report.status, HealthState::Healthy);
    assert!(report.databases[0].latency.is_some());

    pg.pause();
    let start = Instant::now();
    let report = p.health().await;
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(1) + Duration::from_secs(5),
        "health took {elapsed:?} against a SIGSTOPped server (timeout 1s)"
    );
    let main = &report.databases[0];
    assert_eq!(main.state, HealthState::Unhealthy, "{main:?}");
    assert_eq!(report.status, HealthState::Unhealthy);
    assert!(
        main.error
            .as_deref()
            .is_some_and(|e| e.contains("no answer"))
    );
    let since = main.since.expect("since");
    let again = p.health().await;
    assert_eq!(again.databases[0].since, Some(since), "same failing streak");

    pg.resume();
    within(Duration::from_secs(30), || async {
        (p.health().await.databases[0].state == HealthState::Healthy).then_some(())
    })
    .await
    .expect("healthy again after SIGCONT");
    assert_eq!(p.health().await.databases[0].since, None);
    assert!(items.get(&1).await.expect("get").is_some());
    p.shutdown().await;
}

#[tokio::test]
async fn breaker_opens_against_a_stopped_server_and_closes_after_it_returns() {
    let pg = LocalPg::start();
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    pool: {{ acquire_timeout: 1s, max_connections: 2 }}
    timeout: 5s
    retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}
    breaker: {{ failure_threshold: 3, open_for: 2s }}
cache: {{ default: {{ disabled: true }} }}
"#,
        pg.url()
    ));
    let items: Arc<dyn DynRepository<Item>> = p.repo::<Item>().await.expect("repo");
    items.insert(&item(1)).await.expect("insert");
    pg.stop_server();

    let mut failures = 0;
    let opened = loop {
        let e = items.get(&1).await.expect_err("the server is stopped");
        assert!(
            matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "{e}"
        );
        if e.to_string().contains("circuit breaker") {
            break e;
        }
        failures += 1;
        assert!(
            failures <= 3,
            "breaker still closed after {failures} failures"
        );
    };
    assert_eq!(
        failures, 3,
        "opens after exactly failure_threshold failures"
    );
    assert_eq!(*opened.kind(), ErrorKind::Unavailable);

    // Fail fast while open: many calls, every one refused by the breaker.
    for _ in 0..20 {
        let e = items.get(&1).await.expect_err("open");
        assert!(e.to_string().contains("circuit breaker"), "{e}");
    }
    let report = p.health().await;
    assert_eq!(report.databases[0].state, HealthState::Unhealthy);

    pg.start_server();
    let (value, _) = within(Duration::from_secs(30), || async {
        items.get(&1).await.ok().flatten()
    })
    .await
    .expect("half-open probe succeeds and the breaker closes");
    assert_eq!(value, item(1));
    for _ in 0..5 {
        assert!(items.get(&1).await.expect("closed").is_some());
    }
    assert_eq!(p.health().await.databases[0].state, HealthState::Healthy);
    p.shutdown().await;
}

/// Numbers for the closing note: `cargo nextest run -p persistence --test failover
/// --run-ignored only --no-capture measure`. Prints failover and breaker timings;
/// asserts only that each transition happened.
#[tokio::test]
#[ignore = "measurement: prints timings"]
async fn measure_failover_and_breaker_timings() {
    // The backup's schema on the shared server, dropped by the guard (also on panic).
    let Some(backup) = TestPostgres::schema().await else {
        return;
    };
    let (shared, schema) = (backup.url().to_string(), backup.name().to_string());
    let (interval, timeout) = ("200ms", "500ms");
    let primary = LocalPg::start();
    let mut replica = LocalPg::replica_of(&primary);
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    replicas: ["{}"]
    backup: "{shared}"
    schema: {schema}
    pool: {{ acquire_timeout: 1s, max_connections: 4 }}
    timeout: 3s
    retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}
    failover: {{ check_interval: {interval}, check_timeout: {timeout} }}
cache: {{ default: {{ disabled: true }} }}
"#,
        primary.url(),
        replica.url()
    ));
    let items = p.repo::<Item>().await.expect("repo");
    let t = p.topology("main").expect("topology");
    items.insert(&item(1)).await.expect("insert");
    within(Duration::from_secs(30), || async {
        read_ok(&items, 1).await.then_some(())
    })
    .await
    .expect("replicated");
    println!("check_interval {interval}, check_timeout {timeout}");

    // Replica hung (SIGSTOP) and stopped (pg_ctl stop): time until reads are served elsewhere.
    for round in 0..3 {
        replica.pause();
        let start = Instant::now();
        let marked = wait_for_state(&t, Role::Replica(0), false).await;
        let on_primary = calls(&t, Role::Primary);
        within(MOVE_BOUND, || async {
            (read_ok(&items, 1).await && calls(&t, Role::Primary) > on_primary).then_some(())
        })
        .await
        .expect("read on primary");
        let served = start.elapsed();
        replica.resume();
        let start = Instant::now();
        wait_for_state(&t, Role::Replica(0), true).await;
        let back = start.elapsed();
        println!(
            "replica SIGSTOP #{round}: marked down {marked:?}, first read served by primary {served:?}; after SIGCONT marked up {back:?}"
        );
    }
    replica.stop_server();
    let start = Instant::now();
    let marked = wait_for_state(&t, Role::Replica(0), false).await;
    println!("replica pg_ctl stop: marked down {marked:?}");
    replica.start_server();
    wait_for_state(&t, Role::Replica(0), true).await;
    println!(
        "replica restarted: marked up {:?} after stop",
        start.elapsed()
    );

    // Primary stopped: time until a write lands on the backup.
    primary.stop_server();
    let start = Instant::now();
    let mut id = 100;
    within(MOVE_BOUND, || {
        id += 1;
        let items = items.clone();
        async move { items.insert(&item(id)).await.ok() }
    })
    .await
    .expect("write on backup");
    println!(
        "primary pg_ctl stop: first write accepted by the backup after {:?}",
        start.elapsed()
    );
    assert!(calls(&t, Role::Backup) > 0);
    p.shutdown().await;
    backup.cleanup().await.expect("cleanup");
    primary.start_server();

    // Breaker: threshold 3, open_for 2s, against the (own) primary.
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    pool: {{ acquire_timeout: 1s, max_connections: 2 }}
    timeout: 5s
    retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}
    breaker: {{ failure_threshold: 3, open_for: 2s }}
cache: {{ default: {{ disabled: true }} }}
"#,
        primary.url()
    ));
    let items = p.repo::<Item>().await.expect("repo");
    items.get(&1).await.expect("warm");
    primary.stop_server();
    let start = Instant::now();
    loop {
        let e = items.get(&1).await.expect_err("stopped");
        if e.to_string().contains("circuit breaker") {
            break;
        }
    }
    let to_open = start.elapsed();
    let n = 1000;
    let start = Instant::now();
    for _ in 0..n {
        items.get(&1).await.expect_err("open");
    }
    let fail_fast = start.elapsed() / n;
    primary.start_server();
    let start = Instant::now();
    within(Duration::from_secs(30), || async {
        items.get(&1).await.ok()
    })
    .await
    .expect("closes");
    let to_close = start.elapsed();
    println!(
        "breaker (threshold 3, open_for 2s, acquire_timeout 1s): open after {to_open:?}; fail-fast {fail_fast:?}/call while open; closed {to_close:?} after the server was back"
    );
    p.shutdown().await;
}

/// How the server goes away and comes back in [`recovery_after`].
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `pg_ctl stop -m fast`, then `pg_ctl start`.
    Restart,
    /// SIGKILL of the postmaster and every backend, then `pg_ctl start` (crash recovery).
    Kill,
    /// SIGSTOP of every server process, then SIGCONT.
    Pause,
}

/// Open a fresh connection every few milliseconds until one succeeds: the
/// moment the server accepts connections again.
async fn accepting_at(url: &str) -> Instant {
    use persistence::postgres::sea_orm::sqlx::{Connection as _, postgres::PgConnection};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = tokio::time::timeout(Duration::from_millis(500), PgConnection::connect(url));
        if let Ok(Ok(conn)) = attempt.await {
            let at = Instant::now();
            let _ = conn.close().await;
            return at;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not accept connections within 60s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writers insert continuously through the manager while `fault` takes the
/// server away until the breaker is open, then brings it back. Returns the
/// time from "the server accepts connections again" to the first
/// successful write after it.
async fn recovery_after(pg: &mut LocalPg, p: &Persistence, fault: Fault) -> Duration {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    let items = p.repo::<Item>().await.expect("repo");
    items.insert(&item(0)).await.ok();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicI64::new(1_000_000 * (fault as i64 + 1)));
    let breaker_open = Arc::new(AtomicBool::new(false));
    let oks: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (items, stop, next, open, oks) = (
                items.clone(),
                stop.clone(),
                next.clone(),
                breaker_open.clone(),
                oks.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    match items.insert(&item(id)).await {
                        Ok(_) => oks.lock().expect("lock").push(Instant::now()),
                        Err(e) if e.to_string().contains("circuit breaker") => {
                            open.store(true, Ordering::SeqCst);
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !oks.lock().expect("lock").is_empty(),
        "writes before the fault"
    );

    match fault {
        Fault::Restart => pg.stop_server(),
        Fault::Kill => pg.kill(),
        Fault::Pause => pg.pause(),
    }
    within(Duration::from_secs(30), || async {
        breaker_open.load(Ordering::SeqCst).then_some(())
    })
    .await
    .expect("the breaker opens during the outage");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let url = pg.url();
    let back = match fault {
        Fault::Restart | Fault::Kill => {
            let poll = tokio::spawn(async move { accepting_at(&url).await });
            {
                let pg: &LocalPg = pg;
                tokio::task::block_in_place(|| pg.start_server());
            }
            poll.await.expect("poller")
        }
        Fault::Pause => {
            pg.resume();
            Instant::now()
        }
    };
    let (first, _) = within(Duration::from_secs(30), || async {
        oks.lock()
            .expect("lock")
            .iter()
            .copied()
            .find(|t| *t > back)
    })
    .await
    .expect("writes succeed again after recovery");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    first.saturating_duration_since(back)
}

/// Issue 12, item 4: the breaker half-opens as soon as its recovery checker
/// reaches the server, and a pool of dead connections after a restart or a
/// crash costs no acquire timeout. `open_for` is 60s here and
/// `recovery_after` waits at most 30s for a successful write after the server
/// is back, so a breaker that waited out `open_for` fails the test without any
/// timing assertion. Prints the measured recovery times (the goal is 0.5s;
/// the numbers are for the closing note, not asserted: they vary with load).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_resume_after_the_server_returns_without_waiting_out_the_breaker() {
    let mut pg = LocalPg::start();
    let p = manager(&format!(
        r#"
databases:
  main:
    kind: postgres
    url: "{}"
    pool: {{ acquire_timeout: 2s, max_connections: 8 }}
    timeout: 1s
    breaker: {{ failure_threshold: 3, open_for: 60s }}
cache: {{ default: {{ disabled: true }} }}
"#,
        pg.url()
    ));
    for fault in [Fault::Restart, Fault::Kill, Fault::Pause] {
        let took = recovery_after(&mut pg, &p, fault).await;
        eprintln!(
            "recovery: {fault:?}: first successful write {took:?} after the server accepted connections again"
        );
    }
    p.shutdown().await;
}
