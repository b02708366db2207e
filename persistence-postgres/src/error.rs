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
//! | 23503 (and 23001, PostgreSQL 18's `ON DELETE RESTRICT`) on the foreign key of a declared relation; any other 23503 stays `InvalidInput` | 787 `SQLITE_CONSTRAINT_FOREIGNKEY`, 1811 with "FOREIGN KEY constraint failed" (`ON DELETE RESTRICT`) | `Conflict(MissingParent { relation })` for a write, `Conflict(Referenced { relation })` for a delete |
//! | 23xxx, 22xxx, 54xxx, 44000 | 1299, 275, 3091, 1811, 2579, 19, 20, 25, 18 | `InvalidInput` |
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

use persistence_core::error::Stage;
use persistence_core::{Error, ErrorKind};
use sea_orm::sqlx;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

pub(crate) mod context;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(feature = "postgres")]
mod sqlstate;

pub(crate) use context::{ConstraintNames, Hints};
use context::{may_write, sqlx_of};

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
#[cfg(feature = "postgres")]
pub(crate) fn map_db_err_at_row(err: DbErr, names: &ConstraintNames, row: usize) -> Error {
    let (e, stage) = classify(&err, names, Hints::default());
    let message = format!("row {row}: {}", e.message());
    e.with_message(message)
        .with_outcome(stage.outcome(may_write(None)))
        .with_source(err)
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

#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn map_sqlx(err: &sqlx::Error, names: &ConstraintNames, hints: Hints<'_>) -> (Error, Stage) {
    use std::io::ErrorKind as Io;
    match err {
        sqlx::Error::Database(db) => {
            #[cfg(feature = "postgres")]
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return postgres::map_server_error(pg, names, hints);
            }
            #[cfg(feature = "sqlite")]
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(-1);
                // SQLITE_CONSTRAINT_FOREIGNKEY names no constraint; an
                // `ON DELETE RESTRICT` fires as a trigger (1811) with the
                // foreign key's message.
                let restrict =
                    code == 1811 && db.message().contains("FOREIGN KEY constraint failed");
                // Typed when the table declares relations (else as any constraint).
                if (code == 787 || restrict) && !names.foreign_keys.is_empty() {
                    let detail = if restrict {
                        "SQLITE_CONSTRAINT_TRIGGER (1811, ON DELETE RESTRICT)"
                    } else {
                        "SQLITE_CONSTRAINT_FOREIGNKEY (787)"
                    };
                    return (
                        context::foreign_key_error(names, None, hints.op, detail),
                        Stage::Rejected,
                    );
                }
                return sqlite::map_sqlite(code, db.message());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            (
                Error::backend(format!("database error {code}: {}", db.message())),
                Stage::Rejected,
            )
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

/// Why a column could not be read, without sqlx's `column <index>` prefix
/// (the caller names the field).
pub(crate) fn decode_reason(e: &DbErr) -> String {
    match sqlx_of(e) {
        Some(sqlx::Error::ColumnDecode { source, .. }) => source.to_string(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// True for a unique violation whose constraint is not known yet (SQLite).
pub(crate) fn is_unnamed_unique(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Conflict(persistence_core::ConflictKind::Unique { constraint: None })
    )
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use persistence_core::ConflictKind;

    use super::*;
    use crate::error::context::test_names as names;

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

    /// Each mapped SQLite code: kind, retryable and the name in the message.
    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_codes_table() {
        use crate::error::sqlite::map_sqlite;

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
