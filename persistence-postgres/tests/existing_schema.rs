//! Mapping onto an existing table (issue 16, item 4): a table written by
//! hand, psql style, with PostgreSQL's own types (bigserial id,
//! varchar(200) unique, numeric(12,2), integer, text[], jsonb, timestamptz
//! default now(), a native enum) and a column the entity does not know.
//! The repository reads, filters, sorts, inserts (the server assigns the
//! id), updates and deletes its rows, and leaves the table as it was.
mod common;

use chrono::{DateTime, Utc};
use common::*;
use persistence_core::names::SchemaPolicy;
use persistence_core::{Entity, EntityEnum, Query, Repository, StringField};
use persistence_postgres::RelationalStore;
use persistence_postgres::sea_orm::{ConnectionTrait, Statement, Value};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, EntityEnum)]
enum Mood {
    Happy,
    Sad,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "products")]
struct Product {
    #[entity(id, generated)]
    id: i64,
    #[entity(unique)]
    sku: String,
    /// The column is `display_name`.
    #[entity(column = "display_name")]
    title: String,
    price: Decimal,
    weight: f64,
    stock: i64,
    tags: Vec<String>,
    attrs: serde_json::Value,
    #[entity(generated)]
    created_at: Option<DateTime<Utc>>,
    mood: Mood,
}

/// `{s}` is the test's schema. The enum declares `Sad` before `Happy`, so
/// the native order is not the name order.
const DDL: &[&str] = &[
    "CREATE TYPE {s}.mood AS ENUM ('Sad', 'Happy')",
    "CREATE TABLE {s}.products (
        id bigserial PRIMARY KEY,
        sku varchar(200) NOT NULL UNIQUE,
        display_name text NOT NULL,
        price numeric(12,2) NOT NULL,
        weight numeric(8,3) NOT NULL,
        stock integer NOT NULL DEFAULT 0,
        tags text[] NOT NULL DEFAULT '{}',
        attrs jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        mood {s}.mood NOT NULL,
        legacy_note text DEFAULT 'kept'
    )",
    "INSERT INTO {s}.products (sku, display_name, price, weight, stock, tags, attrs, mood, legacy_note) VALUES
        ('A-1', 'Apple', 1.50, 0.200, 10, '{red,fruit}', '{\"origin\": \"NZ\"}', 'Happy', 'theirs'),
        ('B-2', 'Banana', 0.25, 0.120, 0, '{yellow,fruit}', '{}', 'Sad', 'theirs'),
        ('C-3', 'Cabbage', 2.99, 1.500, 3, '{}', '{\"organic\": true}', 'Happy', 'theirs')",
];

async fn exec(store: &RelationalStore, sql: &str) {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn strings(store: &RelationalStore, sql: &str, args: Vec<Value>) -> Vec<String> {
    let db = store.connection();
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        args,
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).expect("text"))
    .collect()
}

/// Everything about the schema's tables that `ensure_schema` could change:
/// columns (type, null, default), constraints, indexes, comments.
async fn catalog(store: &RelationalStore, schema: &str) -> Vec<String> {
    let s = || Value::String(Some(schema.to_string()));
    let mut out = strings(
        store,
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
           || ' ' || a.attnotnull::text || ' ' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '') \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY 1",
        vec![s()],
    )
    .await;
    out.extend(
        strings(
            store,
            "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY 1",
            vec![s()],
        )
        .await,
    );
    out.extend(
        strings(
            store,
            "SELECT c.relname || ': ' || COALESCE(obj_description(c.oid, 'pg_class'), '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 ORDER BY 1",
            vec![s()],
        )
        .await,
    );
    out
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn skus(ps: &[Product]) -> Vec<&str> {
    ps.iter().map(|p| p.sku.as_str()).collect()
}

#[tokio::test]
async fn a_hand_made_table_is_read_and_written_without_changing_it() {
    let Some(store) = pg_store().await else {
        return;
    };
    let schema = store.schema().expect("schema").to_string();
    let q = format!("\"{}\"", schema.replace('"', "\"\""));
    for sql in DDL {
        exec(&store, &sql.replace("{s}", &q)).await;
    }
    let before = catalog(&store, &schema).await;

    // Every policy only verifies a table it did not create; the native
    // types are compatible, and the extra column is no error.
    for policy in [SchemaPolicy::Managed, SchemaPolicy::VerifyOnly] {
        let repo = store.repository::<Product>().with_schema_policy(policy);
        repo.ensure_schema().await.expect("ensure_schema");
    }
    let repo = store.repository::<Product>();
    repo.ensure_schema().await.expect("ensure_schema");
    let report = repo.verify_schema().await.expect("verify_schema");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.warnings().count(), 0, "{report:?}");

    // Read: every native type decodes into the entity's fields.
    let all = repo
        .find(&Query::all().sort(Product::SKU.asc()))
        .await
        .expect("find");
    assert_eq!(skus(&all), ["A-1", "B-2", "C-3"]);
    let apple = &all[0];
    assert_eq!(
        (
            apple.title.as_str(),
            apple.price,
            apple.weight,
            apple.stock,
            apple.mood
        ),
        ("Apple", dec("1.50"), 0.2, 10, Mood::Happy)
    );
    assert_eq!(apple.tags, ["red", "fruit"]);
    assert_eq!(apple.attrs, serde_json::json!({"origin": "NZ"}));
    assert!(apple.created_at.is_some());
    assert_eq!(
        repo.get(&apple.id).await.expect("get").as_ref(),
        Some(apple)
    );

    // Filters and sort keys compare the values as the entity holds them.
    let find = |q: Query| {
        let repo = repo.clone();
        async move { repo.find(&q.sort(Product::SKU.asc())).await.expect("find") }
    };
    let cases = [
        (
            Query::filter(Product::PRICE.gt(dec("1"))),
            vec!["A-1", "C-3"],
        ),
        (Query::filter(Product::WEIGHT.lt(0.5)), vec!["A-1", "B-2"]),
        (Query::filter(Product::STOCK.gte(3)), vec!["A-1", "C-3"]),
        (
            Query::filter(Product::TAGS.has("fruit")),
            vec!["A-1", "B-2"],
        ),
        (Query::filter(Product::MOOD.eq(Mood::Sad)), vec!["B-2"]),
        (
            Query::filter(Product::MOOD.is_in([Mood::Happy])),
            vec!["A-1", "C-3"],
        ),
        (Query::filter(Product::TITLE.starts_with("Ba")), vec!["B-2"]),
        (
            Query::filter(Product::ATTRS.nested::<bool>("organic").eq(true)),
            vec!["C-3"],
        ),
        (
            Query::filter(Product::CREATED_AT.lte(Some(Utc::now()))),
            vec!["A-1", "B-2", "C-3"],
        ),
    ];
    for (q, want) in cases {
        let label = format!("{q:?}");
        assert_eq!(skus(&find(q).await), want, "{label}");
    }
    // A native enum sorts by its name, as on every backend.
    let by_mood = repo
        .find(
            &Query::all()
                .sort(Product::MOOD.desc())
                .sort(Product::SKU.asc()),
        )
        .await
        .expect("sort by mood");
    assert_eq!(skus(&by_mood), ["B-2", "A-1", "C-3"]);
    assert_eq!(
        repo.count(&Product::MOOD.eq(Mood::Happy))
            .await
            .expect("count"),
        2
    );

    // Insert: the server assigns the id and fills created_at.
    let new = Product {
        id: 0,
        sku: "D-4".into(),
        title: "Date".into(),
        price: dec("12.34"),
        weight: 0.05,
        stock: 7,
        tags: vec!["brown".into(), "it's \"quoted\"".into()],
        attrs: serde_json::json!({"dried": true}),
        created_at: None,
        mood: Mood::Sad,
    };
    let stored = repo.insert(&new).await.expect("insert");
    assert!(
        stored.id > all.iter().map(|p| p.id).max().unwrap_or(0),
        "{stored:?}"
    );
    assert!(stored.created_at.is_some());
    assert_eq!(
        Product {
            id: 0,
            created_at: None,
            ..stored.clone()
        },
        new
    );
    assert_eq!(
        repo.get(&stored.id).await.expect("get").as_ref(),
        Some(&stored)
    );
    let note = |id: i64| {
        let store = &store;
        let q = q.clone();
        async move {
            strings(
                store,
                &format!("SELECT COALESCE(legacy_note, 'null') FROM {q}.products WHERE id = $1"),
                vec![Value::BigInt(Some(id))],
            )
            .await
        }
    };
    assert_eq!(note(stored.id).await, ["kept"], "the column's default");

    // Update: every field written back through its native type; the column
    // the entity does not know keeps its value.
    let mut changed = all[0].clone();
    changed.price = dec("1.99");
    changed.weight = 0.25;
    changed.tags = vec!["green".into()];
    changed.mood = Mood::Sad;
    changed.title = "Green apple".into();
    let updated = repo.update(&changed).await.expect("update");
    assert_eq!(updated, changed);
    assert_eq!(
        repo.get(&changed.id).await.expect("get"),
        Some(changed.clone())
    );
    assert_eq!(note(changed.id).await, ["theirs"]);
    let upserted = repo
        .upsert(&Product {
            stock: 11,
            ..changed.clone()
        })
        .await
        .expect("upsert");
    assert_eq!(upserted.stock, 11);

    // Delete by id and by filter.
    assert!(repo.delete(&stored.id).await.expect("delete"));
    assert_eq!(
        repo.delete_many(&Product::MOOD.eq(Mood::Sad))
            .await
            .expect("delete_many"),
        2
    );
    let left = repo.find(&Query::all()).await.expect("find");
    assert_eq!(skus(&left), ["C-3"]);

    // A value the column cannot hold is a typed error, not a panic.
    let too_long = Product {
        sku: "x".repeat(201),
        ..new.clone()
    };
    let err = repo.insert(&too_long).await.expect_err("varchar(200)");
    assert!(err.message().contains("longer"), "{err}");

    assert_eq!(
        before,
        catalog(&store, &schema).await,
        "the table is unchanged"
    );
}

/// A table the library creates for a generated id: an identity column.
#[tokio::test]
async fn a_generated_id_gets_an_identity_column_in_a_new_table() {
    let Some(store) = pg_store().await else {
        return;
    };
    let repo = store.repository::<Product>();
    repo.ensure_schema().await.expect("create");
    let mk = |sku: &str| Product {
        id: 0,
        sku: sku.into(),
        title: sku.into(),
        price: dec("1"),
        weight: 1.0,
        stock: 1,
        tags: vec![],
        attrs: serde_json::json!({}),
        created_at: None,
        mood: Mood::Happy,
    };
    let a = repo.insert(&mk("a")).await.expect("insert a");
    let b = repo.insert(&mk("b")).await.expect("insert b");
    assert!(a.id > 0 && b.id > a.id, "{a:?} {b:?}");
    assert_eq!(a.created_at, None, "no default in a table the library made");
    assert_eq!(
        repo.insert_many(&[mk("c"), mk("d")]).await.expect("many"),
        2
    );
    let explicit = repo
        .insert(&Product {
            id: 1000,
            ..mk("e")
        })
        .await
        .expect("an explicit id is written as given");
    assert_eq!(explicit.id, 1000);
    assert_eq!(
        repo.count(&persistence_core::Filter::all())
            .await
            .expect("count"),
        5
    );
    let report = repo.verify_schema().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes")]
struct Note {
    #[entity(id, generated)]
    id: i64,
    #[serde(rename = "body_text")]
    body: String,
    tags: Vec<String>,
    #[entity(generated)]
    created_at: Option<DateTime<Utc>>,
    mood: Mood,
}

/// SQLite: a hand-made table with a rowid id, a default timestamp and a
/// column the entity lacks.
#[tokio::test]
async fn sqlite_a_hand_made_table_with_a_rowid_id() {
    let (store, path) = sqlite_store().await;
    let ddl = "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, \
               body_text VARCHAR(200) NOT NULL, tags TEXT NOT NULL DEFAULT '[]', \
               created_at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
               mood TEXT NOT NULL CHECK (mood IN ('Happy', 'Sad')), legacy_note TEXT DEFAULT 'kept')";
    exec(&store, ddl).await;
    exec(
        &store,
        "INSERT INTO notes (body_text, tags, mood, legacy_note) VALUES ('first', '[\"a\"]', 'Sad', 'theirs')",
    )
    .await;
    let schema = || {
        strings(
            &store,
            "SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name = 'notes'",
            vec![],
        )
    };
    let before = schema().await;
    let repo = store.repository::<Note>();
    repo.ensure_schema().await.expect("ensure_schema");
    let report = repo.verify_schema().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    let first = repo.find(&Query::all()).await.expect("find");
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].body.as_str(), first[0].tags.clone(), first[0].mood),
        ("first", vec!["a".to_string()], Mood::Sad)
    );
    assert!(first[0].created_at.is_some(), "the default");
    let new = Note {
        id: 0,
        body: "second".into(),
        tags: vec![],
        created_at: None,
        mood: Mood::Happy,
    };
    let stored = repo.insert(&new).await.expect("insert");
    assert!(stored.id > first[0].id, "{stored:?}");
    assert!(stored.created_at.is_some(), "filled by the default");
    assert_eq!(
        repo.get(&stored.id).await.expect("get"),
        Some(stored.clone())
    );
    let mut changed = first[0].clone();
    changed.body = "first, edited".into();
    assert_eq!(repo.update(&changed).await.expect("update"), changed);
    assert_eq!(
        strings(&store, "SELECT legacy_note FROM notes ORDER BY id", vec![]).await,
        ["theirs", "kept"]
    );
    assert_eq!(
        repo.find(&Query::filter(Note::MOOD.eq(Mood::Happy)))
            .await
            .expect("filter")
            .len(),
        1
    );
    assert!(repo.delete(&stored.id).await.expect("delete"));
    assert_eq!(before, schema().await, "the table is unchanged");
    store.close().await;
    remove_sqlite(&path);
}
