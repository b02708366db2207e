//! The one error type of the framework.
//!
//! Every backend maps its driver errors onto an [`ErrorKind`] (never by
//! matching message text) and keeps the driver error as the
//! [`source`](std::error::Error::source). Callers branch on [`Error::kind`] and
//! [`Error::is_retryable`]; the context (entity, operation, constraint) is
//! carried as structured fields.
//!
//! Every error also says whether a write it reports **may have been
//! applied** ([`Error::outcome`], [`WriteOutcome`]): a write whose request
//! reached the server but whose answer was lost (a timeout, a connection
//! closed after sending) is [`WriteOutcome::Unknown`], and such an error is
//! not retryable for a non-idempotent operation (see [`Error::is_retryable`]).
//!
//! `Display` and `Debug` never include connection strings or secrets: backends
//! construct messages from metadata and error codes only, and [`redact_url`]
//! is available for the rare message that must name a server.

use std::borrow::Cow;
use std::fmt;

use crate::layer::Op;

/// Result alias used throughout the framework.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The entity (or another addressed object) does not exist.
    NotFound,
    /// A constraint was violated or a concurrent writer won.
    Conflict(ConflictKind),
    /// The caller's input (filter, field name, value, cursor, config value...) is invalid.
    InvalidInput,
    /// The backend could not be reached or dropped the connection; usually retryable.
    Unavailable,
    /// The operation did not finish in time.
    Timeout,
    /// Configuration is missing or invalid.
    Config,
    /// The backend cannot do this (see [`crate::Capabilities`]).
    Unsupported,
    /// Data read from the backend could not be decoded into the entity.
    Decode,
    /// Any other backend failure.
    Backend,
}

/// Which kind of conflict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictKind {
    /// An entity with the same id already exists.
    DuplicateId,
    /// A unique constraint was violated; names the constraint (or index) when known.
    Unique {
        /// Constraint, index or field name(s) as reported by the backend or metadata.
        constraint: Option<String>,
    },
    /// Optimistic locking: the stored version differs from the expected one.
    Version {
        /// The version the caller held.
        expected: Option<i64>,
        /// The version found in the store, when known.
        actual: Option<i64>,
    },
    /// A serialization failure / deadlock / write conflict: retrying the whole unit may succeed.
    Concurrent,
    /// A [`Guard`](crate::Guard) filter did not match the stored row: the
    /// conditional write was not applied.
    Guard,
    /// A write names a parent that does not exist: the `belongs_to`
    /// relation (`<entity>.<relation>`, e.g. `orders.customer`) has no row
    /// with that key (see [`crate::relation`]).
    MissingParent {
        /// The relation, `<child entity>.<relation name>`.
        relation: String,
    },
    /// A delete was refused: rows of a `restrict` relation
    /// (`<child entity>.<relation name>`) still refer to the row.
    Referenced {
        /// The relation, `<child entity>.<relation name>`.
        relation: String,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotFound => f.write_str("not found"),
            ErrorKind::Conflict(c) => match c {
                ConflictKind::DuplicateId => f.write_str("conflict: duplicate id"),
                ConflictKind::Unique {
                    constraint: Some(c),
                } => {
                    write!(f, "conflict: unique constraint `{c}` violated")
                }
                ConflictKind::Unique { constraint: None } => {
                    f.write_str("conflict: unique constraint violated")
                }
                ConflictKind::Version { expected, actual } => {
                    f.write_str("conflict: stale version")?;
                    if let Some(e) = expected {
                        write!(f, " (expected {e}")?;
                        match actual {
                            Some(a) => write!(f, ", found {a})")?,
                            None => f.write_str(")")?,
                        }
                    }
                    Ok(())
                }
                ConflictKind::Concurrent => f.write_str("conflict: concurrent modification"),
                ConflictKind::Guard => f.write_str("conflict: the guard condition did not match"),
                ConflictKind::MissingParent { relation } => {
                    write!(f, "conflict: relation `{relation}` names a missing parent")
                }
                ConflictKind::Referenced { relation } => {
                    write!(
                        f,
                        "conflict: rows of relation `{relation}` still refer to it"
                    )
                }
            },
            ErrorKind::InvalidInput => f.write_str("invalid input"),
            ErrorKind::Unavailable => f.write_str("backend unavailable"),
            ErrorKind::Timeout => f.write_str("timed out"),
            ErrorKind::Config => f.write_str("configuration error"),
            ErrorKind::Unsupported => f.write_str("unsupported"),
            ErrorKind::Decode => f.write_str("could not decode stored data"),
            ErrorKind::Backend => f.write_str("backend error"),
        }
    }
}

/// Whether a failed write may nevertheless have been applied.
///
/// * [`NotApplied`](WriteOutcome::NotApplied) (the default): the operation
///   certainly did not change the store, because it was refused before it was
///   sent (breaker open, invalid input, pool exhausted), or the server answered
///   with an error (constraint violation, version conflict, syntax error...).
///   Repeating it is the same as doing it for the first time. Every read error
///   is `NotApplied`.
/// * [`Unknown`](WriteOutcome::Unknown): the request may have reached the
///   server and been committed, but its answer was lost: the call timed out
///   (the [`Timeout`](crate::layer::Timeout) layer), or the connection was
///   lost after the request was sent. Repeating an `insert` can then fail with
///   a duplicate id, or insert twice when ids are generated; repeating a
///   versioned `update` can fail with a false version conflict (or apply a
///   relative change twice). So [`Error::is_retryable`] is `false` for an
///   `Unknown` error of a non-idempotent operation (`insert`, `insert_many`,
///   `update`, a transaction `commit`, any operation it does not know), while
///   an idempotent one (`upsert`, `delete`, `delete_many`, `ensure_schema`) stays
///   retryable.
///
/// An `Unknown` outcome of a single-entity write (`insert`, `update`,
/// `upsert`) can be **resolved** instead of forbidden:
/// [`Retry::writes`](crate::layer::Retry::writes)`(`[`ResolveOutcome::ReadBack`](crate::layer::ResolveOutcome::ReadBack)`)`
/// (on in the manager's default stack, YAML `retry.resolve_writes`) re-reads
/// the entity by id and decides whether the write was applied — the stored
/// entity carries the version the write gives it and the written content —
/// returning the stored entity as the success of the call (exactly one
/// effect), or repeating a write that was really not applied; a repeat that
/// meets the late first attempt (duplicate id, version conflict) is resolved
/// the same way. An error that leaves the resolver still `Unknown` means the
/// library could not find out (the read failed, or attempts ran out).
///
/// The outcome travels with the error through every layer (retry, breaker,
/// metrics, cache, failover, audit); a layer that wraps or replaces an error
/// keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The write certainly was not applied (or the operation was not a write).
    #[default]
    NotApplied,
    /// The write may or may not have been applied: the answer was lost.
    Unknown,
}

impl fmt::Display for WriteOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteOutcome::NotApplied => f.write_str("not applied"),
            WriteOutcome::Unknown => f.write_str("may have been applied"),
        }
    }
}

/// Where a backend operation was when it failed, which decides whether a
/// write may have taken effect (see [`WriteOutcome`]). Backends classify each
/// driver error into a stage; the rule from stage to outcome lives here once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Nothing reached a server: connecting, acquiring a pooled connection,
    /// building the statement or command.
    NotSent,
    /// The server answered with an error: the operation was not applied.
    Rejected,
    /// The connection broke or the operation was interrupted while in
    /// flight, or the server could not confirm it: it may have been applied.
    InFlight,
}

impl Stage {
    /// The outcome of an operation that failed at this stage: unknown only
    /// when it was in flight and `may_write` (reads never change anything).
    pub fn outcome(self, may_write: bool) -> WriteOutcome {
        match self {
            Stage::InFlight if may_write => WriteOutcome::Unknown,
            _ => WriteOutcome::NotApplied,
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The framework's error: a kind, a message, context and an optional source.
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    entity: Option<&'static str>,
    operation: Option<&'static str>,
    retryable: Option<bool>,
    outcome: WriteOutcome,
    source: Option<Source>,
}

impl Error {
    /// A new error of `kind` with a human-readable message (must not contain secrets).
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            entity: None,
            operation: None,
            retryable: None,
            outcome: WriteOutcome::NotApplied,
            source: None,
        }
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// [`ErrorKind::Timeout`].
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    /// [`ErrorKind::Config`].
    pub fn config(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// [`ErrorKind::Decode`].
    pub fn decode(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }
    /// [`ErrorKind::Backend`].
    pub fn backend(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Backend, message)
    }
    /// [`ConflictKind::DuplicateId`].
    pub fn duplicate_id(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict(ConflictKind::DuplicateId), message)
    }
    /// [`ConflictKind::Unique`].
    pub fn unique_violation(
        constraint: Option<String>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(
            ErrorKind::Conflict(ConflictKind::Unique { constraint }),
            message,
        )
    }
    /// [`ConflictKind::Version`].
    pub fn stale_version(expected: Option<i64>, actual: Option<i64>) -> Self {
        Self::new(
            ErrorKind::Conflict(ConflictKind::Version { expected, actual }),
            "the entity was modified by someone else",
        )
    }
    /// [`ConflictKind::Guard`]: a conditional write's guard filter did not match.
    pub fn guard_failed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict(ConflictKind::Guard), message)
    }
    /// [`ConflictKind::MissingParent`]: `relation` (`<child>.<name>`) names no row.
    pub fn missing_parent(
        relation: impl Into<String>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(
            ErrorKind::Conflict(ConflictKind::MissingParent {
                relation: relation.into(),
            }),
            message,
        )
    }
    /// [`ConflictKind::Referenced`]: rows of `relation` (`<child>.<name>`) still refer to the row.
    pub fn referenced(relation: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            ErrorKind::Conflict(ConflictKind::Referenced {
                relation: relation.into(),
            }),
            message,
        )
    }
    /// [`ConflictKind::Concurrent`] (retryable).
    pub fn concurrent(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict(ConflictKind::Concurrent), message)
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// Attach the logical entity name.
    pub fn with_entity(mut self, entity: &'static str) -> Self {
        self.entity = Some(entity);
        self
    }
    /// Attach the operation (`get`, `insert`, ...).
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation = Some(operation);
        self
    }
    /// Fill entity and operation when not already set (used by repositories on the way out).
    pub fn in_context(mut self, entity: &'static str, operation: &'static str) -> Self {
        self.entity.get_or_insert(entity);
        self.operation.get_or_insert(operation);
        self
    }
    /// Replace the message, keeping kind, context, outcome, retryable flag and
    /// source (for a layer that adds words such as `row 3: ...`; rebuilding the
    /// error with [`Error::new`] would lose its [outcome](Self::outcome)).
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }
    /// Override the retryable flag derived from the kind.
    pub fn set_retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// Record whether the write may have been applied (see [`WriteOutcome`]).
    ///
    /// The operation the error belongs to is the one named by
    /// [`with_operation`](Self::with_operation) / [`in_context`](Self::in_context)
    /// (set before or after this call): [`is_retryable`](Self::is_retryable)
    /// looks it up when it is asked.
    pub fn with_outcome(mut self, outcome: WriteOutcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Whether the write this error reports may have been applied
    /// ([`WriteOutcome::NotApplied`] unless a backend or layer said otherwise).
    pub fn outcome(&self) -> WriteOutcome {
        self.outcome
    }

    /// The kind.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
    /// The message (no secrets).
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The logical entity name, when known.
    pub fn entity(&self) -> Option<&'static str> {
        self.entity
    }
    /// The operation, when known.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }
    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
    /// True for any [`ErrorKind::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self.kind, ErrorKind::Conflict(_))
    }

    /// Whether repeating the same operation may succeed and is safe:
    /// `Unavailable`, `Timeout` and `Conflict(Concurrent)` are retryable unless
    /// the backend said otherwise ([`set_retryable`](Self::set_retryable)).
    ///
    /// An error whose [outcome](Self::outcome) is [`WriteOutcome::Unknown`] is
    /// never retryable unless its [operation](Self::operation) names an
    /// [idempotent](crate::layer::Op::is_idempotent) repository operation
    /// (`upsert`, `delete`, `delete_many`, `ensure_schema`): for `insert`,
    /// `insert_many`, `update`, a `commit`, or an error without an operation,
    /// a blind repeat could write twice or report a false conflict. This rule
    /// wins over `set_retryable(true)`.
    pub fn is_retryable(&self) -> bool {
        let by_kind = self.retryable.unwrap_or(matches!(
            self.kind,
            ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Conflict(ConflictKind::Concurrent)
        ));
        by_kind && (self.outcome == WriteOutcome::NotApplied || self.is_idempotent_operation())
    }

    /// Whether the error's operation is a known idempotent repository operation.
    fn is_idempotent_operation(&self) -> bool {
        self.operation
            .and_then(Op::from_name)
            .is_some_and(Op::is_idempotent)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match (self.entity, self.operation) {
            (Some(e), Some(o)) => write!(f, " in {e}.{o}")?,
            (Some(e), None) => write!(f, " in {e}")?,
            (None, Some(o)) => write!(f, " in {o}")?,
            (None, None) => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if self.outcome == WriteOutcome::Unknown {
            f.write_str(" (the write may have been applied: its outcome is unknown)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("message", &self.message)
            .field("entity", &self.entity)
            .field("operation", &self.operation)
            .field("outcome", &self.outcome)
            .field("retryable", &self.is_retryable());
        if let Some(s) = &self.source {
            // The source's Display is produced by drivers; backends only attach
            // sources whose messages carry no credentials (URLs are redacted before).
            d.field("source", &format_args!("{s}"));
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Replace the password (and any query string) of a connection URL with `***`,
/// for the rare message that has to name a server.
pub fn redact_url(url: &str) -> String {
    let (head, _query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let Some(scheme_end) = head.find("://") else {
        return "***".to_string();
    };
    let (scheme, rest) = head.split_at(scheme_end + 3);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:***{host}")
        }
        None => authority.to_string(),
    };
    format!("{scheme}{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_by_kind() {
        assert!(Error::unavailable("x").is_retryable());
        assert!(Error::timeout("x").is_retryable());
        assert!(Error::concurrent("x").is_retryable());
        assert!(!Error::stale_version(Some(1), Some(2)).is_retryable());
        assert!(!Error::invalid_input("x").is_retryable());
        assert!(!Error::unavailable("x").set_retryable(false).is_retryable());
    }

    #[test]
    fn outcome_defaults_to_not_applied() {
        let e = Error::timeout("x").in_context("users", "insert");
        assert_eq!(e.outcome(), WriteOutcome::NotApplied);
        assert!(e.is_retryable());
    }

    #[test]
    fn unknown_outcome_is_not_retryable_for_non_idempotent_operations() {
        for op in ["insert", "insert_many", "update", "commit", "bulk_insert"] {
            let e = Error::timeout("x")
                .in_context("users", op)
                .with_outcome(WriteOutcome::Unknown);
            assert_eq!(e.outcome(), WriteOutcome::Unknown);
            assert!(!e.is_retryable(), "{op}");
            // The outcome rule wins over a backend's retryable flag.
            assert!(!e.set_retryable(true).is_retryable(), "{op}");
        }
        // Set before the operation is known: decided when asked.
        let e = Error::unavailable("reset")
            .with_outcome(WriteOutcome::Unknown)
            .in_context("users", "update");
        assert!(!e.is_retryable());
        // Without any operation: conservative.
        assert!(
            !Error::unavailable("reset")
                .with_outcome(WriteOutcome::Unknown)
                .is_retryable()
        );
    }

    #[test]
    fn unknown_outcome_stays_retryable_for_idempotent_operations() {
        for op in ["upsert", "delete", "delete_many", "ensure_schema"] {
            let e = Error::timeout("x")
                .in_context("users", op)
                .with_outcome(WriteOutcome::Unknown);
            assert!(e.is_retryable(), "{op}");
        }
        // A kind that is not retryable stays so.
        let e = Error::invalid_input("x")
            .in_context("users", "upsert")
            .with_outcome(WriteOutcome::Unknown);
        assert!(!e.is_retryable());
    }

    #[test]
    fn operation_names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
        assert_eq!(Op::from_name("commit"), None);
    }

    #[test]
    fn unknown_outcome_is_said_in_words() {
        let e = Error::timeout("no answer within 2s")
            .in_context("users", "insert")
            .with_outcome(WriteOutcome::Unknown);
        assert_eq!(
            e.to_string(),
            "timed out in users.insert: no answer within 2s (the write may have been applied: its outcome is unknown)"
        );
        assert!(format!("{e:?}").contains("outcome: Unknown"));
        let e = e.with_message("row 3: no answer");
        assert_eq!(e.outcome(), WriteOutcome::Unknown);
        assert!(e.to_string().contains("row 3: no answer (the write may"));
        let e = e.with_outcome(WriteOutcome::NotApplied);
        assert!(!e.to_string().contains("may have been applied"));
        assert_eq!(WriteOutcome::Unknown.to_string(), "may have been applied");
    }

    #[test]
    fn display_has_context() {
        let e = Error::not_found("no user 7").in_context("users", "update");
        assert_eq!(e.to_string(), "not found in users.update: no user 7");
    }

    #[test]
    fn redacts_urls() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/app?sslmode=require&password=x"),
            "postgres://bob:***@db:5432/app"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("garbage s3cret"), "***");
    }
}
