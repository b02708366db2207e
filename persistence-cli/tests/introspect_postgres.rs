//! Introspection → code and the drift check on PostgreSQL (issue 16,
//! items 5 and 6). The test creates its tables with psql-style DDL in a
//! schema of its own (bigserial ids, `varchar(200) UNIQUE`,
//! `numeric(12,2)`, `text[]`, `jsonb`, `timestamptz DEFAULT now()`, a
//! native enum, two foreign keys, a column of a type no field holds), then:
//!
//! 1. runs the real `persistence-cli introspect` binary and compares its
//!    output byte for byte with the checked-in `fixtures/shop_pg.rs`
//!    (`PERSISTENCE_BLESS=1` rewrites the fixture instead);
//! 2. compiles that same file as a module of this test (`#[path]` below),
//!    so the generated code is built by every `cargo test`, and reads the
//!    rows the DDL inserted back through the library, inserts (the server
//!    assigns id and timestamp), loads relations, updates and deletes;
//! 3. `verify`s the generated entities against the tables (no drift), then
//!    after an added column, a changed type, a dropped index and a dropped
//!    foreign key, gets each one as one line from `persistence-cli verify`.
//!
//! Nothing but the test's own schema is touched.

#[path = "fixtures/shop_pg.rs"]
mod shop;

use std::process::Command;

use chrono::{DateTime, Utc};
use persistence_cli::{Cli, Exit};
use persistence_core::{Entity, ErrorKind, Filter, LoadExt, Query, Repos, Repository, With};
use persistence_postgres::RelationalStore;
use persistence_postgres::sea_orm::ConnectionTrait;
use persistence_testing::TestPostgres;
use rust_decimal::Decimal;
use shop::{Customer, Order, OrderStatus};

/// `{s}` is the test's schema (quoted).
const DDL: &str = r#"
CREATE TYPE {s}.order_status AS ENUM ('pending', 'paid', 'shipped');
CREATE TABLE {s}.customers (
    id          bigserial PRIMARY KEY,
    email       varchar(200) NOT NULL UNIQUE,
    name        text NOT NULL,
    credit      numeric(12,2) NOT NULL DEFAULT 0,
    tags        text[] NOT NULL DEFAULT '{}',
    profile     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.orders (
    id           bigserial PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES {s}.customers (id) ON DELETE CASCADE,
    referrer_id  bigint REFERENCES {s}.customers (id),
    status       {s}.order_status NOT NULL DEFAULT 'pending',
    total        numeric(12,2) NOT NULL,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    note         text,
    client_ip    inet
);
CREATE INDEX orders_customer_idx ON {s}.orders (customer_id);
CREATE INDEX orders_referrer_idx ON {s}.orders (referrer_id);
CREATE INDEX orders_status_placed_idx ON {s}.orders (status, placed_at);
CREATE INDEX orders_lower_note_idx ON {s}.orders (lower(note));
INSERT INTO {s}.customers (email, name, credit, tags, profile, created_at) VALUES
    ('ada@example.com', 'Ada', 120.50, '{vip,early}', '{"city": "London"}', '2024-05-01 10:00:00+00'),
    ('bob@example.com', 'Bob', 0, '{}', NULL, '2024-05-02 11:30:00+00');
INSERT INTO {s}.orders (customer_id, referrer_id, status, total, placed_at, note, client_ip) VALUES
    (1, NULL, 'paid', 99.90, '2024-05-03 09:00:00+00', 'gift wrap', '10.0.0.1'),
    (1, 2, 'shipped', 15.00, '2024-05-04 09:00:00+00', NULL, NULL),
    (2, 1, 'pending', 7.25, '2024-05-05 09:00:00+00', NULL, '10.0.0.2');
"#;

const FIXTURE: &str = "tests/fixtures/shop_pg.rs";

fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

async fn setup() -> Option<(TestPostgres, RelationalStore)> {
    let pg = TestPostgres::schema().await?;
    let store = pg.store().await.expect("connect");
    let s = quoted(pg.schema_name().expect("schema"));
    exec(&store, &DDL.replace("{s}", &s)).await;
    Some((pg, store))
}

async fn exec(store: &RelationalStore, sql: &str) {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("timestamp")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

#[tokio::test]
async fn the_binary_prints_the_checked_in_fixture() {
    let Some((pg, store)) = setup().await else {
        return;
    };
    let output = Command::new(env!("CARGO_BIN_EXE_persistence-cli"))
        .args(["introspect", "--url", pg.url(), "--schema"])
        .arg(pg.schema_name().expect("schema"))
        .env_remove("DATABASE_URL")
        .output()
        .expect("run persistence-cli");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("PERSISTENCE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write fixture");
    }
    let fixture = std::fs::read_to_string(&path).expect("fixture");
    assert!(
        generated == fixture,
        "introspect output differs from {FIXTURE} (PERSISTENCE_BLESS=1 rewrites it):\n{generated}"
    );
    // `--table` picks tables; the relation to a table left out is a note.
    let mut out = Vec::new();
    Cli::new()
        .run(
            &[
                "introspect".into(),
                "--url".into(),
                pg.url().into(),
                "--schema".into(),
                pg.schema_name().expect("schema").into(),
                "--table".into(),
                "orders".into(),
            ],
            &mut out,
        )
        .await
        .expect("introspect one table");
    let one = String::from_utf8(out).expect("utf-8");
    assert!(!one.contains("pub struct Customer"), "{one}");
    assert!(
        one.contains(
            "// foreign key orders_customer_id_fkey (customer_id) -> customers (id) is not declared: \
             its table `customers` is not generated here (or is not an entity)"
        ),
        "{one}"
    );
    let e = Cli::new()
        .run(
            &[
                "introspect".into(),
                "--url".into(),
                pg.url().into(),
                "--schema".into(),
                pg.schema_name().expect("schema").into(),
                "--table".into(),
                "nope".into(),
            ],
            &mut Vec::new(),
        )
        .await
        .expect_err("unknown table");
    assert!(
        matches!(&e, Exit::Failed(m) if m.contains("no table `nope` in schema")),
        "{e}"
    );
    store.close().await;
    drop(pg);
}

#[tokio::test]
async fn the_generated_entities_round_trip_the_existing_rows() {
    let Some((pg, store)) = setup().await else {
        return;
    };
    let customers = store.repository::<Customer>();
    let orders = store.repository::<Order>();
    // As the manager does: `ensure_schema` (which never alters a table it
    // did not create) learns the native types (text[], the enum, numeric).
    customers.ensure_schema().await.expect("ensure customers");
    orders.ensure_schema().await.expect("ensure orders");
    let all = customers
        .find(&Query::all().sort(Customer::ID.asc()))
        .await
        .expect("read customers");
    assert_eq!(
        all,
        [
            Customer {
                id: 1,
                email: "ada@example.com".into(),
                name: "Ada".into(),
                credit: dec("120.50"),
                tags: vec!["vip".into(), "early".into()],
                profile: Some(serde_json::json!({ "city": "London" })),
                created_at: Some(at("2024-05-01T10:00:00Z")),
            },
            Customer {
                id: 2,
                email: "bob@example.com".into(),
                name: "Bob".into(),
                credit: dec("0.00"),
                tags: vec![],
                profile: None,
                created_at: Some(at("2024-05-02T11:30:00Z")),
            },
        ]
    );
    let paid = orders
        .find(&Query::filter(Order::STATUS.eq(OrderStatus::Shipped)))
        .await
        .expect("filter on the native enum");
    assert_eq!(paid.len(), 1);
    assert_eq!(
        (paid[0].id, paid[0].customer_id, paid[0].referrer_id),
        (2, 1, Some(2))
    );
    assert_eq!(paid[0].total, dec("15.00"));
    assert_eq!(paid[0].placed_at, Some(at("2024-05-04T09:00:00Z")));

    // Relations from the foreign keys, loaded in batches.
    let repos = Repos::new().with(customers.clone()).with(orders.clone());
    let rows: Vec<With<Order, (Customer, Option<Customer>)>> = orders
        .find_with(
            &Query::all().sort(Order::ID.asc()),
            (Order::CUSTOMER, Order::REFERRER_CUSTOMER),
            &repos,
        )
        .await
        .expect("find_with");
    let names: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.related.0.name.as_str(),
                r.related.1.as_ref().map(|c| c.name.as_str()),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("Ada", None), ("Ada", Some("Bob")), ("Bob", Some("Ada"))]
    );
    let ada_orders: Vec<With<Customer, Vec<Order>>> = customers
        .find_with(&Query::filter(Customer::ID.eq(1)), Customer::ORDERS, &repos)
        .await
        .expect("has_many");
    assert_eq!(ada_orders[0].related.len(), 2);

    // Insert: the database assigns the id and the timestamp.
    let new = orders
        .insert(&Order {
            id: 0,
            customer_id: 2,
            referrer_id: None,
            status: OrderStatus::Pending,
            total: dec("3.50"),
            placed_at: None,
            note: Some("by the library".into()),
        })
        .await
        .expect("insert");
    assert_eq!(new.id, 4, "bigserial assigned the next id");
    assert!(new.placed_at.is_some(), "DEFAULT now() returned");
    assert_eq!(orders.get(&4).await.expect("get"), Some(new.clone()));
    let mut paid_now = new.clone();
    paid_now.status = OrderStatus::Paid;
    orders.update(&paid_now).await.expect("update");
    assert_eq!(
        orders.get(&4).await.expect("get").map(|o| o.status),
        Some(OrderStatus::Paid)
    );
    // A missing parent is the typed conflict naming the relation.
    let orphan = Order {
        id: 0,
        customer_id: 99,
        ..new.clone()
    };
    // Their constraint is not named as the library names it, so the
    // violation stays `InvalidInput` naming their constraint.
    let e = orders.insert(&orphan).await.expect_err("no customer 99");
    assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("orders_customer_id_fkey"), "{e}");
    orders.delete(&4).await.expect("delete");
    assert_eq!(orders.count(&Filter::all()).await.expect("count"), 3);
    // The column the struct lacks kept its values.
    let ips = store
        .connection()
        .query_all_raw(persistence_postgres::sea_orm::Statement::from_string(
            store.connection().get_database_backend(),
            format!(
                "SELECT count(*)::bigint FROM {}.orders WHERE client_ip IS NOT NULL",
                quoted(pg.schema_name().expect("schema"))
            ),
        ))
        .await
        .expect("count ips");
    assert_eq!(ips[0].try_get_by_index::<i64>(0).expect("n"), 2);
    store.close().await;
    drop(pg);
}

/// `verify` through a CLI that knows the generated entities.
async fn verify(pg: &TestPostgres) -> (Result<(), Exit>, Vec<String>) {
    let cli = Cli::new().entity::<Customer>().entity::<Order>();
    let mut out = Vec::new();
    let result = cli
        .run(
            &[
                "verify".into(),
                "--url".into(),
                pg.url().into(),
                "--schema".into(),
                pg.schema_name().expect("schema").into(),
            ],
            &mut out,
        )
        .await;
    let t = format!("{}.", quoted(pg.schema_name().expect("schema")));
    let lines = String::from_utf8(out)
        .expect("utf-8")
        .replace(&t, "")
        .lines()
        .map(str::to_string)
        .collect();
    (result, lines)
}

#[tokio::test]
async fn verify_reports_each_drift_on_one_line() {
    let Some((pg, store)) = setup().await else {
        return;
    };
    let (result, lines) = verify(&pg).await;
    result.expect("the generated entities match the tables");
    assert_eq!(
        lines,
        [
            "\"customers\": schema matches entity `customers`",
            "info: extra column: \"orders\" column client_ip: expected nullable or with a default \
             (the entity never writes it), found inet",
        ]
    );
    let s = quoted(pg.schema_name().expect("schema"));
    exec(
        &store,
        &"ALTER TABLE {s}.customers ADD COLUMN loyalty integer NOT NULL DEFAULT 0;
          ALTER TABLE {s}.customers ALTER COLUMN loyalty DROP DEFAULT;
          ALTER TABLE {s}.orders ALTER COLUMN total TYPE text;
          DROP INDEX {s}.orders_status_placed_idx;
          ALTER TABLE {s}.orders DROP CONSTRAINT orders_referrer_id_fkey;
          ALTER TABLE {s}.orders DROP CONSTRAINT orders_customer_id_fkey,
              ADD FOREIGN KEY (customer_id) REFERENCES {s}.customers (id) ON DELETE RESTRICT;"
            .replace("{s}", &s),
    )
    .await;
    let (result, lines) = verify(&pg).await;
    assert!(
        matches!(&result, Err(Exit::Failed(m)) if m.contains("(5 error(s) or warning(s))")),
        "{result:?}"
    );
    assert_eq!(
        lines,
        [
            "error: extra column: \"customers\" column loyalty: expected nullable or with a default \
             (the entity never writes it), found integer NOT NULL",
            "error: type mismatch: \"orders\" column total: expected numeric, found text",
            "warning: missing index: \"orders\" ix_orders_status_placed_at: expected INDEX (status, placed_at), found none",
            "warning: foreign key differs: \"orders\" foreign key fk_orders_customer_id (orders.customer): \
             expected (customer_id) REFERENCES customers (id) ON DELETE CASCADE, \
             found (customer_id) REFERENCES customers (id) ON DELETE RESTRICT",
            "warning: missing foreign key: \"orders\" foreign key fk_orders_referrer_id (orders.referrer_customer): \
             expected (referrer_id) REFERENCES customers (id) ON DELETE RESTRICT, found none",
            "info: extra column: \"orders\" column client_ip: expected nullable or with a default \
             (the entity never writes it), found inet",
        ]
    );
    store.close().await;
    drop(pg);
}

#[tokio::test]
async fn the_bare_binary_knows_no_entities_to_verify() {
    let output = Command::new(env!("CARGO_BIN_EXE_persistence-cli"))
        .args(["verify", "--url", "postgres://127.0.0.1:1/none"])
        .output()
        .expect("run persistence-cli");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("knows no entities"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_persistence-cli"))
        .args(["introspect", "--bogus"])
        .output()
        .expect("run persistence-cli");
    assert_eq!(output.status.code(), Some(2));
}

/// The metadata the fixture declares, as the derive reads it: a changed
/// generator shows up here as well as in the byte comparison.
#[test]
fn the_fixture_declares_keys_uniques_indexes_and_relations() {
    let c = Customer::meta();
    assert_eq!(c.id_field().name, "id");
    let uniques: Vec<_> = c.uniques().map(|i| i.fields.clone()).collect();
    assert_eq!(uniques, [vec!["email"]]);
    let o = Order::meta();
    let idx: Vec<_> = o
        .indexes
        .iter()
        .map(|i| (i.fields.clone(), i.unique))
        .collect();
    assert!(
        idx.contains(&(vec!["status", "placed_at"], false)),
        "{idx:?}"
    );
    let rels: Vec<_> = o.belongs_to().map(|r| (r.key, r.on_delete.sql())).collect();
    assert_eq!(
        rels,
        [("customer_id", "CASCADE"), ("referrer_id", "RESTRICT")]
    );
}
