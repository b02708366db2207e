//! Quickstart: derive an entity, store it, query it, page through it.
//!
//! `cargo run --example quickstart` — runs on the embedded in-memory backend,
//! no server needed.

use chrono::{DateTime, Duration, Utc};
use persistence_core::{Entity, Error, MemoryRepository, Query, Repository, StringField};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A nested value, stored as a sub-document / JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    city: String,
    bio: Option<String>,
}

/// The entity: a plain serde struct plus `#[derive(Entity)]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "users")]
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

#[tokio::main]
async fn main() -> Result<(), Error> {
    let users: MemoryRepository<User> = MemoryRepository::new();
    let t0 = Utc::now();

    let people = (0..50).map(|i| User {
        id: Uuid::now_v7(),
        email: format!("user{i}@example.com"),
        created_at: t0 + Duration::seconds(i),
        version: 0,
        name: (i % 3 != 0).then(|| format!("User {i}")),
        tags: vec![if i % 2 == 0 { "even" } else { "odd" }.to_string()],
        profile: Profile {
            city: ["Oslo", "Lima", "Pune"][i as usize % 3].into(),
            bio: None,
        },
    });
    let inserted = users.insert_many(&people.collect::<Vec<_>>()).await?;
    println!(
        "inserted {inserted} users into {}",
        users.capabilities().backend
    );

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
    let stale = users.update(&alice).await.expect_err("stale version");
    println!(
        "update -> version {}; stale update -> {stale}",
        saved.version
    );

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
    Ok(())
}
