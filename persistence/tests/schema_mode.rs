//! `databases.<name>.schema_mode` (issue 16, item 6): with `verify` the
//! manager compares each entity's table with its metadata when it first
//! hands out the repository, refuses a drifted table with a `Config` error
//! listing every difference, and never creates or alters anything; `off`
//! does nothing; the default is `ensure`.
use persistence::config::{ConfigLoader, PersistenceConfig, SchemaMode};
use persistence::postgres::RelationalStore;
use persistence::postgres::sea_orm::{ConnectionTrait, Statement};
use persistence::{Entity, EntityEnum, ErrorKind, Persistence, Repository};
use persistence_testing::TestPostgres;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "mode_accounts")]
struct Account {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    balance: i64,
    note: Option<String>,
}

const MATCHING: &str = "CREATE TABLE {t} (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, \
     balance bigint NOT NULL, note text)";

fn config(yaml: &str) -> PersistenceConfig {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config")
}

fn manager(pg: &TestPostgres, mode: &str) -> Persistence {
    let schema = pg.schema_name().expect("schema");
    Persistence::new(config(&format!(
        "databases:\n  main: {{ kind: postgres, url: \"{}\", schema: {schema}{mode} }}\n\
         cache: {{ default: {{ disabled: true }} }}\n",
        pg.url()
    )))
    .expect("manager")
}

async fn exec(store: &RelationalStore, sql: &str) {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Columns, indexes and the table comment (the library's mark), to check
/// nothing changed.
async fn catalog(store: &RelationalStore, t: &str) -> Vec<String> {
    let sql = format!(
        "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text \
         FROM pg_attribute a WHERE a.attrelid = to_regclass('{t}') AND a.attnum > 0 \
         UNION ALL SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = to_regclass('{t}') \
         UNION ALL SELECT COALESCE(obj_description(to_regclass('{t}'), 'pg_class'), 'no comment') \
         UNION ALL SELECT 'exists ' || (to_regclass('{t}') IS NOT NULL)::text ORDER BY 1"
    );
    let c = store.connection();
    c.query_all_raw(Statement::from_string(c.get_database_backend(), sql))
        .await
        .expect("catalog")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

async fn setup() -> Option<(TestPostgres, RelationalStore, String)> {
    let pg = TestPostgres::schema().await?;
    let store = pg.store().await.expect("connect");
    let t = format!(
        "\"{}\".\"mode_accounts\"",
        pg.schema_name().expect("schema")
    );
    Some((pg, store, t))
}

#[tokio::test]
async fn verify_starts_on_a_matching_table_and_changes_nothing() {
    let Some((pg, store, t)) = setup().await else {
        return;
    };
    exec(&store, &MATCHING.replace("{t}", &t)).await;
    let before = catalog(&store, &t).await;
    let p = manager(&pg, ", schema_mode: verify");
    assert!(
        p.describe().contains("schema_mode verify"),
        "{}",
        p.describe()
    );
    let accounts = p.repo::<Account>().await.expect("a matching table");
    let a = Account {
        id: 1,
        email: "a@x.io".into(),
        balance: 5,
        note: None,
    };
    accounts.insert(&a).await.expect("insert");
    assert_eq!(accounts.get(&1).await.expect("get"), Some(a));
    assert_eq!(
        before,
        catalog(&store, &t).await,
        "not marked, no index added"
    );
    p.shutdown().await;
    store.close().await;
    drop(pg);
}

#[tokio::test]
async fn verify_refuses_a_drifted_table_listing_every_difference() {
    let Some((pg, store, t)) = setup().await else {
        return;
    };
    let drifted = MATCHING
        .replace("balance bigint", "balance double precision")
        .replace("email text NOT NULL UNIQUE", "email text NOT NULL");
    exec(&store, &drifted.replace("{t}", &t)).await;
    let before = catalog(&store, &t).await;
    let p = manager(&pg, ", schema_mode: verify");
    let e = p.repo::<Account>().await.expect_err("drifted");
    assert_eq!(e.kind(), &ErrorKind::Config, "{e}");
    let lines: Vec<&str> = e.message().lines().collect();
    assert_eq!(
        lines,
        [
            "database `main` (schema_mode: verify): schema of entity `mode_accounts` \
             ({t}) differs from its metadata:"
                .replace("{t}", &t)
                .as_str(),
            &format!(
                "error: type mismatch: {t} column balance: expected bigint, found double precision"
            ),
            &format!(
                "error: missing unique: {t} ux_mode_accounts_email: expected UNIQUE (email), found none"
            ),
        ],
        "{e}"
    );
    // Asked again: the same refusal, still nothing changed.
    p.repo::<Account>().await.expect_err("still drifted");
    assert_eq!(before, catalog(&store, &t).await, "the table is unchanged");
    p.shutdown().await;
    store.close().await;
    drop(pg);
}

#[tokio::test]
async fn verify_does_not_create_a_missing_table_and_off_does_nothing() {
    let Some((pg, store, t)) = setup().await else {
        return;
    };
    let before = catalog(&store, &t).await;
    assert!(before.contains(&"exists false".to_string()), "{before:?}");
    let p = manager(&pg, ", schema_mode: verify");
    let e = p.repo::<Account>().await.expect_err("missing");
    assert!(
        e.message().ends_with(&format!(
            "error: missing table: {t}: expected a table for entity `mode_accounts`, found none"
        )),
        "{e}"
    );
    p.shutdown().await;
    let off = manager(&pg, ", schema_mode: off");
    let repo = off.repo::<Account>().await.expect("off checks nothing");
    assert_eq!(before, catalog(&store, &t).await, "not created");
    // Without a table the repository fails on use, as the mode implies.
    repo.get(&1).await.expect_err("no table");
    off.shutdown().await;
    // The default is `ensure` (as before the key existed): it creates it.
    let ensure = manager(&pg, "");
    assert_eq!(
        ensure.config().databases["main"].schema_mode,
        SchemaMode::Ensure
    );
    ensure.repo::<Account>().await.expect("ensure");
    assert!(
        catalog(&store, &t)
            .await
            .contains(&"exists true".to_string())
    );
    ensure.shutdown().await;
    store.close().await;
    drop(pg);
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, EntityEnum)]
enum Mood {
    Happy,
    Sad,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "mode_notes")]
struct Note {
    #[entity(id)]
    id: i64,
    tags: Vec<String>,
    mood: Mood,
}

/// `verify` stands in for `ensure`: it learns the columns' native types the
/// same way, so `text[]` and a native enum are read and written through
/// casts (before, the repository it handed out could not decode them).
#[tokio::test]
async fn verify_learns_native_types_as_ensure_does() {
    let Some((pg, store, _)) = setup().await else {
        return;
    };
    let s = format!("\"{}\"", pg.schema_name().expect("schema"));
    exec(
        &store,
        &format!(
            "CREATE TYPE {s}.mood AS ENUM ('Sad', 'Happy'); \
             CREATE TABLE {s}.mode_notes (id bigint PRIMARY KEY, tags text[] NOT NULL, \
             mood {s}.mood NOT NULL); \
             INSERT INTO {s}.mode_notes VALUES (1, '{{a,b}}', 'Sad')"
        ),
    )
    .await;
    let p = manager(&pg, ", schema_mode: verify");
    let notes = p.repo::<Note>().await.expect("a matching table");
    let theirs = notes.get(&1).await.expect("read text[] and the enum");
    assert_eq!(
        theirs,
        Some(Note {
            id: 1,
            tags: vec!["a".into(), "b".into()],
            mood: Mood::Sad,
        })
    );
    let ours = Note {
        id: 2,
        tags: vec!["c".into()],
        mood: Mood::Happy,
    };
    notes.insert(&ours).await.expect("write through casts");
    assert_eq!(notes.get(&2).await.expect("get"), Some(ours));
    p.shutdown().await;
    store.close().await;
    drop(pg);
}

#[test]
fn an_unknown_mode_is_a_config_error_naming_the_key() {
    let e = ConfigLoader::new()
        .text(
            "persistence.yaml",
            "databases:\n  main: { kind: memory, schema_mode: sometimes }\n",
        )
        .env(Vec::new())
        .load()
        .expect_err("unknown mode");
    assert_eq!(e.kind(), &ErrorKind::Config, "{e}");
    assert!(e.message().contains("schema_mode"), "{e}");
    // And on a memory database `verify` always passes.
    let c = config("databases:\n  main: { kind: memory, schema_mode: verify }\n");
    assert_eq!(c.databases["main"].schema_mode, SchemaMode::Verify);
}
