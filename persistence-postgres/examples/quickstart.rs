//! Relational quickstart: SQLite in memory by default (no server needed),
//! PostgreSQL when `DATABASE_URL` is set (tables in a schema of their own,
//! dropped at the end).
//!
//! ```text
//! cargo run -p persistence-postgres --example quickstart-sql
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p persistence-postgres --example quickstart-sql
//! ```
use chrono::{DateTime, Duration, Utc};
use persistence_core::{Entity, Error, Query, Repository, StringField};
use persistence_postgres::{RelationalConfig, RelationalStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A nested value, stored as jsonb (PostgreSQL) / JSON text (SQLite).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    city: String,
}

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
    profile: Profile,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut config = RelationalConfig::from_env();
    if !config.is_sqlite() {
        config.schema = Some(format!("quickstart_{}", std::process::id()));
    }
    let store = RelationalStore::connect(&config).await?;
    let users = store.repository::<User>();
    users.ensure_schema().await?;
    println!("backend: {}", users.capabilities().backend);

    let t0 = Utc::now();
    let people: Vec<User> = (0..20)
        .map(|i| User {
            id: Uuid::now_v7(),
            email: format!("user{i}@example.com"),
            created_at: t0 + Duration::seconds(i),
            version: 0,
            name: (i % 3 != 0).then(|| format!("User {i}")),
            profile: Profile {
                city: ["Oslo", "Lima", "Pune"][i as usize % 3].into(),
            },
        })
        .collect();
    println!("inserted {}", users.insert_many(&people).await?);

    let found = users
        .find(
            &Query::filter(User::EMAIL.starts_with("user1"))
                .sort(User::CREATED_AT.desc())
                .limit(3),
        )
        .await?;
    for u in &found {
        println!("{} {:?} {}", u.email, u.name, u.profile.city);
    }

    // Optimistic locking: the second update with the same version is a conflict.
    let mut first = found[0].clone();
    first.name = Some("renamed".into());
    let updated = users.update(&first).await?;
    println!("version {} -> {}", first.version, updated.version);
    let stale = users.update(&first).await.expect_err("stale version");
    println!("stale update: {stale}");

    // A unit of work: both writes or neither.
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            let a = people[1].clone();
            Box::pin(async move {
                let users = tx.repository::<User>();
                users.delete(&a.id).await?;
                Err(Error::invalid_input("changed my mind"))
            })
        })
        .await;
    println!("rolled back: {}", outcome.is_err());
    println!("still there: {}", users.get(&people[1].id).await?.is_some());

    store.drop_schema().await?;
    store.close().await;
    Ok(())
}
