//! `persistence-migrate`: run the example migrations against a URL, or
//! verify the example entities' tables against their metadata.
//!
//! ```text
//! cargo run -p persistence-postgres --example persistence-migrate -- status
//! cargo run -p persistence-postgres --example persistence-migrate -- verify --url postgres://postgres@127.0.0.1/postgres --schema app
//! cargo run -p persistence-postgres --example persistence-migrate -- up --url postgres://postgres@127.0.0.1/postgres --schema app
//! cargo run -p persistence-postgres --example persistence-migrate -- down --steps 1
//! ```
//!
//! The URL defaults to `DATABASE_URL`, else a SQLite file `persistence-demo.db`.
//! An application copies this file and lists its own migrations in `Migrator`.
//!
//! `verify` runs `Repository::verify_schema` for every entity listed in
//! `verify_all` (read-only: nothing is created or changed) and prints one
//! line per difference (`error: ...`, `warning: ...`, `info: ...`), or one
//! "matches" line per entity. Exit code 0 when there are only `info` lines,
//! 1 when there is an error or a warning, 2 on bad usage.
use persistence_core::{Entity, Repository, SchemaReport, Severity};
use persistence_postgres::migrate::{self, CreateEntityTable};
use persistence_postgres::sea_orm_migration::prelude::*;
use persistence_postgres::{RelationalConfig, RelationalStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Entity)]
#[entity(name = "accounts")]
struct Account {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    #[entity(version)]
    version: i64,
}

struct AddEmailPrefixIndex;
impl MigrationName for AddEmailPrefixIndex {
    fn name(&self) -> &str {
        "m0002_accounts_email_lower"
    }
}
// The trait's own signatures elide SchemaManager's lifetime; impls must match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AddEmailPrefixIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS \"ix_accounts_email_lower\" ON \"accounts\" (lower(\"email\"))",
            )
            .await?;
        Ok(())
    }
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS \"ix_accounts_email_lower\"")
            .await?;
        Ok(())
    }
}

struct Migrator;
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateEntityTable::<Account>::new("m0001_create_accounts")),
            Box::new(AddEmailPrefixIndex),
        ]
    }
}

/// The reports of every entity this application registers.
async fn verify_all(store: &RelationalStore) -> persistence_core::Result<Vec<SchemaReport>> {
    Ok(vec![store.repository::<Account>().verify_schema().await?])
}

fn usage() -> ! {
    eprintln!(
        "usage: persistence-migrate <up|down|status|verify> [--url URL] [--schema NAME] [--steps N]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| usage());
    let mut url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://persistence-demo.db?mode=rwc".to_string());
    let (mut schema, mut steps) = (None, None);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--url" => url = value,
            "--schema" => schema = Some(value),
            "--steps" => steps = Some(value.parse::<u32>().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    let mut config = RelationalConfig::new(url);
    config.schema = schema;
    let store = match RelationalStore::connect(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    };
    if command == "verify" {
        let reports = verify_all(&store).await;
        store.close().await;
        match reports {
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Ok(reports) => {
                for r in &reports {
                    println!("{r}");
                }
                let drift = reports
                    .iter()
                    .flat_map(|r| &r.differences)
                    .any(|d| d.severity >= Severity::Warning);
                std::process::exit(i32::from(drift));
            }
        }
    }
    let outcome = match command.as_str() {
        "up" => migrate::up::<Migrator>(&store, steps).await,
        "down" => migrate::down::<Migrator>(&store, steps).await,
        "status" => migrate::status::<Migrator>(&store).await.map(|list| {
            for (name, applied) in list {
                println!("{} {name}", if applied { "applied" } else { "pending" });
            }
        }),
        _ => usage(),
    };
    store.close().await;
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if command != "status" {
        println!("{command}: done");
    }
}
