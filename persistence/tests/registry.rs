//! The connection registry on PostgreSQL (own schema per test) and SQLite
//! (own file per test): encryption at rest, tampering, wrong key, rotation,
//! pool lifecycle and the LRU cap.

use persistence::config::{ConfigLoader, DatabaseKind, PoolConfig};
use persistence::conformance::services::unique_suffix;
use persistence::postgres::sea_orm::{ConnectionTrait, Statement};
use persistence::postgres::{Dialect, RelationalStore};
use persistence::registry::{ConnectionDefinition, Registry, RegistryKey, TABLE};
use persistence::{Entity, ErrorKind, Persistence, Repository};
use persistence_testing::{TestMongo, TestPostgres, TestSqlite};
use serde::{Deserialize, Serialize};

const PASSWORD: &str = "hunter2-registry";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "registry_notes")]
struct Note {
    #[entity(id)]
    id: i64,
    text: String,
}

/// A registry store: PostgreSQL in its own schema, or a SQLite file.
/// The schema / file is removed by the `persistence-testing` guard, also
/// when the test panics.
struct Db {
    store: RelationalStore,
    _pg: Option<TestPostgres>,
    _lite: Option<TestSqlite>,
}

impl Db {
    async fn postgres() -> Option<Db> {
        let pg = TestPostgres::schema().await?;
        let store = RelationalStore::connect(&pg.config().max_connections(4))
            .await
            .expect("connect");
        Some(Db {
            store,
            _pg: Some(pg),
            _lite: None,
        })
    }

    async fn sqlite() -> Db {
        let lite = TestSqlite::new();
        let store = lite.store().await.expect("sqlite");
        Db {
            store,
            _pg: None,
            _lite: Some(lite),
        }
    }

    fn table(&self) -> String {
        match self.store.schema() {
            Some(s) => format!("\"{s}\".\"{TABLE}\""),
            None => format!("\"{TABLE}\""),
        }
    }

    fn placeholders(&self) -> (&'static str, &'static str) {
        match self.store.dialect() {
            Dialect::Postgres => ("$1", "$2"),
            Dialect::Sqlite => ("?", "?"),
        }
    }

    async fn read_bytes(&self, column: &str, name: &str) -> Vec<u8> {
        let (p1, _) = self.placeholders();
        let db = self.store.connection();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!(
                    "SELECT \"{column}\" FROM {} WHERE \"name\" = {p1}",
                    self.table()
                ),
                [name.into()],
            ))
            .await
            .expect("select")
            .expect("row");
        row.try_get::<Vec<u8>>("", column).expect("bytes")
    }

    async fn write_bytes(&self, column: &str, name: &str, bytes: Vec<u8>) {
        let (p1, p2) = self.placeholders();
        let db = self.store.connection();
        let done = db
            .execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!(
                    "UPDATE {} SET \"{column}\" = {p1} WHERE \"name\" = {p2}",
                    self.table()
                ),
                [bytes.into(), name.into()],
            ))
            .await
            .expect("update");
        assert_eq!(done.rows_affected(), 1);
    }

    async fn cleanup(self) {
        self.store.drop_schema().await.expect("drop schema");
        self.store.close().await;
    }
}

fn sqlite_target(name: &str) -> ConnectionDefinition {
    ConnectionDefinition::new(name, DatabaseKind::Sqlite, "sqlite::memory:")
}

/// A PostgreSQL connection definition into its own schema, and the guard that
/// drops that schema (also on panic).
async fn pg_target(name: &str) -> Option<(ConnectionDefinition, TestPostgres)> {
    let schema = TestPostgres::schema().await?;
    // The password is ignored by the trust-auth test server but travels through encryption.
    let base = schema.url().to_string();
    let with_password = base.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    assert!(with_password.contains(PASSWORD), "test URL shape: {base}");
    let def = ConnectionDefinition::new(name, DatabaseKind::Postgres, with_password)
        .schema(schema.name())
        .pool(PoolConfig {
            max_connections: Some(2),
            acquire_timeout: Some(std::time::Duration::from_secs(5)),
            application_name: Some("registry-test".into()),
            ..PoolConfig::default()
        });
    Some((def, schema))
}

fn assert_config_naming(err: &persistence::Error, name: &str) {
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains(name),
        "names the connection: {err}"
    );
    assert!(!err.to_string().contains(PASSWORD), "no secret: {err}");
}

async fn round_trip(db: &Db) {
    let (key, _) = RegistryKey::generate();
    let registry = Registry::open(db.store.clone(), key, 4)
        .await
        .expect("open");
    let Some((def, _schema)) = pg_target("orders").await else {
        return;
    };
    registry.add(&def).await.expect("add");
    let dup = registry.add(&def).await.expect_err("duplicate name");
    assert!(dup.is_conflict(), "{dup}");

    let back = registry
        .definition("orders")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(back, def, "everything round-trips, URL included");
    assert!(!format!("{back:?} {registry:?}").contains(PASSWORD));

    let stored = db.read_bytes("ciphertext", "orders").await;
    assert!(
        !String::from_utf8_lossy(&stored).contains(PASSWORD)
            && !String::from_utf8_lossy(&stored).contains("postgres://"),
        "the URL is not stored in clear"
    );
    let listed = registry.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, DatabaseKind::Postgres);
    assert!(!listed[0].open, "nothing opened yet");

    // First use opens the pool; the repository works on the target database.
    let notes = registry.repo::<Note>("orders").await.expect("repo");
    notes
        .insert(&Note {
            id: 1,
            text: "via registry".into(),
        })
        .await
        .expect("insert");
    assert_eq!(registry.open_pools().await, vec!["orders".to_string()]);
    let first = registry.pool("orders").await.expect("pool");
    let first_store = first.relational().expect("relational").clone();
    drop(first);

    // Changing the definition closes the pool; the next use reopens with the new settings.
    let changed = def.clone().pool(PoolConfig {
        max_connections: Some(3),
        ..PoolConfig::default()
    });
    registry.update(&changed).await.expect("update");
    assert!(
        first_store
            .connection()
            .get_postgres_connection_pool()
            .is_closed(),
        "update closed the old pool"
    );
    assert!(registry.open_pools().await.is_empty());
    let again = registry.pool("orders").await.expect("reopen");
    let reopened = again.relational().expect("relational");
    assert!(
        !reopened
            .connection()
            .get_postgres_connection_pool()
            .is_closed()
    );
    assert_eq!(
        registry
            .definition("orders")
            .await
            .expect("read")
            .expect("present")
            .pool
            .max_connections,
        Some(3)
    );
    assert_eq!(
        again
            .repository::<Note>()
            .get(&1)
            .await
            .expect("get")
            .map(|n| n.text),
        Some("via registry".to_string())
    );
    reopened.drop_schema().await.expect("drop target schema");
    drop(again);
    registry.close_all().await;
}

async fn tampered_rows_are_config_errors(db: &Db) {
    let (key, _) = RegistryKey::generate();
    let registry = Registry::open(db.store.clone(), key, 4)
        .await
        .expect("open");
    registry.add(&sqlite_target("alpha")).await.expect("add a");
    registry.add(&sqlite_target("beta")).await.expect("add b");

    // Flip one byte of the stored ciphertext.
    let mut bytes = db.read_bytes("ciphertext", "alpha").await;
    bytes[3] ^= 0x01;
    db.write_bytes("ciphertext", "alpha", bytes).await;
    let err = registry.definition("alpha").await.expect_err("tampered");
    assert_config_naming(&err, "alpha");
    let err = registry.pool("alpha").await.expect_err("tampered pool");
    assert_config_naming(&err, "alpha");

    // A valid ciphertext (and nonce) copied from another row does not open either.
    let (c, n) = (
        db.read_bytes("ciphertext", "beta").await,
        db.read_bytes("nonce", "beta").await,
    );
    db.write_bytes("ciphertext", "alpha", c).await;
    db.write_bytes("nonce", "alpha", n).await;
    let err = registry.definition("alpha").await.expect_err("swapped");
    assert_config_naming(&err, "alpha");

    // The untouched row still works.
    registry.pool("beta").await.expect("beta");
    registry.close_all().await;
}

async fn wrong_key_and_rotation(db: &Db) {
    let (old, _) = RegistryKey::generate();
    let registry = Registry::open(db.store.clone(), old.clone(), 4)
        .await
        .expect("open");
    registry.add(&sqlite_target("one")).await.expect("add");
    registry.add(&sqlite_target("two")).await.expect("add");

    let (other, _) = RegistryKey::generate();
    let stranger = Registry::open(db.store.clone(), other, 4)
        .await
        .expect("open");
    let err = stranger.definition("one").await.expect_err("wrong key");
    assert_config_naming(&err, "one");
    assert!(err.to_string().contains("wrong key"), "{err}");

    let open_before = registry.pool("two").await.expect("pool before rotation");
    let store_before = open_before.relational().expect("relational").clone();
    drop(open_before);
    let (new, _) = RegistryKey::generate();
    assert_eq!(
        registry.rotate(new.clone()).await.expect("rotate"),
        2,
        "every row re-encrypted"
    );
    assert_eq!(registry.key_id().await, new.id());
    assert!(registry.definition("one").await.expect("read").is_some());
    registry.pool("two").await.expect("pool after rotation");
    assert!(
        !store_before
            .connection()
            .get_sqlite_connection_pool()
            .is_closed(),
        "rotation changes no definition, so open pools stay open"
    );
    for row in registry.list().await.expect("list") {
        assert_eq!(row.key_id, new.id(), "{} under the new key", row.name);
    }
    let with_new = Registry::open(db.store.clone(), new.clone(), 4)
        .await
        .expect("open");
    assert_eq!(
        with_new
            .definition("two")
            .await
            .expect("new key reads")
            .map(|d| d.url.expose().to_string()),
        Some("sqlite::memory:".to_string())
    );
    let with_old = Registry::open(db.store.clone(), old, 4)
        .await
        .expect("open");
    let err = with_old.definition("two").await.expect_err("old key");
    assert_config_naming(&err, "two");

    // Running it again is harmless: rows already under the new key are verified, not rewritten.
    assert_eq!(registry.rotate(new).await.expect("again"), 0);

    // A rotation that meets a row it cannot open changes nothing.
    let mut bytes = db.read_bytes("ciphertext", "one").await;
    bytes[0] ^= 0x80;
    db.write_bytes("ciphertext", "one", bytes).await;
    let (newer, _) = RegistryKey::generate();
    let err = registry.rotate(newer.clone()).await.expect_err("bad row");
    assert_config_naming(&err, "one");
    for row in registry.list().await.expect("list") {
        assert_ne!(row.key_id, newer.id(), "rolled back: {}", row.name);
    }
    registry.close_all().await;
}

async fn remove_and_lru(db: &Db) {
    let (key, _) = RegistryKey::generate();
    let registry = Registry::open(db.store.clone(), key.clone(), 2)
        .await
        .expect("open");
    for name in ["a", "b", "c", "d"] {
        registry.add(&sqlite_target(name)).await.expect("add");
    }

    // remove closes the pool, even while someone still holds its store.
    let held = registry.pool("d").await.expect("d");
    let d_store = held.relational().expect("relational").clone();
    assert!(registry.remove("d").await.expect("remove"));
    assert!(
        d_store
            .connection()
            .get_sqlite_connection_pool()
            .is_closed()
    );
    assert!(!registry.open_pools().await.contains(&"d".to_string()));
    let err = registry.pool("d").await.expect_err("gone");
    assert_eq!(err.kind(), &ErrorKind::NotFound, "{err}");
    assert!(!registry.remove("d").await.expect("remove again"));
    drop(held);

    let store_of = |h: persistence::registry::PoolHandle| h.relational().expect("rel").clone();
    let a = store_of(registry.pool("a").await.expect("a"));
    let b = store_of(registry.pool("b").await.expect("b"));
    // `a` is used again, so `b` is now the least recently used.
    let a_again = registry.pool("a").await.expect("a again");
    a_again
        .repository::<Note>()
        .ensure_schema()
        .await
        .expect("use a");
    drop(a_again);
    let c = store_of(registry.pool("c").await.expect("c"));
    assert_eq!(registry.open_pools().await, vec!["a", "c"]);
    assert!(b.connection().get_sqlite_connection_pool().is_closed());
    assert!(!a.connection().get_sqlite_connection_pool().is_closed());

    // A leased pool is not idle: with `a` leased, opening `b` closes `c` although `a` is older.
    let lease = registry.pool("a").await.expect("lease a");
    let c_again = registry.pool("c").await.expect("touch c");
    drop(c_again);
    let _b = registry.pool("b").await.expect("b again");
    assert_eq!(registry.open_pools().await, vec!["a", "b"]);
    assert!(c.connection().get_sqlite_connection_pool().is_closed());
    let a = lease.relational().expect("rel").clone();
    drop(lease);

    // A change made through another registry (another process) is seen on the next use.
    let elsewhere = Registry::open(db.store.clone(), key, 2)
        .await
        .expect("open");
    elsewhere
        .update(&sqlite_target("a").pool(PoolConfig {
            max_connections: Some(1),
            ..PoolConfig::default()
        }))
        .await
        .expect("update elsewhere");
    assert!(!a.connection().get_sqlite_connection_pool().is_closed());
    let reopened = registry.pool("a").await.expect("a after change");
    assert!(a.connection().get_sqlite_connection_pool().is_closed());
    assert!(
        !reopened
            .relational()
            .expect("rel")
            .connection()
            .get_sqlite_connection_pool()
            .is_closed()
    );
    drop(reopened);
    registry.close_all().await;
}

#[tokio::test]
async fn postgres_round_trip() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    round_trip(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_round_trip() {
    let db = Db::sqlite().await;
    round_trip(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_tampered_row_is_a_config_error() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    tampered_rows_are_config_errors(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_tampered_row_is_a_config_error() {
    let db = Db::sqlite().await;
    tampered_rows_are_config_errors(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_wrong_key_and_rotation() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    wrong_key_and_rotation(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_wrong_key_and_rotation() {
    let db = Db::sqlite().await;
    wrong_key_and_rotation(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_remove_closes_and_lru_cap_closes_idle_pools() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    remove_and_lru(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_remove_closes_and_lru_cap_closes_idle_pools() {
    let db = Db::sqlite().await;
    remove_and_lru(&db).await;
    db.cleanup().await;
}

#[test]
fn bad_keys_are_config_errors() {
    let dir = std::env::temp_dir();
    let bad = dir.join(format!("persistence-badkey-{}", unique_suffix()));
    std::fs::write(&bad, "not base64 at all!").expect("write");
    let err = RegistryKey::from_file(&bad).expect_err("bad file");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("base64"), "{err}");

    std::fs::write(&bad, "c2hvcnQ=").expect("write");
    let err = RegistryKey::from_file(&bad).expect_err("short key");
    assert!(err.to_string().contains("32 bytes"), "{err}");
    let _ = std::fs::remove_file(&bad);

    let var = format!("PERSISTENCE_TEST_UNSET_{}", unique_suffix());
    let err = RegistryKey::from_env_var(&var).expect_err("unset");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains(&var), "{err}");

    let (key, text) = RegistryKey::generate();
    assert_eq!(
        RegistryKey::from_base64(text.expose()).expect("b64").id(),
        key.id()
    );
    assert!(!format!("{key:?}").contains(text.expose()));
    let unsupported =
        ConnectionDefinition::new("cache", DatabaseKind::Redis, "redis://127.0.0.1:6379");
    assert!(!format!("{unsupported:?}").contains("6379/"));
}

#[tokio::test]
async fn manager_opens_the_configured_registry() {
    let dir = std::env::temp_dir();
    let suffix = unique_suffix();
    let key_file = dir.join(format!("persistence-key-{suffix}"));
    let (key, text) = RegistryKey::generate();
    std::fs::write(&key_file, text.expose()).expect("key file");
    let db_file = dir.join(format!("persistence-mgr-{suffix}.db"));
    let yaml = format!(
        "databases:\n  main: {{ kind: sqlite, url: \"sqlite://{}?mode=rwc\" }}\nregistry: {{ database: main, key_file: \"{}\", max_open_pools: 2 }}\n",
        db_file.display(),
        key_file.display()
    );
    let config = ConfigLoader::new()
        .text("persistence.yaml", &yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    let p = Persistence::new(config).expect("manager");
    let registry = p.registry().await.expect("registry");
    assert_eq!(registry.key_id().await, key.id());
    registry.add(&sqlite_target("tenant")).await.expect("add");
    assert!(std::ptr::eq(registry, p.registry().await.expect("same")));
    registry.pool("tenant").await.expect("pool");
    p.shutdown().await;
    assert!(
        registry.open_pools().await.is_empty(),
        "shutdown closes registry pools"
    );

    // Typos and bad references in the section are config errors naming the key.
    let typo = ConfigLoader::new()
        .text(
            "persistence.yaml",
            "databases:\n  main: { kind: memory }\nregistry: { max_open_pool: 2 }\n",
        )
        .env(Vec::new())
        .load()
        .expect_err("unknown key");
    assert!(typo.to_string().contains("max_open_pool"), "{typo}");
    let wrong = ConfigLoader::new()
        .text(
            "persistence.yaml",
            "databases:\n  main: { kind: memory }\nregistry: { database: main }\n",
        )
        .env(Vec::new())
        .load()
        .and_then(Persistence::new)
        .expect_err("memory cannot hold the registry");
    assert!(wrong.to_string().contains("registry.database"), "{wrong}");
    let none = Persistence::new(
        ConfigLoader::new()
            .text("persistence.yaml", "databases:\n  main: { kind: memory }\n")
            .env(Vec::new())
            .load()
            .expect("config"),
    )
    .expect("manager");
    assert_eq!(
        none.registry().await.expect_err("absent").kind(),
        &ErrorKind::Config
    );
    let _ = std::fs::remove_file(key_file);
    let _ = std::fs::remove_file(db_file);
}

#[tokio::test]
async fn mongo_connections_open_through_the_registry() {
    // Its own database, dropped by the guard (also on panic).
    let Some(target) = TestMongo::database().await else {
        return;
    };
    let (mongo, database) = (target.url().to_string(), target.name().to_string());
    let db = Db::sqlite().await;
    let (key, _) = RegistryKey::generate();
    let registry = Registry::open(db.store.clone(), key, 4)
        .await
        .expect("open");
    registry
        .add(&ConnectionDefinition::new("catalog", DatabaseKind::Mongo, mongo).database(&database))
        .await
        .expect("add");
    let notes = registry.repo::<Note>("catalog").await.expect("repo");
    notes
        .insert(&Note {
            id: 7,
            text: "document".into(),
        })
        .await
        .expect("insert");
    let handle = registry.pool("catalog").await.expect("pool");
    let store = handle.mongo().expect("mongo").clone();
    assert_eq!(store.database().name(), database);
    assert!(!format!("{handle:?}").contains("mongodb://"), "{handle:?}");
    assert_eq!(
        handle
            .repository::<Note>()
            .get(&7)
            .await
            .expect("get")
            .map(|n| n.text),
        Some("document".to_string())
    );
    store.database().drop().await.expect("drop database");
    drop(handle);
    assert!(registry.remove("catalog").await.expect("remove"));
    assert!(registry.open_pools().await.is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn cap_is_exceeded_rather_than_closing_busy_pools() {
    let db = Db::sqlite().await;
    let (key, _) = RegistryKey::generate();
    let registry = Registry::open(db.store.clone(), key, 1)
        .await
        .expect("open");
    for name in ["a", "b", "c"] {
        registry.add(&sqlite_target(name)).await.expect("add");
    }
    let a = registry.pool("a").await.expect("a");
    // `a` is leased: opening `b` cannot close it, so both stay open.
    let b = registry.pool("b").await.expect("b");
    assert_eq!(registry.open_pools().await, vec!["a", "b"]);
    let a_store = a.relational().expect("rel").clone();
    let b_store = b.relational().expect("rel").clone();
    drop(a);
    drop(b);
    // Both idle now: the next open brings the count back to the cap.
    let _c = registry.pool("c").await.expect("c");
    assert_eq!(registry.open_pools().await, vec!["c"]);
    assert!(
        a_store
            .connection()
            .get_sqlite_connection_pool()
            .is_closed()
    );
    assert!(
        b_store
            .connection()
            .get_sqlite_connection_pool()
            .is_closed()
    );
    registry.close_all().await;
    db.cleanup().await;
}
