//! `persistence-cli`: adopt an existing database (issue #16, items 5 and 6).
//!
//! ```text
//! persistence-cli introspect --url postgres://postgres@127.0.0.1/app --schema shop [--table orders]... [--out src/entities.rs]
//! persistence-cli introspect --url mongodb://127.0.0.1:27017 --database shop [--collection orders]... [--sample 100]
//! persistence-cli verify --url postgres://postgres@127.0.0.1/app --schema shop
//! ```
//!
//! * **`introspect`** reads the live schema — PostgreSQL's `pg_catalog`
//!   ([`postgres`]), or a sample of each MongoDB collection plus its
//!   `$jsonSchema` validator and indexes ([`mongo`]) — and prints
//!   `#[derive(Entity)]` structs ([`codegen`]): field types from the
//!   native types, the primary key as the id (`generated` when the database
//!   assigns it), uniques and indexes, foreign keys as `belongs_to` on the
//!   child and `has_many` / `has_one` on the parent, native enums as
//!   `#[derive(EntityEnum)]` enums. Read-only: it creates and changes
//!   nothing.
//! * **`verify`** runs `Repository::verify_schema` for every entity the
//!   binary knows and prints each difference on one line (`error: ..`,
//!   `warning: ..`, `info: ..`), or one "matches" line per entity. A CLI
//!   cannot compile an application's structs, so the application builds
//!   its own binary (a few lines, like `sea-orm-cli`'s migrator) that lists
//!   them: `persistence_cli::Cli::new().entity::<Order>().entity::<Customer>().main()`;
//!   the bare `persistence-cli` binary knows none and says so.
//!
//! Exit codes: 0 done (`verify`: only `info` lines), 1 a failure or drift
//! (an error or a warning), 2 bad usage. The URL defaults to `DATABASE_URL`
//! (`MONGODB_URL` for `--database`); it never appears in messages.
#![forbid(unsafe_code)]

pub mod codegen;
pub mod model;
pub mod mongo;
pub mod postgres;

use std::future::Future;
use std::io::Write;
use std::pin::Pin;

use persistence_core::{Entity, Repository, Result, SchemaReport, Severity};
use persistence_mongo::{MongoConfig, MongoStore};
use persistence_postgres::{RelationalConfig, RelationalStore};

/// Usage text (printed with exit code 2).
pub const USAGE: &str = "usage: persistence-cli introspect [--url URL] [--schema NAME] [--table NAME]... [--out FILE]
       persistence-cli introspect [--url MONGODB_URL] --database NAME [--collection NAME]... [--sample N] [--out FILE]
       persistence-cli verify [--url URL] [--schema NAME | --database NAME]";

/// Why a command stops: bad arguments (exit 2) or a failure (exit 1).
#[derive(Debug)]
pub enum Exit {
    /// Bad usage: the message and the usage text.
    Usage(String),
    /// The command failed (or `verify` found drift).
    Failed(String),
}

impl Exit {
    /// The process exit code.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Usage(_) => 2,
            Exit::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Usage(m) => write!(f, "{m}"),
            Exit::Failed(m) => write!(f, "error: {m}"),
        }
    }
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

/// A connected store of either kind.
pub enum Store {
    /// PostgreSQL (or SQLite for `verify`).
    Relational(RelationalStore),
    /// MongoDB.
    Mongo(MongoStore),
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Verifier = Box<dyn for<'a> Fn(&'a Store) -> BoxFuture<'a, Result<SchemaReport>> + Send + Sync>;

/// The command line, with the entities `verify` checks.
#[derive(Default)]
pub struct Cli {
    entities: Vec<(&'static str, Verifier)>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field(
                "entities",
                &self.entities.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Cli {
    /// A CLI that knows no entities (`introspect` only).
    pub fn new() -> Self {
        Cli::default()
    }

    /// Add entity `E` to what `verify` compares with the live schema.
    pub fn entity<E: Entity>(mut self) -> Self {
        self.entities.push((
            E::meta().name,
            Box::new(|store: &Store| -> BoxFuture<'_, Result<SchemaReport>> {
                match store {
                    Store::Relational(s) => {
                        Box::pin(async move { s.repository::<E>().verify_schema().await })
                    }
                    Store::Mongo(s) => {
                        Box::pin(async move { s.repository::<E>().verify_schema().await })
                    }
                }
            }),
        ));
        self
    }

    /// Run `std::env::args()` and exit with the command's code.
    pub async fn main(self) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut out = std::io::stdout();
        if let Err(e) = self.run(&args, &mut out).await {
            eprintln!("{e}");
            std::process::exit(e.code());
        }
    }

    /// Run the command `args` (without the program name), writing to `out`.
    pub async fn run(
        &self,
        args: &[String],
        out: &mut (dyn Write + Send),
    ) -> std::result::Result<(), Exit> {
        let args = parse(args)?;
        match args.command.as_deref() {
            Some("introspect") => {
                let code = self.introspect(&args).await?;
                match &args.out {
                    Some(path) => std::fs::write(path, code)?,
                    None => out.write_all(code.as_bytes())?,
                }
                Ok(())
            }
            Some("verify") => self.verify(&args, out).await,
            Some(other) => Err(usage(format!("unknown command `{other}`"))),
            None => Err(usage("name a command")),
        }
    }

    async fn connect(&self, args: &Args) -> std::result::Result<Store, Exit> {
        match &args.database {
            Some(db) => {
                let url = args
                    .url
                    .clone()
                    .or_else(|| std::env::var("MONGODB_URL").ok())
                    .unwrap_or_else(|| "mongodb://127.0.0.1:27017/?directConnection=true".into());
                let config = MongoConfig::new(url, db.clone());
                config.validate()?;
                Ok(Store::Mongo(MongoStore::connect(&config).await?))
            }
            None => {
                let url = args
                    .url
                    .clone()
                    .or_else(|| std::env::var("DATABASE_URL").ok())
                    .ok_or_else(|| usage("give --url (or set DATABASE_URL)"))?;
                let mut config = RelationalConfig::new(url);
                config.schema = args.schema.clone();
                Ok(Store::Relational(RelationalStore::connect(&config).await?))
            }
        }
    }

    async fn introspect(&self, args: &Args) -> std::result::Result<String, Exit> {
        let store = self.connect(args).await?;
        let result = match &store {
            Store::Relational(s) => {
                if s.dialect() != persistence_postgres::Dialect::Postgres {
                    Err(persistence_core::Error::unsupported(
                        "introspect reads PostgreSQL and MongoDB (not SQLite)",
                    ))
                } else {
                    postgres::introspect(s, &args.tables)
                        .await
                        .map(|schema| codegen::render(&schema, codegen::Source::Postgres))
                }
            }
            Store::Mongo(s) => mongo::introspect(s, &args.tables, args.sample)
                .await
                .map(|schema| codegen::render(&schema, codegen::Source::Mongo)),
        };
        close(store).await;
        Ok(result?)
    }

    async fn verify(
        &self,
        args: &Args,
        out: &mut (dyn Write + Send),
    ) -> std::result::Result<(), Exit> {
        if self.entities.is_empty() {
            return Err(usage(
                "this binary knows no entities to verify: build your own with \
                 persistence_cli::Cli::new().entity::<YourEntity>()...main()",
            ));
        }
        if !args.tables.is_empty() || args.sample.is_some() || args.out.is_some() {
            return Err(usage("verify takes --url and --schema / --database only"));
        }
        let store = self.connect(args).await?;
        let mut reports = Vec::new();
        let mut failure = None;
        for (_, verify) in &self.entities {
            match verify(&store).await {
                Ok(r) => reports.push(r),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        close(store).await;
        if let Some(e) = failure {
            return Err(e.into());
        }
        for r in &reports {
            writeln!(out, "{r}")?;
        }
        let drift = reports
            .iter()
            .flat_map(|r| &r.differences)
            .filter(|d| d.severity >= Severity::Warning)
            .count();
        if drift > 0 {
            return Err(Exit::Failed(format!(
                "the schema differs from the entities ({drift} error(s) or warning(s))"
            )));
        }
        Ok(())
    }
}

async fn close(store: Store) {
    match store {
        Store::Relational(s) => s.close().await,
        Store::Mongo(s) => s.close().await,
    }
}

#[derive(Default)]
struct Args {
    command: Option<String>,
    url: Option<String>,
    schema: Option<String>,
    database: Option<String>,
    tables: Vec<String>,
    sample: Option<usize>,
    out: Option<String>,
}

fn parse(args: &[String]) -> std::result::Result<Args, Exit> {
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
            "--database" => out.database = Some(value()?),
            "--table" | "--collection" => out.tables.push(value()?),
            "--out" => out.out = Some(value()?),
            "--sample" => {
                let n: usize = value()?
                    .parse()
                    .map_err(|_| usage("--sample: not a number"))?;
                if n == 0 {
                    return Err(usage("--sample: at least 1"));
                }
                out.sample = Some(n);
            }
            "-h" | "--help" => return Err(Exit::Usage(USAGE.to_string())),
            flag if flag.starts_with("--") => return Err(usage(format!("unknown flag {flag}"))),
            word if out.command.is_none() => out.command = Some(word.to_string()),
            word => return Err(usage(format!("unexpected argument `{word}`"))),
        }
    }
    if out.schema.is_some() && out.database.is_some() {
        return Err(usage(
            "--schema is for PostgreSQL, --database for MongoDB: not both",
        ));
    }
    if out.sample.is_some() && out.database.is_none() {
        return Err(usage("--sample is for MongoDB (--database)"));
    }
    Ok(out)
}
