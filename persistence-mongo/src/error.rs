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

/// The name MongoDB gives a server error code (`2` → `BadValue`), for
/// servers that do not send `codeName`.
pub fn code_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "InternalError",
        2 => "BadValue",
        4 => "NoSuchKey",
        5 => "GraphContainsCycle",
        6 => "HostUnreachable",
        7 => "HostNotFound",
        8 => "UnknownError",
        9 => "FailedToParse",
        10 => "CannotMutateObject",
        11 => "UserNotFound",
        12 => "UnsupportedFormat",
        13 => "Unauthorized",
        14 => "TypeMismatch",
        15 => "Overflow",
        16 => "InvalidLength",
        17 => "ProtocolError",
        18 => "AuthenticationFailed",
        20 => "IllegalOperation",
        22 => "InvalidBSON",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        48 => "NamespaceExists",
        50 => "MaxTimeMSExpired",
        52 => "DollarPrefixedFieldName",
        56 => "EmptyFieldName",
        59 => "CommandNotFound",
        64 => "WriteConcernFailed",
        66 => "ImmutableField",
        67 => "CannotCreateIndex",
        68 => "IndexAlreadyExists",
        72 => "InvalidOptions",
        85 => "IndexOptionsConflict",
        86 => "IndexKeySpecsConflict",
        89 => "NetworkTimeout",
        91 => "ShutdownInProgress",
        96 => "OperationFailed",
        100 => "UnsatisfiableWriteConcern",
        112 => "WriteConflict",
        115 => "CommandNotSupported",
        121 => "DocumentValidationFailure",
        133 => "FailedToSatisfyReadPreference",
        166 => "CommandNotSupportedOnView",
        189 => "PrimarySteppedDown",
        202 => "NetworkInterfaceExceededTimeLimit",
        251 => "NoSuchTransaction",
        256 => "TransactionCommitted",
        257 => "TransactionTooLarge",
        262 => "ExceededTimeLimit",
        263 => "OperationNotSupportedInTransaction",
        9001 => "SocketException",
        10107 => "NotWritablePrimary",
        10334 => "BSONObjectTooLarge",
        11000 => "DuplicateKey",
        11001 => "DuplicateKeyUpdate",
        11600 => "InterruptedAtShutdown",
        11601 => "Interrupted",
        11602 => "InterruptedDueToReplStateChange",
        13435 => "NotPrimaryNoSecondaryOk",
        13436 => "NotPrimaryOrSecondary",
        _ => return None,
    })
}

/// Whether operation `op` may change the store: the repository's writes, a
/// commit, admin commands, and any operation not known to only read.
fn may_write(op: Option<&str>) -> bool {
    let Some(op) = op else { return true };
    match persistence_core::layer::Op::from_name(op) {
        Some(o) => o.is_write(),
        None => !matches!(op, "connect" | "ping" | "hello" | "watch" | "aggregate"),
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
mod tests {
    use std::io;
    use std::sync::Arc;

    use bson::doc;
    use mongodb::error::{CommandError, WriteConcernError, WriteError};
    use persistence_core::WriteOutcome;
    use persistence_core::{ConflictKind, Entity as _, ErrorKind as K};

    use super::*;

    fn command(code: i32, name: &str) -> DriverError {
        let c: CommandError = bson::from_document(
            doc! { "code": code, "codeName": name, "errmsg": "server says why" },
        )
        .expect("command error");
        DriverError::from(DriverKind::Command(c))
    }

    fn write(code: i32) -> DriverError {
        let w: WriteError = bson::from_document(doc! { "code": code, "errmsg": "server says why" })
            .expect("write error");
        DriverError::from(DriverKind::Write(WriteFailure::WriteError(w)))
    }

    /// Driver errors without a server code that can be built outside the
    /// driver, and what they map to.
    #[test]
    fn driver_errors_table() {
        use Stage::{InFlight, NotSent};
        let io = |k: io::ErrorKind| DriverError::from(DriverKind::Io(Arc::new(io::Error::from(k))));
        #[rustfmt::skip]
        let table: Vec<(&str, DriverError, K, bool, Stage)> = vec![
            ("reset", io(io::ErrorKind::ConnectionReset), K::Unavailable, true, InFlight),
            ("eof", io(io::ErrorKind::UnexpectedEof), K::Unavailable, true, InFlight),
            ("broken pipe", io(io::ErrorKind::BrokenPipe), K::Unavailable, true, InFlight),
            ("aborted", io(io::ErrorKind::ConnectionAborted), K::Unavailable, true, InFlight),
            ("refused", io(io::ErrorKind::ConnectionRefused), K::Unavailable, true, InFlight),
            ("timed out", io(io::ErrorKind::TimedOut), K::Unavailable, true, InFlight),
            ("shutdown", DriverError::from(DriverKind::Shutdown), K::Unavailable, false, NotSent),
            ("sessions", DriverError::from(DriverKind::SessionsNotSupported), K::Unsupported, false, NotSent),
            ("resume token", DriverError::from(DriverKind::MissingResumeToken), K::Backend, false, InFlight),
        ];
        for (what, e, kind, retryable, stage) in table {
            let (err, got) = classify(&e, None);
            assert_eq!(err.kind(), &kind, "{what}: {err}");
            assert_eq!(err.is_retryable(), retryable, "{what}: {err}");
            assert_eq!(got, stage, "{what}: {err}");
        }
        // The outcome follows the stage and the operation.
        let e = map_in(io(io::ErrorKind::ConnectionReset), Thing::meta(), "insert");
        assert_eq!(e.outcome(), WriteOutcome::Unknown, "{e}");
        assert!(
            !e.is_retryable(),
            "an insert that may have been applied: {e}"
        );
        let e = map_in(io(io::ErrorKind::ConnectionReset), Thing::meta(), "get");
        assert_eq!(e.outcome(), WriteOutcome::NotApplied, "{e}");
        assert!(e.is_retryable(), "{e}");
    }

    /// Errors only the driver can build, produced for real: an unparsable
    /// URL and a server selection that finds nothing.
    #[tokio::test]
    async fn driver_errors_from_the_driver() {
        let e = mongodb::options::ClientOptions::parse("mongodb://app:hunter2@host:notaport/db")
            .await
            .expect_err("bad port");
        let (err, stage) = classify(&e, None);
        assert_eq!(err.kind(), &K::InvalidInput, "{err}");
        assert_eq!(stage, Stage::NotSent);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=100"
        );
        let client = mongodb::Client::with_uri_str(&url).await.expect("client");
        let e = client
            .database("x")
            .collection::<bson::Document>("things")
            .insert_one(doc! { "a": 1 })
            .await
            .expect_err("nothing listens");
        let err = map_in(e, Thing::meta(), "insert");
        assert_eq!(err.kind(), &K::Unavailable, "{err}");
        assert!(err.is_retryable(), "nothing was sent: {err}");
        assert_eq!(err.outcome(), WriteOutcome::NotApplied, "{err}");
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence_core::Entity)]
    #[entity(name = "things")]
    struct Thing {
        #[entity(id)]
        id: i64,
    }

    /// Each mapped server code: kind, retryable, and the code's name in the message.
    #[test]
    fn server_codes_table() {
        use Stage::{InFlight, Rejected};
        #[rustfmt::skip]
        let table: Vec<(i32, K, bool, Stage, &str)> = vec![
            (2, K::InvalidInput, false, Rejected, "BadValue (2): server says why"),
            (9, K::InvalidInput, false, Rejected, "FailedToParse (9)"),
            (14, K::InvalidInput, false, Rejected, "TypeMismatch (14)"),
            (15, K::InvalidInput, false, Rejected, "Overflow (15)"),
            (17, K::InvalidInput, false, Rejected, "ProtocolError (17)"),
            (28, K::InvalidInput, false, Rejected, "PathNotViable (28)"),
            (40, K::InvalidInput, false, Rejected, "ConflictingUpdateOperators (40)"),
            (52, K::InvalidInput, false, Rejected, "DollarPrefixedFieldName (52)"),
            (56, K::InvalidInput, false, Rejected, "EmptyFieldName (56)"),
            (66, K::InvalidInput, false, Rejected, "ImmutableField (66)"),
            (257, K::InvalidInput, false, Rejected, "TransactionTooLarge (257)"),
            (10334, K::InvalidInput, false, Rejected, "BSONObjectTooLarge (10334)"),
            (121, K::InvalidInput, false, Rejected, "DocumentValidationFailure (121)"),
            (50, K::Timeout, true, Rejected, "MaxTimeMSExpired (50)"),
            (202, K::Timeout, true, Rejected, "NetworkInterfaceExceededTimeLimit (202)"),
            (262, K::Timeout, true, Rejected, "ExceededTimeLimit (262)"),
            (112, K::Conflict(ConflictKind::Concurrent), true, Rejected, "WriteConflict (112)"),
            (251, K::Conflict(ConflictKind::Concurrent), true, Rejected, "NoSuchTransaction (251)"),
            (13, K::Config, false, Rejected, "Unauthorized (13)"),
            (18, K::Config, false, Rejected, "AuthenticationFailed (18)"),
            (85, K::Config, false, Rejected, "IndexOptionsConflict (85)"),
            (86, K::Config, false, Rejected, "IndexKeySpecsConflict (86)"),
            (20, K::Unsupported, false, Rejected, "IllegalOperation (20)"),
            (59, K::Unsupported, false, Rejected, "CommandNotFound (59)"),
            (115, K::Unsupported, false, Rejected, "CommandNotSupported (115)"),
            (166, K::Unsupported, false, Rejected, "CommandNotSupportedOnView (166)"),
            (263, K::Unsupported, false, Rejected, "OperationNotSupportedInTransaction (263)"),
            (10107, K::Unavailable, true, Rejected, "NotWritablePrimary (10107)"),
            (13435, K::Unavailable, true, Rejected, "NotPrimaryNoSecondaryOk (13435)"),
            (13436, K::Unavailable, true, Rejected, "NotPrimaryOrSecondary (13436)"),
            (189, K::Unavailable, true, Rejected, "PrimarySteppedDown (189)"),
            (6, K::Unavailable, true, InFlight, "HostUnreachable (6)"),
            (7, K::Unavailable, true, InFlight, "HostNotFound (7)"),
            (89, K::Unavailable, true, InFlight, "NetworkTimeout (89)"),
            (91, K::Unavailable, true, InFlight, "ShutdownInProgress (91)"),
            (9001, K::Unavailable, true, InFlight, "SocketException (9001)"),
            (11600, K::Unavailable, true, InFlight, "InterruptedAtShutdown (11600)"),
            (11601, K::Unavailable, true, InFlight, "Interrupted (11601)"),
            (11602, K::Unavailable, true, InFlight, "InterruptedDueToReplStateChange (11602)"),
            (26, K::Backend, false, Rejected, "NamespaceNotFound (26)"),
            (1, K::Backend, false, Rejected, "InternalError (1)"),
            (8, K::Backend, false, Rejected, "UnknownError (8)"),
            (424242, K::Backend, false, Rejected, "server error 424242"),
        ];
        for (code, kind, retryable, stage, words) in table {
            // As a write error without `codeName` (our table names it) and as
            // a command error with the server's own name.
            let name = code_name(code).unwrap_or("");
            for e in [write(code), command(code, name)] {
                let (err, got) = classify(&e, Some(Thing::meta()));
                assert_eq!(err.kind(), &kind, "{code}: {err}");
                assert_eq!(err.is_retryable(), retryable, "{code}: {err}");
                assert_eq!(got, stage, "{code}: {err}");
                assert!(
                    err.message().contains(words),
                    "{code}: `{}` lacks `{words}`",
                    err.message()
                );
            }
        }
    }

    #[test]
    fn duplicate_keys_do_not_repeat_the_value() {
        let w: WriteError = bson::from_document(doc! {
            "code": 11000,
            "errmsg": "E11000 duplicate key error collection: db.things index: _id_ dup key: { _id: \"s3cret\" }",
        })
        .expect("write error");
        let e = map(
            DriverError::from(DriverKind::Write(WriteFailure::WriteError(w))),
            Thing::meta(),
        );
        assert!(matches!(
            e.kind(),
            K::Conflict(ConflictKind::Unique { .. } | ConflictKind::DuplicateId)
        ));
        assert!(e.message().contains("DuplicateKey (11000)"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn write_concern_errors_leave_the_outcome_unknown() {
        let w: WriteConcernError = bson::from_document(doc! {
            "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out",
        })
        .expect("write concern error");
        let e = map_in(
            DriverError::from(DriverKind::Write(WriteFailure::WriteConcernError(w))),
            Thing::meta(),
            "update",
        );
        assert_eq!(e.kind(), &K::Timeout, "{e}");
        assert_eq!(e.outcome(), WriteOutcome::Unknown, "{e}");
        assert!(e.to_string().contains("WriteConcernFailed (64)"), "{e}");
    }

    #[tokio::test]
    async fn connect_errors_are_scrubbed() {
        for url in [
            "mongodb://app:hunter2@db host:27017/app",
            "mongodb://app:hunter2@db:notaport/app",
            "mongodb://app:x@hunter2@db:27017/app",
            "mongodb://app:hunter2@db:27017/app?authMechanism=BOGUS",
        ] {
            let Err(e) = mongodb::options::ClientOptions::parse(url).await else {
                continue;
            };
            let err = map_connect(e, url);
            let mut texts = vec![
                format!("{err}"),
                format!("{err:#}"),
                format!("{err:?}"),
                format!("{err:#?}"),
            ];
            let mut cur = std::error::Error::source(&err);
            while let Some(s) = cur {
                texts.push(format!("{s} {s:#} {s:?} {s:#?}"));
                cur = s.source();
            }
            for t in texts {
                assert!(!t.contains("hunter2"), "{url}: {t}");
            }
        }
    }
}
