//! Schema-per-tenant on the local PostgreSQL.
mod common;
#[path = "support/tenant_migrators.rs"]
mod support;

use std::collections::HashMap;

use common::*;
use persistence_core::{Entity, ErrorKind, Filter, Query, Repository};
use persistence_postgres::{RelationalStore, TenantId, TenantResolver, Tenants};
use serde::{Deserialize, Serialize};
use support::strings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes")]
struct Note {
    #[entity(id)]
    id: i64,
    #[entity(index)]
    tenant: String,
    body: String,
}

async fn schema_exists(store: &RelationalStore, name: &str) -> bool {
    use persistence_postgres::sea_orm::{ConnectionTrait, Statement, Value};
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            [Value::String(Some(name.to_string()))],
        ))
        .await
        .expect("count schemas")
        .expect("row");
    row.try_get_by_index::<i64>(0).expect("count") > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_tenants_two_hundred_tasks_five_connections() {
    // The control schema is dropped by the guard, also on panic.
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let sfx = suffix();
    let store = RelationalStore::connect(&control.config().max_connections(5))
        .await
        .expect("connect");
    let tenants = Tenants::new(&store).expect("tenants").register::<Note>();
    let ids: Vec<TenantId> = (0..50)
        .map(|n| TenantId::new(format!("t{sfx}_{n}")).expect("valid id"))
        .collect();

    let outcome = tokio::spawn({
        let tenants = tenants.clone();
        let ids = ids.clone();
        async move {
            for t in &ids {
                tenants.provision(t).await.expect("provision");
            }
            tenants
                .provision(&ids[0])
                .await
                .expect("provision is idempotent");
            let listed = tenants.list().await.expect("list");
            assert_eq!(listed.len(), 50);

            let mut tasks = Vec::new();
            for k in 0..200i64 {
                let tenants = tenants.clone();
                let tenant = ids[(k % 50) as usize].clone();
                tasks.push(tokio::spawn(async move {
                    let notes = tenants.repository::<Note>(&tenant);
                    for j in 0..3 {
                        let note = Note {
                            id: k * 10 + j,
                            tenant: tenant.to_string(),
                            body: format!("task {k}"),
                        };
                        notes.insert(&note).await.expect("insert");
                        assert_eq!(notes.get(&note.id).await.expect("get"), Some(note));
                    }
                    let mine = notes.find(&Query::all()).await.expect("find");
                    assert!(
                        mine.iter().all(|n| n.tenant == tenant.as_str()),
                        "only own rows"
                    );
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            for t in &ids {
                let notes = tenants.repository::<Note>(t);
                assert_eq!(notes.count(&Filter::all()).await.expect("count"), 12);
                let foreign = notes
                    .count(&Note::TENANT.ne(t.to_string()))
                    .await
                    .expect("count");
                assert_eq!(foreign, 0);
            }
            tenants.drop_tenant(&ids[49]).await.expect("drop tenant");
            assert_eq!(tenants.list().await.expect("list").len(), 49);
        }
    })
    .await;
    for t in &ids {
        tenants.drop_tenant(t).await.expect("cleanup tenant");
    }
    store.drop_schema().await.expect("drop control schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn hostile_tenant_names_are_refused_and_nothing_runs() {
    let Some(store) = pg_store().await else {
        return;
    };
    let resolver = |headers: &HashMap<&str, &str>| {
        TenantId::new(headers.get("x-tenant").copied().unwrap_or(""))
    };
    for hostile in [
        "x; DROP SCHEMA public",
        "\"",
        "x\"; DROP SCHEMA public CASCADE; --",
        "аcme", // Cyrillic а
        "acme\u{0301}",
        "ACME",
        "public",
        "pg_catalog",
        "information_schema",
        &"a".repeat(64),
        "",
    ] {
        let headers = HashMap::from([("x-tenant", hostile)]);
        let e = resolver.resolve(&headers).expect_err(hostile);
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{hostile:?}");
        if !hostile.is_empty() && !matches!(hostile, "public" | "pg_catalog" | "information_schema")
        {
            assert!(
                !schema_exists(&store, hostile).await,
                "{hostile:?} was not created"
            );
        }
    }
    for system in ["public", "pg_catalog", "information_schema"] {
        assert!(schema_exists(&store, system).await, "{system} untouched");
    }
    store.drop_schema().await.expect("drop");
    store.close().await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "tags")]
struct Tag {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    label: String,
}

async fn count_schemas(store: &RelationalStore, name: &str) -> usize {
    strings(
        store,
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1",
        vec![name],
    )
    .await
    .len()
}

/// Runs `body` with a store in a fresh control schema, then drops the tenants
/// `cleanup` names (they are ours: marked) and the control schema, also when
/// the body panicked.
async fn with_control<F, Fut>(cleanup: Vec<TenantId>, body: F)
where
    F: FnOnce(RelationalStore) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let store = RelationalStore::connect(&control.config().max_connections(17))
        .await
        .expect("connect");
    let outcome = tokio::spawn(body(store.clone())).await;
    let tenants = Tenants::new(&store).expect("tenants");
    for t in &cleanup {
        tenants.drop_tenant(t).await.expect("cleanup tenant");
    }
    store.drop_schema().await.expect("drop control schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A store that connects as the built-in role `pg_read_all_data` (`USAGE`
/// on every schema, `SELECT` on every table, no `CREATE` anywhere) in
/// read-only transactions: any statement that creates or writes fails.
async fn read_only_store(control: &RelationalStore) -> RelationalStore {
    let url = pg_url().expect("server");
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{url}{sep}options=-c%20role%3Dpg_read_all_data%20-c%20default_transaction_read_only%3Don"
    );
    let cfg = persistence_postgres::RelationalConfig::new(url)
        .max_connections(2)
        .schema(control.schema().expect("control schema").to_string());
    let store = RelationalStore::connect(&cfg)
        .await
        .expect("connect read-only");
    let who = strings(
        &store,
        "SELECT current_user::text || ' ' || current_setting('transaction_read_only')",
        vec![],
    )
    .await;
    assert_eq!(who, vec!["pg_read_all_data on".to_string()]);
    store
}

/// Provision every (tenants, tenant) pair at once; the errors, as text.
async fn provision_all(jobs: Vec<(Tenants, TenantId)>) -> Vec<String> {
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(tenants, t)| tokio::spawn(async move { tenants.provision(&t).await }))
        .collect();
    let mut errors = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.expect("task") {
            errors.push(e.to_string());
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_provisions_of_one_tenant_with_different_entity_sets() {
    // Half of the calls add an entity to the group while the others run:
    // whichever order they take, the tenant ends with both tables. (Only one
    // tenant here: a process registering fewer entities is refused a *new*
    // tenant once the group has more, see the next tests.)
    let t = TenantId::new(format!("m{}", suffix())).expect("id");
    with_control(vec![t.clone()], move |store| async move {
        let small = Tenants::new(&store).expect("tenants").register::<Note>();
        let large = small.clone().register::<Tag>();
        let jobs = (0..16)
            .map(|k| {
                let tenants = if k % 2 == 0 { &small } else { &large };
                (tenants.clone(), t.clone())
            })
            .collect();
        let errors = provision_all(jobs).await;
        assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
        assert_eq!(count_schemas(&store, t.as_str()).await, 1);
        assert_eq!(
            small.entities(&t).await.expect("entities"),
            Some(vec!["notes".to_string(), "tags".to_string()])
        );
        assert_eq!(small.list().await.expect("list"), vec![t.clone()]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_provisions_make_one_schema_while_listing() {
    let sfx = suffix();
    let t = TenantId::new(format!("c{sfx}")).expect("id");
    let other = TenantId::new(format!("d{sfx}")).expect("id");
    let cleanup = vec![t.clone(), other.clone()];
    with_control(cleanup, move |store| async move {
        // The registry does not exist yet: its creation races too.
        let small = Tenants::new(&store).expect("tenants").register::<Note>();
        let large = small.clone().register::<Tag>();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lister = tokio::spawn({
            let small = small.clone();
            let done = done.clone();
            let (t, other) = (t.clone(), other.clone());
            async move {
                let mut rounds = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || rounds == 0 {
                    let listed = small.list().await.expect("list while provisioning");
                    assert!(listed.iter().all(|x| *x == t || *x == other), "{listed:?}");
                    rounds += 1;
                    tokio::task::yield_now().await;
                }
            }
        });
        // 16 × the same tenant, from two `Tenants` (as two processes would),
        // interleaved with another tenant.
        let reversed = Tenants::new(&store)
            .expect("tenants")
            .register::<Tag>()
            .register::<Note>();
        let mut jobs = Vec::new();
        for k in 0..16 {
            let tenants = if k % 2 == 0 { &large } else { &reversed };
            jobs.push((tenants.clone(), t.clone()));
        }
        jobs.insert(8, (large.clone(), other.clone()));
        let errors = provision_all(jobs).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        lister.await.expect("lister");
        assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());

        assert_eq!(count_schemas(&store, t.as_str()).await, 1);
        assert_eq!(count_schemas(&store, other.as_str()).await, 1);
        assert_eq!(
            small.list().await.expect("list"),
            vec![t.clone(), other.clone()]
        );
        let both = Some(vec!["notes".to_string(), "tags".to_string()]);
        assert_eq!(small.entities(&t).await.expect("entities"), both);
        assert_eq!(
            strings(
                &store,
                "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
                vec![t.as_str()]
            )
            .await,
            vec!["notes".to_string(), "tags".to_string()]
        );
        let notes = small.repository::<Note>(&t);
        let note = Note {
            id: 1,
            tenant: t.to_string(),
            body: "hello".into(),
        };
        notes.insert(&note).await.expect("insert");
        assert_eq!(notes.get(&1).await.expect("get"), Some(note));
    })
    .await;
}

#[tokio::test]
async fn a_repeated_provision_changes_nothing() {
    let t = TenantId::new(format!("r{}", suffix())).expect("id");
    with_control(vec![t.clone()], move |store| async move {
        let tenants = Tenants::new(&store)
            .expect("tenants")
            .register::<Note>()
            .register::<Tag>()
            .register::<Note>();
        assert_eq!(tenants.registered(), vec!["notes", "tags"]);
        tenants.provision(&t).await.expect("provision");
        let control = store.schema().expect("control").to_string();
        // Row versions (xmin) of the registry row, the schema and every
        // relation in it: a write of any of them would change its xmin.
        let snapshot = || {
            let store = store.clone();
            let (t, control) = (t.clone(), control.clone());
            async move {
                let mut all = strings(
                    &store,
                    &format!(
                        "SELECT \"id\" || ' ' || xmin::text || ' ' || created_at::text || ' ' || \
                         array_to_string(entities, ',') FROM \"{control}\".persistence_tenants"
                    ),
                    vec![],
                )
                .await;
                all.extend(
                    strings(
                        &store,
                        "SELECT n.xmin::text || ' ' || coalesce(obj_description(n.oid, 'pg_namespace'), '') \
                         FROM pg_namespace n WHERE nspname = $1",
                        vec![t.as_str()],
                    )
                    .await,
                );
                all.extend(
                    strings(
                        &store,
                        "SELECT c.relname::text || ' ' || c.xmin::text FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1",
                        vec![t.as_str()],
                    )
                    .await,
                );
                all
            }
        };
        let before = snapshot().await;
        assert!(before.len() > 4, "{before:?}");
        tenants.provision(&t).await.expect("again");
        tenants.provision(&t).await.expect("and again");
        assert_eq!(snapshot().await, before);
    })
    .await;
}

#[tokio::test]
async fn entity_sets_are_stored_grow_and_never_shrink() {
    let sfx = suffix();
    let (a, b) = (
        TenantId::new(format!("a{sfx}")).expect("id"),
        TenantId::new(format!("b{sfx}")).expect("id"),
    );
    with_control(vec![a.clone(), b.clone()], move |store| async move {
        let notes_only = Tenants::new(&store).expect("tenants").register::<Note>();
        let both = notes_only.clone().register::<Tag>();
        notes_only.provision(&a).await.expect("a with notes");
        assert_eq!(
            notes_only.entities(&a).await.expect("entities"),
            Some(vec!["notes".to_string()])
        );
        // A process that registers more adds the missing table.
        both.provision(&a).await.expect("a with notes and tags");
        let full = Some(vec!["notes".to_string(), "tags".to_string()]);
        assert_eq!(notes_only.entities(&a).await.expect("entities"), full);
        // One that registers fewer keeps what the tenant has.
        notes_only.provision(&a).await.expect("a again, fewer");
        assert_eq!(notes_only.entities(&a).await.expect("entities"), full);
        assert_eq!(
            strings(
                &store,
                "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY 1",
                vec![a.as_str()]
            )
            .await,
            vec!["notes".to_string(), "tags".to_string()]
        );
        assert_eq!(
            notes_only.group_entities().await.expect("group"),
            vec!["notes".to_string(), "tags".to_string()]
        );
        // ...but does not silently make a new tenant without `tags`.
        let err = notes_only.provision(&b).await.expect_err("fewer entities");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("tags"), "{err}");
        assert_eq!(
            count_schemas(&store, b.as_str()).await,
            0,
            "nothing created"
        );
        assert_eq!(notes_only.list().await.expect("list"), vec![a.clone()]);
        assert_eq!(notes_only.entities(&b).await.expect("entities"), None);
        // Unless asked to.
        let partial = notes_only.clone().allow_fewer_entities();
        partial.provision(&b).await.expect("b with notes only");
        assert_eq!(
            partial.entities(&b).await.expect("entities"),
            Some(vec!["notes".to_string()])
        );
        both.provision(&b).await.expect("b completed");
        assert_eq!(partial.entities(&b).await.expect("entities"), full);
    })
    .await;
}

#[tokio::test]
async fn list_and_entities_only_read() {
    let t = TenantId::new(format!("l{}", suffix())).expect("id");
    with_control(vec![t.clone()], move |store| async move {
        let reader = read_only_store(&store).await;
        let ro = Tenants::new(&reader).expect("tenants").register::<Note>();
        // No registry yet: an empty answer, nothing created.
        assert_eq!(ro.list().await.expect("list without registry"), vec![]);
        assert_eq!(ro.entities(&t).await.expect("entities"), None);
        assert_eq!(
            ro.group_entities().await.expect("group"),
            Vec::<String>::new()
        );
        // The reader cannot provision (proves the role is really read-only).
        assert!(ro.provision(&t).await.is_err());
        let admin = Tenants::new(&store).expect("tenants").register::<Note>();
        admin.provision(&t).await.expect("provision");
        assert_eq!(ro.list().await.expect("list"), vec![t.clone()]);
        assert_eq!(
            ro.entities(&t).await.expect("entities"),
            Some(vec!["notes".to_string()])
        );
        assert_eq!(
            ro.group_entities().await.expect("group"),
            vec!["notes".to_string()]
        );
        reader.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_registry_made_before_entity_sets_is_upgraded_in_place() {
    let sfx = suffix();
    let (old, new) = (
        TenantId::new(format!("o{sfx}")).expect("id"),
        TenantId::new(format!("n{sfx}")).expect("id"),
    );
    with_control(vec![old.clone(), new.clone()], move |store| async move {
        use persistence_postgres::sea_orm::ConnectionTrait;
        let control = store.schema().expect("control").to_string();
        // The registry and a tenant as the previous version made them.
        let db = store.connection();
        for sql in [
            format!(
                "CREATE TABLE \"{control}\".persistence_tenants (\"id\" text PRIMARY KEY, \
                 \"created_at\" timestamptz NOT NULL DEFAULT now())"
            ),
            format!("INSERT INTO \"{control}\".persistence_tenants (\"id\") VALUES ('{old}')"),
        ] {
            db.execute_unprepared(&sql).await.expect(&sql);
        }
        let tenants = Tenants::new(&store).expect("tenants").register::<Note>();
        tenants
            .store(&old)
            .create_schema()
            .await
            .expect("old schema");
        tenants
            .repository::<Note>(&old)
            .ensure_schema()
            .await
            .expect("old table");
        // Reading leaves it as it is.
        let reader = read_only_store(&store).await;
        let ro = Tenants::new(&reader).expect("tenants");
        assert_eq!(ro.list().await.expect("list legacy"), vec![old.clone()]);
        assert_eq!(ro.entities(&old).await.expect("entities"), Some(vec![]));
        reader.close().await;
        // Provisioning adds the column, keeps the rows, records the sets.
        tenants.provision(&new).await.expect("provision new");
        assert_eq!(
            tenants.list().await.expect("list"),
            vec![new.clone(), old.clone()]
        );
        assert_eq!(
            tenants.entities(&old).await.expect("entities"),
            Some(vec![])
        );
        tenants.provision(&old).await.expect("provision old");
        let notes = Some(vec!["notes".to_string()]);
        assert_eq!(tenants.entities(&old).await.expect("entities"), notes);
        assert_eq!(tenants.entities(&new).await.expect("entities"), notes);
    })
    .await;
}

#[tokio::test]
async fn a_foreign_table_named_like_the_registry_is_left_alone() {
    let t = TenantId::new(format!("f{}", suffix())).expect("id");
    with_control(vec![t.clone()], move |store| async move {
        use persistence_postgres::sea_orm::ConnectionTrait;
        let control = store.schema().expect("control").to_string();
        let sql = format!("CREATE TABLE \"{control}\".persistence_tenants (\"name\" text)");
        store
            .connection()
            .execute_unprepared(&sql)
            .await
            .expect(&sql);
        let tenants = Tenants::new(&store).expect("tenants").register::<Note>();
        for err in [
            tenants.provision(&t).await.expect_err("not a registry"),
            tenants.list().await.expect_err("not a registry"),
            tenants.drop_tenant(&t).await.expect_err("not a registry"),
        ] {
            assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        }
        assert_eq!(
            count_schemas(&store, t.as_str()).await,
            0,
            "nothing created"
        );
        assert_eq!(
            strings(
                &store,
                "SELECT attname::text FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                vec![&format!("\"{control}\".persistence_tenants")]
            )
            .await,
            vec!["name".to_string()],
            "unchanged"
        );
        // Out of the way for the cleanup.
        let sql = format!("DROP TABLE \"{control}\".persistence_tenants");
        store
            .connection()
            .execute_unprepared(&sql)
            .await
            .expect(&sql);
    })
    .await;
}
