//! The error map: driver errors → [`persistence_core::Error`], by server code
//! and error label, never by message text. The driver error is kept as the
//! source. Messages name the server code (`BadValue (2)`) and carry the
//! server's message, except for duplicate keys (the server's message quotes
//! the duplicated value).
//!
//! | driver error | kind |
//! |---|---|
//! | write/command error 11000, 11001 (duplicate key) | `Conflict(DuplicateId)` for the `_id_` index, else `Conflict(Unique { constraint: index name })` |
//! | 121 (document validation failed) | `InvalidInput` with the validator's reason (`errInfo`) |
//! | 2, 9, 14, 15, 17, 28, 40, 52, 56, 66, 10334, 257 (bad values, paths, too large) | `InvalidInput` |
//! | 50, 202, 262 (time limit exceeded); write concern timeout (64) | `Timeout` |
//! | label `TransientTransactionError`, 112 WriteConflict, 251 NoSuchTransaction | `Conflict(Concurrent)` (retryable) |
//! | network I/O, invalid response, server selection, pool cleared, 6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436 | `Unavailable` (retryable) |
//! | 13, 18 (unauthorized, auth failed), authentication, TLS configuration | `Config` |
//! | 85, 86 (index options / key specs conflict) | `Config` |
//! | 20, 59, 115, 166 (not supported) | `Unsupported` |
//! | BSON (de)serialization | `Decode` / `InvalidInput` |
//! | anything else | `Backend` |
//!
//! Whether a failed write may have been applied ([`Stage`]): nothing was
//! sent when no server could be selected or the pool was cleared; a write
//! the server refused with a write error was not applied; a connection that
//! broke mid-operation, an interrupted operation or a write concern error
//! leaves it unknown (a write concern error means the write was applied on
//! the primary but not confirmed as durable).

use bson::{Bson, Document};
use mongodb::error::{
    Error as DriverError, ErrorKind as DriverKind, TRANSIENT_TRANSACTION_ERROR,
    UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use persistence_core::error::Stage;
use persistence_core::{EntityMeta, Error};

mod codes;

pub use codes::{
    DOCUMENT_VALIDATION_FAILURE, DUPLICATE_KEY, DUPLICATE_KEY_UPDATE, INDEX_KEY_SPECS_CONFLICT,
    INDEX_OPTIONS_CONFLICT, MAX_TIME_MS_EXPIRED, NAMESPACE_EXISTS, WRITE_CONFLICT, code_name,
};

/// Whether operation `op` may change the store: the repository's writes, a
/// commit, admin commands, and any operation not known to only read.
fn may_write(op: Option<&str>) -> bool {
    let Some(op) = op else { return true };
    match persistence_core::layer::Op::from_name(op) {
        Some(o) => o.is_write(),
        None => !matches!(
            op,
            "connect" | "ping" | "hello" | "watch" | "aggregate" | "find_raw"
        ),
    }
}

/// The server code, label set aside, of a driver error.
pub fn server_code(e: &DriverError) -> Option<i32> {
    server_error(e).map(|s| s.code)
}

/// The code, code name and message the server sent.
struct ServerError<'a> {
    code: i32,
    name: Option<&'a str>,
    message: &'a str,
    write_concern: bool,
}

fn server_error(e: &DriverError) -> Option<ServerError<'_>> {
    match e.kind.as_ref() {
        DriverKind::Command(c) => Some(ServerError {
            code: c.code,
            name: Some(c.code_name.as_str()).filter(|n| !n.is_empty()),
            message: &c.message,
            write_concern: false,
        }),
        DriverKind::Write(WriteFailure::WriteError(w)) => Some(ServerError {
            code: w.code,
            name: w.code_name.as_deref().filter(|n| !n.is_empty()),
            message: &w.message,
            write_concern: false,
        }),
        DriverKind::Write(WriteFailure::WriteConcernError(w)) => Some(ServerError {
            code: w.code,
            name: Some(w.code_name.as_str()).filter(|n| !n.is_empty()),
            message: &w.message,
            write_concern: true,
        }),
        DriverKind::InsertMany(m) => match m.write_errors.as_ref().and_then(|w| w.first()) {
            Some(x) => Some(ServerError {
                code: x.code,
                name: x.code_name.as_deref().filter(|n| !n.is_empty()),
                message: &x.message,
                write_concern: false,
            }),
            None => m.write_concern_error.as_ref().map(|w| ServerError {
                code: w.code,
                name: Some(w.code_name.as_str()).filter(|n| !n.is_empty()),
                message: &w.message,
                write_concern: true,
            }),
        },
        _ => None,
    }
}
fn details(e: &DriverError) -> Option<&Document> {
    match e.kind.as_ref() {
        DriverKind::Write(WriteFailure::WriteError(w)) => w.details.as_ref(),
        DriverKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first().and_then(|x| x.details.as_ref())),
        _ => None,
    }
}

/// The index that reported a duplicate key: from `keyPattern` in the server's
/// reply (MongoDB 4.2+), matched against the metadata's indexes.
fn duplicate_index(e: &DriverError, meta: &EntityMeta) -> Option<String> {
    let raw = e.server_response()?;
    let reply: Document = raw.to_document().ok()?;
    let mut patterns: Vec<Document> = Vec::new();
    if let Ok(p) = reply.get_document("keyPattern") {
        patterns.push(p.clone());
    }
    if let Ok(ws) = reply.get_array("writeErrors") {
        for w in ws {
            if let Bson::Document(w) = w {
                if let Ok(p) = w.get_document("keyPattern") {
                    patterns.push(p.clone());
                }
            }
        }
    }
    let pattern = patterns.first()?;
    let keys: Vec<&str> = pattern.keys().map(String::as_str).collect();
    if keys == ["_id"] {
        return Some("_id_".to_string());
    }
    meta.uniques()
        .find(|ix| ix.fields == keys)
        .map(|ix| ix.name.clone())
}

/// `BadValue (2)`.
fn code_label(code: i32, name: Option<&str>) -> String {
    match name.or_else(|| code_name(code)) {
        Some(n) => format!("{n} ({code})"),
        None => format!("server error {code}"),
    }
}

/// Map a driver error for entity `meta` (an operation that may write: a
/// broken connection leaves the outcome unknown).
pub fn map(e: DriverError, meta: &EntityMeta) -> Error {
    let (err, stage) = classify(&e, Some(meta));
    err.with_entity(meta.name)
        .with_outcome(stage.outcome(may_write(None)))
        .with_source(e)
}

/// Map a driver error of operation `op` on entity `meta`, with the context.
pub fn map_in(e: DriverError, meta: &EntityMeta, op: &'static str) -> Error {
    let (err, stage) = classify(&e, Some(meta));
    err.in_context(meta.name, op)
        .with_outcome(stage.outcome(may_write(Some(op))))
        .with_source(e)
}

/// Map a driver error that is not about one entity (connect, admin commands).
pub fn map_plain(e: DriverError) -> Error {
    let (err, stage) = classify(&e, None);
    err.with_outcome(stage.outcome(may_write(None)))
        .with_source(e)
}

/// Map an error of connecting with `url` (parsing the URL, building the
/// client): the driver's text may quote the URL, so the source is a copy
/// with the URL's secrets taken out.
pub(crate) fn map_connect(e: DriverError, url: &str) -> Error {
    let (err, _not_sent) = classify(&e, None);
    let secrets = persistence_core::redact::url_secrets(url);
    let err = Error::new(
        err.kind().clone(),
        persistence_core::redact::scrub(err.message(), url, &secrets),
    )
    .set_retryable(err.is_retryable());
    err.with_operation("connect")
        .with_source(persistence_core::redact::RedactedError::new(&e, url))
}

pub(crate) fn classify(e: &DriverError, meta: Option<&EntityMeta>) -> (Error, Stage) {
    let (err, stage) = match server_error(e) {
        Some(s) => server(e, &s, meta),
        None => non_server(e),
    };
    // The driver's labels override: a transient transaction error is worth
    // retrying as a whole; an unknown commit result is an unknown outcome.
    if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) {
        let err = if err.is_retryable() {
            err
        } else {
            Error::unavailable(format!("the commit result is unknown: {}", err.message()))
        };
        return (err, Stage::InFlight);
    }
    if e.contains_label(TRANSIENT_TRANSACTION_ERROR) && !err.is_retryable() {
        return (
            Error::concurrent(format!("transient transaction error: {}", err.message())),
            stage,
        );
    }
    (err, stage)
}

fn server(e: &DriverError, s: &ServerError<'_>, meta: Option<&EntityMeta>) -> (Error, Stage) {
    let label = code_label(s.code, s.name);
    let said = format!("{label}: {}", s.message);
    let entity = meta.map_or("the collection", |m| m.name);
    let rejected = |e: Error| (e, Stage::Rejected);
    if s.write_concern {
        // The write was applied on the primary; the write concern was not
        // satisfied (replication / journal not confirmed in time).
        let err = if s.code == 64 {
            Error::timeout(format!("write concern not satisfied in time: {said}"))
        } else {
            Error::unavailable(format!("write concern failed: {said}"))
        };
        return (err, Stage::InFlight);
    }
    match s.code {
        DUPLICATE_KEY | DUPLICATE_KEY_UPDATE => {
            // The server's message quotes the duplicated value: not repeated.
            let ix = meta.and_then(|m| duplicate_index(e, m));
            rejected(match ix {
                Some(ix) if ix == "_id_" => Error::duplicate_id(format!(
                    "{label} on index `_id_`: {entity} with this id already exists"
                )),
                Some(ix) => {
                    let fields = meta
                        .and_then(|m| m.uniques().find(|u| u.name == ix))
                        .map(|u| format!(" ({})", u.fields.join(", ")))
                        .unwrap_or_default();
                    Error::unique_violation(
                        Some(ix.clone()),
                        format!(
                            "{label} on index `{ix}`{fields}: another {entity} document holds this value"
                        ),
                    )
                }
                None => Error::unique_violation(
                    None,
                    format!("{label}: another {entity} document holds this value"),
                ),
            })
        }
        DOCUMENT_VALIDATION_FAILURE => {
            let reason = details(e)
                .map(|d| {
                    bson::Bson::Document(d.clone())
                        .into_relaxed_extjson()
                        .to_string()
                })
                .unwrap_or_else(|| "no details".to_string());
            rejected(Error::invalid_input(format!(
                "{label}: the {entity} document failed schema validation: {reason}"
            )))
        }
        MAX_TIME_MS_EXPIRED | 202 | 262 => rejected(Error::timeout(format!(
            "the server's time limit was exceeded: {said}"
        ))),
        WRITE_CONFLICT | 251 => rejected(Error::concurrent(said)),
        13 | 18 => rejected(Error::config(format!("not authorized: {said}"))),
        INDEX_OPTIONS_CONFLICT | INDEX_KEY_SPECS_CONFLICT => rejected(Error::config(format!(
            "an index of {entity} exists with a different definition: {said}"
        ))),
        2 | 9 | 14 | 15 | 17 | 28 | 40 | 52 | 56 | 66 | 10334 | 257 => {
            rejected(Error::invalid_input(said))
        }
        20 | 59 | 115 | 166 | 263 => rejected(Error::unsupported(said)),
        // Not (or no longer) the primary: the write was refused.
        10107 | 13435 | 13436 | 189 => rejected(Error::unavailable(said)),
        // Interrupted (shutdown, step-down) or the network between servers.
        6 | 7 | 89 | 91 | 9001 | 11600 | 11601 | 11602 => {
            (Error::unavailable(said), Stage::InFlight)
        }
        26 => rejected(Error::backend(said)),
        _ => rejected(Error::backend(said)),
    }
}

fn non_server(e: &DriverError) -> (Error, Stage) {
    use Stage::{InFlight, NotSent, Rejected};
    match e.kind.as_ref() {
        DriverKind::Io(io) => {
            use std::io::ErrorKind as Io;
            let what = match io.kind() {
                Io::ConnectionRefused => "connection refused by the MongoDB server",
                Io::ConnectionReset => "connection reset by the MongoDB server",
                Io::BrokenPipe => "the connection to the MongoDB server broke (broken pipe)",
                Io::UnexpectedEof => {
                    "the MongoDB server closed the connection (unexpected end of stream)"
                }
                Io::TimedOut => "the connection to the MongoDB server timed out",
                _ => "lost the connection to the MongoDB server",
            };
            (Error::unavailable(what), InFlight)
        }
        DriverKind::InvalidResponse { message, .. } => (
            Error::unavailable(format!(
                "invalid response from the MongoDB server: {message}"
            )),
            InFlight,
        ),
        DriverKind::ConnectionPoolCleared { .. } => (
            Error::unavailable("the MongoDB connection pool was cleared after a network error"),
            NotSent,
        ),
        DriverKind::ServerSelection { .. } => (
            Error::unavailable("no MongoDB server available (server selection timed out)"),
            NotSent,
        ),
        DriverKind::DnsResolve { .. } => (
            Error::unavailable("cannot resolve the MongoDB host"),
            NotSent,
        ),
        DriverKind::Shutdown => (
            Error::unavailable("the MongoDB client was shut down").set_retryable(false),
            NotSent,
        ),
        DriverKind::Authentication { message, .. } => (
            Error::config(format!("MongoDB authentication failed: {message}")),
            NotSent,
        ),
        DriverKind::InvalidTlsConfig { message, .. } => (
            Error::config(format!("invalid TLS configuration for MongoDB: {message}")),
            NotSent,
        ),
        DriverKind::InvalidArgument { message, .. } => (
            Error::invalid_input(format!("invalid argument to MongoDB: {message}")),
            NotSent,
        ),
        DriverKind::BsonDeserialization(d) => (
            Error::decode(format!("cannot decode a MongoDB reply: {d}")),
            Rejected,
        ),
        DriverKind::BsonSerialization(s) => (
            Error::invalid_input(format!("cannot encode a MongoDB value: {s}")),
            NotSent,
        ),
        DriverKind::Transaction { message, .. } => (
            Error::backend(format!("transaction state error: {message}")),
            NotSent,
        ),
        DriverKind::SessionsNotSupported => {
            (Error::unsupported("the server has no sessions"), NotSent)
        }
        DriverKind::IncompatibleServer { message, .. } => (
            Error::unsupported(format!("incompatible MongoDB server: {message}")),
            NotSent,
        ),
        DriverKind::Internal { message, .. } => (
            Error::backend(format!("MongoDB driver error: {message}")),
            InFlight,
        ),
        _ => (Error::backend("MongoDB driver error"), InFlight),
    }
}
#[cfg(test)]
mod tests;
