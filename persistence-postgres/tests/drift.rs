//! `verify_schema` (issue 16, item 6) on the local PostgreSQL and SQLite:
//! a table created with plain SQL (the way another team would) is compared
//! with the entity; each kind of drift gives its exact one-line message,
//! and the check creates and changes nothing (on PostgreSQL it runs as the
//! read-only `pg_read_all_data` role too).
mod common;

use chrono::{DateTime, Utc};
use common::pg_url;
use persistence_core::{DifferenceKind, Entity, Repository, SchemaReport, Severity};
use persistence_postgres::RelationalStore;
use persistence_postgres::sea_orm::{ConnectionTrait, Statement};
use persistence_testing::{TestPostgres, TestSqlite};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "members", unique(team, handle))]
struct Member {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    #[entity(index)]
    age: i32,
    nickname: Option<String>,
    team: String,
    handle: String,
    #[entity(soft_delete)]
    deleted_at: Option<DateTime<Utc>>,
}

/// The table as another team would write it: the entity's columns and
/// indexes under names of their own (but `ux_members_team_handle`).
/// `{t}` is the table, `{ts}` the timestamp type of the dialect.
const TABLE: &str = "CREATE TABLE {t} (id bigint NOT NULL PRIMARY KEY, email text NOT NULL, \
     age integer NOT NULL, nickname text, team text NOT NULL, handle text NOT NULL, deleted_at {ts})";
const EMAIL: &str = "CREATE UNIQUE INDEX live_email ON {t} (email) WHERE deleted_at IS NULL";
const TEAM: &str =
    "CREATE UNIQUE INDEX ux_members_team_handle ON {t} (team, handle) WHERE deleted_at IS NULL";
const AGE: &str = "CREATE INDEX by_age ON {t} (age)";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Db {
    Postgres,
    Sqlite,
}

/// A store of `db` in a schema / file of its own (the guard drops it).
#[allow(dead_code)] // held for its `Drop`
enum Guard {
    Pg(TestPostgres),
    Lite(TestSqlite),
}

async fn store(db: Db) -> Option<(RelationalStore, Guard, String)> {
    match db {
        Db::Postgres => {
            pg_url()?;
            let pg = TestPostgres::schema().await?;
            let store = pg.store().await.expect("connect");
            let t = format!("\"{}\".\"members\"", pg.schema_name().expect("schema"));
            Some((store, Guard::Pg(pg), t))
        }
        Db::Sqlite => {
            let lite = TestSqlite::new();
            let store = lite.store().await.expect("open");
            Some((store, Guard::Lite(lite), "\"members\"".into()))
        }
    }
}

/// Fill in the table name and the timestamp type of the dialect.
fn sql(db: Db, t: &str, template: &str) -> String {
    let ts = match db {
        Db::Postgres => "timestamptz",
        Db::Sqlite => "TEXT",
    };
    template.replace("{t}", t).replace("{ts}", ts)
}

async fn exec(store: &RelationalStore, sql: &str) {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Everything the catalog says about table `t`, to check it is unchanged.
async fn catalog(store: &RelationalStore, db: Db, t: &str) -> Vec<String> {
    let sql = match db {
        Db::Postgres => format!(
            "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text \
             FROM pg_attribute a WHERE a.attrelid = to_regclass('{t}') AND a.attnum > 0 \
             UNION ALL SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = to_regclass('{t}') \
             UNION ALL SELECT COALESCE(obj_description(to_regclass('{t}'), 'pg_class'), 'no comment') \
             ORDER BY 1"
        ),
        Db::Sqlite => "SELECT coalesce(sql, name) FROM sqlite_master ORDER BY 1".to_string(),
    };
    let c = store.connection();
    c.query_all_raw(Statement::from_string(c.get_database_backend(), sql))
        .await
        .expect("catalog")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

/// Create the table with `statements` (templates), verify, return the
/// report's lines; checks the catalog is the same before and after.
async fn verify_with(db: Db, statements: &[&str]) -> Option<(SchemaReport, String)> {
    let (store, guard, t) = store(db).await?;
    for s in statements {
        exec(&store, &sql(db, &t, s)).await;
    }
    let before = catalog(&store, db, &t).await;
    let report = store
        .repository::<Member>()
        .verify_schema()
        .await
        .expect("verify");
    assert_eq!(
        before,
        catalog(&store, db, &t).await,
        "verify_schema changed nothing"
    );
    store.close().await;
    drop(guard);
    Some((report, t))
}

fn lines(report: &SchemaReport) -> Vec<String> {
    report.differences.iter().map(ToString::to_string).collect()
}

/// Run one drift case on both dialects: the expected lines per dialect
/// (`{t}` is the table).
async fn case(statements: &[&str], pg: &[&str], sqlite: &[&str]) {
    for (db, want) in [(Db::Postgres, pg), (Db::Sqlite, sqlite)] {
        let Some((report, t)) = verify_with(db, statements).await else {
            continue;
        };
        let want: Vec<String> = want.iter().map(|l| l.replace("{t}", &t)).collect();
        assert_eq!(lines(&report), want, "{db:?}");
        let errors = want.iter().any(|l| l.starts_with("error:"));
        assert_eq!(report.is_ok(), !errors, "{db:?}: {report}");
    }
}

#[tokio::test]
async fn a_matching_table_made_by_plain_sql_verifies() {
    case(&[TABLE, EMAIL, TEAM, AGE], &[], &[]).await;
}

#[tokio::test]
async fn the_librarys_own_table_verifies() {
    for db in [Db::Postgres, Db::Sqlite] {
        let Some((store, _guard, _)) = store(db).await else {
            continue;
        };
        let repo = store.repository::<Member>();
        repo.ensure_schema().await.expect("ensure");
        let report = repo.verify_schema().await.expect("verify");
        assert!(report.differences.is_empty(), "{db:?}: {report}");
        assert!(
            report
                .to_string()
                .ends_with("schema matches entity `members`")
        );
        store.close().await;
    }
}

#[tokio::test]
async fn a_missing_table_is_reported_not_created() {
    case(
        &[],
        &["error: missing table: {t}: expected a table for entity `members`, found none"],
        &["error: missing table: {t}: expected a table for entity `members`, found none"],
    )
    .await;
}

#[tokio::test]
async fn a_dropped_column() {
    let table = TABLE.replace(" nickname text,", "");
    case(
        &[&table, EMAIL, TEAM, AGE],
        &["error: missing column: {t} column nickname: expected text, found none"],
        &["error: missing column: {t} column nickname: expected TEXT, found none"],
    )
    .await;
}

#[tokio::test]
async fn a_changed_type() {
    let table = TABLE.replace("age integer", "age text");
    case(
        &[&table, EMAIL, TEAM, AGE],
        &["error: type mismatch: {t} column age: expected integer, found text"],
        &["error: type mismatch: {t} column age: expected INTEGER, found TEXT"],
    )
    .await;
    // Compatible types are no drift: varchar for a String, numeric(p, s)...
    let table = TABLE.replace("email text", "email varchar(200)");
    case(&[&table, EMAIL, TEAM, AGE], &[], &[]).await;
}

#[tokio::test]
async fn nullability_either_way() {
    let table = TABLE.replace("email text NOT NULL", "email text");
    case(
        &[&table, EMAIL, TEAM, AGE],
        &["warning: nullability mismatch: {t} column email: expected NOT NULL, found nullable"],
        &["warning: nullability mismatch: {t} column email: expected NOT NULL, found nullable"],
    )
    .await;
    let table = TABLE.replace("nickname text", "nickname text NOT NULL");
    let line = "error: nullability mismatch: {t} column nickname: expected nullable \
                (the field is an Option), found NOT NULL";
    case(&[&table, EMAIL, TEAM, AGE], &[line], &[line]).await;
}

#[tokio::test]
async fn a_dropped_index_and_primary_key() {
    let line = "warning: missing index: {t} ix_members_age: expected INDEX (age), found none";
    case(&[TABLE, EMAIL, TEAM], &[line], &[line]).await;
    let table = TABLE.replace("id bigint NOT NULL PRIMARY KEY", "id bigint NOT NULL");
    let line = "error: missing primary key: {t}: expected PRIMARY KEY (id), found none";
    case(&[&table, EMAIL, TEAM, AGE], &[line], &[line]).await;
}

#[tokio::test]
async fn a_unique_over_other_columns() {
    let team = TEAM.replace("(team, handle)", "(team)");
    let line = "error: unique differs: {t} ux_members_team_handle: expected UNIQUE (team, handle) \
                WHERE deleted_at IS NULL, found UNIQUE (team) WHERE deleted_at IS NULL";
    case(&[TABLE, EMAIL, &team, AGE], &[line], &[line]).await;
    // Not unique at all, under another name: missing.
    let line = "error: missing unique: {t} ux_members_email: expected UNIQUE (email) \
                WHERE deleted_at IS NULL, found none";
    let email = EMAIL.replace("UNIQUE ", "");
    case(&[TABLE, &email, TEAM, AGE], &[line], &[line]).await;
}

#[tokio::test]
async fn a_partial_unique_with_another_condition() {
    let team = TEAM.replace("deleted_at IS NULL", "nickname IS NULL");
    let line = "error: unique differs: {t} ux_members_team_handle: expected UNIQUE (team, handle) \
                WHERE deleted_at IS NULL, found UNIQUE (team, handle) WHERE nickname IS NULL";
    case(&[TABLE, EMAIL, &team, AGE], &[line], &[line]).await;
    // A full unique where deleted rows must not count.
    let team = TEAM.replace(" WHERE deleted_at IS NULL", "");
    let line = "error: unique differs: {t} ux_members_team_handle: expected UNIQUE (team, handle) \
                WHERE deleted_at IS NULL, found UNIQUE (team, handle)";
    case(&[TABLE, EMAIL, &team, AGE], &[line], &[line]).await;
}

#[tokio::test]
async fn extra_columns() {
    // Nullable or with a default: allowed, listed as information.
    let table = TABLE.replace(
        " deleted_at",
        " note text, score integer NOT NULL DEFAULT 0, deleted_at",
    );
    for db in [Db::Postgres, Db::Sqlite] {
        let Some((report, _)) = verify_with(db, &[&table, EMAIL, TEAM, AGE]).await else {
            continue;
        };
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.warnings().count(), 0, "{report}");
        let extra: Vec<&str> = report
            .of_kind(DifferenceKind::ExtraColumn)
            .map(|d| d.subject.as_str())
            .collect();
        assert_eq!(extra, ["column note", "column score"], "{db:?}");
        assert!(
            report
                .differences
                .iter()
                .all(|d| d.severity == Severity::Info)
        );
    }
    // NOT NULL without a default: every insert of the entity would fail.
    let table = TABLE.replace(" deleted_at", " legacy text NOT NULL, deleted_at");
    let line = "error: extra column: {t} column legacy: expected nullable or with a default \
                (the entity never writes it), found text NOT NULL";
    // SQLite reports declared types in upper case.
    let upper = line.replace("text NOT NULL", "TEXT NOT NULL");
    case(&[&table, EMAIL, TEAM, AGE], &[line], &[&upper]).await;
}

/// A store connecting as `pg_read_all_data` in read-only transactions
/// (as `tests/tenants.rs` does): anything but a read fails.
async fn read_only(schema: &str) -> RelationalStore {
    let url = pg_url().expect("server");
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{url}{sep}options=-c%20role%3Dpg_read_all_data%20-c%20default_transaction_read_only%3Don"
    );
    let cfg = persistence_postgres::RelationalConfig::new(url)
        .max_connections(1)
        .schema(schema.to_string());
    RelationalStore::connect(&cfg).await.expect("read-only")
}

#[tokio::test]
async fn verify_runs_as_a_read_only_role() {
    let Some((store, Guard::Pg(pg), t)) = store(Db::Postgres).await else {
        return;
    };
    let ro = read_only(pg.schema_name().expect("schema")).await;
    let repo = ro.repository::<Member>();
    let missing = repo.verify_schema().await.expect("verify a missing table");
    assert_eq!(
        lines(&missing),
        [format!(
            "error: missing table: {t}: expected a table for entity `members`, found none"
        )]
    );
    let table = TABLE.replace("age integer", "age bigint");
    for s in [table.as_str(), EMAIL, TEAM] {
        exec(&store, &sql(Db::Postgres, &t, s)).await;
    }
    let before = catalog(&store, Db::Postgres, &t).await;
    let report = repo.verify_schema().await.expect("verify read-only");
    assert_eq!(before, catalog(&store, Db::Postgres, &t).await);
    assert_eq!(
        lines(&report),
        [
            format!("error: type mismatch: {t} column age: expected integer, found bigint"),
            format!("warning: missing index: {t} ix_members_age: expected INDEX (age), found none"),
        ]
    );
    ro.close().await;
    store.close().await;
    drop(pg);
}
