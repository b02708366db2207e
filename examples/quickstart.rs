//! Quickstart: derive entities, store them relationally and as documents,
//! read documents through the cache, query and page.
//!
//! `cargo run --example quickstart` runs on the embedded defaults: in-memory
//! SQLite for users, the in-memory document store for products, an
//! in-process (moka) cache. Set `DATABASE_URL` (PostgreSQL), `MONGODB_URL`
//! and/or `REDIS_URL` and the same code runs against those servers.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use persistence_cache::CacheLayer;
use persistence_core::{
    Entity, Error, MemoryRepository, Query, Repository, SharedRepository, StringField,
};
use persistence_mongo::{MongoConfig, MongoStore};
use persistence_postgres::{RelationalConfig, RelationalStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A nested value, stored as JSON (relational) or a sub-document (MongoDB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    city: String,
    bio: Option<String>,
}

/// A relational entity: a plain serde struct plus `#[derive(Entity)]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "qs_users")]
struct User {
    #[entity(id)]
    id: Uuid,
    #[entity(unique)]
    email: String,
    #[entity(index)]
    created_at: DateTime<Utc>,
    #[entity(version)]
    version: i64,
    name: Option<String>,
    tags: Vec<String>,
    profile: Profile,
}

/// A document entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "qs_products")]
struct Product {
    #[entity(id)]
    sku: String,
    title: String,
    #[entity(index)]
    category: String,
    price_cents: i64,
    attributes: std::collections::BTreeMap<String, String>,
    #[entity(version)]
    version: i64,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // --- Relational: PostgreSQL when DATABASE_URL is set, else in-memory SQLite.
    let relational = RelationalConfig::from_env();
    let store = RelationalStore::connect(&relational).await?;
    println!(
        "users    -> {:?} ({})",
        store.dialect(),
        why("DATABASE_URL")
    );
    let users = store.repository::<User>();
    users.ensure_schema().await?;
    // Leave no rows behind on a shared server: this demo owns its table's rows.
    users.delete_many(&persistence_core::Filter::all()).await?;

    // --- Documents: MongoDB when MONGODB_URL is set, else the memory store.
    // Both are wired as the same object-safe type.
    let products: SharedRepository<Product> = match std::env::var("MONGODB_URL") {
        Ok(_) => {
            let mongo =
                MongoStore::connect(&MongoConfig::from_env("persistence_quickstart")).await?;
            Arc::new(mongo.repository::<Product>())
        }
        Err(_) => Arc::new(MemoryRepository::<Product>::new()),
    };
    println!(
        "products -> {} ({})",
        products.capabilities().backend,
        why("MONGODB_URL")
    );
    products.ensure_schema().await?;

    // --- Cache: in-process L1 always, Redis L2 when REDIS_URL is set.
    let mut cache = CacheLayer::builder()
        .prefix("quickstart")
        .ttl(Duration::from_secs(60));
    if let Ok(url) = std::env::var("REDIS_URL") {
        cache = cache.redis_url(url);
    }
    println!(
        "cache    -> L1 (moka){} ({})",
        if std::env::var("REDIS_URL").is_ok() {
            " + L2 (Redis)"
        } else {
            ""
        },
        why("REDIS_URL")
    );
    let products = cache.build()?.wrap(products);

    // Insert users in one batch.
    let t0 = Utc::now();
    let people: Vec<User> = (0..50)
        .map(|i| User {
            id: Uuid::now_v7(),
            email: format!("user{i}@example.com"),
            created_at: t0 + chrono::Duration::seconds(i),
            version: 0,
            name: (i % 3 != 0).then(|| format!("User {i}")),
            tags: vec![if i % 2 == 0 { "even" } else { "odd" }.to_string()],
            profile: Profile {
                city: ["Oslo", "Lima", "Pune"][i as usize % 3].into(),
                bio: None,
            },
        })
        .collect();
    println!("inserted {} users", users.insert_many(&people).await?);

    // Typed filters: `User::EMAIL.eq(5)` would not compile.
    let recent = users
        .find(
            &Query::filter(
                User::EMAIL
                    .starts_with("user1")
                    .and(User::CREATED_AT.gt(t0)),
            )
            .sort(User::CREATED_AT.desc())
            .limit(5),
        )
        .await?;
    println!("newest users whose email starts with user1:");
    for u in &recent {
        println!(
            "  {} created {}",
            u.email,
            u.created_at.format("%H:%M:%S%.3f")
        );
    }

    // Nested paths and array membership.
    let in_lima = users
        .count(
            &User::PROFILE
                .nested::<String>("city")
                .eq("Lima")
                .and(User::TAGS.has("even")),
        )
        .await?;
    println!("even users in Lima: {in_lima}");

    // Optimistic locking: the second writer holding version 1 gets a Conflict.
    let mut alice = recent[0].clone();
    alice.name = Some("Alice".into());
    let saved = users.update(&alice).await?;
    match users.update(&alice).await {
        Err(stale) => println!(
            "update -> version {}; stale update -> {stale}",
            saved.version
        ),
        Ok(_) => println!("unexpected: a stale update succeeded"),
    }

    // Keyset pagination with an opaque cursor.
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = users
            .page(
                &Query::all().sort(User::NAME.asc()).limit(20),
                cursor.as_ref(),
            )
            .await?;
        pages += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    println!("paged through all users in {pages} pages of 20");

    // Documents through the cache: the second read is a cache hit; a write invalidates.
    let lamp = Product {
        sku: "LAMP-1".into(),
        title: "Desk lamp".into(),
        category: "home".into(),
        price_cents: 2_999,
        attributes: [("color".to_string(), "black".to_string())].into(),
        version: 0,
    };
    products.upsert(&lamp).await?;
    let sku = "LAMP-1".to_string();
    products.get(&sku).await?;
    let cached = products.get(&sku).await?.map(|p| p.price_cents);
    let mut cheaper = products.get(&sku).await?.unwrap_or(lamp);
    cheaper.price_cents = 1_999;
    products.update(&cheaper).await?;
    let after = products.get(&sku).await?.map(|p| p.price_cents);
    let stats = products.stats();
    println!(
        "product price {cached:?} -> {after:?} after update (cache: {} L1 hits, {} loads from the store)",
        stats.l1_hits, stats.loads
    );
    products.delete(&sku).await?;
    users.delete_many(&persistence_core::Filter::all()).await?;
    println!(
        "next: `cargo run -p persistence-bookstore` runs a whole app on these stores, with a live dashboard at http://127.0.0.1:8080/dashboard"
    );
    Ok(())
}

fn why(var: &str) -> String {
    match std::env::var(var) {
        Ok(_) => format!("{var} is set"),
        Err(_) => format!("{var} not set: embedded default"),
    }
}
