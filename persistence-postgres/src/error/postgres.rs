//! PostgreSQL errors: the SQLSTATE map ([`map_pg`]), the fields of a
//! server error the repository and the bulk loader read (row faults, the
//! constraint, the `COPY` line), and the catalog lookups that name the
//! primary key or the column a value did not fit.

use persistence_core::error::Stage;
use persistence_core::{EntityMeta, Error, Record, Value};
use sea_orm::sqlx;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::error::context::{ConstraintNames, Hints, sqlx_of};
use crate::error::sqlstate;

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

/// The PostgreSQL server error a sea-orm error wraps, if any.
pub(crate) fn pg_error(err: &DbErr) -> Option<&sqlx::postgres::PgDatabaseError> {
    sqlx_of(err)?
        .as_database_error()?
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
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

/// Map a PostgreSQL server error.
pub(crate) fn map_server_error(
    pg: &sqlx::postgres::PgDatabaseError,
    names: &ConstraintNames,
    hints: Hints<'_>,
) -> (Error, Stage) {
    let facts = PgFacts {
        code: pg.code(),
        message: pg.message(),
        constraint: pg.constraint(),
        column: pg.column(),
        table: pg.table(),
        data_type: pg.data_type(),
    };
    map_pg(&facts, names, hints)
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
    match sqlstate::condition_name(code) {
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
        // A foreign key of a declared relation (PostgreSQL 18 reports an
        // `ON DELETE RESTRICT` as 23001): the typed conflict naming it.
        "23503" | "23001" if names.is_foreign_key(f.constraint) => {
            let table = f
                .table
                .map(|t| format!(" of table `{t}`"))
                .unwrap_or_default();
            rejected(crate::error::context::foreign_key_error(
                names,
                f.constraint,
                hints.op,
                &format!("{cond} on constraint `{constraint}`{table}"),
            ))
        }
        // A foreign key the library does not know (a table it did not create).
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

#[cfg(test)]
mod tests {
    use persistence_core::{ConflictKind, ErrorKind};

    use super::*;
    use crate::error::context::test_names as names;

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
            assert!(sqlstate::condition_name(code).is_some(), "{code}");
        }
        // A code of a later server version is named after its class.
        assert_eq!(
            sqlstate::condition_name("42Z99"),
            Some("syntax_error_or_access_rule_violation")
        );
        assert_eq!(sqlstate::condition_name("ZZ999"), None);
    }
}
