//! Eager loading on PostgreSQL and SQLite counted at the driver (issue 16):
//! every statement sea-orm executes goes through the connection's metric
//! callback, so the count below is what the server received, not what the
//! repository was asked. Loading orders with their customer and lines
//! costs one statement per level whatever the number of rows (10 or 1,000),
//! and each level is one batched `= ANY($1)` (PostgreSQL) / `IN (SELECT
//! value FROM json_each(?))` (SQLite) with the keys bound as one parameter.
use std::sync::{Arc, Mutex};

use persistence_core::conformance::entities::{RelCustomer, RelLine, RelOrder};
use persistence_core::relation::LoadExt as _;
use persistence_core::{Query, Repository};
use persistence_postgres::RelationalStore;
use persistence_postgres::sea_orm::{ConnectOptions, Database};
use persistence_testing::{TestPostgres, TestSqlite};

/// The SQL of every statement run on the connection, in order.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

impl Statements {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("statements"))
    }
}

/// A store on `url` whose statements are recorded in the returned list.
async fn counted_store(url: &str, schema: Option<String>) -> (RelationalStore, Statements) {
    let statements = Statements::default();
    let mut options = ConnectOptions::new(url.to_string());
    options.max_connections(4);
    let mut db = Database::connect(options).await.expect("connect");
    let seen = statements.clone();
    db.set_metric_callback(move |info| {
        seen.0
            .lock()
            .expect("statements")
            .push(info.statement.sql.clone())
    });
    let store = RelationalStore::from_connection(db, schema).expect("store");
    (store, statements)
}

/// 101 customers, 1,000 orders, two lines per order; then `find_with` of 10
/// and of 1,000 orders with customer and lines, counting statements.
async fn constant_statements(store: &RelationalStore, statements: &Statements, batched: &str) {
    let customers = store.repository::<RelCustomer>();
    let orders = store.repository::<RelOrder>();
    let lines = store.repository::<RelLine>();
    customers.ensure_schema().await.expect("ensure_schema");
    orders.ensure_schema().await.expect("ensure_schema");
    lines.ensure_schema().await.expect("ensure_schema");
    let cs: Vec<RelCustomer> = (1..=101)
        .map(|id| RelCustomer {
            id,
            name: format!("c{id}"),
        })
        .collect();
    customers.insert_many(&cs).await.expect("insert_many");
    let os: Vec<RelOrder> = (1..=1000)
        .map(|id| RelOrder {
            id,
            customer_id: 1 + id % 101,
            note: format!("o{id}"),
        })
        .collect();
    orders.insert_many(&os).await.expect("insert_many");
    let ls: Vec<RelLine> = (0..2000)
        .map(|n| RelLine {
            id: n + 1,
            order_id: 1 + n % 1000,
            qty: n,
        })
        .collect();
    lines.insert_many(&ls).await.expect("insert_many");

    for limit in [10_u64, 1000] {
        statements.take();
        let got = orders
            .find_with(
                &Query::all().limit(limit),
                (RelOrder::CUSTOMER, RelOrder::LINES),
                store,
            )
            .await
            .expect("find_with");
        let run = statements.take();
        assert_eq!(got.len() as u64, limit);
        for w in &got {
            assert_eq!(w.related.0.id, w.customer_id, "customer of order {}", w.id);
            assert_eq!(w.related.1.len(), 2, "lines of order {}", w.id);
            assert!(w.related.1.iter().all(|l| l.order_id == w.id));
        }
        assert_eq!(
            run.len(),
            3,
            "{limit} orders: the orders, then one batched query per relation: {run:#?}"
        );
        assert!(
            run.iter().all(|s| s.trim_start().starts_with("SELECT")),
            "{run:#?}"
        );
        let in_lists = run.iter().filter(|s| s.contains(batched)).count();
        assert_eq!(
            in_lists, 2,
            "both relations batched with {batched}: {run:#?}"
        );
    }
}

#[tokio::test]
async fn find_with_runs_three_statements_on_postgres() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    let (store, statements) = counted_store(pg.url(), pg.schema_name().map(str::to_string)).await;
    constant_statements(&store, &statements, "= ANY(").await;
    store.close().await;
}

#[tokio::test]
async fn find_with_runs_three_statements_on_sqlite() {
    let db = TestSqlite::new();
    let (store, statements) = counted_store(&db.url(), None).await;
    constant_statements(&store, &statements, "json_each(").await;
    store.close().await;
}
