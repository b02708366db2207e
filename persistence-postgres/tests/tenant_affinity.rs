//! Schema-per-tenant at scale on the local PostgreSQL: tenant-affine
//! connection groups (`tenant_shards`), the statement-cache size, and
//! `TenantStatements::SearchPath` (one statement text for every tenant).
mod common;

use std::collections::BTreeSet;

use common::*;
use futures_util::StreamExt as _;
use persistence_core::{Entity, ErrorKind, Filter, Query, Repository};
use persistence_postgres::sea_orm::DatabaseConnection;
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::{RelationalStore, TenantId, TenantRouting, TenantStatements, Tenants};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "aff_notes")]
struct Note {
    #[entity(id)]
    id: i64,
    owner: String,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "aff_tags")]
struct Tag {
    #[entity(id)]
    id: i64,
    owner: String,
}

/// What every open connection of `pools` reports: its `search_path`, its
/// `app.tenant` and its number of prepared statements. All connections are
/// held at once, so each one answers.
async fn sessions(pools: &[DatabaseConnection]) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for db in pools {
        let pool = db.get_postgres_connection_pool();
        let mut held = Vec::new();
        for _ in 0..pool.size() {
            held.push(pool.acquire().await.expect("acquire"));
        }
        for c in &mut held {
            let row = sqlx::query(
                "SELECT current_setting('search_path'), \
                 coalesce(current_setting('app.tenant', true), ''), \
                 (SELECT count(*) FROM pg_prepared_statements)",
            )
            .fetch_one(&mut **c)
            .await
            .expect("session settings");
            out.push((row.get(0), row.get(1), row.get(2)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_on_shared_affine_connections_see_only_their_rows() {
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let sfx = suffix();
    // 2 groups of 2 connections, a cache smaller than the statements the
    // tenants of one group use (evictions and re-prepares happen).
    let cfg = control
        .config()
        .max_connections(4)
        .tenant_shards(2)
        .statement_cache_capacity(6);
    let store = RelationalStore::connect(&cfg).await.expect("connect");
    assert_eq!(store.tenant_shards().len(), 2);
    let tenants = Tenants::new(&store)
        .expect("tenants")
        .register::<Note>()
        .register::<Tag>();
    let ids: Vec<TenantId> = (0..12)
        .map(|n| TenantId::new(format!("a{sfx}_{n}")).expect("valid id"))
        .collect();

    let outcome = tokio::spawn({
        let (tenants, ids, store) = (tenants.clone(), ids.clone(), store.clone());
        async move {
            for t in &ids {
                tenants.provision(t).await.expect("provision");
            }
            // A tenant's calls use only the connections of its group
            // (2 of the 4), and tenants of different groups share none.
            let mut used = Vec::new();
            for t in &ids {
                let db = tenants.store(t).connection().clone();
                let pids = futures_util::future::join_all((0..8).map(|_| {
                    let db = db.clone();
                    async move {
                        let pool = db.get_postgres_connection_pool();
                        let row = sqlx::query("SELECT pg_backend_pid(), pg_sleep(0.01)::text")
                            .fetch_one(pool)
                            .await
                            .expect("pid");
                        row.get::<i32, _>(0)
                    }
                }))
                .await;
                let pids: BTreeSet<i32> = pids.into_iter().collect();
                assert!(pids.len() <= 2, "{t}: {pids:?}");
                used.push((store.tenant_shard(t.as_str()).expect("a group"), pids));
            }
            for (g1, p1) in &used {
                for (g2, p2) in &used {
                    if g1 != g2 {
                        assert!(p1.is_disjoint(p2), "{p1:?} {p2:?}");
                    }
                }
            }

            // 48 tasks, 4 per tenant, interleaved on the 4 shared connections.
            let mut tasks = Vec::new();
            for k in 0..48i64 {
                let tenants = tenants.clone();
                let tenant = ids[(k % 12) as usize].clone();
                tasks.push(tokio::spawn(async move {
                    let notes = tenants.repository::<Note>(&tenant);
                    let tags = tenants.repository::<Tag>(&tenant);
                    for j in 0..5 {
                        // The same ids in every tenant: only the schema tells them apart.
                        let id = (k / 12) * 100 + j;
                        let note = Note {
                            id,
                            owner: tenant.to_string(),
                            body: format!("task {k}"),
                        };
                        notes.insert(&note).await.expect("insert");
                        assert_eq!(notes.get(&id).await.expect("get"), Some(note));
                        let tag = Tag {
                            id,
                            owner: tenant.to_string(),
                        };
                        tags.insert(&tag).await.expect("insert tag");
                        let mine = tags.find(&Query::all()).await.expect("find");
                        assert!(mine.iter().all(|t| t.owner == tenant.as_str()));
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            for t in &ids {
                let notes = tenants.repository::<Note>(t);
                assert_eq!(notes.count(&Filter::all()).await.expect("count"), 20);
                let foreign = notes
                    .count(&Note::OWNER.ne(t.to_string()))
                    .await
                    .expect("count");
                assert_eq!(foreign, 0, "{t}");
                let tags = tenants.repository::<Tag>(t);
                assert_eq!(tags.count(&Filter::all()).await.expect("count"), 20);
            }
            // A failed call (duplicate id) leaves nothing behind either.
            let notes = tenants.repository::<Note>(&ids[0]);
            let dup = Note {
                id: 0,
                owner: ids[0].to_string(),
                body: "dup".into(),
            };
            let e = notes.insert(&dup).await.expect_err("duplicate");
            assert_eq!(
                e.kind(),
                &ErrorKind::Conflict(persistence_core::ConflictKind::DuplicateId)
            );
            // No session state leaks: search_path and app.tenant stay the
            // server's defaults on every connection, and the statement
            // cache holds at most its capacity.
            let seen = sessions(store.tenant_shards()).await;
            assert!(!seen.is_empty());
            for (path, tenant, prepared) in &seen {
                assert_eq!(path, "\"$user\", public");
                assert_eq!(tenant, "");
                assert!(*prepared <= 6, "{prepared} prepared statements");
            }
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
async fn one_group_is_the_plain_pool_and_a_zero_is_refused() {
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let store = RelationalStore::connect(&control.config().tenant_shards(1))
        .await
        .expect("connect");
    assert!(store.tenant_shards().is_empty());
    store.close().await;
    let e = RelationalStore::connect(&control.config().tenant_shards(0))
        .await
        .expect_err("zero groups");
    assert_eq!(e.kind(), &ErrorKind::Config);
}

/// Which of `groups` `db` is a handle of (each group's pool has its own
/// connect options).
fn group_of(groups: &[DatabaseConnection], db: &DatabaseConnection) -> usize {
    let options = db.get_postgres_connection_pool().connect_options();
    groups
        .iter()
        .position(|g| {
            std::sync::Arc::ptr_eq(
                &g.get_postgres_connection_pool().connect_options(),
                &options,
            )
        })
        .expect("one of the store's groups")
}

/// Poll (bounded) until `ok` holds.
async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("gave up waiting: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_routing_moves_only_a_tenant_that_fills_its_group() {
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let sfx = suffix();
    // 2 groups of one connection each.
    let cfg = control
        .config()
        .max_connections(2)
        .tenant_shards(2)
        .tenant_routing(TenantRouting::Spill);
    let store = RelationalStore::connect(&cfg).await.expect("connect");
    assert_eq!(store.tenant_routing(), TenantRouting::Spill);
    let tenants = Tenants::new(&store).expect("tenants").register::<Note>();
    let (a, b) = (
        TenantId::new(format!("p{sfx}_a")).expect("valid id"),
        TenantId::new(format!("p{sfx}_b")).expect("valid id"),
    );
    tenants.provision(&a).await.expect("provision a");
    tenants.provision(&b).await.expect("provision b");
    // Holds an advisory lock the tenant's calls then wait for.
    let locker = RelationalStore::connect(&control.config().max_connections(1))
        .await
        .expect("connect locker");
    let lock = 7_000_000 + i64::from(std::process::id() % 1_000_000);

    let outcome = tokio::spawn({
        let (tenants, store, a, b) = (tenants.clone(), store.clone(), a.clone(), b.clone());
        let locker = locker.clone();
        async move {
            let groups = store.tenant_shards();
            let home = store.tenant_shard(a.as_str()).expect("a group");
            let other = 1 - home;
            let own = |id: i64| Note {
                id,
                owner: a.to_string(),
                body: "spilled".into(),
            };
            let notes = tenants.repository::<Note>(&a);
            notes.insert(&own(1)).await.expect("insert at home");
            assert_eq!(group_of(groups, tenants.store(&a).connection()), home);

            let mut held = locker
                .connection()
                .get_postgres_connection_pool()
                .acquire()
                .await
                .expect("locker connection");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(lock)
                .execute(&mut *held)
                .await
                .expect("lock");
            let blocked = |notes: persistence_postgres::RelationalRepository<Note>| {
                tokio::spawn(async move {
                    notes
                        .execute(&format!("SELECT pg_advisory_xact_lock({lock})"), ())
                        .await
                        .expect("blocked call")
                })
            };
            // One call of the tenant in flight (it holds the home group's
            // only connection, waiting for the lock): the tenant stays home.
            let first = blocked(notes.clone());
            let mut waiting = 0i64;
            for _ in 0..2_000 {
                let row = sqlx::query(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                     AND NOT granted AND classid = 0 AND objid::int8 = $1",
                )
                .bind(lock)
                .fetch_one(&mut *held)
                .await
                .expect("pg_locks");
                waiting = row.get(0);
                if waiting > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert_eq!(waiting, 1, "the first call waits for the lock");
            assert_eq!(group_of(groups, tenants.store(&a).connection()), home);
            // A second one (queued for the busy home connection): the
            // tenant now alone fills its group, so its next call goes to
            // the other group, and it completes while home is blocked,
            // still in the tenant's schema only.
            let second = blocked(notes.clone());
            wait_for("the second call is counted", || {
                group_of(groups, tenants.store(&a).connection()) == other
            })
            .await;
            notes.insert(&own(2)).await.expect("insert spilled");
            assert_eq!(notes.get(&2).await.expect("get"), Some(own(2)));
            assert_eq!(groups[other].get_postgres_connection_pool().size(), 1);

            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(lock)
                .execute(&mut *held)
                .await
                .expect("unlock");
            drop(held);
            first.await.expect("first call");
            second.await.expect("second call");
            // Nothing in flight: home again; the other tenant saw nothing.
            assert_eq!(group_of(groups, tenants.store(&a).connection()), home);
            assert_eq!(notes.count(&Filter::all()).await.expect("count a"), 2);
            let foreign = tenants.repository::<Note>(&b);
            assert_eq!(foreign.count(&Filter::all()).await.expect("count b"), 0);

            // Under `Home` routing (the default) a tenant never leaves its
            // group, however many of its calls are in flight.
            let plain = RelationalStore::connect(&cfg.clone().tenant_routing(TenantRouting::Home))
                .await
                .expect("connect home routing");
            let plain_tenants = Tenants::new(&plain).expect("tenants").register::<Note>();
            assert_eq!(
                group_of(plain.tenant_shards(), plain_tenants.store(&a).connection()),
                home
            );
            plain.close().await;
        }
    })
    .await;
    locker.close().await;
    for t in [&a, &b] {
        tenants.drop_tenant(t).await.expect("cleanup tenant");
    }
    store.drop_schema().await.expect("drop control schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Prepared statements on the one connection of `db` (counted by an
/// unnamed statement, which the cache does not keep).
async fn prepared_on(db: &DatabaseConnection) -> i64 {
    let pool = db.get_postgres_connection_pool();
    let row = sqlx::query("SELECT count(*) FROM pg_prepared_statements")
        .persistent(false)
        .fetch_one(pool)
        .await
        .expect("count prepared");
    row.get(0)
}

#[tokio::test]
async fn statement_cache_capacity_reaches_sqlx() {
    let Some(pg) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    // One connection, 8 distinct statements: the cache keeps `capacity`
    // (`None`: sqlx's 100, so all 8 more than `connect` left).
    for capacity in [Some(3usize), None] {
        let mut cfg = pg.config().max_connections(1);
        if let Some(n) = capacity {
            cfg = cfg.statement_cache_capacity(n);
        }
        let store = RelationalStore::connect(&cfg).await.expect("connect");
        let db = store.connection();
        let expect = match capacity {
            Some(n) => n as i64,
            None => prepared_on(db).await + 8,
        };
        for k in 0..8 {
            let stmt = persistence_postgres::sea_orm::Statement::from_sql_and_values(
                persistence_postgres::sea_orm::DatabaseBackend::Postgres,
                format!("SELECT $1::int8 + {k}"),
                [persistence_postgres::sea_orm::Value::BigInt(Some(1))],
            );
            use persistence_postgres::sea_orm::ConnectionTrait as _;
            db.query_one_raw(stmt).await.expect("query");
        }
        assert_eq!(prepared_on(db).await, expect, "capacity {capacity:?}");
        store.close().await;
    }
    // sqlx with a capacity of 0 still prepares named statements and never
    // closes them (one more on the server per execution): refused.
    let e = RelationalStore::connect(&pg.config().statement_cache_capacity(0))
        .await
        .expect_err("capacity 0");
    assert_eq!(e.kind(), &ErrorKind::Config);
    assert!(e.to_string().contains("statement_cache_capacity"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_path_statements_are_shared_isolated_and_leave_no_session_state() {
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let sfx = suffix();
    // 2 connections shared by 10 tenants (so each connection serves many),
    // on 2 tenant-affine groups of one connection each.
    let cfg = control
        .config()
        .max_connections(2)
        .tenant_shards(2)
        .tenant_statements(TenantStatements::SearchPath);
    let store = RelationalStore::connect(&cfg).await.expect("connect");
    assert_eq!(store.tenant_statements(), TenantStatements::SearchPath);
    let tenants = Tenants::new(&store)
        .expect("tenants")
        .register::<Note>()
        .register::<Tag>();
    // Provisioned through a pool of its own: its DDL names the tenants.
    let admin = RelationalStore::connect(&control.config().max_connections(2))
        .await
        .expect("connect admin");
    let admin_tenants = Tenants::new(&admin)
        .expect("tenants")
        .register::<Note>()
        .register::<Tag>();
    let ids: Vec<TenantId> = (0..10)
        .map(|n| TenantId::new(format!("s{sfx}_{n}")).expect("valid id"))
        .collect();
    for t in &ids {
        admin_tenants.provision(t).await.expect("provision");
    }

    let outcome = tokio::spawn({
        let (tenants, ids, store) = (tenants.clone(), ids.clone(), store.clone());
        async move {
            // 40 tasks, 4 per tenant, interleaved on the 2 connections; the
            // same ids in every tenant, only the schema tells them apart.
            let mut tasks = Vec::new();
            for k in 0..40i64 {
                let tenants = tenants.clone();
                let tenant = ids[(k % 10) as usize].clone();
                tasks.push(tokio::spawn(async move {
                    let notes = tenants.repository::<Note>(&tenant);
                    let tags = tenants.repository::<Tag>(&tenant);
                    let own = |id: i64| Note {
                        id,
                        owner: tenant.to_string(),
                        body: format!("task {k}"),
                    };
                    for j in 0..4 {
                        let id = (k / 10) * 100 + j;
                        notes.insert(&own(id)).await.expect("insert");
                        assert_eq!(notes.get(&id).await.expect("get"), Some(own(id)));
                        let mine = notes.find(&Query::all()).await.expect("find");
                        assert!(mine.iter().all(|n| n.owner == tenant.as_str()));
                        let tag = Tag {
                            id,
                            owner: tenant.to_string(),
                        };
                        tags.upsert(&tag).await.expect("upsert tag");
                    }
                    // A bulk insert (its own transaction) and a unit of work.
                    let batch: Vec<Note> = (0..3).map(|j| own((k / 10) * 100 + 50 + j)).collect();
                    assert_eq!(notes.insert_many(&batch).await.expect("insert_many"), 3);
                    let tx_id = (k / 10) * 100 + 90;
                    let in_tx = own(tx_id);
                    tenants
                        .store(&tenant)
                        .transaction(|tx| {
                            Box::pin(async move {
                                let notes = tx.repository::<Note>();
                                notes.insert(&in_tx).await?;
                                let n = notes.count(&Filter::all()).await?;
                                assert!(n >= 1);
                                Ok::<_, persistence_core::Error>(())
                            })
                        })
                        .await
                        .expect("unit of work");
                    let streamed: Vec<Note> = notes
                        .stream(&Query::all())
                        .map(|r| r.expect("stream"))
                        .collect()
                        .await;
                    assert!(streamed.iter().all(|n| n.owner == tenant.as_str()));
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            for t in &ids {
                let notes = tenants.repository::<Note>(t);
                // 4 tasks x (4 inserts + 3 bulk + 1 in a unit of work).
                assert_eq!(notes.count(&Filter::all()).await.expect("count"), 32);
                let foreign = notes
                    .count(&Note::OWNER.ne(t.to_string()))
                    .await
                    .expect("count");
                assert_eq!(foreign, 0, "{t}");
                assert_eq!(
                    tenants
                        .repository::<Tag>(t)
                        .count(&Filter::all())
                        .await
                        .expect("count"),
                    16
                );
            }
            // Errors roll the transaction back: a duplicate id, then a
            // statement failing inside a unit of work.
            let notes = tenants.repository::<Note>(&ids[0]);
            let dup = Note {
                id: 0,
                owner: ids[0].to_string(),
                body: "dup".into(),
            };
            let e = notes.insert(&dup).await.expect_err("duplicate");
            assert_eq!(
                e.kind(),
                &ErrorKind::Conflict(persistence_core::ConflictKind::DuplicateId)
            );
            let failed = tenants
                .store(&ids[1])
                .transaction(|tx| {
                    let dup = dup.clone();
                    Box::pin(async move { tx.repository::<Note>().insert(&dup).await.map(|_| ()) })
                })
                .await;
            assert!(failed.is_err());
            // Connections back in the pool: the server's search_path, no
            // app.tenant; statement texts do not name tenants, so the
            // prepared statements do not multiply with them.
            let seen = sessions(store.tenant_shards()).await;
            assert!(!seen.is_empty());
            for (path, tenant, _) in &seen {
                assert_eq!(path, "\"$user\", public");
                assert_eq!(tenant, "");
            }
            let prefix = format!("%s{sfx}%");
            for db in store.tenant_shards() {
                let pool = db.get_postgres_connection_pool();
                let mut held = Vec::new();
                for _ in 0..pool.size() {
                    held.push(pool.acquire().await.expect("acquire"));
                }
                for c in &mut held {
                    let row = sqlx::query(
                        "SELECT count(*) FILTER (WHERE statement LIKE $1), count(*) \
                         FROM pg_prepared_statements",
                    )
                    .bind(&prefix)
                    .persistent(false)
                    .fetch_one(&mut **c)
                    .await
                    .expect("prepared");
                    let (naming, all): (i64, i64) = (row.get(0), row.get(1));
                    assert_eq!(naming, 0, "statements naming a tenant schema");
                    assert!(all > 0 && all < 40, "{all} prepared statements");
                }
            }
        }
    })
    .await;
    store.close().await;
    for t in &ids {
        admin_tenants.drop_tenant(t).await.expect("cleanup tenant");
    }
    admin.drop_schema().await.expect("drop control schema");
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
