//! The error map: driver errors to [`persistence_core::Error`], by code.
//!
//! PostgreSQL errors are classified by SQLSTATE, SQLite errors by extended
//! result code; the message text of the server is never inspected (only
//! shown, where it cannot carry a value). The driver error is kept as the
//! source. Messages name the condition (`string_data_right_truncation
//! (22001)`, `SQLITE_CONSTRAINT_NOTNULL (1299)`) and the column or
//! constraint the server reported.
//!
//! | PostgreSQL | SQLite | kind |
//! |---|---|---|
//! | 23505 on the primary key (whatever it is called: looked up once) | 1555 `SQLITE_CONSTRAINT_PRIMARYKEY` | `Conflict(DuplicateId)` |
//! | 23505 on another constraint, 23P01 | 2067 `SQLITE_CONSTRAINT_UNIQUE` | `Conflict(Unique { constraint })` (the `IndexMeta::name`) |
//! | 23xxx, 22xxx, 54xxx, 44000 | 1299, 275, 787, 3091, 1811, 2579, 19, 20, 25, 18 | `InvalidInput` |
//! | 40001, 40P01, 55P03, 72000 | 5, 6, 261, 262, 517, 518, 773 (busy / locked) | `Conflict(Concurrent)`, retryable |
//! | 57014 | 9 `SQLITE_INTERRUPT` | `Timeout` |
//! | 08xxx, 57P01-57P03, 57P05, 53xxx, 25006, 40003; I/O errors, protocol errors, pool closed / acquire timeout | 10 and 14 families (I/O, cannot open) | `Unavailable`, retryable |
//! | TLS: certificate not accepted under the sslmode | - | `Unavailable`, **not** retryable |
//! | 28xxx, 42501, 3D000 | 3, 8, 23 | `Config` |
//! | 0A000 | - | `Unsupported` |
//! | anything else | anything else | `Backend` |
//!
//! SQLite does not report which unique constraint failed other than in the
//! message; the repository finds it by probing the unique constraints with
//! the conflicting row's values (see `RelationalRepository`).
//!
//! Whether a failed write may have been applied follows from where it
//! failed ([`Stage`]): nothing was sent when connecting or acquiring a
//! connection failed; a statement the server answered with an error was
//! rolled back; a connection that broke while a statement was in flight
//! leaves its outcome unknown.

use std::sync::{Arc, OnceLock};

use persistence_core::error::Stage;
use persistence_core::{EntityMeta, Error, ErrorKind, Record, Value};
use sea_orm::sqlx;
use sea_orm::{
    ConnAcquireErr, ConnectionTrait as _, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    Statement,
};

use crate::sql::Dialect;

/// Names used to map constraint violations back to metadata.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConstraintNames {
    /// The primary-key constraint the library creates (`pk_<entity>`).
    pub(crate) primary_key: String,
    /// The primary-key constraint of the table as it is (a table the
    /// library did not create may call it anything), looked up once on the
    /// first unique violation that names an unknown constraint.
    pub(crate) actual_primary_key: Arc<OnceLock<String>>,
    /// Unique constraints (`IndexMeta::name`) and their fields.
    pub(crate) uniques: Vec<(String, Vec<&'static str>)>,
}

impl ConstraintNames {
    /// The names the library gives the constraints of `meta`'s table.
    pub(crate) fn of(meta: &EntityMeta) -> ConstraintNames {
        let mut primary_key = format!("pk_{}", meta.name);
        // Identifiers are ASCII (validated); PostgreSQL keeps 63 bytes.
        primary_key.truncate(63);
        ConstraintNames {
            primary_key,
            actual_primary_key: Arc::default(),
            uniques: meta
                .uniques()
                .map(|u| (u.name.clone(), u.fields.clone()))
                .collect(),
        }
    }

    fn is_primary_key(&self, constraint: &str) -> bool {
        constraint == self.primary_key
            || self
                .actual_primary_key
                .get()
                .is_some_and(|pk| pk == constraint)
    }

    /// True when a violated constraint is neither a known unique nor a
    /// known primary key, and the table's primary key was not looked up yet.
    pub(crate) fn needs_primary_key_lookup(&self, constraint: &str) -> bool {
        self.actual_primary_key.get().is_none()
            && !self.is_primary_key(constraint)
            && !self.uniques.iter().any(|(n, _)| n == constraint)
    }
}

/// Whether operation `op` may change the store: the repository's writes,
/// a commit, DDL, bulk loads, and any operation not known to only read.
pub(crate) fn may_write(op: Option<&str>) -> bool {
    let Some(op) = op else { return true };
    match persistence_core::layer::Op::from_name(op) {
        Some(o) => o.is_write(),
        None => !matches!(
            op,
            "connect" | "ping" | "begin" | "savepoint" | "list_tenants" | "health"
        ),
    }
}

/// What the repository knows beyond the driver error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hints<'a> {
    /// The operation (`insert`, `delete`, ...).
    pub(crate) op: Option<&'static str>,
    /// The column a value-too-long / out-of-range error is about, and the
    /// column's limit (`200` for `varchar(200)`, `12,2` for `numeric(12,2)`).
    pub(crate) column: Option<(&'a str, &'a str)>,
}

/// Map a sea-orm error (for statements run directly on the connection).
pub fn map_error(err: DbErr) -> Error {
    map_db_err(err, &ConstraintNames::default())
}

/// Map a sea-orm error.
pub(crate) fn map_db_err(err: DbErr, names: &ConstraintNames) -> Error {
    map_db_err_with(err, names, Hints::default())
}

/// Map a sea-orm error with what the repository knows about the call.
pub(crate) fn map_db_err_with(err: DbErr, names: &ConstraintNames, hints: Hints<'_>) -> Error {
    let (e, stage) = classify(&err, names, hints);
    e.with_outcome(stage.outcome(may_write(hints.op)))
        .with_source(err)
}

/// Map an error of connecting with `url`. The driver's text may echo the
/// URL (sea-orm: "The connection string '…' cannot be parsed"), so the
/// source is a copy with the URL's secrets taken out.
pub(crate) fn map_connect_err(err: DbErr, url: &str) -> Error {
    let hints = Hints {
        op: Some("connect"),
        column: None,
    };
    let (e, _stage) = classify(&err, &ConstraintNames::default(), hints);
    let e = match &err {
        DbErr::Conn(RuntimeErr::Internal(_)) => Error::config(format!(
            "cannot connect to {}: the URL cannot be parsed or its scheme has no driver",
            persistence_core::error::redact_url(url)
        )),
        _ => e,
    };
    e.with_operation("connect")
        .with_source(persistence_core::redact::RedactedError::new(&err, url))
}

/// Map a sea-orm error caused by input row `row` of a bulk load: the message
/// starts with `row <row>: `.
pub(crate) fn map_db_err_at_row(err: DbErr, names: &ConstraintNames, row: usize) -> Error {
    let (e, stage) = classify(&err, names, Hints::default());
    let message = format!("row {row}: {}", e.message());
    e.with_message(message)
        .with_outcome(stage.outcome(may_write(None)))
        .with_source(err)
}

/// True when a failed statement is the fault of one row's values (22xxx,
/// 23xxx): replaying the rows one by one finds the culprit.
pub(crate) fn is_row_fault(err: &DbErr) -> bool {
    pg_error(err)
        .map(|pg| pg.code())
        .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
}

/// The SQLSTATE and constraint of a PostgreSQL error.
pub(crate) fn pg_code_and_constraint(err: &DbErr) -> Option<(&str, Option<&str>)> {
    pg_error(err).map(|pg| (pg.code(), pg.constraint()))
}

/// The 1-based input line a PostgreSQL `COPY ... FROM STDIN` failed on, from
/// the error's context field (`COPY things, line 1235[, column ...]`). The
/// SQLSTATE still decides the error kind; the context only locates the row.
/// The word "line" may be translated (`lc_messages`), so the first number
/// after the table name is taken.
pub(crate) fn copy_line(err: &DbErr) -> Option<usize> {
    let ctx = pg_error(err)?.r#where()?;
    let ctx = ctx.lines().find(|l| l.starts_with("COPY "))?;
    let (_, rest) = ctx.split_once(", ")?;
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|&n| n > 0)
}

fn sqlx_of(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

fn pg_error(err: &DbErr) -> Option<&sqlx::postgres::PgDatabaseError> {
    sqlx_of(err)?
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
}

fn classify(err: &DbErr, names: &ConstraintNames, hints: Hints<'_>) -> (Error, Stage) {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => (
            Error::unavailable(
                "timed out waiting for a pooled connection (pool exhausted or server unreachable)",
            ),
            Stage::NotSent,
        ),
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => (
            Error::unavailable("the connection pool is closed"),
            Stage::NotSent,
        ),
        // Connecting: establishing a pooled connection (or a ping) failed.
        DbErr::Conn(RuntimeErr::SqlxError(e)) => (map_sqlx(e, names, hints).0, Stage::NotSent),
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            map_sqlx(e, names, hints)
        }
        // sea-orm's own connect errors (an unparsable URL, no driver for
        // the scheme); the text may echo the URL and is not repeated.
        DbErr::Conn(_) => (
            Error::config("cannot connect: the database URL is invalid or has no driver"),
            Stage::NotSent,
        ),
        DbErr::Type(m) | DbErr::Json(m) => (Error::decode(m.clone()), Stage::Rejected),
        DbErr::TryIntoErr { from, into, .. } => (
            Error::decode(format!("cannot convert {from} into {into}")),
            Stage::Rejected,
        ),
        DbErr::Exec(RuntimeErr::Internal(m)) | DbErr::Query(RuntimeErr::Internal(m)) => (
            Error::backend(format!("database operation failed: {m}")),
            Stage::InFlight,
        ),
        DbErr::Migration(m) => (
            Error::backend(format!("migration failed: {m}")),
            Stage::Rejected,
        ),
        DbErr::RecordNotFound(m) => (Error::not_found(m.clone()), Stage::Rejected),
        _ => (Error::backend("database operation failed"), Stage::InFlight),
    }
}

fn map_sqlx(err: &sqlx::Error, names: &ConstraintNames, hints: Hints<'_>) -> (Error, Stage) {
    use std::io::ErrorKind as Io;
    match err {
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let facts = PgFacts {
                    code: pg.code(),
                    message: pg.message(),
                    constraint: pg.constraint(),
                    column: pg.column(),
                    table: pg.table(),
                    data_type: pg.data_type(),
                };
                map_pg(&facts, names, hints)
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(-1);
                map_sqlite(code, db.message())
            } else {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                (
                    Error::backend(format!("database error {code}: {}", db.message())),
                    Stage::Rejected,
                )
            }
        }
        sqlx::Error::PoolTimedOut => (
            Error::unavailable(
                "timed out waiting for a pooled connection (pool exhausted or server unreachable)",
            ),
            Stage::NotSent,
        ),
        sqlx::Error::PoolClosed => (
            Error::unavailable("the connection pool is closed"),
            Stage::NotSent,
        ),
        // Certificate problems do not go away by retrying (rustls reports
        // them through the I/O layer as InvalidData).
        sqlx::Error::Io(io) if io.kind() == Io::InvalidData => (tls_failure(), Stage::NotSent),
        sqlx::Error::Tls(_) => (tls_failure(), Stage::NotSent),
        sqlx::Error::Io(io) => {
            let what = match io.kind() {
                Io::ConnectionRefused => "connection refused by the database server",
                Io::ConnectionReset => "connection reset by the database server",
                Io::ConnectionAborted => "connection aborted",
                Io::BrokenPipe => "the connection to the database broke (broken pipe)",
                Io::UnexpectedEof => {
                    "the database server closed the connection (unexpected end of stream)"
                }
                Io::TimedOut => "the connection to the database timed out",
                Io::NotConnected => "not connected to the database",
                Io::AddrNotAvailable | Io::AddrInUse => "cannot open a connection (address)",
                Io::NotFound => "the database host or socket does not exist",
                Io::PermissionDenied => "permission denied opening the database connection",
                _ => "I/O error on the database connection",
            };
            (Error::unavailable(what), Stage::InFlight)
        }
        // sqlx counts bind parameters before it sends anything; too many is
        // the caller's input, not a broken connection (sqlx's own fixed
        // text, pinned by the table test).
        sqlx::Error::Protocol(m) if m.contains("too many arguments for query") => (
            Error::invalid_input(
                "too many bound values in one statement (PostgreSQL allows 65,535)",
            ),
            Stage::NotSent,
        ),
        // An unexpected message on the wire: the peer closed or garbled the
        // connection (e.g. a proxy or pooler answering the SSLRequest while
        // the server restarts). The connection is not usable.
        sqlx::Error::Protocol(_) => (
            Error::unavailable(
                "the database connection broke (unexpected data on the wire: the server or a \
                 proxy closed or reset it)",
            ),
            Stage::InFlight,
        ),
        sqlx::Error::WorkerCrashed => (
            Error::unavailable("the database worker crashed"),
            Stage::InFlight,
        ),
        sqlx::Error::BeginFailed => (
            Error::unavailable("the connection was in an unexpected state after BEGIN"),
            Stage::InFlight,
        ),
        sqlx::Error::Configuration(_) => (
            Error::config("invalid database configuration (URL or connect options)"),
            Stage::NotSent,
        ),
        sqlx::Error::InvalidArgument(m) => (
            Error::invalid_input(format!("invalid argument: {m}")),
            Stage::NotSent,
        ),
        sqlx::Error::Encode(e) => (
            Error::invalid_input(format!("cannot encode a value: {e}")),
            Stage::NotSent,
        ),
        sqlx::Error::ColumnDecode { index, source } => (
            Error::decode(format!("cannot decode column {index}: {source}")),
            Stage::Rejected,
        ),
        sqlx::Error::Decode(e) => (
            Error::decode(format!("cannot decode a value: {e}")),
            Stage::Rejected,
        ),
        sqlx::Error::ColumnNotFound(c) => (
            Error::decode(format!("no column `{c}` in the result")),
            Stage::Rejected,
        ),
        sqlx::Error::ColumnIndexOutOfBounds { index, len } => (
            Error::decode(format!(
                "column index {index} out of bounds (the row has {len} columns)"
            )),
            Stage::Rejected,
        ),
        sqlx::Error::TypeNotFound { type_name } => (
            Error::backend(format!("type `{type_name}` does not exist in the database")),
            Stage::Rejected,
        ),
        sqlx::Error::RowNotFound => (Error::not_found("no row"), Stage::Rejected),
        _ => (Error::backend("database driver error"), Stage::InFlight),
    }
}

fn tls_failure() -> Error {
    Error::unavailable(
        "TLS negotiation with the database failed (server certificate not accepted \
         under the configured sslmode / root certificate, or TLS unavailable)",
    )
    .set_retryable(false)
}

/// The fields of a PostgreSQL error the map uses.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PgFacts<'a> {
    pub(crate) code: &'a str,
    /// The primary message (shown only where it cannot carry a value).
    pub(crate) message: &'a str,
    pub(crate) constraint: Option<&'a str>,
    pub(crate) column: Option<&'a str>,
    pub(crate) table: Option<&'a str>,
    pub(crate) data_type: Option<&'a str>,
}

/// What a data exception (class 22) means, in words.
fn data_exception(code: &str) -> &'static str {
    match code {
        "22001" => "a value is longer than its column allows",
        "22003" => "a number is out of range for its column's type",
        "22004" => "a null value is not allowed here",
        "22007" => "a date/time value has an invalid format",
        "22008" => "a date/time value is out of range",
        "22012" => "division by zero",
        "22021" => {
            "a string holds a character the database encoding cannot store (e.g. a NUL byte)"
        }
        "22023" => "a parameter value is invalid",
        "22026" => "a string has the wrong length",
        "22P02" => "a value cannot be read as its column's type",
        "22P03" => "a binary value is malformed",
        "22P05" => "a character cannot be converted to the database encoding",
        "22030" | "22031" | "22032" | "22033" | "22034" | "22035" | "22036" | "22037" | "22038"
        | "22039" | "2203A" | "2203B" | "2203C" | "2203D" | "2203E" | "2203F" => {
            "a JSON value or path is invalid"
        }
        _ => "a value is not valid for its column",
    }
}

/// `name (code)`, e.g. `string_data_right_truncation (22001)`.
fn condition(code: &str) -> String {
    match crate::sqlstate::condition_name(code) {
        Some(name) => format!("{name} ({code})"),
        None => format!("SQLSTATE {code}"),
    }
}

/// ` on column `c`` / ` of type t` from the error's fields and the hints.
fn column_part(f: &PgFacts<'_>, hints: Hints<'_>) -> String {
    let mut out = String::new();
    let hinted = hints.column.filter(|_| f.column.is_none());
    if let Some(c) = f.column.or(hinted.map(|(c, _)| c)) {
        out.push_str(&format!(" on column `{c}`"));
    }
    if let Some(t) = f.data_type {
        out.push_str(&format!(" of type {t}"));
    }
    out
}

/// Classify a PostgreSQL error by SQLSTATE and describe it.
pub(crate) fn map_pg(f: &PgFacts<'_>, names: &ConstraintNames, hints: Hints<'_>) -> (Error, Stage) {
    let code = f.code;
    let cond = condition(code);
    let constraint = f.constraint.unwrap_or("");
    let rejected = |e: Error| (e, Stage::Rejected);
    match code {
        "23505" => rejected(match f.constraint {
            Some(c) if names.is_primary_key(c) => Error::duplicate_id(format!(
                "{cond} on the primary key `{c}`: an entity with this id exists"
            )),
            Some(c) => {
                let fields = names
                    .uniques
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, f)| format!(" ({})", f.join(", ")))
                    .unwrap_or_default();
                Error::unique_violation(
                    Some(c.to_string()),
                    format!("{cond} on constraint `{c}`{fields}: another row holds this value"),
                )
            }
            None => Error::unique_violation(None, format!("{cond}: another row holds this value")),
        }),
        "23P01" => rejected(Error::unique_violation(
            f.constraint.map(str::to_string),
            format!("{cond} on constraint `{constraint}`: the row conflicts with another row"),
        )),
        "23502" => rejected(Error::invalid_input(format!(
            "{cond}{}: a required value is missing (NOT NULL)",
            column_part(f, hints)
        ))),
        "23514" => rejected(Error::invalid_input(format!(
            "{cond}: the row fails check constraint `{constraint}`"
        ))),
        "23503" => {
            let what = match hints.op {
                Some("delete" | "delete_many") => "other rows still reference this row",
                Some(_) => "the referenced row does not exist",
                None => "a referenced row does not exist, or the row is still referenced",
            };
            let table = f
                .table
                .map(|t| format!(" of table `{t}`"))
                .unwrap_or_default();
            rejected(Error::invalid_input(format!(
                "{cond} on constraint `{constraint}`{table}: {what}"
            )))
        }
        c if c.starts_with("23") => rejected(Error::invalid_input(format!(
            "{cond}{}: {}",
            f.constraint
                .map(|c| format!(" on constraint `{c}`"))
                .unwrap_or_default(),
            f.message
        ))),
        // Data exceptions: the server's message may quote the value, so the
        // explanation is ours.
        c if c.starts_with("22") => {
            let limit = match (hints.column, f.column) {
                (Some((_, limit)), None) => match c {
                    "22001" => format!(" (value longer than {limit})"),
                    "22003" => format!(" (column type {limit})"),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            rejected(Error::invalid_input(format!(
                "{cond}{}{limit}: {}",
                column_part(f, hints),
                data_exception(c)
            )))
        }
        "40001" => rejected(Error::concurrent(format!(
            "{cond}: the transaction was rolled back; retry it"
        ))),
        "40P01" => rejected(Error::concurrent(format!(
            "{cond}: the transaction was rolled back; retry it"
        ))),
        "55P03" | "72000" => rejected(Error::concurrent(format!("{cond}: {}", f.message))),
        // The server cannot tell whether the transaction committed.
        "40003" => (
            Error::unavailable(format!("{cond}: the outcome of the statement is unknown")),
            Stage::InFlight,
        ),
        "57014" => rejected(Error::timeout(format!(
            "{cond}: the statement was cancelled (statement timeout)"
        ))),
        // The server terminated the session: a statement in flight may or
        // may not have committed.
        "57P01" | "57P02" | "57P05" | "25P03" => (
            Error::unavailable(format!("{cond}: the server closed the session")),
            Stage::InFlight,
        ),
        "57P03" => rejected(Error::unavailable(format!(
            "{cond}: the server is starting up or shutting down"
        ))),
        // A standby (e.g. right after a failover): writes go to the primary.
        "25006" => rejected(Error::unavailable(format!(
            "{cond}: the server accepts no writes (a standby or a read-only transaction)"
        ))),
        c if c.starts_with("08") => (
            Error::unavailable(format!("{cond}: {}", f.message)),
            Stage::InFlight,
        ),
        c if c.starts_with("53") => rejected(Error::unavailable(format!("{cond}: {}", f.message))),
        c if c.starts_with("54") || c == "44000" => {
            rejected(Error::invalid_input(format!("{cond}: {}", f.message)))
        }
        c if c.starts_with("28") || c == "42501" || c == "3D000" => {
            rejected(Error::config(format!("{cond}: {}", f.message)))
        }
        "0A000" => rejected(Error::unsupported(format!("{cond}: {}", f.message))),
        "42P01" => rejected(Error::backend(format!(
            "{cond}: {} (call ensure_schema first)",
            f.message
        ))),
        "3F000" => rejected(Error::backend(format!(
            "{cond}: {} (call ensure_schema first)",
            f.message
        ))),
        // 42xxx messages name identifiers (columns, types, functions), not values.
        "42804" | "42703" | "42883" => rejected(Error::backend(format!(
            "{cond}: {} (the table differs from the entity's fields)",
            f.message
        ))),
        _ => rejected(Error::backend(format!("{cond}: {}", f.message))),
    }
}

/// The primary-key constraint of a PostgreSQL table (`qualified`: the
/// quoted, schema-qualified name), from the catalog. Run on the pool: a
/// transaction that just failed accepts no further statement.
pub(crate) async fn primary_key_of(db: &DatabaseConnection, qualified: &str) -> Option<String> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT conname::text FROM pg_catalog.pg_constraint \
         WHERE conrelid = to_regclass($1) AND contype = 'p'",
        [sea_orm::Value::String(Some(qualified.to_string()))],
    );
    let row = db.query_one_raw(stmt).await.ok()??;
    row.try_get_by_index::<String>(0).ok()
}

/// The declared limits of a column.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnLimit {
    pub(crate) name: String,
    pub(crate) data_type: String,
    pub(crate) max_len: Option<i32>,
    pub(crate) precision: Option<i32>,
    pub(crate) scale: Option<i32>,
}

/// The column limits of a PostgreSQL table, from `information_schema`.
pub(crate) async fn column_limits(
    db: &DatabaseConnection,
    schema: Option<&str>,
    table: &str,
) -> Vec<ColumnLimit> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT column_name::text, data_type::text, character_maximum_length::int4, \
         numeric_precision::int4, numeric_scale::int4 FROM information_schema.columns \
         WHERE table_schema = COALESCE($1::text, current_schema()) AND table_name = $2",
        [
            sea_orm::Value::String(schema.map(str::to_string)),
            sea_orm::Value::String(Some(table.to_string())),
        ],
    );
    let Ok(rows) = db.query_all_raw(stmt).await else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|r| {
            Some(ColumnLimit {
                name: r.try_get_by_index(0).ok()?,
                data_type: r.try_get_by_index(1).ok()?,
                max_len: r.try_get_by_index(2).ok()?,
                precision: r.try_get_by_index(3).ok()?,
                scale: r.try_get_by_index(4).ok()?,
            })
        })
        .collect()
}

/// For a value-too-long (22001) or out-of-range (22003) error on a write
/// of `record`: the field whose value exceeds its column's declared limit,
/// and that limit (`200` for `varchar(200)`, `numeric(12,2)`, `smallint`).
pub(crate) fn find_over_limit(
    meta: &EntityMeta,
    record: &Record,
    limits: &[ColumnLimit],
    code: &str,
) -> Option<(String, String)> {
    for (i, f) in meta.fields.iter().enumerate() {
        let Some(l) = limits.iter().find(|l| l.name == f.name) else {
            continue;
        };
        let over = match (code, record.get(i)) {
            ("22001", Value::String(s)) => l
                .max_len
                .filter(|&n| s.chars().count() > usize::try_from(n).unwrap_or(usize::MAX))
                .map(|n| n.to_string()),
            ("22003", Value::Decimal(d)) if l.data_type == "numeric" => {
                match (l.precision, l.scale) {
                    (Some(p), Some(sc)) => {
                        let int = d.round_dp(u32::try_from(sc).unwrap_or(0)).trunc().abs();
                        let digits = if int.is_zero() {
                            0
                        } else {
                            int.to_string().len()
                        };
                        (digits > usize::try_from(p - sc).unwrap_or(0))
                            .then(|| format!("numeric({p},{sc})"))
                    }
                    _ => None,
                }
            }
            ("22003", Value::I64(x)) => {
                let fits = match l.data_type.as_str() {
                    "smallint" => i16::try_from(*x).is_ok(),
                    "integer" => i32::try_from(*x).is_ok(),
                    _ => true,
                };
                (!fits).then(|| l.data_type.clone())
            }
            ("22003", Value::F64(x)) if l.data_type == "real" => {
                (x.is_finite() && x.abs() > f64::from(f32::MAX)).then(|| l.data_type.clone())
            }
            _ => None,
        };
        if let Some(limit) = over {
            return Some((f.name.to_string(), limit));
        }
    }
    None
}

/// Why a column could not be read, without sqlx's `column <index>` prefix
/// (the caller names the field).
pub(crate) fn decode_reason(e: &DbErr) -> String {
    match sqlx_of(e) {
        Some(sqlx::Error::ColumnDecode { source, .. }) => source.to_string(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// The name of an SQLite (extended) result code.
pub(crate) fn sqlite_code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        12 => "SQLITE_NOTFOUND",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        16 => "SQLITE_EMPTY",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        22 => "SQLITE_NOLFS",
        23 => "SQLITE_AUTH",
        24 => "SQLITE_FORMAT",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        257 => "SQLITE_ERROR_MISSING_COLLSEQ",
        513 => "SQLITE_ERROR_RETRY",
        769 => "SQLITE_ERROR_SNAPSHOT",
        261 => "SQLITE_BUSY_RECOVERY",
        517 => "SQLITE_BUSY_SNAPSHOT",
        773 => "SQLITE_BUSY_TIMEOUT",
        262 => "SQLITE_LOCKED_SHAREDCACHE",
        518 => "SQLITE_LOCKED_VTAB",
        264 => "SQLITE_READONLY_RECOVERY",
        520 => "SQLITE_READONLY_CANTLOCK",
        776 => "SQLITE_READONLY_ROLLBACK",
        1032 => "SQLITE_READONLY_DBMOVED",
        1288 => "SQLITE_READONLY_CANTINIT",
        1544 => "SQLITE_READONLY_DIRECTORY",
        266 => "SQLITE_IOERR_READ",
        522 => "SQLITE_IOERR_SHORT_READ",
        778 => "SQLITE_IOERR_WRITE",
        1034 => "SQLITE_IOERR_FSYNC",
        1290 => "SQLITE_IOERR_DIR_FSYNC",
        1546 => "SQLITE_IOERR_TRUNCATE",
        1802 => "SQLITE_IOERR_FSTAT",
        2058 => "SQLITE_IOERR_UNLOCK",
        2314 => "SQLITE_IOERR_RDLOCK",
        2570 => "SQLITE_IOERR_DELETE",
        3082 => "SQLITE_IOERR_NOMEM",
        3338 => "SQLITE_IOERR_ACCESS",
        3850 => "SQLITE_IOERR_LOCK",
        4106 => "SQLITE_IOERR_CLOSE",
        4618 => "SQLITE_IOERR_SHMOPEN",
        4874 => "SQLITE_IOERR_SHMSIZE",
        5386 => "SQLITE_IOERR_SHMMAP",
        5642 => "SQLITE_IOERR_SEEK",
        6154 => "SQLITE_IOERR_MMAP",
        8202 => "SQLITE_IOERR_DATA",
        8458 => "SQLITE_IOERR_CORRUPTFS",
        270 => "SQLITE_CANTOPEN_NOTEMPDIR",
        526 => "SQLITE_CANTOPEN_ISDIR",
        782 => "SQLITE_CANTOPEN_FULLPATH",
        1038 => "SQLITE_CANTOPEN_CONVPATH",
        1550 => "SQLITE_CANTOPEN_SYMLINK",
        267 => "SQLITE_CORRUPT_VTAB",
        523 => "SQLITE_CORRUPT_SEQUENCE",
        779 => "SQLITE_CORRUPT_INDEX",
        516 => "SQLITE_ABORT_ROLLBACK",
        275 => "SQLITE_CONSTRAINT_CHECK",
        531 => "SQLITE_CONSTRAINT_COMMITHOOK",
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
        1043 => "SQLITE_CONSTRAINT_FUNCTION",
        1299 => "SQLITE_CONSTRAINT_NOTNULL",
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
        1811 => "SQLITE_CONSTRAINT_TRIGGER",
        2067 => "SQLITE_CONSTRAINT_UNIQUE",
        2323 => "SQLITE_CONSTRAINT_VTAB",
        2579 => "SQLITE_CONSTRAINT_ROWID",
        2835 => "SQLITE_CONSTRAINT_PINNED",
        3091 => "SQLITE_CONSTRAINT_DATATYPE",
        _ => return None,
    })
}

/// Classify an SQLite extended result code; `message` is SQLite's own text
/// (it names tables, columns and constraints, never a bound value).
pub(crate) fn map_sqlite(code: i32, message: &str) -> (Error, Stage) {
    let name = match sqlite_code_name(code) {
        Some(n) => format!("{n} ({code})"),
        None => format!("SQLite result code {code}"),
    };
    let said = |what: &str| format!("{name}: {what} ({message})");
    let rejected = |e: Error| (e, Stage::Rejected);
    let primary = code & 0xff;
    match code {
        1555 => rejected(Error::duplicate_id(said("an entity with this id exists"))),
        2067 => rejected(Error::unique_violation(
            None,
            said("another row holds this value"),
        )),
        1299 => rejected(Error::invalid_input(said(
            "a required value is missing (NOT NULL)",
        ))),
        275 => rejected(Error::invalid_input(said(
            "the row fails a check constraint",
        ))),
        787 => rejected(Error::invalid_input(said(
            "a referenced row does not exist, or the row is still referenced",
        ))),
        3091 => rejected(Error::invalid_input(said(
            "a value has the wrong type for its STRICT column",
        ))),
        1811 => rejected(Error::invalid_input(said("a trigger refused the row"))),
        2579 => rejected(Error::invalid_input(said("the rowid is invalid"))),
        _ => match primary {
            19 | 20 | 25 | 18 => rejected(Error::invalid_input(said(match primary {
                18 => "a string or blob is too big",
                20 => "a value has the wrong type",
                25 => "a bound parameter index is out of range",
                _ => "a constraint failed",
            }))),
            5 | 6 => rejected(Error::concurrent(said(
                "the database is busy or locked by another connection; retry",
            ))),
            9 => rejected(Error::timeout(said("the statement was interrupted"))),
            // The write may have reached the file before the I/O error.
            10 => (
                Error::unavailable(said("disk I/O error on the database file")),
                Stage::InFlight,
            ),
            14 => (
                Error::unavailable(said("cannot open the database file")),
                Stage::NotSent,
            ),
            13 => rejected(Error::unavailable(said("the disk is full"))),
            3 | 8 | 23 => rejected(Error::config(said(
                "not allowed (read-only database file, or no permission)",
            ))),
            11 | 26 => rejected(Error::backend(said(
                "the database file is corrupt or not a database",
            ))),
            17 => rejected(Error::concurrent(said(
                "the schema changed while the statement ran; retry",
            ))),
            _ => rejected(Error::backend(format!("{name}: {message}"))),
        },
    }
}

/// True for a unique violation whose constraint is not known yet (SQLite).
pub(crate) fn is_unnamed_unique(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Conflict(persistence_core::ConflictKind::Unique { constraint: None })
    )
}

pub(crate) fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "postgres",
        Dialect::Sqlite => "sqlite",
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use persistence_core::ConflictKind;

    use super::*;

    fn names() -> ConstraintNames {
        ConstraintNames {
            primary_key: "pk_users".into(),
            actual_primary_key: Arc::default(),
            uniques: vec![("ux_users_email".into(), vec!["email"])],
        }
    }

    fn sqlx_err(e: sqlx::Error) -> Arc<sqlx::Error> {
        Arc::new(e)
    }

    /// Every driver error variant that can be built outside the driver, in
    /// the wrappers sea-orm puts it in, and what it maps to.
    #[test]
    fn driver_errors_table() {
        use ErrorKind as K;
        use Stage::{InFlight, NotSent, Rejected};
        let exec = |e: sqlx::Error| DbErr::Exec(RuntimeErr::SqlxError(sqlx_err(e)));
        let query = |e: sqlx::Error| DbErr::Query(RuntimeErr::SqlxError(sqlx_err(e)));
        let conn = |e: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(sqlx_err(e)));
        let io = |k: io::ErrorKind| sqlx::Error::Io(io::Error::from(k));
        let ssl = "unexpected response from SSLRequest: 0x00 (sqlx_postgres::connection::tls:95)";
        #[rustfmt::skip]
        let table: Vec<(&str, DbErr, K, bool, Stage)> = vec![
            // Transport failures while a statement is in flight: Unavailable, outcome unknown.
            ("io reset", exec(io(io::ErrorKind::ConnectionReset)), K::Unavailable, true, InFlight),
            ("io eof", query(io(io::ErrorKind::UnexpectedEof)), K::Unavailable, true, InFlight),
            ("io broken pipe", exec(io(io::ErrorKind::BrokenPipe)), K::Unavailable, true, InFlight),
            ("io aborted", exec(io(io::ErrorKind::ConnectionAborted)), K::Unavailable, true, InFlight),
            ("io timed out", query(io(io::ErrorKind::TimedOut)), K::Unavailable, true, InFlight),
            ("io not connected", exec(io(io::ErrorKind::NotConnected)), K::Unavailable, true, InFlight),
            ("io other", exec(io(io::ErrorKind::Other)), K::Unavailable, true, InFlight),
            ("protocol mid-query", exec(sqlx::Error::Protocol("expecting ReadyForQuery but received 'X'".into())), K::Unavailable, true, InFlight),
            ("worker crashed", exec(sqlx::Error::WorkerCrashed), K::Unavailable, true, InFlight),
            ("begin failed", query(sqlx::Error::BeginFailed), K::Unavailable, true, InFlight),
            // The same while connecting (sea-orm wraps pool connects in `Conn`): nothing was sent.
            ("connect: SSLRequest answered 0x00", conn(sqlx::Error::Protocol(ssl.into())), K::Unavailable, true, NotSent),
            ("connect: refused", conn(io(io::ErrorKind::ConnectionRefused)), K::Unavailable, true, NotSent),
            ("connect: reset", conn(io(io::ErrorKind::ConnectionReset)), K::Unavailable, true, NotSent),
            ("connect: eof", conn(io(io::ErrorKind::UnexpectedEof)), K::Unavailable, true, NotSent),
            ("connect: tls", conn(sqlx::Error::Tls("handshake failure".into())), K::Unavailable, false, NotSent),
            ("connect: tls certificate (rustls via io)", conn(io(io::ErrorKind::InvalidData)), K::Unavailable, false, NotSent),
            ("pool timed out", conn(sqlx::Error::PoolTimedOut), K::Unavailable, true, NotSent),
            ("pool closed", conn(sqlx::Error::PoolClosed), K::Unavailable, true, NotSent),
            ("acquire timeout", DbErr::ConnectionAcquire(ConnAcquireErr::Timeout), K::Unavailable, true, NotSent),
            ("acquire closed", DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed), K::Unavailable, true, NotSent),
            ("connect: bad url", DbErr::Conn(RuntimeErr::Internal("The connection string 'x' cannot be parsed.".into())), K::Config, false, NotSent),
            ("configuration", conn(sqlx::Error::Configuration("bad sslmode".into())), K::Config, false, NotSent),
            // The caller's input or the data, not the transport.
            ("too many binds", exec(sqlx::Error::Protocol("PgConnection::run(): too many arguments for query: 70000 (sqlx_postgres::connection::executor:223)".into())), K::InvalidInput, false, NotSent),
            ("invalid argument", exec(sqlx::Error::InvalidArgument("x".into())), K::InvalidInput, false, NotSent),
            ("encode", exec(sqlx::Error::Encode("x".into())), K::InvalidInput, false, NotSent),
            ("column decode", query(sqlx::Error::ColumnDecode { index: "\"age\"".into(), source: "mismatched types".into() }), K::Decode, false, Rejected),
            ("decode", query(sqlx::Error::Decode("x".into())), K::Decode, false, Rejected),
            ("column not found", query(sqlx::Error::ColumnNotFound("age".into())), K::Decode, false, Rejected),
            ("column index", query(sqlx::Error::ColumnIndexOutOfBounds { index: 4, len: 3 }), K::Decode, false, Rejected),
            ("type not found", query(sqlx::Error::TypeNotFound { type_name: "citext".into() }), K::Backend, false, Rejected),
            ("row not found", query(sqlx::Error::RowNotFound), K::NotFound, false, Rejected),
            ("sea-orm type", DbErr::Type("x".into()), K::Decode, false, Rejected),
            ("sea-orm record not found", DbErr::RecordNotFound("x".into()), K::NotFound, false, Rejected),
        ];
        for (what, err, kind, retryable, stage) in table {
            let (e, got_stage) = classify(&err, &names(), Hints::default());
            assert_eq!(e.kind(), &kind, "{what}: {e}");
            assert_eq!(e.is_retryable(), retryable, "{what}: {e}");
            assert_eq!(got_stage, stage, "{what}: {e}");
            assert!(!e.message().is_empty(), "{what}");
            let mapped = map_db_err(err, &names());
            assert!(
                std::error::Error::source(&mapped).is_some(),
                "{what}: the driver error is the source"
            );
        }
    }

    fn pg(code: &'static str) -> PgFacts<'static> {
        PgFacts {
            code,
            message: "server message",
            ..PgFacts::default()
        }
    }

    /// Each mapped SQLSTATE: kind, retryable, stage, and the words of the message.
    #[test]
    fn sqlstate_table() {
        use ErrorKind as K;
        use Stage::{InFlight, Rejected};
        let unique = |c: &str| {
            K::Conflict(ConflictKind::Unique {
                constraint: Some(c.into()),
            })
        };
        let f = |code, constraint: Option<&'static str>, column: Option<&'static str>| PgFacts {
            constraint,
            column,
            table: Some("users"),
            ..pg(code)
        };
        #[rustfmt::skip]
        let table: Vec<(PgFacts<'static>, K, bool, Stage, &str)> = vec![
            (f("23505", Some("pk_users"), None), K::Conflict(ConflictKind::DuplicateId), false, Rejected, "unique_violation (23505) on the primary key `pk_users`"),
            (f("23505", Some("ux_users_email"), None), unique("ux_users_email"), false, Rejected, "unique_violation (23505) on constraint `ux_users_email` (email)"),
            (f("23505", Some("users_email_key"), None), unique("users_email_key"), false, Rejected, "on constraint `users_email_key`"),
            (f("23P01", Some("no_overlap"), None), unique("no_overlap"), false, Rejected, "exclusion_violation (23P01) on constraint `no_overlap`"),
            (f("23502", None, Some("email")), K::InvalidInput, false, Rejected, "not_null_violation (23502) on column `email`"),
            (f("23514", Some("price_positive"), None), K::InvalidInput, false, Rejected, "check_violation (23514): the row fails check constraint `price_positive`"),
            (f("23503", Some("orders_customer_fk"), None), K::InvalidInput, false, Rejected, "foreign_key_violation (23503) on constraint `orders_customer_fk` of table `users`"),
            (f("23001", Some("r"), None), K::InvalidInput, false, Rejected, "restrict_violation (23001)"),
            (pg("22001"), K::InvalidInput, false, Rejected, "string_data_right_truncation (22001): a value is longer than its column allows"),
            (pg("22003"), K::InvalidInput, false, Rejected, "numeric_value_out_of_range (22003)"),
            (pg("22P02"), K::InvalidInput, false, Rejected, "invalid_text_representation (22P02)"),
            (pg("22007"), K::InvalidInput, false, Rejected, "invalid_datetime_format (22007)"),
            (pg("22008"), K::InvalidInput, false, Rejected, "datetime_field_overflow (22008)"),
            (pg("22012"), K::InvalidInput, false, Rejected, "division_by_zero (22012)"),
            (pg("22021"), K::InvalidInput, false, Rejected, "character_not_in_repertoire (22021)"),
            (pg("22P05"), K::InvalidInput, false, Rejected, "untranslatable_character (22P05)"),
            (pg("22032"), K::InvalidInput, false, Rejected, "invalid_json_text (22032)"),
            (pg("22Z99"), K::InvalidInput, false, Rejected, "data_exception (22Z99)"),
            (pg("40001"), K::Conflict(ConflictKind::Concurrent), true, Rejected, "serialization_failure (40001)"),
            (pg("40P01"), K::Conflict(ConflictKind::Concurrent), true, Rejected, "deadlock_detected (40P01)"),
            (pg("55P03"), K::Conflict(ConflictKind::Concurrent), true, Rejected, "lock_not_available (55P03)"),
            (pg("40003"), K::Unavailable, true, InFlight, "statement_completion_unknown (40003)"),
            (pg("57014"), K::Timeout, true, Rejected, "query_canceled (57014)"),
            (pg("57P01"), K::Unavailable, true, InFlight, "admin_shutdown (57P01)"),
            (pg("57P02"), K::Unavailable, true, InFlight, "crash_shutdown (57P02)"),
            (pg("57P03"), K::Unavailable, true, Rejected, "cannot_connect_now (57P03)"),
            (pg("57P05"), K::Unavailable, true, InFlight, "idle_session_timeout (57P05)"),
            (pg("25P03"), K::Unavailable, true, InFlight, "idle_in_transaction_session_timeout (25P03)"),
            (pg("25006"), K::Unavailable, true, Rejected, "read_only_sql_transaction (25006)"),
            (pg("08006"), K::Unavailable, true, InFlight, "connection_failure (08006)"),
            (pg("08P01"), K::Unavailable, true, InFlight, "protocol_violation (08P01)"),
            (pg("53300"), K::Unavailable, true, Rejected, "too_many_connections (53300)"),
            (pg("53100"), K::Unavailable, true, Rejected, "disk_full (53100)"),
            (pg("54000"), K::InvalidInput, false, Rejected, "program_limit_exceeded (54000)"),
            (pg("54023"), K::InvalidInput, false, Rejected, "too_many_arguments (54023)"),
            (pg("28P01"), K::Config, false, Rejected, "invalid_password (28P01)"),
            (pg("28000"), K::Config, false, Rejected, "invalid_authorization_specification (28000)"),
            (pg("42501"), K::Config, false, Rejected, "insufficient_privilege (42501)"),
            (pg("3D000"), K::Config, false, Rejected, "invalid_catalog_name (3D000)"),
            (pg("0A000"), K::Unsupported, false, Rejected, "feature_not_supported (0A000)"),
            (pg("42P01"), K::Backend, false, Rejected, "undefined_table (42P01): server message (call ensure_schema first)"),
            (pg("3F000"), K::Backend, false, Rejected, "invalid_schema_name (3F000)"),
            (pg("42804"), K::Backend, false, Rejected, "datatype_mismatch (42804): server message (the table differs"),
            (pg("42703"), K::Backend, false, Rejected, "undefined_column (42703)"),
            (pg("42883"), K::Backend, false, Rejected, "undefined_function (42883)"),
            (pg("42601"), K::Backend, false, Rejected, "syntax_error (42601): server message"),
            (pg("P0001"), K::Backend, false, Rejected, "raise_exception (P0001): server message"),
            (pg("XX000"), K::Backend, false, Rejected, "internal_error (XX000)"),
        ];
        for (facts, kind, retryable, stage, words) in table {
            let (e, got) = map_pg(&facts, &names(), Hints::default());
            assert_eq!(e.kind(), &kind, "{}: {e}", facts.code);
            assert_eq!(e.is_retryable(), retryable, "{}: {e}", facts.code);
            assert_eq!(got, stage, "{}: {e}", facts.code);
            assert!(
                e.message().contains(words),
                "{}: `{}` lacks `{words}`",
                facts.code,
                e.message()
            );
            assert!(!e.message().contains("database error"), "{e}");
        }
    }

    #[test]
    fn data_exceptions_never_show_the_server_message() {
        // The server's text for 22xxx may quote the rejected value.
        let facts = PgFacts {
            message: "invalid input syntax for type uuid: \"s3cret\"",
            ..pg("22P02")
        };
        let (e, _) = map_pg(&facts, &names(), Hints::default());
        assert!(!e.message().contains("s3cret"), "{e}");
    }

    #[test]
    fn hints_name_the_column_and_the_operation() {
        let hints = Hints {
            op: Some("insert"),
            column: Some(("email", "200")),
        };
        let (e, _) = map_pg(&pg("22001"), &names(), hints);
        assert_eq!(
            e.message(),
            "string_data_right_truncation (22001) on column `email` (value longer than 200): \
             a value is longer than its column allows"
        );
        let fk = |op| {
            let facts = PgFacts {
                constraint: Some("fk"),
                ..pg("23503")
            };
            map_pg(
                &facts,
                &names(),
                Hints {
                    op: Some(op),
                    column: None,
                },
            )
            .0
            .message()
            .to_string()
        };
        assert!(fk("insert").contains("the referenced row does not exist"));
        assert!(fk("delete").contains("other rows still reference this row"));
    }

    #[test]
    fn the_actual_primary_key_is_a_duplicate_id() {
        let n = names();
        let facts = PgFacts {
            constraint: Some("customers_pkey"),
            ..pg("23505")
        };
        assert!(n.needs_primary_key_lookup("customers_pkey"));
        assert!(!n.needs_primary_key_lookup("ux_users_email"));
        assert!(matches!(
            map_pg(&facts, &n, Hints::default()).0.kind(),
            ErrorKind::Conflict(ConflictKind::Unique { .. })
        ));
        let _ = n.actual_primary_key.set("customers_pkey".into());
        assert!(!n.needs_primary_key_lookup("customers_pkey"));
        assert_eq!(
            map_pg(&facts, &n, Hints::default()).0.kind(),
            &ErrorKind::Conflict(ConflictKind::DuplicateId)
        );
    }

    #[test]
    fn every_sqlstate_has_a_name() {
        for code in [
            "22001", "42804", "23505", "40001", "57P01", "08006", "XX000",
        ] {
            assert!(crate::sqlstate::condition_name(code).is_some(), "{code}");
        }
        // A code of a later server version is named after its class.
        assert_eq!(
            crate::sqlstate::condition_name("42Z99"),
            Some("syntax_error_or_access_rule_violation")
        );
        assert_eq!(crate::sqlstate::condition_name("ZZ999"), None);
    }

    /// Each mapped SQLite code: kind, retryable and the name in the message.
    #[test]
    fn sqlite_codes_table() {
        use ErrorKind as K;
        #[rustfmt::skip]
        let table: Vec<(i32, K, bool, &str)> = vec![
            (1555, K::Conflict(ConflictKind::DuplicateId), false, "SQLITE_CONSTRAINT_PRIMARYKEY (1555)"),
            (2067, K::Conflict(ConflictKind::Unique { constraint: None }), false, "SQLITE_CONSTRAINT_UNIQUE (2067)"),
            (1299, K::InvalidInput, false, "SQLITE_CONSTRAINT_NOTNULL (1299)"),
            (275, K::InvalidInput, false, "SQLITE_CONSTRAINT_CHECK (275)"),
            (787, K::InvalidInput, false, "SQLITE_CONSTRAINT_FOREIGNKEY (787)"),
            (3091, K::InvalidInput, false, "SQLITE_CONSTRAINT_DATATYPE (3091)"),
            (1811, K::InvalidInput, false, "SQLITE_CONSTRAINT_TRIGGER (1811)"),
            (2579, K::InvalidInput, false, "SQLITE_CONSTRAINT_ROWID (2579)"),
            (19, K::InvalidInput, false, "SQLITE_CONSTRAINT (19)"),
            (18, K::InvalidInput, false, "SQLITE_TOOBIG (18)"),
            (20, K::InvalidInput, false, "SQLITE_MISMATCH (20)"),
            (25, K::InvalidInput, false, "SQLITE_RANGE (25)"),
            (5, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_BUSY (5)"),
            (261, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_BUSY_RECOVERY (261)"),
            (517, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_BUSY_SNAPSHOT (517)"),
            (773, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_BUSY_TIMEOUT (773)"),
            (6, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_LOCKED (6)"),
            (262, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_LOCKED_SHAREDCACHE (262)"),
            (17, K::Conflict(ConflictKind::Concurrent), true, "SQLITE_SCHEMA (17)"),
            (9, K::Timeout, true, "SQLITE_INTERRUPT (9)"),
            (10, K::Unavailable, true, "SQLITE_IOERR (10)"),
            (778, K::Unavailable, true, "SQLITE_IOERR_WRITE (778)"),
            (14, K::Unavailable, true, "SQLITE_CANTOPEN (14)"),
            (13, K::Unavailable, true, "SQLITE_FULL (13)"),
            (8, K::Config, false, "SQLITE_READONLY (8)"),
            (3, K::Config, false, "SQLITE_PERM (3)"),
            (11, K::Backend, false, "SQLITE_CORRUPT (11)"),
            (26, K::Backend, false, "SQLITE_NOTADB (26)"),
            (1, K::Backend, false, "SQLITE_ERROR (1): too many SQL variables"),
            (21, K::Backend, false, "SQLITE_MISUSE (21)"),
        ];
        for (code, kind, retryable, words) in table {
            let (e, _) = map_sqlite(code, "too many SQL variables");
            assert_eq!(e.kind(), &kind, "{code}: {e}");
            assert_eq!(e.is_retryable(), retryable, "{code}: {e}");
            assert!(
                e.message().contains(words),
                "{code}: `{}` lacks `{words}`",
                e.message()
            );
        }
        assert!(is_unnamed_unique(&map_sqlite(2067, "").0));
    }
}
