//! Each resource is created, usable, and gone after drop — also when the
//! test using it panics — against the real servers.

use persistence_core::{Entity, Filter, Repository};
use persistence_testing::services::{self, Service};
use persistence_testing::{Isolation, TestMongo, TestPostgres, TestRedis, TestSqlite};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "testing_items")]
struct Item {
    #[entity(id)]
    id: i64,
    name: String,
}

fn item(id: i64) -> Item {
    Item {
        id,
        name: format!("item {id}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn use_postgres(pg: &TestPostgres) {
    let store = pg.store().await.expect("connect");
    assert_eq!(store.schema(), pg.schema_name());
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("ensure_schema");
    repo.insert(&item(1)).await.expect("insert");
    assert_eq!(repo.get(&1).await.expect("get"), Some(item(1)));
    store.close().await;
}

#[tokio::test]
async fn postgres_schema_is_created_usable_and_dropped() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    assert_eq!(pg.isolation(), Isolation::Schema);
    assert!(pg.exists().await.expect("exists"), "created up front");
    use_postgres(&pg).await;
    let probe = TestPostgres::schema().await.expect("second schema");
    assert_ne!(probe.name(), pg.name(), "names are unique");
    let name = pg.name().to_string();
    drop(pg); // inside a current-thread runtime: must not deadlock
    assert!(
        !schema_exists(&probe, &name).await,
        "schema {name} is gone after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_database_is_created_usable_and_dropped() {
    let Some(pg) = TestPostgres::database().await else {
        return;
    };
    assert_eq!(pg.isolation(), Isolation::Database);
    assert!(pg.url().ends_with(pg.name()), "the URL names the database");
    assert!(pg.exists().await.expect("exists"));
    use_postgres(&pg).await;
    // A store left open does not keep the database alive (FORCE).
    let open = pg.store().await.expect("connect");
    open.repository::<Item>()
        .count(&Filter::all())
        .await
        .expect("count");
    let name = pg.name().to_string();
    drop(pg); // on a multi-thread worker: block_in_place
    let probe = TestPostgres::schema().await.expect("probe");
    assert!(!database_exists(&probe, &name).await, "{name} is gone");
}

#[test]
fn postgres_schema_and_database_are_dropped_when_the_test_panics() {
    let Some(url) = services::url(Service::Postgres) else {
        return;
    };
    for isolation in [Isolation::Schema, Isolation::Database] {
        let (tx, rx) = std::sync::mpsc::channel();
        let url = url.clone();
        // A test thread that panics while it owns the resource, inside its
        // runtime: the drop runs during unwinding.
        let joined = std::thread::spawn(move || {
            runtime().block_on(async move {
                let pg = TestPostgres::create(&url, isolation).await.expect("create");
                use_postgres(&pg).await;
                tx.send(pg.name().to_string()).expect("send");
                panic!("deliberate panic while owning the {isolation:?}");
            })
        })
        .join();
        assert!(joined.is_err(), "the thread panicked");
        let name = rx.recv().expect("name");
        runtime().block_on(async {
            let probe = TestPostgres::schema().await.expect("probe");
            let gone = match isolation {
                Isolation::Schema => !schema_exists(&probe, &name).await,
                Isolation::Database => !database_exists(&probe, &name).await,
            };
            assert!(gone, "{isolation:?} {name} is gone after the panic");
        });
    }
}

async fn schema_exists(probe: &TestPostgres, name: &str) -> bool {
    query_exists(
        probe,
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
        name,
    )
    .await
}

async fn database_exists(probe: &TestPostgres, name: &str) -> bool {
    query_exists(probe, "SELECT 1 FROM pg_database WHERE datname = $1", name).await
}

async fn query_exists(probe: &TestPostgres, sql: &str, name: &str) -> bool {
    use persistence_postgres::sea_orm::{ConnectionTrait as _, DbBackend, Statement};
    let store = probe.store().await.expect("connect");
    let row = store
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [name.into()],
        ))
        .await
        .expect("query");
    store.close().await;
    row.is_some()
}

async fn use_mongo(mongo: &TestMongo) {
    let store = mongo.store().await.expect("connect");
    assert_eq!(store.database().name(), mongo.name());
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("ensure_schema");
    repo.insert(&item(1)).await.expect("insert");
    assert_eq!(repo.get(&1).await.expect("get"), Some(item(1)));
}

#[tokio::test]
async fn mongo_database_is_usable_and_dropped() {
    let Some(mongo) = TestMongo::database().await else {
        return;
    };
    assert!(
        !mongo.exists().await.expect("exists"),
        "nothing written yet"
    );
    use_mongo(&mongo).await;
    assert!(
        mongo.exists().await.expect("exists"),
        "created by the write"
    );
    let probe = TestMongo::at(mongo.url());
    let name = mongo.name().to_string();
    drop(mongo);
    assert!(!mongo_exists(&probe, &name).await, "{name} is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_database_is_dropped_when_the_test_panics() {
    let Some(url) = services::url(Service::Mongo) else {
        return;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task_url = url.clone();
    // The task panics while owning the database: dropped while unwinding on a worker.
    let joined = tokio::spawn(async move {
        let mongo = TestMongo::at(&task_url);
        use_mongo(&mongo).await;
        assert!(mongo.exists().await.expect("exists"));
        tx.send(mongo.name().to_string()).expect("send");
        panic!("deliberate panic while owning the database");
    })
    .await;
    assert!(joined.expect_err("panicked").is_panic());
    let name = rx.await.expect("name");
    assert!(
        !mongo_exists(&TestMongo::at(&url), &name).await,
        "{name} is gone after the panic"
    );
}

async fn mongo_exists(probe: &TestMongo, name: &str) -> bool {
    let store = probe.store().await.expect("connect");
    let names = store
        .client()
        .list_database_names()
        .await
        .expect("list databases");
    names.iter().any(|n| n == name)
}

async fn use_redis(redis: &TestRedis) {
    let mut c = redis.connection().await.expect("connect");
    for i in 0..1200 {
        let _: () = ::redis::cmd("SET")
            .arg(redis.key(&format!("k{i}")))
            .arg(i)
            .query_async(&mut c)
            .await
            .expect("set");
    }
    assert_eq!(redis.keys().await.expect("keys").len(), 1200);
}

#[tokio::test]
async fn redis_prefix_is_usable_and_its_keys_deleted() {
    let Some(redis) = TestRedis::tagged("res").await else {
        return;
    };
    let other = TestRedis::at(redis.url(), "other");
    assert_ne!(redis.prefix(), other.prefix());
    assert!(redis.prefix().starts_with("tres"));
    use_redis(&redis).await;
    // A key of another prefix survives.
    let mut c = other.connection().await.expect("connect");
    let _: () = ::redis::cmd("SET")
        .arg(other.key("keep"))
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("set");
    let probe = TestRedis::at(redis.url(), "");
    let prefix = redis.prefix().to_string();
    drop(redis);
    assert_eq!(count_keys(&probe, &prefix).await, 0, "{prefix}:* deleted");
    assert_eq!(other.keys().await.expect("keys"), vec![other.key("keep")]);
    other.cleanup().await.expect("explicit cleanup");
    assert_eq!(count_keys(&probe, probe.prefix()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prefix_is_deleted_when_the_test_panics() {
    let Some(url) = services::url(Service::Redis) else {
        return;
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task_url = url.clone();
    let joined = tokio::spawn(async move {
        let redis = TestRedis::at(&task_url, "panic");
        use_redis(&redis).await;
        tx.send(redis.prefix().to_string()).expect("send");
        panic!("deliberate panic while owning the prefix");
    })
    .await;
    assert!(joined.expect_err("panicked").is_panic());
    let prefix = rx.await.expect("prefix");
    let probe = TestRedis::at(&url, "");
    assert_eq!(count_keys(&probe, &prefix).await, 0, "{prefix}:* deleted");
}

/// Keys under `prefix:` counted with SCAN through another handle.
async fn count_keys(probe: &TestRedis, prefix: &str) -> usize {
    let mut c = probe.connection().await.expect("connect");
    let mut cursor: u64 = 0;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .expect("scan");
        n += keys.len();
        if next == 0 {
            return n;
        }
        cursor = next;
    }
}

#[test]
fn sqlite_file_is_usable_and_removed_also_on_panic() {
    let db = TestSqlite::new();
    let path = db.path().to_path_buf();
    runtime().block_on(async {
        let store = db.store().await.expect("open");
        let repo = store.repository::<Item>();
        repo.ensure_schema().await.expect("ensure_schema");
        repo.insert(&item(1)).await.expect("insert");
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 1);
        store.close().await;
    });
    assert!(path.exists(), "the file was created");
    drop(db);
    assert!(!path.exists(), "the file is removed");

    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let db = TestSqlite::new();
        runtime().block_on(async {
            let store = db.store().await.expect("open");
            store
                .repository::<Item>()
                .ensure_schema()
                .await
                .expect("ensure_schema");
            store.close().await;
        });
        tx.send(db.path().to_path_buf()).expect("send");
        panic!("deliberate panic while owning the file");
    })
    .join();
    assert!(joined.is_err());
    let path = rx.recv().expect("path");
    assert!(!path.exists(), "removed after the panic");
}
