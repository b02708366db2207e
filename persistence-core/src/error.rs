//! The one error type of the framework.
//!
//! Every backend maps its driver errors onto an [`ErrorKind`] (never by
//! matching message text) and keeps the driver error as the [`source`]
//! (std::error::Error::source). Callers branch on [`Error::kind`] and
//! [`Error::is_retryable`]; the context (entity, operation, constraint) is
//! carried as structured fields.
//!
//! `Display` and `Debug` never include connection strings or secrets: backends
//! construct messages from metadata and error codes only, and [`redact_url`]
//! is available for the rare message that must name a server.

use std::borrow::Cow;
use std::fmt;

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

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The framework's error: a kind, a message, context and an optional source.
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    entity: Option<&'static str>,
    operation: Option<&'static str>,
    retryable: Option<bool>,
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
    /// Override the retryable flag derived from the kind.
    pub fn set_retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
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

    /// Whether repeating the same operation may succeed: `Unavailable`, `Timeout`
    /// and `Conflict(Concurrent)` are retryable unless the backend said otherwise.
    pub fn is_retryable(&self) -> bool {
        self.retryable.unwrap_or(matches!(
            self.kind,
            ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Conflict(ConflictKind::Concurrent)
        ))
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
