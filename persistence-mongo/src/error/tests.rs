//! Unit tests of the error map (driver errors built from server replies, no server).

use std::io;
use std::sync::Arc;

use bson::doc;
use mongodb::error::{CommandError, WriteConcernError, WriteError};
use persistence_core::WriteOutcome;
use persistence_core::{ConflictKind, Entity as _, ErrorKind as K};

use super::*;

fn command(code: i32, name: &str) -> DriverError {
    let c: CommandError =
        bson::from_document(doc! { "code": code, "codeName": name, "errmsg": "server says why" })
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
    let url =
        format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=100");
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
