//! End to end through the HTTP API: login and sessions, checkout, N
//! concurrent checkouts of the last copy (exactly one wins), cache
//! invalidation visible after a product change, tenants, the dashboard's
//! JSON and Prometheus endpoints. Once on the embedded defaults, once on
//! PostgreSQL + MongoDB + Redis.

mod common;

use std::time::Duration;

use hyper::StatusCode;
use persistence_bookstore::AppConfig;
use persistence_bookstore::client::Client;
use persistence_bookstore::seed::{LAST_COPY, STOCK};
use serde_json::{Value, json};

/// Concurrent buyers of the last copy.
const BUYERS: usize = 8;

async fn scenario(config: AppConfig) {
    let on_postgres = config.database_url.is_some();
    let on_mongo = config.mongodb_url.is_some();
    let running = common::start(config).await;
    let addr = running.addr;

    // What it chose, said by the API.
    let mut anon = Client::new(addr).expect("loopback");
    let about = anon.get("/api/about").await.expect("about");
    assert_eq!(about.status, StatusCode::OK);
    let choices = about.json()["choices"].to_string();
    assert!(
        choices.contains(if on_postgres { "PostgreSQL" } else { "SQLite" }),
        "{choices}"
    );
    assert!(!choices.contains("://"), "no URL in the answer: {choices}");

    // Sessions.
    let bad = anon
        .post(
            "/api/login",
            &json!({"email": "reader0@example.com", "password": "nope"}),
        )
        .await
        .expect("login");
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let unauth = anon
        .post(
            "/api/checkout",
            &json!({"items": [{"sku": "BK-0001", "qty": 1}]}),
        )
        .await
        .expect("checkout");
    assert_eq!(unauth.status, StatusCode::UNAUTHORIZED);
    let mut alice = common::customer(addr, 0).await;
    let me = alice.get("/api/me").await.expect("me");
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["email"], "reader0@example.com");

    // A checkout: the order is written and the stock goes down, in one transaction.
    let before = alice
        .get("/api/products/BK-0001")
        .await
        .expect("product")
        .json();
    assert_eq!(before["stock"], STOCK);
    let price = before["price_cents"].as_i64().expect("price");
    let order = alice
        .post(
            "/api/checkout",
            &json!({"items": [{"sku": "BK-0001", "qty": 2}]}),
        )
        .await
        .expect("checkout");
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.text());
    let order = order.json();
    assert_eq!(order["total_cents"], price * 2);
    let after = alice
        .get("/api/products/BK-0001")
        .await
        .expect("product")
        .json();
    assert_eq!(after["stock"], STOCK - 2);
    let orders = alice.get("/api/orders").await.expect("orders").json();
    assert_eq!(orders["orders"].as_array().map(Vec::len), Some(1));
    assert_eq!(orders["orders"][0]["id"], order["id"]);
    let too_many = alice
        .post(
            "/api/checkout",
            &json!({"items": [{"sku": "BK-0001", "qty": 0}]}),
        )
        .await
        .expect("checkout");
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);

    // N buyers, one copy: exactly one checkout succeeds, the rest get 409.
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        buyers.push(common::customer(addr, i + 1).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(BUYERS));
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|mut c| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let r = c
                    .post(
                        "/api/checkout",
                        &json!({"items": [{"sku": LAST_COPY, "qty": 1}]}),
                    )
                    .await
                    .expect("checkout answered");
                (r.status, r.text(), c)
            })
        })
        .collect();
    let mut won = 0;
    let mut buyers = Vec::new();
    for t in tasks {
        let (status, body, c) = t.await.expect("buyer task");
        match status {
            StatusCode::CREATED => won += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {body}"),
        }
        buyers.push(c);
    }
    assert_eq!(won, 1, "exactly one buyer gets the last copy");
    let last = anon
        .get(&format!("/api/products/{LAST_COPY}"))
        .await
        .expect("product")
        .json();
    assert_eq!(last["stock"], 0);
    let mut orders_of_last = 0;
    for c in &mut buyers {
        let o = c.get("/api/orders").await.expect("orders").json();
        orders_of_last += o["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .filter(|o| o["lines"][0]["sku"] == LAST_COPY)
            .count();
    }
    assert_eq!(orders_of_last, 1, "one order for the last copy");

    // Read-through cache: the product and the catalog list are cached ...
    let p1 = anon.get("/api/products/BK-0003").await.expect("get").json();
    let p2 = anon.get("/api/products/BK-0003").await.expect("get").json();
    assert_eq!(p1, p2);
    let list = anon
        .get("/api/products?category=fiction&limit=50")
        .await
        .expect("list")
        .json();
    let listed_price = |list: &Value| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["sku"] == "BK-0003")
            .map(|p| p["price_cents"].clone())
    };
    assert_eq!(listed_price(&list), Some(p1["price_cents"].clone()));
    // ... and a change is visible at once in both (entry and tag invalidated).
    let new_price = p1["price_cents"].as_i64().expect("price") + 111;
    let put = anon
        .put("/api/products/BK-0003", &json!({"price_cents": new_price}))
        .await
        .expect("put");
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let p3 = anon.get("/api/products/BK-0003").await.expect("get").json();
    assert_eq!(p3["price_cents"], new_price);
    let list = anon
        .get("/api/products?category=fiction&limit=50")
        .await
        .expect("list")
        .json();
    assert_eq!(listed_price(&list), Some(json!(new_price)));
    // The aggregation is cached under the same tag: a review moves the top of its category.
    let top = anon.get("/api/top-rated").await.expect("top").json();
    let computed_by = top["computed_by"].as_str().expect("computed_by");
    assert!(
        computed_by.contains(if on_mongo { "mongodb" } else { "application" }),
        "{computed_by}"
    );
    let top_of = |top: &Value, cat: &str| {
        top["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .find(|c| c["category"] == cat)
            .map(|c| c["sku"].clone())
    };
    assert_ne!(top_of(&top, "children"), Some(json!("BK-0001")));
    let review = alice
        .post(
            "/api/products/BK-0001/reviews",
            &json!({"rating": 5, "text": "Wonderful."}),
        )
        .await
        .expect("review");
    assert_eq!(review.status, StatusCode::CREATED, "{}", review.text());
    let top = anon.get("/api/top-rated").await.expect("top").json();
    assert_eq!(top_of(&top, "children"), Some(json!("BK-0001")), "{top}");

    // Demo shops: a schema each on PostgreSQL, 501 with the reason on SQLite.
    let shops = anon.get("/api/shops").await.expect("shops").json();
    let north = anon.get("/api/shops/north/items").await.expect("items");
    if on_postgres {
        assert_eq!(shops["shops"].as_array().map(Vec::len), Some(2), "{shops}");
        assert_eq!(north.status, StatusCode::OK);
        let south = anon
            .get("/api/shops/south/items")
            .await
            .expect("items")
            .json();
        let n0 = &north.json()["items"][0];
        let s0 = &south["items"][0];
        assert_eq!(n0["sku"], s0["sku"]);
        assert_eq!(
            s0["price_cents"].as_i64().expect("price"),
            n0["price_cents"].as_i64().expect("price") * 9 / 10
        );
        let unknown = anon.get("/api/shops/nowhere/items").await.expect("items");
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    } else {
        assert_eq!(shops["mode"], "unavailable");
        assert_eq!(north.status, StatusCode::NOT_IMPLEMENTED);
        assert!(north.text().contains("PostgreSQL"), "{}", north.text());
    }

    // Logout ends the session.
    let out = alice.post("/api/logout", &json!({})).await.expect("logout");
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        alice.get("/api/me").await.expect("me").status,
        StatusCode::UNAUTHORIZED
    );

    // The dashboard saw all of it (bounded wait for the next snapshot).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let snap = anon
            .get("/dashboard/api/snapshot")
            .await
            .expect("snapshot")
            .json();
        let db = |name: &str| {
            snap["databases"]
                .as_array()
                .expect("databases")
                .iter()
                .find(|d| d["name"] == name)
                .cloned()
                .expect("database in snapshot")
        };
        let (main, catalog) = (db("main"), db("catalog"));
        let l1_hits = catalog["cache"]
            .as_array()
            .expect("cache")
            .iter()
            .find(|c| c["level"] == "l1")
            .and_then(|c| c["hits"].as_u64())
            .unwrap_or(0);
        if main["ops_total"].as_u64().unwrap_or(0) > 0
            && catalog["ops_total"].as_u64().unwrap_or(0) > 0
            && l1_hits > 0
        {
            assert_eq!(main["health"]["state"], "healthy", "{main}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard never showed the traffic: {snap}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = anon.get("/metrics").await.expect("metrics").text();
    assert!(
        metrics.contains("persistence_operations_total{db=\"main\",entity=\"bs_orders\",op=\"insert\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("postgres://") && !metrics.contains("reader0@"));

    common::finish(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_defaults_end_to_end() {
    scenario(common::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_services_end_to_end() {
    let Some(config) = common::services() else {
        return;
    };
    scenario(config).await;
}
