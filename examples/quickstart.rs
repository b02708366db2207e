//! Quickstart: derive entities, let the `Persistence` manager build the
//! stores, store users relationally and products as documents, read products
//! through the cache, query and page.
//!
//! `cargo run --example quickstart` runs with no configuration at all:
//! `DATABASE_URL` (PostgreSQL), `MONGODB_URL` and `REDIS_URL` when set, else
//! the embedded defaults — in-memory SQLite for users, the in-memory document
//! store for products, an in-process (moka) cache. Local servers are not
//! picked up just because they run; `--probe` also looks on the default
//! local ports. `--config FILE` builds the same topology from a file instead
//! (see `examples/persistence.yaml`).

use chrono::{DateTime, Utc};
use persistence::config::Probe;
use persistence::{Entity, Error, Filter, Persistence, Query, Repository, StringField};
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .map(|i| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| Error::config("--config needs a file"))
        })
        .transpose()?;
    let db = match config {
        // Named databases, pools, layers and cache policy from YAML (`${VAR:-default}` allowed).
        Some(path) => Persistence::from_file(&path).await?,
        // No configuration: environment URLs, else embedded (`--probe`: local servers too).
        None if args.iter().any(|a| a == "--probe") => Persistence::from_env().await?,
        None => Persistence::from_env_with(Probe::env_only()).await?,
    };
    print!("{}", db.describe());

    // Ready repositories: schema ensured, timeout / retry / circuit breaker /
    // metrics applied, read-through cache per the entity's cache policy.
    let users = db.repo::<User>().await?; // the `main` database
    let products = db.repo_in::<Product>("documents").await?;
    // Leave no rows behind on a shared server: this demo owns its tables' rows.
    users.delete_many(&Filter::all()).await?;
    products.delete_many(&Filter::all()).await?;

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
    if let Some(stats) = db.cache_stats("documents", Product::meta().name) {
        println!(
            "product price {cached:?} -> {after:?} after update (cache: {} L1 hits, {} L2 hits, {} loads from the store)",
            stats.l1_hits, stats.l2_hits, stats.loads
        );
    }
    products.delete(&sku).await?;
    users.delete_many(&Filter::all()).await?;

    let health = db.health().await;
    println!("health: {:?}", health.status);
    for d in &health.databases {
        println!(
            "  {:<10} {:<8} {:?} {}",
            d.name,
            d.kind,
            d.state,
            d.latency.map(|l| format!("{l:.1?}")).unwrap_or_default()
        );
    }
    db.shutdown().await;
    println!(
        "next: `cargo run -p persistence-bookstore` runs a whole app on these stores, with a live dashboard at http://127.0.0.1:8080/dashboard"
    );
    Ok(())
}
