//! The error map: driver errors to [`persistence_core::Error`], by code.
//!
//! PostgreSQL errors are classified by SQLSTATE, SQLite errors by extended
//! result code; the message text of the server is never inspected. The
//! driver error is kept as the source.
//!
//! | PostgreSQL | SQLite | kind |
//! |---|---|---|
//! | 23505 on the primary key | 1555 `SQLITE_CONSTRAINT_PRIMARYKEY` | `Conflict(DuplicateId)` |
//! | 23505 on another constraint | 2067 `SQLITE_CONSTRAINT_UNIQUE` | `Conflict(Unique { constraint })` (the `IndexMeta::name`) |
//! | 23502, 23514, 23503, 22xxx | 1299, 275, 787, 3091, 19, 20, 25, 18 | `InvalidInput` |
//! | 40001, 40P01 | 5, 6, 261, 262, 517 (busy / locked) | `Conflict(Concurrent)`, retryable |
//! | 57014 | 9 `SQLITE_INTERRUPT` | `Timeout` |
//! | 08xxx, 57P01-57P03, 53300, connection refused/reset, pool acquire timeout | 10, 14 (I/O, cannot open) | `Unavailable`, retryable |
//! | TLS: certificate not accepted under the sslmode | - | `Unavailable`, **not** retryable |
//!
//! SQLite does not report which unique constraint failed other than in the
//! message; the repository finds it by probing the unique constraints with
//! the conflicting row's values (see `RelationalRepository`).

use persistence_core::{Error, ErrorKind};
use sea_orm::sqlx;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

use crate::sql::Dialect;

/// Names used to map constraint violations back to metadata.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConstraintNames {
    /// The primary-key constraint.
    pub(crate) primary_key: String,
    /// Unique constraints (`IndexMeta::name`).
    pub(crate) uniques: Vec<String>,
}

/// Map a sea-orm error (for statements run directly on the connection).
pub fn map_error(err: DbErr) -> Error {
    map_db_err(err, &ConstraintNames::default())
}

/// Map a sea-orm error.
pub(crate) fn map_db_err(err: DbErr, names: &ConstraintNames) -> Error {
    classify(&err, names).with_source(err)
}

/// Map a sea-orm error caused by input row `row` of a bulk load: the message
/// starts with `row <row>: `.
pub(crate) fn map_db_err_at_row(err: DbErr, names: &ConstraintNames, row: usize) -> Error {
    let e = classify(&err, names);
    let msg = format!("row {row}: {}", e.message());
    // `with_message` keeps the retryable flag and the write outcome.
    e.with_message(msg).with_source(err)
}

/// True when a failed statement is the fault of one row's values (22xxx,
/// 23xxx): replaying the rows one by one finds the culprit.
pub(crate) fn is_row_fault(err: &DbErr) -> bool {
    pg_error(err)
        .map(|pg| pg.code())
        .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
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

fn pg_error(err: &DbErr) -> Option<&sqlx::postgres::PgDatabaseError> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            e.as_database_error()?
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        }
        _ => None,
    }
}

fn classify(err: &DbErr, names: &ConstraintNames) -> Error {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => {
            Error::unavailable("timed out waiting for a pooled connection")
        }
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => {
            Error::unavailable("the connection pool is closed")
        }
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => map_sqlx(e, names),
        DbErr::Conn(_) => Error::unavailable("database connection failed"),
        DbErr::Type(m) | DbErr::Json(m) => Error::decode(m.clone()),
        DbErr::TryIntoErr { from, into, .. } => {
            Error::decode(format!("cannot convert {from} into {into}"))
        }
        _ => Error::backend("database operation failed"),
    }
}

fn map_sqlx(err: &sqlx::Error, names: &ConstraintNames) -> Error {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                map_sqlstate(&code, pg.constraint(), names)
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                map_sqlite_code(code.parse::<i32>().unwrap_or(-1))
            } else {
                Error::backend(format!("database error {code}"))
            }
        }
        sqlx::Error::PoolTimedOut => {
            Error::unavailable("timed out waiting for a pooled connection")
        }
        sqlx::Error::PoolClosed => Error::unavailable("the connection pool is closed"),
        // Certificate problems do not go away by retrying (rustls reports
        // them through the I/O layer as InvalidData).
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => tls_failure(),
        sqlx::Error::Tls(_) => tls_failure(),
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            Error::unavailable("database connection failed")
        }
        sqlx::Error::Configuration(_) => Error::config("invalid database configuration"),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            Error::decode("cannot decode a column")
        }
        sqlx::Error::RowNotFound => Error::not_found("no row"),
        _ => Error::backend("database driver error"),
    }
}

fn tls_failure() -> Error {
    Error::unavailable(
        "TLS negotiation with the database failed (server certificate not accepted \
         under the configured sslmode / root certificate, or TLS unavailable)",
    )
    .set_retryable(false)
}

/// Classify a PostgreSQL SQLSTATE.
pub(crate) fn map_sqlstate(code: &str, constraint: Option<&str>, names: &ConstraintNames) -> Error {
    match code {
        "23505" => match constraint {
            Some(c) if c == names.primary_key => {
                Error::duplicate_id("an entity with this id exists")
            }
            Some(c) => {
                let known = names.uniques.iter().find(|u| u.as_str() == c);
                let name = known.cloned().unwrap_or_else(|| c.to_string());
                Error::unique_violation(Some(name.clone()), format!("unique constraint `{name}`"))
            }
            None => Error::unique_violation(None, "unique constraint violated"),
        },
        "23502" => Error::invalid_input("a required column is null"),
        "23514" => Error::invalid_input("a check constraint was violated"),
        "23503" => Error::invalid_input("a foreign key constraint was violated"),
        "40001" => Error::concurrent("serialization failure; retry the transaction"),
        "40P01" => Error::concurrent("deadlock detected; retry the transaction"),
        "57014" => Error::timeout("statement cancelled (statement timeout)"),
        "57P01" | "57P02" | "57P03" | "53300" => {
            Error::unavailable(format!("server unavailable ({code})"))
        }
        "42P01" => Error::backend("table does not exist; call ensure_schema first"),
        c if c.starts_with("22") => Error::invalid_input(format!("invalid value ({c})")),
        c if c.starts_with("08") => Error::unavailable(format!("connection failure ({c})")),
        c => Error::backend(format!("database error {c}")),
    }
}

/// Classify an SQLite extended result code.
pub(crate) fn map_sqlite_code(code: i32) -> Error {
    match code {
        1555 => Error::duplicate_id("an entity with this id exists"),
        2067 => Error::unique_violation(None, "unique constraint violated"),
        1299 => Error::invalid_input("a required column is null"),
        275 => Error::invalid_input("a check constraint was violated"),
        787 => Error::invalid_input("a foreign key constraint was violated"),
        3091 => Error::invalid_input("value of the wrong type for a column"),
        19 | 20 | 25 | 18 => Error::invalid_input(format!("invalid value (sqlite {code})")),
        5 | 261 | 517 | 6 | 262 => {
            Error::concurrent(format!("database busy or locked (sqlite {code})"))
        }
        9 => Error::timeout("statement interrupted"),
        10 | 14 => Error::unavailable(format!("database file unavailable (sqlite {code})")),
        c => Error::backend(format!("sqlite error {c}")),
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
    use super::*;
    use persistence_core::ConflictKind;

    fn names() -> ConstraintNames {
        ConstraintNames {
            primary_key: "pk_users".into(),
            uniques: vec!["ux_users_email".into()],
        }
    }

    #[test]
    fn sqlstates() {
        let n = names();
        assert_eq!(
            map_sqlstate("23505", Some("pk_users"), &n).kind(),
            &ErrorKind::Conflict(ConflictKind::DuplicateId)
        );
        assert_eq!(
            map_sqlstate("23505", Some("ux_users_email"), &n).kind(),
            &ErrorKind::Conflict(ConflictKind::Unique {
                constraint: Some("ux_users_email".into())
            })
        );
        for c in ["23502", "23514", "22001", "22P02"] {
            assert_eq!(
                map_sqlstate(c, None, &n).kind(),
                &ErrorKind::InvalidInput,
                "{c}"
            );
        }
        for c in ["40001", "40P01"] {
            let e = map_sqlstate(c, None, &n);
            assert!(e.is_conflict() && e.is_retryable(), "{c}");
        }
        assert_eq!(map_sqlstate("57014", None, &n).kind(), &ErrorKind::Timeout);
        assert!(map_sqlstate("08006", None, &n).is_retryable());
    }

    #[test]
    fn sqlite_codes() {
        assert_eq!(
            map_sqlite_code(1555).kind(),
            &ErrorKind::Conflict(ConflictKind::DuplicateId)
        );
        assert!(is_unnamed_unique(&map_sqlite_code(2067)));
        assert_eq!(map_sqlite_code(1299).kind(), &ErrorKind::InvalidInput);
        assert!(map_sqlite_code(5).is_retryable());
    }
}
