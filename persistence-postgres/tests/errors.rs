//! Errors that explain themselves, on tables the library did not create
//! (PostgreSQL), and transport failures classified as `Unavailable`.
use std::time::Duration;

use persistence_core::layer::{BreakerConfig, BreakerState, CircuitBreaker, Layered};
use persistence_core::{ConflictKind, Entity, Error, ErrorKind, Repository, WriteOutcome};
use persistence_postgres::{RelationalConfig, RelationalStore};
use persistence_testing::TestPostgres;
use rust_decimal::Decimal;
use sea_orm::ConnectionTrait as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "customers")]
struct Customer {
    #[entity(id)]
    id: Uuid,
    email: String,
    balance: Decimal,
    #[entity(version)]
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "orders")]
struct Order {
    #[entity(id)]
    id: Uuid,
    customer: Uuid,
    note: Option<String>,
    #[entity(version)]
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "typed_rows")]
struct TypedRow {
    #[entity(id)]
    id: i64,
    age: i64,
}

fn customer(email: &str, balance: &str) -> Customer {
    Customer {
        id: Uuid::new_v4(),
        email: email.to_string(),
        balance: balance.parse().expect("decimal"),
        version: 0,
    }
}

/// The error's Display, checked for the words, the kind and that the
/// statement was not applied.
fn explained(e: &Error, kind: &ErrorKind, words: &[&str]) -> String {
    let shown = e.to_string();
    assert_eq!(e.kind(), kind, "{shown}");
    for w in words {
        assert!(shown.contains(w), "`{shown}` lacks `{w}`");
    }
    assert!(!shown.contains("database error"), "{shown}");
    assert_eq!(e.outcome(), WriteOutcome::NotApplied, "{shown}");
    assert!(
        std::error::Error::source(e).is_some(),
        "the driver error stays the source: {e:?}"
    );
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_conditions_columns_and_constraints() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    let store = pg.store().await.expect("connect");
    let s = pg.schema_name().expect("schema").to_string();
    // Tables created by plain SQL, constraints named the PostgreSQL way.
    for ddl in [
        format!(
            "CREATE TABLE \"{s}\".customers (id uuid CONSTRAINT customers_pkey PRIMARY KEY, \
             email varchar(200) NOT NULL CONSTRAINT customers_email_key UNIQUE, \
             balance numeric(12,2) NOT NULL CONSTRAINT customers_balance_check CHECK (balance >= 0), \
             version bigint NOT NULL)"
        ),
        format!(
            "CREATE TABLE \"{s}\".orders (id uuid PRIMARY KEY, customer uuid NOT NULL \
             CONSTRAINT orders_customer_fk REFERENCES \"{s}\".customers(id), note text NOT NULL, \
             version bigint NOT NULL)"
        ),
        format!("CREATE TABLE \"{s}\".typed_rows (id bigint PRIMARY KEY, age boolean)"),
        format!("INSERT INTO \"{s}\".typed_rows VALUES (1, true)"),
    ] {
        store
            .connection()
            .execute_unprepared(&ddl)
            .await
            .expect("plain SQL");
    }
    let customers = store.repository::<Customer>();
    let orders = store.repository::<Order>();
    let typed = store.repository::<TypedRow>();

    let alice = customers
        .insert(&customer("alice@example.com", "10.00"))
        .await
        .expect("insert");

    // The primary key is `customers_pkey`, not `pk_customers`: still a duplicate id.
    let e = customers.insert(&alice).await.expect_err("same id");
    explained(
        &e,
        &ErrorKind::Conflict(ConflictKind::DuplicateId),
        &[
            "customers.insert",
            "unique_violation (23505)",
            "`customers_pkey`",
        ],
    );
    // Looked up once: the second time is answered from the cache, the same way.
    let again = customers.insert(&alice).await.expect_err("same id");
    assert_eq!(
        again.kind(),
        &ErrorKind::Conflict(ConflictKind::DuplicateId)
    );

    let e = customers
        .insert(&customer("alice@example.com", "1"))
        .await
        .expect_err("same email");
    explained(
        &e,
        &ErrorKind::Conflict(ConflictKind::Unique {
            constraint: Some("customers_email_key".into()),
        }),
        &["unique_violation (23505) on constraint `customers_email_key`"],
    );

    let long = format!("{}@example.com", "x".repeat(200));
    let e = customers
        .insert(&customer(&long, "1"))
        .await
        .expect_err("too long");
    explained(
        &e,
        &ErrorKind::InvalidInput,
        &[
            "customers.insert",
            "string_data_right_truncation (22001) on column `email` (value longer than 200)",
        ],
    );

    let e = customers
        .insert(&customer("big@example.com", "100000000000"))
        .await
        .expect_err("out of range");
    explained(
        &e,
        &ErrorKind::InvalidInput,
        &["numeric_value_out_of_range (22003) on column `balance` (column type numeric(12,2))"],
    );

    let e = customers
        .insert(&customer("neg@example.com", "-1"))
        .await
        .expect_err("check");
    explained(
        &e,
        &ErrorKind::InvalidInput,
        &["check_violation (23514)", "`customers_balance_check`"],
    );

    let order = Order {
        id: Uuid::new_v4(),
        customer: Uuid::new_v4(),
        note: Some("n".into()),
        version: 0,
    };
    let e = orders.insert(&order).await.expect_err("no such customer");
    explained(
        &e,
        &ErrorKind::InvalidInput,
        &[
            "orders.insert",
            "foreign_key_violation (23503) on constraint `orders_customer_fk`",
            "the referenced row does not exist",
        ],
    );
    let placed = Order {
        customer: alice.id,
        ..order.clone()
    };
    orders.insert(&placed).await.expect("order");
    let e = customers.delete(&alice.id).await.expect_err("referenced");
    explained(
        &e,
        &ErrorKind::InvalidInput,
        &["customers.delete", "other rows still reference this row"],
    );

    let e = orders
        .insert(&Order {
            id: Uuid::new_v4(),
            customer: alice.id,
            note: None,
            version: 0,
        })
        .await
        .expect_err("not null");
    explained(
        &e,
        &ErrorKind::InvalidInput,
        &["not_null_violation (23502) on column `note`"],
    );

    let e = typed
        .insert(&TypedRow { id: 2, age: 3 })
        .await
        .expect_err("boolean column");
    explained(
        &e,
        &ErrorKind::Backend,
        &["typed_rows.insert", "datatype_mismatch (42804)", "\"age\""],
    );

    // A stored value that does not decode: the field, the entity and the operation.
    let e = typed.get(&1).await.expect_err("a boolean is not a number");
    let shown = explained(&e, &ErrorKind::Decode, &["typed_rows.get", "field `age`"]);
    assert!(!shown.contains("column 1"), "{shown}");
    let e = typed
        .find(&persistence_core::Query::all())
        .await
        .expect_err("find");
    explained(&e, &ErrorKind::Decode, &["typed_rows.find", "field `age`"]);

    store.close().await;
    pg.cleanup().await.expect("cleanup");
}

/// A listener that answers the SSLRequest of every connection with `0x00`
/// and closes it: what a TCP proxy or pooler in front of a restarting
/// server does.
async fn ssl_request_closer() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if sock.read_exact(&mut request).await.is_ok() {
                    let _ = sock.write_all(&[0u8]).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_during_the_ssl_request_is_unavailable() {
    let (port, task) = ssl_request_closer().await;
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app");

    // Connecting eagerly: nothing was sent, retryable, no password shown.
    let e = RelationalStore::connect(&RelationalConfig::new(url.clone()))
        .await
        .expect_err("peer closed");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.outcome(), WriteOutcome::NotApplied, "{e}");
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");

    // Lazily: the first operation meets it, and the breaker counts it.
    let mut config = RelationalConfig::new(url).acquire_timeout(Duration::from_secs(5));
    config.connect_lazy = true;
    let store = RelationalStore::connect(&config).await.expect("lazy pool");
    let breaker = CircuitBreaker::new(
        "ssl",
        BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        },
    );
    let repo = Layered::new(store.repository::<Customer>(), breaker.clone());
    let e = repo.get(&Uuid::new_v4()).await.expect_err("peer closed");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable(), "a read is retried: {e}");
    assert!(
        matches!(breaker.state(), BreakerState::Open { .. }),
        "the breaker counts it: {:?}",
        breaker.state()
    );
    let e = store
        .repository::<Customer>()
        .insert(&customer("x@example.com", "1"))
        .await
        .expect_err("peer closed");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e}");
    assert_eq!(
        e.outcome(),
        WriteOutcome::NotApplied,
        "the connection was never established: {e}"
    );
    store.close().await;
    task.abort();
}
