//! `persistence-migrate`: run the example migrations against a URL, or
//! verify the example entities' tables against their metadata.
//!
//! ```text
//! cargo run -p persistence-postgres --example persistence-migrate -- status
//! cargo run -p persistence-postgres --example persistence-migrate -- verify --url postgres://postgres@127.0.0.1/postgres --schema app
//! cargo run -p persistence-postgres --example persistence-migrate -- up --url postgres://postgres@127.0.0.1/postgres --schema app
//! cargo run -p persistence-postgres --example persistence-migrate -- down --steps 1
//! # schema per tenant (PostgreSQL; --schema names the registry's schema):
//! cargo run -p persistence-postgres --example persistence-migrate -- tenant provision acme --schema control
//! cargo run -p persistence-postgres --example persistence-migrate -- all-tenants status --schema control
//! cargo run -p persistence-postgres --example persistence-migrate -- all-tenants up --dry-run --schema control
//! cargo run -p persistence-postgres --example persistence-migrate -- all-tenants up --concurrency 8 --schema control
//! ```
//!
//! The URL defaults to `DATABASE_URL`, else a SQLite file `persistence-demo.db`.
//! An application copies this file and lists its own migrations in `Migrator`.
//!
//! `all-tenants up` prints a progress line (`[ 37/200] migrated 35 at head 1
//! failed 1`, redrawn in place on a terminal, every 10 % otherwise), then
//! one line per failed tenant, and exits with 1 when a tenant failed (the
//! others are migrated; run it again after fixing it: finished tenants are
//! skipped). A plain counter line keeps the example free of a terminal UI
//! dependency.
//!
//! `verify` runs `Repository::verify_schema` for every entity listed in
//! `verify_all` (read-only: nothing is created or changed) and prints one
//! line per difference (`error: ...`, `warning: ...`, `info: ...`), or one
//! "matches" line per entity. Exit code 0 when there are only `info` lines,
//! 1 when there is an error or a warning, 2 on bad usage.
use std::io::{IsTerminal as _, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use persistence_core::{Entity, Repository, SchemaReport, Severity};
use persistence_postgres::migrate::{self, CreateEntityTable};
use persistence_postgres::sea_orm_migration::prelude::*;
use persistence_postgres::tenant::{MigrateAll, ProgressEvent, TenantOutcome};
use persistence_postgres::{RelationalConfig, RelationalStore, TenantId, Tenants};
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

const USAGE: &str = "usage: persistence-migrate <up|down|status|verify> [--url URL] [--schema NAME] [--steps N]
       persistence-migrate all-tenants up [--concurrency N] [--dry-run] [--url URL] [--schema CONTROL]
       persistence-migrate all-tenants status [--url URL] [--schema CONTROL]
       persistence-migrate tenant provision ID [--url URL] [--schema CONTROL]";

/// Why the CLI stops: bad arguments (exit 2) or a failure (exit 1).
#[derive(Debug)]
pub(crate) enum Exit {
    Usage(String),
    Failed(String),
}

impl From<persistence_core::Error> for Exit {
    fn from(e: persistence_core::Error) -> Self {
        Exit::Failed(e.to_string())
    }
}

impl From<std::io::Error> for Exit {
    fn from(e: std::io::Error) -> Self {
        Exit::Failed(e.to_string())
    }
}

fn usage(why: impl std::fmt::Display) -> Exit {
    Exit::Usage(format!("{why}\n{USAGE}"))
}

#[derive(Default)]
struct Args {
    words: Vec<String>,
    url: Option<String>,
    schema: Option<String>,
    steps: Option<u32>,
    concurrency: Option<usize>,
    dry_run: bool,
}

fn parse(args: &[String]) -> Result<Args, Exit> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--url" => out.url = Some(value()?),
            "--schema" => out.schema = Some(value()?),
            "--steps" => {
                out.steps = Some(
                    value()?
                        .parse()
                        .map_err(|_| usage("--steps: not a number"))?,
                )
            }
            "--concurrency" => {
                out.concurrency = Some(
                    value()?
                        .parse()
                        .map_err(|_| usage("--concurrency: not a number"))?,
                )
            }
            "--dry-run" => out.dry_run = true,
            flag if flag.starts_with("--") => return Err(usage(format!("unknown flag {flag}"))),
            word => out.words.push(word.to_string()),
        }
    }
    Ok(out)
}

/// Run the command `args` (without the program name), writing the answer to `out`.
pub(crate) async fn run(args: &[String], out: &mut (dyn Write + Send)) -> Result<(), Exit> {
    let args = parse(args)?;
    let url = args.url.clone().unwrap_or_else(|| {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "sqlite://persistence-demo.db?mode=rwc".to_string())
    });
    let mut config = RelationalConfig::new(url);
    config.schema = args.schema.clone();
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    // Checked before connecting: a typo is answered without a server.
    match words.as_slice() {
        ["up" | "down" | "status" | "verify"]
        | ["all-tenants", "up" | "status"]
        | ["tenant", "provision", _] => {}
        _ => return Err(usage("unknown command")),
    }
    let store = RelationalStore::connect(&config).await?;
    let outcome = command(&store, &words, &args, out).await;
    store.close().await;
    outcome
}

async fn command(
    store: &RelationalStore,
    words: &[&str],
    args: &Args,
    out: &mut (dyn Write + Send),
) -> Result<(), Exit> {
    let tenants = || -> Result<Tenants, Exit> {
        Ok(Tenants::new(store)?
            .register::<Account>()
            .with_migrator::<Migrator>())
    };
    match words {
        ["up"] => migrate::up::<Migrator>(store, args.steps).await?,
        ["down"] => migrate::down::<Migrator>(store, args.steps).await?,
        ["status"] => {
            for (name, applied) in migrate::status::<Migrator>(store).await? {
                writeln!(
                    out,
                    "{} {name}",
                    if applied { "applied" } else { "pending" }
                )?;
            }
            return Ok(());
        }
        ["verify"] => {
            let reports = verify_all(store).await?;
            for r in &reports {
                writeln!(out, "{r}")?;
            }
            let drift = reports
                .iter()
                .flat_map(|r| &r.differences)
                .any(|d| d.severity >= Severity::Warning);
            return if drift {
                Err(Exit::Failed("the schema differs from the entities".into()))
            } else {
                Ok(())
            };
        }
        ["tenant", "provision", id] => {
            let id = TenantId::new(id).map_err(usage)?;
            tenants()?.provision(&id).await?;
        }
        ["all-tenants", "status"] => return all_status(&tenants()?, out).await,
        ["all-tenants", "up"] => return all_up(&tenants()?, args, out).await,
        _ => return Err(usage("unknown command")),
    }
    writeln!(out, "{}: done", words.join(" "))?;
    Ok(())
}

async fn all_status(tenants: &Tenants, out: &mut (dyn Write + Send)) -> Result<(), Exit> {
    let status = tenants.migration_status().await?;
    let total = Migrator::migrations().len();
    for s in &status {
        let state = s
            .record
            .as_ref()
            .map_or("-".to_string(), |r| format!("{:?}", r.state).to_lowercase());
        write!(out, "{} {}/{total} {state}", s.tenant, s.applied.len())?;
        if s.is_lagging() {
            write!(out, " lagging: {}", s.pending.join(", "))?;
        }
        if let Some(e) = s.record.as_ref().and_then(|r| r.error.as_deref()) {
            write!(out, " error: {e}")?;
        }
        writeln!(out)?;
    }
    let lagging = status.iter().filter(|s| s.is_lagging()).count();
    writeln!(out, "{} tenants, {lagging} lagging", status.len())?;
    Ok(())
}

async fn all_up(tenants: &Tenants, args: &Args, out: &mut (dyn Write + Send)) -> Result<(), Exit> {
    let mut opts = MigrateAll::new().dry_run(args.dry_run);
    if let Some(n) = args.concurrency {
        opts = opts.concurrency(n);
    }
    let counts = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    let live = std::io::stderr().is_terminal();
    let verb = if args.dry_run {
        "to migrate"
    } else {
        "migrated"
    };
    let opts = opts.progress(move |e: &ProgressEvent<'_>| {
        let ProgressEvent::Finished {
            outcome,
            done,
            total,
            ..
        } = e
        else {
            return;
        };
        let slot = match outcome {
            TenantOutcome::Migrated { .. } | TenantOutcome::WouldApply { .. } => 0,
            TenantOutcome::Failed(_) => 2,
            _ => 1,
        };
        counts[slot].fetch_add(1, Ordering::Relaxed);
        let tenth = (*total / 10).max(1);
        if live || *done % tenth == 0 || done == total {
            let line = format!(
                "[{done:>w$}/{total}] {verb} {} at head {} failed {}",
                counts[0].load(Ordering::Relaxed),
                counts[1].load(Ordering::Relaxed),
                counts[2].load(Ordering::Relaxed),
                w = total.to_string().len(),
            );
            if live {
                eprint!("\r{line}");
                if done == total {
                    eprintln!();
                }
            } else {
                eprintln!("{line}");
            }
        }
    });
    let report = tenants.migrate_all(&opts).await?;
    for r in &report.tenants {
        match &r.outcome {
            TenantOutcome::WouldApply { pending } => {
                writeln!(out, "{}: would apply {}", r.tenant, pending.join(", "))?
            }
            TenantOutcome::Failed(e) => writeln!(out, "{}: failed: {e}", r.tenant)?,
            _ => {}
        }
    }
    let migrated = report.count(|o| matches!(o, TenantOutcome::Migrated { .. }));
    let at_head = report.count(|o| matches!(o, TenantOutcome::AtHead));
    let failed = report.failures().count();
    if report.dry_run {
        let would = report.count(|o| matches!(o, TenantOutcome::WouldApply { .. }));
        writeln!(
            out,
            "dry run: {would} to migrate, {at_head} at head (nothing changed)"
        )?;
    } else {
        writeln!(
            out,
            "{migrated} migrated, {at_head} at head, {failed} failed"
        )?;
    }
    if failed > 0 {
        return Err(Exit::Failed(format!(
            "{failed} tenant(s) failed; fix them and run again"
        )));
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout();
    match run(&args, &mut out).await {
        Ok(()) => {}
        Err(Exit::Usage(m)) => {
            eprintln!("{m}");
            std::process::exit(2)
        }
        Err(Exit::Failed(m)) => {
            eprintln!("error: {m}");
            std::process::exit(1)
        }
    }
}
