//! The search box: `/api/search` and `/search` answer matching books (the
//! catalog's text) and similar books (nearest embeddings in `main`) from
//! one `Persistence::search`, on embedded defaults and on the real services.

mod common;

use hyper::StatusCode;
use persistence_bookstore::AppConfig;
use persistence_bookstore::app::ProductPatch;
use persistence_bookstore::client::Client;

async fn scenario(config: AppConfig) {
    let running = common::start(config).await;
    let mut c = Client::new(running.addr).expect("loopback");

    let r = c.get("/api/search?q=golden").await.expect("search");
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let matches = v["matches"].as_array().expect("matches");
    // Seeded titles "The Golden <noun>": books 4, 12, 20, 28, 36.
    assert_eq!(matches.len(), 5, "{v}");
    assert!(
        matches
            .iter()
            .all(|m| m["title"].as_str().expect("title").contains("Golden")),
        "{v}"
    );
    let similar = v["similar"].as_array().expect("similar");
    assert_eq!(similar.len(), 5, "{v}");
    assert!(
        similar[0]["title"]
            .as_str()
            .expect("title")
            .contains("Golden"),
        "{v}"
    );
    for s in v["sources"].as_array().expect("sources") {
        assert_eq!(s[1], "ok", "{v}");
    }

    // A new title is searchable by its words, and its embedding follows.
    running
        .app
        .update_product(
            "BK-0001",
            &ProductPatch {
                title: Some("Quantum Zebra Stripes".into()),
                price_cents: None,
            },
        )
        .await
        .expect("update")
        .expect("the book exists");
    let v = c
        .get("/api/search?q=zebra%20QUANTUM")
        .await
        .expect("search")
        .json();
    assert_eq!(v["matches"][0]["sku"], "BK-0001", "{v}");
    assert_eq!(v["matches"].as_array().expect("matches").len(), 1, "{v}");
    assert_eq!(v["similar"][0]["sku"], "BK-0001", "{v}");

    // The page: a form, the answer, and the text escaped.
    let page = c.get("/search?q=golden").await.expect("page");
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("<form action=\"/search\""), "{html}");
    assert!(
        html.contains("id=\"matches\"") && html.contains("id=\"similar\""),
        "{html}"
    );
    assert!(html.contains("The Golden"), "{html}");
    let page = c.get("/search?q=%3Cscript%3Ex").await.expect("page").text();
    assert!(
        !page.contains("<script>") && page.contains("&lt;script&gt;x"),
        "{page}"
    );
    // An empty query is a client error on the API, just the box on the page.
    assert_eq!(
        c.get("/api/search?q=").await.expect("api").status,
        StatusCode::BAD_REQUEST
    );
    assert!(
        !c.get("/search")
            .await
            .expect("page")
            .text()
            .contains("id=\"matches\"")
    );

    common::finish(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_on_embedded_defaults() {
    scenario(common::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_on_the_real_services() {
    let Some(config) = common::services() else {
        return;
    };
    scenario(config).await;
}
