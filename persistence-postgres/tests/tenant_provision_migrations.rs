//! Provisioning with a migrator: a new tenant is created *and* migrated to
//! head (concurrent-safe, a repeat writes nothing), an existing one is
//! brought to head; misuse answers with typed errors; the status table is
//! never taken over from someone else.
#[path = "support/tenant_migrators.rs"]
mod support;

use persistence_core::{ErrorKind, Repository};
use persistence_postgres::tenant::{MigrateAll, RunState};
use persistence_postgres::{RelationalStore, TenantId, Tenants};
use support::*;

fn id(prefix: &str) -> TenantId {
    TenantId::new(format!(
        "{prefix}{}",
        persistence_testing::services::unique_suffix()
    ))
    .expect("valid id")
}

async fn versions(store: &RelationalStore, t: &TenantId) -> Vec<String> {
    strings(
        store,
        &format!("SELECT version FROM \"{t}\".seaql_migrations ORDER BY version"),
        vec![],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provision_creates_and_migrates_to_head_once_under_concurrency() {
    let (t, old) = (id("p"), id("q"));
    with_control(17, move |store: RelationalStore| async move {
        // A tenant of version 1 of the application.
        let v1 = Tenants::new(&store)
            .expect("tenants")
            .register::<Note>()
            .with_migrator::<V1>();
        v1.provision(&old).await.expect("provision v1");
        assert_eq!(versions(&store, &old).await, vec![M1.to_string()]);
        assert!(!has_extra(&store, &old).await);

        // Version 2: 16 concurrent provisions of a new tenant make one
        // schema migrated once to head.
        let v2 = Tenants::new(&store)
            .expect("tenants")
            .register::<Note>()
            .with_migrator::<V2>();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (v2, t) = (v2.clone(), t.clone());
                tokio::spawn(async move { v2.provision(&t).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("provision");
        }
        assert_eq!(
            versions(&store, &t).await,
            vec![M1.to_string(), M2.to_string()]
        );
        assert!(has_extra(&store, &t).await);
        assert_eq!(
            v2.entities(&t).await.expect("entities"),
            Some(vec!["notes".to_string()])
        );
        let notes = v2.repository::<Note>(&t);
        let n = Note {
            id: 1,
            body: "hi".into(),
        };
        notes.insert(&n).await.expect("insert");
        assert_eq!(notes.get(&1).await.expect("get"), Some(n));

        // Provisioning the old tenant again brings it to head.
        v2.provision(&old).await.expect("provision old with v2");
        assert_eq!(
            versions(&store, &old).await,
            vec![M1.to_string(), M2.to_string()]
        );
        assert!(has_extra(&store, &old).await);
        let status = v2.migration_status().await.expect("status");
        assert_eq!(status.len(), 2);
        for s in &status {
            assert!(!s.is_lagging(), "{s:?}");
            let r = s.record.as_ref().expect("recorded by provisioning");
            assert_eq!(
                (r.state, r.last_applied.as_deref()),
                (RunState::Done, Some(M2))
            );
            assert_eq!(r.target.as_deref(), Some(M2));
        }

        // A repeated provision (and a run over all tenants) writes nothing.
        let both = [t.clone(), old.clone()];
        let before = snapshot(&store, &both).await;
        v2.provision(&t).await.expect("again");
        v2.provision(&old).await.expect("again");
        let report = v2.migrate_all(&MigrateAll::new()).await.expect("run");
        assert!(report.is_success());
        assert_eq!(snapshot(&store, &both).await, before);

        // Dropping a tenant forgets its status row.
        v2.drop_tenant(&t).await.expect("drop");
        let rows = status_rows(&store).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains(old.as_str()), "{rows:?}");
    })
    .await;
}

#[tokio::test]
async fn misuse_is_a_typed_error_and_a_foreign_status_table_is_left_alone() {
    let t = id("s");
    with_control(4, move |store: RelationalStore| async move {
        let plain = Tenants::new(&store).expect("tenants").register::<Note>();
        for e in [
            plain
                .migrate_all(&MigrateAll::new())
                .await
                .expect_err("no migrator"),
            plain.migration_status().await.expect_err("no migrator"),
        ] {
            assert_eq!(e.kind(), &ErrorKind::Config, "{e}");
        }
        let v2 = plain.clone().with_migrator::<V2>();
        let e = v2
            .migrate_all(&MigrateAll::new().concurrency(0))
            .await
            .expect_err("concurrency 0");
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e}");
        // No tenants yet: an empty report, nothing created.
        let report = v2.migrate_all(&MigrateAll::new()).await.expect("empty");
        assert!(report.tenants.is_empty());
        assert!(status_rows(&store).await.is_empty());

        // Somebody else's table where the status table would go.
        let control = store.schema().expect("control").to_string();
        let table = format!("\"{control}\".persistence_tenant_migrations");
        exec(&store, &format!("CREATE TABLE {table} (\"x\" int)")).await;
        plain
            .provision(&t)
            .await
            .expect("provision without migrator");
        for e in [
            v2.provision(&t).await.expect_err("foreign status table"),
            v2.migrate_all(&MigrateAll::new())
                .await
                .expect_err("foreign status table"),
            v2.migration_status()
                .await
                .expect_err("foreign status table"),
            v2.migrate_all(&MigrateAll::new().dry_run(true))
                .await
                .expect_err("foreign status table"),
        ] {
            assert_eq!(e.kind(), &ErrorKind::Config, "{e}");
        }
        assert_eq!(
            strings(
                &store,
                "SELECT attname::text FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                vec![&table]
            )
            .await,
            vec!["x".to_string()],
            "unchanged"
        );
        let bookkeeping = format!("\"{t}\".seaql_migrations");
        assert_eq!(
            strings(
                &store,
                "SELECT (to_regclass($1) IS NULL)::text",
                vec![&bookkeeping]
            )
            .await,
            vec!["true".to_string()],
            "the failed provisioning migrated nothing"
        );
        exec(&store, &format!("DROP TABLE {table}")).await;
    })
    .await;
}
