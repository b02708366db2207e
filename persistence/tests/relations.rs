//! Relations across stores through the manager (issue #16 item 3): orders,
//! customers and order lines in PostgreSQL, reviews of orders in MongoDB,
//! loaded with `find_with` through the manager's repositories (layers and
//! cache), cached and uncached. Each relation level is one batched `find`
//! on the store holding it, counted by the manager's `Metrics` layer
//! (`persistence_operations_total{db, entity, op="find"}`); the cache
//! answers repeated loads without any. Also: a dangling reference across
//! stores (skipped by `has_many`, reported by `belongs_to`, never a panic)
//! and the refusal of a `cascade` across stores.
use std::sync::OnceLock;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::conformance::services::unique_suffix;
use persistence::layer::metrics::names;
use persistence::{ConflictKind, Entity, ErrorKind, LoadExt, Persistence, Query, Repository, With};
use persistence_testing::{TestMongo, TestPostgres};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "xs_customers", has_many(Order, key = customer_id))]
struct Customer {
    #[entity(id)]
    id: i64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "xs_orders",
    belongs_to(Customer, key = customer_id, on_delete = cascade),
    has_many(OrderLine, key = order_id, name = "lines"),
    has_many(Review, key = order_id)
)]
struct Order {
    #[entity(id)]
    id: i64,
    customer_id: i64,
    total: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "xs_order_lines",
    belongs_to(Order, key = order_id, on_delete = cascade)
)]
struct OrderLine {
    #[entity(id)]
    id: i64,
    order_id: i64,
    qty: i64,
}

/// In MongoDB; its order is in PostgreSQL (restrict: the only `on_delete`
/// allowed across stores, and not enforced there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "xs_reviews", belongs_to(Order, key = order_id))]
struct Review {
    #[entity(id)]
    id: i64,
    order_id: i64,
    stars: i32,
}

/// A `cascade` to a parent in another store: refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "xs_bad_notes",
    belongs_to(Order, key = order_id, on_delete = cascade)
)]
struct BadNote {
    #[entity(id)]
    id: i64,
    order_id: i64,
}

/// The parent side of a `cascade` whose child is placed in another store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "xs_shelves", has_many(Tag, key = shelf_id))]
struct Shelf {
    #[entity(id)]
    id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "xs_tags", belongs_to(Shelf, key = shelf_id, on_delete = cascade))]
struct Tag {
    #[entity(id)]
    id: i64,
    shelf_id: i64,
}

// ---------------------------------------------------------------- counting

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let s = recorder.snapshotter();
        recorder.install().expect("metrics recorder");
        s
    })
}

/// `find` operations so far on database `db`, entity `entity` (every
/// outcome), as the manager's `Metrics` layer counted them.
fn finds(db: &str, entity: &str) -> u64 {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| {
            let k = key.key();
            k.name() == names::OPERATIONS
                && [
                    (names::LABEL_DB, db),
                    (names::LABEL_ENTITY, entity),
                    (names::LABEL_OP, "find"),
                ]
                .iter()
                .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv))
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum()
}

/// The `find` counts of the four entities, in the order customers, orders,
/// lines (all on `sql`), reviews (on `docs`).
fn counts(sql: &str, docs: &str) -> [u64; 4] {
    [
        finds(sql, "xs_customers"),
        finds(sql, "xs_orders"),
        finds(sql, "xs_order_lines"),
        finds(docs, "xs_reviews"),
    ]
}

fn delta(after: [u64; 4], before: [u64; 4]) -> [u64; 4] {
    std::array::from_fn(|i| after[i] - before[i])
}

// ---------------------------------------------------------------- setup

/// An order with its customer, lines and reviews.
type Loaded = With<Order, (Customer, Vec<OrderLine>, Vec<Review>)>;

struct Stores {
    db: Persistence,
    sql: String,
    docs: String,
    _pg: TestPostgres,
    _mongo: TestMongo,
}

/// A manager over an own PostgreSQL schema (`sql_<n>`) and an own MongoDB
/// database (`docs_<n>`), with or without the cache, every entity placed
/// with `Persistence::place`.
async fn stores(cached: bool) -> Option<Stores> {
    stores_placed(cached, false).await
}

/// [`stores`], the entities placed by `place` or, with `in_yaml`, by the
/// databases' `entities` lists.
async fn stores_placed(cached: bool, in_yaml: bool) -> Option<Stores> {
    snapshotter();
    let pg = TestPostgres::schema().await?;
    let mongo = TestMongo::database().await?;
    let n = unique_suffix();
    let (sql, docs) = (format!("sql_{n}"), format!("docs_{n}"));
    let cache = if cached {
        "cache:\n  default: { ttl: 60s }\n"
    } else {
        "cache:\n  default: { disabled: true }\n"
    };
    let (sql_entities, docs_entities) = if in_yaml {
        (
            ", entities: [xs_customers, xs_orders, xs_order_lines]",
            ", entities: [xs_reviews]",
        )
    } else {
        ("", "")
    };
    let yaml = format!(
        "databases:\n  {sql}: {{ kind: postgres, url: \"{}\", schema: {}{sql_entities} }}\n  \
         {docs}: {{ kind: mongo, url: \"{}\", database: {}{docs_entities} }}\n{cache}",
        pg.url(),
        pg.name(),
        mongo.url(),
        mongo.name()
    );
    let config: PersistenceConfig = ConfigLoader::new()
        .text("persistence.yaml", &yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    let db = Persistence::new(config).expect("manager");
    if !in_yaml {
        db.place::<Customer>(&sql).await.expect("place");
        db.place::<Order>(&sql).await.expect("place");
        db.place::<OrderLine>(&sql).await.expect("place");
        db.place::<Review>(&docs).await.expect("place");
    }
    Some(Stores {
        db,
        sql,
        docs,
        _pg: pg,
        _mongo: mongo,
    })
}

/// 4 customers, 20 orders (5 each), 2 lines per order, a review of every
/// other order.
async fn seed(db: &Persistence) {
    let customers = db.repo::<Customer>().await.expect("customers");
    let orders = db.repo::<Order>().await.expect("orders");
    let lines = db.repo::<OrderLine>().await.expect("lines");
    let reviews = db.repo::<Review>().await.expect("reviews");
    for c in 1..=4 {
        customers
            .insert(&Customer {
                id: c,
                name: format!("c{c}"),
            })
            .await
            .expect("customer");
    }
    let all: Vec<Order> = (1..=20)
        .map(|o| Order {
            id: o,
            customer_id: (o - 1) % 4 + 1,
            total: o * 10,
        })
        .collect();
    orders.insert_many(&all).await.expect("orders");
    let all_lines: Vec<OrderLine> = (1..=20)
        .flat_map(|o| {
            [0, 1].map(|i| OrderLine {
                id: o * 10 + i,
                order_id: o,
                qty: i + 1,
            })
        })
        .collect();
    lines.insert_many(&all_lines).await.expect("lines");
    // Inserted in MongoDB: the parent check of a cross-store relation is not
    // made (the order is in PostgreSQL), and nothing fails.
    let all_reviews: Vec<Review> = (1..=20)
        .filter(|o| o % 2 == 0)
        .map(|o| Review {
            id: o * 100,
            order_id: o,
            stars: (o % 5 + 1) as i32,
        })
        .collect();
    reviews.insert_many(&all_reviews).await.expect("reviews");
}

/// What per-row loading gives: each order's customer, lines and reviews,
/// one `get` / `find` per row.
async fn per_row(
    db: &Persistence,
    orders: &[Order],
) -> Vec<(Customer, Vec<OrderLine>, Vec<Review>)> {
    let customers = db.repo::<Customer>().await.expect("customers");
    let lines = db.repo::<OrderLine>().await.expect("lines");
    let reviews = db.repo::<Review>().await.expect("reviews");
    let mut out = Vec::new();
    for o in orders {
        let c = customers
            .get(&o.customer_id)
            .await
            .expect("get")
            .expect("customer");
        let l = lines
            .find(&Query::filter(OrderLine::ORDER_ID.eq(o.id)).sort(OrderLine::ID.asc()))
            .await
            .expect("lines");
        let r = reviews
            .find(&Query::filter(Review::ORDER_ID.eq(o.id)).sort(Review::ID.asc()))
            .await
            .expect("reviews");
        out.push((c, l, r));
    }
    out
}

async fn cross_store_loads(cached: bool) {
    let Some(s) = stores(cached).await else {
        return;
    };
    let db = &s.db;
    assert_eq!(db.database_of::<Review>().expect("home"), s.docs);
    assert_eq!(db.database_of::<Order>().expect("home"), s.sql);
    seed(db).await;
    let orders = db.repo::<Order>().await.expect("orders");
    let q = Query::all().sort(Order::ID.asc());

    // One level: one batched find per relation, each on its own store.
    let before = counts(&s.sql, &s.docs);
    let rows: Vec<Loaded> = orders
        .find_with(&q, (Order::CUSTOMER, Order::LINES, Order::REVIEWS), db)
        .await
        .expect("find_with");
    assert_eq!(delta(counts(&s.sql, &s.docs), before), [1, 1, 1, 1]);
    assert_eq!(rows.len(), 20);
    let plain: Vec<Order> = rows.iter().map(|w| w.entity.clone()).collect();
    let expected = per_row(db, &plain).await;
    for (w, (c, l, r)) in rows.iter().zip(&expected) {
        assert_eq!(&w.related.0, c, "customer of order {}", w.id);
        assert_eq!(&w.related.1, l, "lines of order {}", w.id);
        assert_eq!(&w.related.2, r, "reviews of order {}", w.id);
        assert_eq!(w.related.2.len(), usize::from(w.id % 2 == 0));
    }

    // Two levels deep, both stores: customers → orders → (lines, reviews).
    let customers = db.repo::<Customer>().await.expect("customers");
    let before = counts(&s.sql, &s.docs);
    let deep = customers
        .find_with(
            &Query::all().sort(Customer::ID.asc()),
            Customer::ORDERS.then((Order::LINES, Order::REVIEWS)),
            db,
        )
        .await
        .expect("deep");
    let got = delta(counts(&s.sql, &s.docs), before);
    if cached {
        // Customers and the orders by customer id are new queries (one find
        // each); lines and reviews are asked for by the same 20 order ids as
        // above: the cache answers, neither store sees them.
        assert_eq!(got, [1, 1, 0, 0], "cached: only new queries reach a store");
    } else {
        assert_eq!(got, [1, 1, 1, 1], "one batched find per level per store");
    }
    assert_eq!(deep.len(), 4);
    for c in &deep {
        assert_eq!(c.related.len(), 5, "orders of customer {}", c.id);
        for o in &c.related {
            assert_eq!(o.customer_id, c.id);
            let i = plain.iter().position(|p| p.id == o.id).expect("order");
            assert_eq!(o.related.0, expected[i].1);
            assert_eq!(o.related.1, expected[i].2);
        }
    }

    // The same load again: through the cache, no store sees it.
    let before = counts(&s.sql, &s.docs);
    let again = orders
        .find_with(&q, (Order::CUSTOMER, Order::LINES, Order::REVIEWS), db)
        .await
        .expect("again");
    assert_eq!(again, rows);
    let got = delta(counts(&s.sql, &s.docs), before);
    assert_eq!(got, if cached { [0; 4] } else { [1; 4] });

    // A new review through the manager's repository: its cached queries go,
    // the next load sees it (one find on MongoDB only when cached).
    let reviews = db.repo::<Review>().await.expect("reviews");
    reviews
        .insert(&Review {
            id: 1,
            order_id: 1,
            stars: 5,
        })
        .await
        .expect("review");
    let before = counts(&s.sql, &s.docs);
    let fresh = orders
        .find_with(&q, (Order::CUSTOMER, Order::LINES, Order::REVIEWS), db)
        .await
        .expect("fresh");
    let got = delta(counts(&s.sql, &s.docs), before);
    assert_eq!(got, if cached { [0, 0, 0, 1] } else { [1; 4] });
    assert_eq!(fresh[0].related.2.len(), 1, "the new review of order 1");

    // The same rows by stream_with and page_with.
    let streamed: Vec<_> = futures_util::TryStreamExt::try_collect(orders.stream_with(
        &q,
        (Order::CUSTOMER, Order::LINES, Order::REVIEWS),
        db,
    ))
    .await
    .expect("stream_with");
    assert_eq!(streamed, fresh);
    let page = orders
        .page_with(&q.clone().limit(7), None, Order::REVIEWS, db)
        .await
        .expect("page_with");
    assert_eq!(page.items.len(), 7);
    assert_eq!(page.items[0].related, fresh[0].related.2);
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_in_postgres_reviews_in_mongo_uncached() {
    cross_store_loads(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_in_postgres_reviews_in_mongo_cached() {
    cross_store_loads(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_cross_store_reference_is_skipped_or_reported() {
    let Some(s) = stores(false).await else {
        return;
    };
    let db = &s.db;
    seed(db).await;
    let orders = db.repo::<Order>().await.expect("orders");
    let reviews = db.repo::<Review>().await.expect("reviews");
    // A review of an order that does not exist: MongoDB cannot check a
    // PostgreSQL row, so the write is accepted.
    reviews
        .insert(&Review {
            id: 999_999,
            order_id: 999,
            stars: 1,
        })
        .await
        .expect("dangling review");
    // Deleting an order in PostgreSQL leaves its review in MongoDB (restrict
    // is not enforced across stores): one more dangling reference.
    orders.delete(&2).await.expect("delete order 2");
    assert!(reviews.get(&200).await.expect("get").is_some());

    // has_many: the dangling reviews belong to no loaded order; skipped.
    let rows = orders
        .find_with(&Query::all().sort(Order::ID.asc()), Order::REVIEWS, db)
        .await
        .expect("has_many");
    assert_eq!(rows.len(), 19);
    let loaded: usize = rows.iter().map(|r| r.related.len()).sum();
    assert_eq!(loaded, 9, "the 9 reviews of existing orders");

    // belongs_to with a required key: reported as MissingParent naming the
    // relation, never a panic.
    let err = reviews
        .find_with(&Query::all(), Review::ORDER, db)
        .await
        .expect_err("dangling parent");
    match err.kind() {
        ErrorKind::Conflict(ConflictKind::MissingParent { relation }) => {
            assert_eq!(relation, "xs_reviews.order");
        }
        other => panic!("expected MissingParent, got {other:?}: {err}"),
    }
    // Without the dangling rows the same load works.
    let ok = reviews
        .find_with(
            &Query::filter(Review::ORDER_ID.lte(20).and(Review::ORDER_ID.ne(2))),
            Review::ORDER,
            db,
        )
        .await
        .expect("belongs_to");
    assert_eq!(ok.len(), 9);
    assert!(ok.iter().all(|r| r.related.id == r.order_id));
    db.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_across_stores_is_refused() {
    let Some(s) = stores(true).await else {
        return;
    };
    let db = &s.db;
    db.place::<BadNote>(&s.docs).await.expect("place");
    db.place::<Tag>(&s.docs).await.expect("place");
    db.place::<Shelf>(&s.sql).await.expect("place");
    // The child's side.
    let err = db
        .repo::<BadNote>()
        .await
        .expect_err("cascade across stores");
    assert!(matches!(err.kind(), ErrorKind::Config), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("xs_bad_notes.order") && msg.contains("cascade"),
        "{msg}"
    );
    // The parent's side (its has_many names a cascade child placed elsewhere).
    let err = db.repo::<Shelf>().await.expect_err("parent side");
    assert!(matches!(err.kind(), ErrorKind::Config), "{err}");
    assert!(err.to_string().contains("xs_tags.shelf"), "{err}");
    // Placing after a repository was handed out is refused too.
    db.repo::<Order>().await.expect("orders");
    let err = db.place::<Customer>(&s.docs).await.expect_err("late place");
    assert!(matches!(err.kind(), ErrorKind::Config), "{err}");
    db.shutdown().await;
}

/// `databases.<name>.entities` places entities as `place` does: `repo`,
/// `database_of` and cross-store eager loading follow it, and a `place`
/// that contradicts it is refused (placing where the YAML already does is
/// accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_from_the_yaml_entities_lists() {
    let Some(s) = stores_placed(false, true).await else {
        return;
    };
    let db = &s.db;
    assert_eq!(db.database_of::<Review>().expect("home"), s.docs);
    assert_eq!(db.database_of::<Order>().expect("home"), s.sql);
    let err = db.place::<Review>(&s.sql).await.expect_err("contradicts");
    assert!(matches!(err.kind(), ErrorKind::Config), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("databases.{}.entities", s.docs)),
        "{err}"
    );
    db.place::<Review>(&s.docs).await.expect("same placement");
    seed(db).await;
    let orders = db.repo::<Order>().await.expect("orders");
    let before = counts(&s.sql, &s.docs);
    let rows: Vec<Loaded> = orders
        .find_with(
            &Query::all().sort(Order::ID.asc()),
            (Order::CUSTOMER, Order::LINES, Order::REVIEWS),
            db,
        )
        .await
        .expect("find_with");
    // One batched find per level, each on the store the YAML names (the
    // reviews in MongoDB, none of them in PostgreSQL).
    assert_eq!(delta(counts(&s.sql, &s.docs), before), [1, 1, 1, 1]);
    assert_eq!(finds(&s.sql, "xs_reviews"), 0);
    assert_eq!(rows.len(), 20);
    let plain: Vec<Order> = rows.iter().map(|w| w.entity.clone()).collect();
    let expected = per_row(db, &plain).await;
    for (w, (c, l, r)) in rows.iter().zip(&expected) {
        assert_eq!((&w.related.0, &w.related.1, &w.related.2), (c, l, r));
    }
    db.shutdown().await;
}

/// The `entities` key is checked when the configuration loads: an entity
/// lives in one database, a Redis database holds none, names are identifiers.
#[test]
fn entities_lists_are_validated() {
    let load = |yaml: &str| {
        ConfigLoader::new()
            .text("persistence.yaml", yaml)
            .env(Vec::new())
            .load()
    };
    let twice = load(
        "databases:\n  a: { kind: memory, entities: [notes] }\n  \
         b: { kind: memory, entities: [notes] }\n",
    )
    .expect_err("listed twice");
    assert!(matches!(twice.kind(), ErrorKind::Config), "{twice}");
    assert!(
        twice.to_string().contains("databases.a.entities")
            && twice.to_string().contains("databases.b.entities"),
        "{twice}"
    );
    let redis = load(
        "databases:\n  main: { kind: memory }\n  \
         cache: { kind: redis, url: \"redis://127.0.0.1:6379\", entities: [notes] }\n",
    )
    .expect_err("redis");
    assert!(
        redis.to_string().contains("databases.cache.entities"),
        "{redis}"
    );
    let bad = load("databases:\n  main: { kind: memory, entities: [\"no tes\"] }\n")
        .expect_err("identifier");
    assert!(
        bad.to_string().contains("databases.main.entities[0]"),
        "{bad}"
    );
    let dup = load("databases:\n  main: { kind: memory, entities: [notes, notes] }\n")
        .expect_err("duplicate");
    assert!(dup.to_string().contains("twice"), "{dup}");
    let ok = load("databases:\n  main: { kind: memory, entities: [notes] }\n").expect("valid");
    assert_eq!(ok.databases["main"].entities, ["notes"]);
}
