//! # persistence-postgres
//!
//! Relational repositories for the persistence framework on **sea-orm 2**
//! (sqlx underneath): PostgreSQL, and SQLite as the embedded default (a file
//! or `sqlite::memory:`, no server needed).
//!
//! ```no_run
//! use persistence_core::{Entity, Query, Repository, StringField};
//! use persistence_postgres::{RelationalConfig, RelationalStore};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
//! #[entity(name = "users")]
//! struct User {
//!     #[entity(id)]
//!     id: i64,
//!     #[entity(unique)]
//!     email: String,
//!     #[entity(version)]
//!     version: i64,
//! }
//!
//! # async fn demo() -> persistence_core::Result<()> {
//! // DATABASE_URL=postgres://... or, when unset, in-memory SQLite.
//! let store = RelationalStore::connect(&RelationalConfig::from_env()).await?;
//! let users = store.repository::<User>();
//! users.ensure_schema().await?;
//! users.insert(&User { id: 1, email: "a@x.io".into(), version: 0 }).await?;
//! let found = users.find(&Query::filter(User::EMAIL.starts_with("a@"))).await?;
//! # Ok(()) }
//! ```
//!
//! ## Type mapping
//!
//! | field type | PostgreSQL | SQLite |
//! |---|---|---|
//! | `String`, unit enums (`#[derive(EntityEnum)]`, variant name) | `text` | `TEXT` |
//! | `bool` | `boolean` | `INTEGER` 0/1 |
//! | `i16`/`u8`, `i32`/`u16`, `i64`/`u32` | `smallint`, `integer`, `bigint` | `INTEGER` |
//! | `f32`, `f64` | `real`, `double precision` | `REAL` |
//! | `Uuid` | `uuid` | `TEXT` (hyphenated, lower case) |
//! | `DateTime<Utc>` | `timestamptz` (microseconds) | `TEXT`, RFC 3339 with 6 fraction digits and `Z` (sorts as time) |
//! | `NaiveDate` | `date` | `TEXT` `YYYY-MM-DD` |
//! | `Decimal` | `numeric` | `TEXT`; compared and sorted as `CAST(.. AS REAL)` |
//! | `Vec<u8>` | `bytea` | `BLOB` |
//! | `Vec<scalar>` | `jsonb` array | `TEXT` (JSON) |
//! | nested structs, maps, other vectors | `jsonb` | `TEXT` (JSON) |
//!
//! `Option<T>` makes the column nullable; everything else is `NOT NULL`.
//! Timestamps keep microseconds (finer digits are truncated toward the past
//! before the value is bound), on both.
//!
//! ## Writes return the stored row
//!
//! `insert`, `update` and `upsert` end in `RETURNING` every column (SQLite
//! has it since 3.35; the bundled library is newer) and decode that row, so
//! the entity they return is what the database kept, what a `get` reads
//! next: truncated timestamps, and on a table made elsewhere whatever its
//! columns do to a value (`19.999` into `numeric(12,2)` comes back `20.00`,
//! `timestamptz(3)` rounds to milliseconds). `insert_many` returns a count.
//!
//! ## Managed timestamps and soft delete
//!
//! As [`persistence_core::lifecycle`] defines them, with the client's clock:
//! `insert` / `insert_many` / `bulk_insert` bind `created_at` = `updated_at`
//! = now; `update` and the `ON CONFLICT DO UPDATE` of `upsert` leave the
//! `created_at` column out of `SET` (the stored value comes back through
//! `RETURNING`); `patch` and `update_where` assign `updated_at`. Reads of a
//! soft-deletable entity see live rows only: checked filters carry
//! `"deleted_at" IS NULL` (or `IS NOT NULL` under `only_deleted()`), `get` /
//! `get_many` drop deleted rows, `patch` adds the scope to `"id" = $1`.
//! Its unique constraints are partial unique indexes,
//! `CREATE UNIQUE INDEX … WHERE "deleted_at" IS NULL`, on both databases.
//!
//! ## Query semantics (as `persistence_core::filter` defines them)
//!
//! * Strings compare and sort by code point: PostgreSQL uses `COLLATE "C"`
//!   for ordering comparisons and `ORDER BY`; SQLite's `BINARY` collation is
//!   code-point order already.
//! * `starts_with` / `contains` are literal and case-sensitive:
//!   `starts_with()` / `strpos()` on PostgreSQL, `instr()` on SQLite (never
//!   `LIKE`, which is case-insensitive on SQLite and treats `%`/`_` specially).
//! * `like` patterns and the ignore-case operators bind one pattern
//!   parameter whose literal text is escaped: on PostgreSQL
//!   `lower(col) = lower($1)` (index: `CREATE INDEX … (lower(col))`) or
//!   `[lower(]col[)] LIKE [lower(]$1[)] ESCAPE '\'` (index: pg_trgm,
//!   `USING gin (lower(col) gin_trgm_ops)`); `lower()` folds non-ASCII
//!   letters under a UTF-8 `LC_CTYPE` (`C.UTF-8`, `en_US.UTF-8`) or ICU, not
//!   under plain `C`. On SQLite `col GLOB ?` (case-sensitive; `*`, `?`, `[`
//!   escaped as classes) or `col LIKE ? ESCAPE '\'` ignoring case.
//! * `select` reads only the asked columns; `distinct` is `SELECT DISTINCT`,
//!   ordered by the core rule (code points, null last) after reading.
//! * Nulls sort lowest: `NULLS FIRST` ascending, `NULLS LAST` descending.
//! * `ne`, `not_in` and `not` are two-valued: `col IS DISTINCT FROM $1`
//!   (`IS NOT ?` on SQLite) and `NOT COALESCE(expr, FALSE)`.
//! * Nested paths in JSON fields: `col -> $1 -> $2` with a `jsonb_typeof`
//!   check on PostgreSQL (strings compared as text `COLLATE "C"`, numbers and
//!   booleans as jsonb); `json_extract(col, ?)` / `json_type(col, ?)` on
//!   SQLite (path segments containing `"` or `\` are refused there).
//!   `has` on arrays is `@>` on PostgreSQL and `json_each` on SQLite.
//!
//! ## Atomic partial updates
//!
//! `patch` is one `UPDATE ... SET "stock" = COALESCE("stock", 0) + $1,
//! "version" = "version" + 1 WHERE "sku" = $2 AND <guard> RETURNING ...`;
//! only when it returns no row does a read-only query tell `NotFound`, a
//! stale version and a failed guard apart. `update_where` is one `UPDATE`
//! (the count is the rows matched), `find_one_and_delete` one `DELETE ...
//! WHERE id = (SELECT ... ORDER BY ... LIMIT 1 FOR UPDATE SKIP LOCKED)
//! RETURNING ...` (no lock clause on SQLite, whose writes are serialized).
//! Integer overflow fails the statement: nothing changes. The rules are
//! `persistence_core::update`'s; SQLite refuses arithmetic and `min`/`max`
//! on decimals (stored as text) with `Unsupported`.
//!
//! ## Where SQLite differs
//!
//! * It stores `NaN` as NULL and loses the sign of `-0.0` in `REAL` columns:
//!   `Capabilities::non_finite_floats` and `signed_zero` are `false`.
//! * Decimals are text; comparisons go through `REAL` (about 15 significant digits).
//! * Its built-in `LIKE` folds ASCII letters only, so ignore-case filters
//!   match `A`/`a` but not `É`/`é`: `Capabilities::unicode_case_folding` is
//!   `false` (no ICU extension is loaded).
//! * No schemas (`RelationalConfig::schema` must be `None`).
//! * `insert_many` inserts row by row in one transaction (in-process, cheap),
//!   naming the failing row; unique violations are named by probing the
//!   unique constraints, since SQLite reports the constraint only in its message.
//!
//! ## Cargo features
//!
//! `postgres` (sea-orm's `sqlx-postgres`: the PostgreSQL driver, TLS, `COPY`
//! bulk loads) and `sqlite` (`sqlx-sqlite`), both default. A URL of a
//! dialect whose feature is off is refused with a `Config` error.
//!
//! ## Files
//!
//! The same set as every backend crate: [`store`] (the connection pool),
//! [`config`], [`repository`] (read and write paths), `query` (filters and
//! sorts → SQL), `codec` (rows ↔ entities), [`schema`], [`error`],
//! [`transaction`], [`tenant`], [`pool`] (pool status for the metrics); and
//! the extras [`bulk`] and [`migrate`].
//!
//! ## More
//!
//! * [`transaction`]: closure-style units of work with savepoints and
//!   transaction-scoped repositories ([`RelationalStore::transaction`]).
//! * Row locks in a unit of work: [`TxRepository::get_for_update`] /
//!   [`TxRepository::find_for_update`] with a [`Lock`] (`FOR UPDATE`,
//!   `NOWAIT`, `SKIP LOCKED`; SQLite takes its database write lock instead).
//! * The raw escape hatch: [`RelationalRepository::query_as`] (rows decoded
//!   into entities by the codec `get` uses) and
//!   [`RelationalRepository::execute`], with bound [`Params`] only (also on
//!   [`TxRepository`]); recorded by the store's metrics
//!   ([`RelationalStore::set_metrics`]).
//! * [`bulk`]: adaptive bulk insert (multi-row `INSERT` / `COPY FROM STDIN`),
//!   also from a `Stream`.
//! * [`tenant`]: schema-per-tenant with validated tenant ids; with a
//!   migrator, provisioning migrates each new tenant to head and
//!   `Tenants::migrate_all` migrates every tenant (bounded concurrency,
//!   per-tenant status table, dry run, failures per tenant).
//! * [`migrate`]: sea-orm-migration integration (generated initial
//!   migration per entity, `up` / `down` / `status`; CLI example
//!   `persistence-migrate`).
//! * [`config`]: pool, timeouts, application name, TLS (`sslmode` through
//!   rustls, custom root certificate).
//! * [`error`]: the SQLSTATE / SQLite code map.
//!
//! Streams (`Repository::stream`) pull rows from the server as they are
//! consumed (sqlx's row stream), so large results are not held in memory.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bulk;
mod codec;
pub mod config;
pub mod error;
mod fulltext;
pub mod migrate;
pub mod pool;
mod query;
pub mod repository;
pub mod schema;
pub mod store;
pub mod tenant;
pub mod transaction;
mod vector;

pub use bulk::{BulkOptions, CopyFormat};
pub use config::{
    DEFAULT_URL, RelationalConfig, SslMode, TenantRouting, TenantStatements, validate_schema_name,
};
pub use query::Dialect;
pub use repository::{Params, RelationalRepository};
pub use sea_orm;
pub use sea_orm_migration;
pub use store::RelationalStore;
pub use tenant::{TenantId, TenantResolver, Tenants};
pub use transaction::{IsolationLevel, Lock, TxRepository, UnitOfWork};
