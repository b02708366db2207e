//! `Tenants::migrate_all` / `migration_status` over many tenants on the
//! local PostgreSQL: a failing tenant does not stop the others, a rerun
//! resumes, a dry run writes nothing, the concurrency bound holds, and a
//! run dropped part-way lets its tenants in flight finish, gives every
//! connection back, and is finished by a rerun that leaves finished
//! tenants untouched.
#[path = "support/tenant_migrators.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt as _;
use persistence_postgres::tenant::{
    MigrateAll, ProgressEvent, RunState, TenantOutcome, TenantReport,
};
use persistence_postgres::{RelationalStore, TenantId, Tenants};
use support::*;

fn ids(prefix: &str, n: usize) -> Vec<TenantId> {
    (0..n)
        .map(|k| TenantId::new(format!("{prefix}_{k:03}")).expect("valid id"))
        .collect()
}

/// Provision `ids` with `tenants`, 8 at a time.
async fn provision(tenants: &Tenants, ids: &[TenantId]) {
    futures_util::stream::iter(ids)
        .for_each_concurrent(8, |t| async move {
            tenants.provision(t).await.expect("provision");
        })
        .await;
}

fn migrated(r: &TenantReport) -> bool {
    matches!(&r.outcome, TenantOutcome::Migrated { applied } if applied == &[M2.to_string()])
}

/// A progress reporter counting tenants in flight and the peak.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl InFlight {
    fn on(&self, e: &ProgressEvent<'_>) {
        match e {
            ProgressEvent::Started { .. } => {
                self.started.fetch_add(1, Ordering::SeqCst);
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(n, Ordering::SeqCst);
            }
            ProgressEvent::Finished { .. } => {
                self.finished.fetch_add(1, Ordering::SeqCst);
                self.now.fetch_sub(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_tenants_one_failing_dry_run_status_and_a_resuming_rerun() {
    let prefix = format!("g{}", persistence_testing::services::unique_suffix());
    with_control(12, move |store: RelationalStore| async move {
        let all = ids(&prefix, 200);
        let bad = all[137].clone();
        let v1 = Tenants::new(&store).expect("tenants").with_migrator::<V1>();
        provision(&v1, &all).await;
        // The failing tenant: someone added the column by hand, so
        // `ALTER TABLE .. ADD COLUMN "extra"` fails there.
        exec(
            &store,
            &format!("ALTER TABLE \"{bad}\".\"notes\" ADD COLUMN \"extra\" text"),
        )
        .await;

        // Version 2 of the application: every tenant lags by one migration.
        let v2 = Tenants::new(&store).expect("tenants").with_migrator::<V2>();
        let status = v2.migration_status().await.expect("status");
        assert_eq!(status.len(), 200);
        for s in &status {
            assert!(s.is_lagging(), "{s:?}");
            assert_eq!(s.applied, vec![M1.to_string()]);
            assert_eq!(s.pending, vec![M2.to_string()]);
            let record = s.record.as_ref().expect("provisioning recorded it");
            assert_eq!(record.state, RunState::Done);
            assert_eq!(record.last_applied.as_deref(), Some(M1));
        }

        // A dry run lists what would run and changes nothing.
        let before = snapshot(&store, &all).await;
        assert!(before.len() > 800, "{}", before.len());
        let dry = v2
            .migrate_all(&MigrateAll::new().dry_run(true))
            .await
            .expect("dry run");
        assert!(dry.dry_run);
        assert_eq!(dry.tenants.len(), 200);
        for r in &dry.tenants {
            assert!(
                matches!(&r.outcome, TenantOutcome::WouldApply { pending } if pending == &[M2.to_string()]),
                "{r:?}"
            );
        }
        assert_eq!(snapshot(&store, &all).await, before, "the dry run wrote");

        // The run: 199 migrate, the bad one fails alone.
        let counter = Arc::new(InFlight::default());
        let opts = MigrateAll::new().concurrency(8).progress({
            let counter = counter.clone();
            move |e: &ProgressEvent<'_>| counter.on(e)
        });
        let started = Instant::now();
        let report = v2.migrate_all(&opts).await.expect("run");
        eprintln!(
            "migrate_all over 200 tenants (concurrency 8): {:?}",
            started.elapsed()
        );
        assert_eq!(counter.started.load(Ordering::SeqCst), 200);
        assert_eq!(counter.finished.load(Ordering::SeqCst), 200);
        let peak = counter.peak.load(Ordering::SeqCst);
        assert!((1..=8).contains(&peak), "peak in flight {peak}");
        assert_eq!(report.head.as_deref(), Some(M2));
        assert_eq!(report.count(|_| true), 200);
        assert_eq!(report.tenants.iter().filter(|r| migrated(r)).count(), 199);
        let failures: Vec<_> = report.failures().collect();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0, &bad);
        assert!(!report.is_success());
        assert!(failures[0].1.to_string().contains("extra"), "{}", failures[0].1);
        eprintln!("the failing tenant: {}", failures[0].1);

        // Status: only the bad tenant lags; its row says why.
        let status = v2.migration_status().await.expect("status");
        let lagging: Vec<_> = status.iter().filter(|s| s.is_lagging()).collect();
        assert_eq!(lagging.len(), 1);
        assert_eq!(lagging[0].tenant, bad);
        let record = lagging[0].record.as_ref().expect("record");
        assert_eq!(record.state, RunState::Failed);
        assert_eq!(record.last_applied.as_deref(), Some(M1));
        assert!(
            record.error.as_deref().is_some_and(|e| e.contains("extra")),
            "{record:?}"
        );
        for s in status.iter().filter(|s| s.tenant != bad) {
            let r = s.record.as_ref().expect("record");
            assert_eq!((r.state, r.last_applied.as_deref()), (RunState::Done, Some(M2)));
            assert!(has_extra(&store, &s.tenant).await);
        }

        // Fixed by hand; the rerun migrates it and writes nothing elsewhere.
        exec(
            &store,
            &format!("ALTER TABLE \"{bad}\".\"notes\" DROP COLUMN \"extra\""),
        )
        .await;
        let rows_before: Vec<String> = status_rows(&store)
            .await
            .into_iter()
            .filter(|r| !r.contains(bad.as_str()))
            .collect();
        let rerun = v2.migrate_all(&MigrateAll::new()).await.expect("rerun");
        assert!(rerun.is_success());
        assert_eq!(
            rerun
                .count(|o| matches!(o, TenantOutcome::AtHead)),
            199
        );
        assert!(migrated(
            rerun.tenants.iter().find(|r| r.tenant == bad).expect("bad")
        ));
        let rows_after: Vec<String> = status_rows(&store)
            .await
            .into_iter()
            .filter(|r| !r.contains(bad.as_str()))
            .collect();
        assert_eq!(rows_after, rows_before, "finished tenants were rewritten");
        let status = v2.migration_status().await.expect("status");
        assert!(status.iter().all(|s| !s.is_lagging()));
    })
    .await;
}

/// Also the regression test of a hang: the run's future used to cancel the
/// tenants in flight between two statements of their transactions, and
/// now and then a connection so cut off was never given back to the pool
/// (the teardown's `close` then waited for ever, every server connection
/// idle). Now each tenant finishes in its own task: every tenant that
/// started reports `Finished` after the drop, and the pool closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_dropped_part_way_is_finished_by_a_rerun() {
    let prefix = format!("k{}", persistence_testing::services::unique_suffix());
    with_control(8, move |store: RelationalStore| async move {
        let all = ids(&prefix, 60);
        let v1 = Tenants::new(&store).expect("tenants").with_migrator::<V1>();
        provision(&v1, &all).await;
        let v2 = Tenants::new(&store).expect("tenants").with_migrator::<V2>();

        // "Crash" after 20 tenants finished: the run's future is dropped
        // with up to 4 tenants in flight. They are not cut off: each ends
        // its transaction in its own task and reports `Finished`; no
        // tenant starts after the drop.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = std::sync::Mutex::new(Some(tx));
        let counter = Arc::new(InFlight::default());
        let opts = MigrateAll::new().concurrency(4).progress({
            let counter = counter.clone();
            move |e: &ProgressEvent<'_>| {
                counter.on(e);
                if let ProgressEvent::Finished { done: 20, .. } = e
                    && let Some(tx) = tx.lock().expect("lock").take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::select! {
            biased;
            _ = rx => {}
            r = v2.migrate_all(&opts) => panic!("the run finished before the crash: {r:?}"),
        }
        let started = counter.started.load(Ordering::SeqCst);
        tokio::time::timeout(TEARDOWN_BOUND, async {
            while counter.finished.load(Ordering::SeqCst) < started {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} of the {started} started tenants finished after the drop",
                counter.finished.load(Ordering::SeqCst)
            )
        });
        assert_eq!(
            counter.started.load(Ordering::SeqCst),
            started,
            "a tenant started after the drop"
        );

        let records: Vec<String> = status_rows(&store).await;
        let finished: BTreeSet<String> = records
            .iter()
            .filter(|r| r.contains(&format!(" done {M2} ")))
            .cloned()
            .collect();
        assert!(
            (20..60).contains(&finished.len()),
            "{} finished before the crash",
            finished.len()
        );
        let status = v2.migration_status().await.expect("status");
        let lagging: BTreeSet<TenantId> = status
            .iter()
            .filter(|s| s.is_lagging())
            .map(|s| s.tenant.clone())
            .collect();
        assert!(!lagging.is_empty() && lagging.len() <= 40, "{lagging:?}");
        eprintln!(
            "crash after 20: {} tenants done, {} lagging, {} rows in the status table",
            finished.len(),
            lagging.len(),
            records.len()
        );

        // The rerun finishes the rest; rows of finished tenants (the ones in
        // flight at the drop included) are unchanged (same xmin), and they
        // are reported at head.
        let rerun = v2
            .migrate_all(&MigrateAll::new().concurrency(4))
            .await
            .expect("rerun");
        assert!(
            rerun.is_success(),
            "{:?}",
            rerun.failures().collect::<Vec<_>>()
        );
        let after: BTreeSet<String> = status_rows(&store).await.into_iter().collect();
        assert!(
            finished.is_subset(&after),
            "finished tenants were rewritten"
        );
        for r in &rerun.tenants {
            let was_done = finished
                .iter()
                .any(|row| row.starts_with(&format!("status {} ", r.tenant)));
            if was_done {
                assert!(matches!(r.outcome, TenantOutcome::AtHead), "{r:?}");
            } else if migrated(r) {
                assert!(lagging.contains(&r.tenant), "{r:?} was not lagging");
            } else {
                assert!(matches!(r.outcome, TenantOutcome::AtHead), "{r:?}");
            }
        }
        let status = v2.migration_status().await.expect("status");
        assert!(status.iter().all(|s| !s.is_lagging()));
        for s in &status {
            let r = s.record.as_ref().expect("record");
            assert_eq!(
                (r.state, r.last_applied.as_deref()),
                (RunState::Done, Some(M2))
            );
        }
    })
    .await;
}
