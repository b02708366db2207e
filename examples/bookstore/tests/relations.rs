//! The bookstore's relations (issue #16): an order's lines are rows of
//! their own (`Order::LINES`), a book's reviews are documents beside it
//! (`Product::REVIEWS`), and a customer's reviews are loaded across stores
//! (`Customer::REVIEWS`: customers in `main`, reviews in `catalog`). Once
//! on the embedded defaults (SQLite + memory), once on PostgreSQL +
//! MongoDB + Redis.

mod common;

use hyper::StatusCode;
use persistence::{Query, Repository};
use persistence_bookstore::AppConfig;
use persistence_bookstore::model::{Order, OrderLine, Review};
use persistence_bookstore::seed;
use serde_json::json;
use uuid::Uuid;

async fn scenario(config: AppConfig) {
    let running = common::start(config).await;
    let app = running.app.clone();
    let mut alice = common::customer(running.addr, 0).await;
    let me = alice.get("/api/me").await.expect("me").json();
    let alice_id: Uuid = serde_json::from_value(me["id"].clone()).expect("id");

    // Order → lines: a checkout of two books writes one order and two line rows.
    let placed = alice
        .post(
            "/api/checkout",
            &json!({"items": [{"sku": "BK-0002", "qty": 1}, {"sku": "BK-0003", "qty": 3}]}),
        )
        .await
        .expect("checkout");
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
    let placed = placed.json();
    let order_id: Uuid = serde_json::from_value(placed["id"].clone()).expect("order id");
    let orders = app.orders_of(alice_id).await.expect("orders_of");
    assert_eq!(orders.len(), 1);
    let lines = &orders[0].lines;
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.sku.as_str(), l.qty))
            .collect::<Vec<_>>(),
        [("BK-0002", 1), ("BK-0003", 3)]
    );
    assert!(lines.iter().all(|l| l.order_id == order_id));
    let total: i64 = lines.iter().map(|l| l.qty * l.price_cents).sum();
    assert_eq!(orders[0].order.total_cents, total);
    // The same through the API, and the rows are really rows.
    let listed = alice.get("/api/orders").await.expect("orders").json();
    assert_eq!(
        listed["orders"][0]["lines"].as_array().map(Vec::len),
        Some(2)
    );
    let rows = app
        .db
        .repo::<OrderLine>()
        .await
        .expect("lines")
        .find(&Query::filter(OrderLine::ORDER_ID.eq(order_id)))
        .await
        .expect("line rows");
    assert_eq!(rows.len(), 2);
    // Removing the order removes its lines (on_delete = cascade).
    app.db
        .repo::<Order>()
        .await
        .expect("orders")
        .delete(&order_id)
        .await
        .expect("delete order");
    let left = app
        .db
        .repo::<OrderLine>()
        .await
        .expect("lines")
        .count(&OrderLine::ORDER_ID.eq(order_id))
        .await
        .expect("count");
    assert_eq!(left, 0, "the lines went with their order");

    // Book → reviews: BK-0004 (seeded book 3) has 3 seeded reviews.
    let seeded: Vec<Review> = seed::reviews()
        .into_iter()
        .filter(|r| r.sku == "BK-0004")
        .collect();
    assert_eq!(seeded.len(), 3);
    let view = app
        .product("BK-0004")
        .await
        .expect("product")
        .expect("BK-0004");
    assert_eq!(view.reviews, seeded);
    assert_eq!(view.product.review_count, 3);

    // A review by alice: a row in `catalog` naming a customer in `main`.
    let r = alice
        .post(
            "/api/products/BK-0004/reviews",
            &json!({"rating": 5, "text": "Loved it."}),
        )
        .await
        .expect("review");
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["reviews"], 4);
    let view = alice
        .get("/api/products/BK-0004")
        .await
        .expect("product")
        .json();
    let reviews = view["reviews"].as_array().expect("reviews");
    assert_eq!(reviews.len(), 4, "{view}");
    assert_eq!(view["review_count"], 4);
    let mine: Vec<_> = reviews
        .iter()
        .filter(|r| r["customer_id"] == json!(alice_id))
        .collect();
    assert_eq!(mine.len(), 1, "{view}");
    assert_eq!(mine[0]["text"], "Loved it.");

    // Customer → reviews, across stores.
    let by = app
        .reviews_by(alice_id)
        .await
        .expect("reviews_by")
        .expect("alice");
    assert_eq!(by.customer.id, alice_id);
    assert_eq!(by.reviews.len(), 1);
    assert_eq!(by.reviews[0].sku, "BK-0004");
    let api = alice
        .get("/api/me/reviews")
        .await
        .expect("my reviews")
        .json();
    assert_eq!(api["reviews"].as_array().map(Vec::len), Some(1), "{api}");

    common::finish(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_defaults_relations() {
    scenario(common::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_services_relations() {
    let Some(config) = common::services() else {
        return;
    };
    scenario(config).await;
}
