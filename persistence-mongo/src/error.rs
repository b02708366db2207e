//! The error map: driver errors → [`persistence_core::Error`], by server code
//! and error label, never by message text. The driver error is kept as the source.
//!
//! | driver error | kind |
//! |---|---|
//! | write/command error 11000, 11001 (duplicate key) | `Conflict(DuplicateId)` for the `_id_` index, else `Conflict(Unique { constraint: index name })` |
//! | 121 (document validation failed) | `InvalidInput` with the validator's reason (`errInfo`) |
//! | 50 (MaxTimeMSExpired) | `Timeout` |
//! | label `TransientTransactionError`, 112 WriteConflict | `Conflict(Concurrent)` (retryable) |
//! | network I/O, server selection, pool cleared | `Unavailable` (retryable) |
//! | 13, 18 (unauthorized, auth failed) | `Config` |
//! | 85, 86 (index options / key specs conflict) | `Config` |
//! | BSON (de)serialization | `Decode` |
//! | anything else | `Backend` |

use bson::{Bson, Document};
use mongodb::error::{
    Error as DriverError, ErrorKind as DriverKind, TRANSIENT_TRANSACTION_ERROR, WriteFailure,
};
use persistence_core::{EntityMeta, Error};

/// Duplicate key.
pub const DUPLICATE_KEY: i32 = 11000;
/// Duplicate key (legacy update form).
pub const DUPLICATE_KEY_UPDATE: i32 = 11001;
/// Document failed validation.
pub const DOCUMENT_VALIDATION_FAILURE: i32 = 121;
/// Operation exceeded its time limit.
pub const MAX_TIME_MS_EXPIRED: i32 = 50;
/// Concurrent write to the same document in transactions.
pub const WRITE_CONFLICT: i32 = 112;
/// Collection already exists.
pub const NAMESPACE_EXISTS: i32 = 48;
/// Index with the same name but other options.
pub const INDEX_OPTIONS_CONFLICT: i32 = 85;
/// Index with the same name but other keys.
pub const INDEX_KEY_SPECS_CONFLICT: i32 = 86;

/// The server code, label set aside, of a driver error.
pub fn server_code(e: &DriverError) -> Option<i32> {
    match e.kind.as_ref() {
        DriverKind::Command(c) => Some(c.code),
        DriverKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        DriverKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        DriverKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first().map(|x| x.code))
            .or_else(|| m.write_concern_error.as_ref().map(|w| w.code)),
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

/// Map a driver error for entity `meta`.
pub fn map(e: DriverError, meta: &EntityMeta) -> Error {
    let code = server_code(&e);
    let err = match code {
        Some(DUPLICATE_KEY | DUPLICATE_KEY_UPDATE) => match duplicate_index(&e, meta) {
            Some(ix) if ix == "_id_" => {
                Error::duplicate_id(format!("{} with this id already exists", meta.name))
            }
            Some(ix) => Error::unique_violation(
                Some(ix.clone()),
                format!("{} already holds this value (index {ix})", meta.name),
            ),
            None => Error::unique_violation(None, format!("duplicate key in {}", meta.name)),
        },
        Some(DOCUMENT_VALIDATION_FAILURE) => {
            let reason = details(&e)
                .map(|d| {
                    bson::Bson::Document(d.clone())
                        .into_relaxed_extjson()
                        .to_string()
                })
                .unwrap_or_else(|| "no details".to_string());
            Error::invalid_input(format!(
                "{} document failed schema validation: {reason}",
                meta.name
            ))
        }
        Some(MAX_TIME_MS_EXPIRED) => Error::timeout("the server's time limit was exceeded"),
        Some(WRITE_CONFLICT) => Error::concurrent("write conflict"),
        Some(13 | 18) => Error::config("not authorized"),
        Some(INDEX_OPTIONS_CONFLICT | INDEX_KEY_SPECS_CONFLICT) => Error::config(format!(
            "an index of {} exists with a different definition (server code {})",
            meta.name,
            code.unwrap_or_default()
        )),
        Some(c) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
            Error::concurrent(format!("transient transaction error (server code {c})"))
        }
        Some(c) => Error::backend(format!("server error code {c}")),
        None => non_server(&e),
    };
    let err = if e.contains_label(TRANSIENT_TRANSACTION_ERROR) && !err.is_retryable() {
        Error::concurrent(format!("transient transaction error: {}", err.message()))
    } else {
        err
    };
    err.with_entity(meta.name).with_source(e)
}

fn non_server(e: &DriverError) -> Error {
    match e.kind.as_ref() {
        DriverKind::Io(_) | DriverKind::ConnectionPoolCleared { .. } => {
            Error::unavailable("lost the connection to the MongoDB server")
        }
        DriverKind::ServerSelection { .. } => {
            Error::unavailable("no MongoDB server available (server selection timed out)")
        }
        DriverKind::DnsResolve { .. } => Error::unavailable("cannot resolve the MongoDB host"),
        DriverKind::Shutdown => Error::unavailable("the MongoDB client was shut down"),
        DriverKind::Authentication { .. } => Error::config("MongoDB authentication failed"),
        DriverKind::InvalidArgument { .. } => Error::invalid_input("invalid argument to MongoDB"),
        DriverKind::BsonDeserialization(_) => Error::decode("cannot decode a MongoDB reply"),
        DriverKind::BsonSerialization(_) => Error::invalid_input("cannot encode a MongoDB value"),
        DriverKind::Transaction { .. } => Error::backend("transaction state error"),
        DriverKind::SessionsNotSupported => Error::unsupported("the server has no sessions"),
        DriverKind::IncompatibleServer { .. } => Error::unsupported("incompatible MongoDB server"),
        _ => Error::backend("MongoDB driver error"),
    }
}

/// Map a driver error that is not about one entity (connect, admin commands).
pub fn map_plain(e: DriverError) -> Error {
    let err = match server_code(&e) {
        Some(MAX_TIME_MS_EXPIRED) => Error::timeout("the server's time limit was exceeded"),
        Some(13 | 18) => Error::config("not authorized"),
        Some(c) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
            Error::concurrent(format!("transient transaction error (server code {c})"))
        }
        Some(c) => Error::backend(format!("server error code {c}")),
        None => non_server(&e),
    };
    err.with_source(e)
}
