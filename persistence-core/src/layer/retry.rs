//! Retry retryable failures of idempotent operations, and resolve writes
//! whose outcome is unknown.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::metrics::names;
use super::{Around, BoxFuture, Call, Op, ResolveOutcome, Write, read_back, write_applied};
use crate::entity::Entity;
use crate::error::{ConflictKind, Error, ErrorKind, Result, WriteOutcome};

/// Retry settings; also the `retry` section of a database's configuration
/// (`retry: { max_attempts: 3, base_delay: 20ms, max_delay: 1s, resolve_writes: true }`,
/// durations in humantime form, unknown keys rejected; see [`Retry::from_config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Resolve single-entity writes whose outcome is unknown (a timeout, a
    /// connection lost after sending) by reading the entity back, so they are
    /// repeated only when they were not applied: [`Retry::new`] starts with
    /// [`ResolveOutcome::ReadBack`] when set, [`ResolveOutcome::Never`] when
    /// not. `false` in [`RetryConfig::default`] (as [`Retry::default`]); in a
    /// configuration the key defaults to `true`, also without a `retry`
    /// section, and `false` returns such errors as they are (not retryable
    /// for `insert`/`update`).
    #[serde(default = "resolve_writes_configured")]
    pub resolve_writes: bool,
}

/// The configuration's default of [`RetryConfig::resolve_writes`].
fn resolve_writes_configured() -> bool {
    true
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            resolve_writes: false,
        }
    }
}

/// Retries a call whose error [`is_retryable`](crate::Error::is_retryable),
/// with exponential backoff and full jitter (a uniformly random sleep between
/// zero and the capped exponential delay), and only when the operation is
/// [idempotent](Op::is_idempotent): by default an `insert`, `insert_many` or
/// `update` is never repeated.
///
/// With [`writes(ResolveOutcome::ReadBack)`](Retry::writes), `insert`,
/// `update` and `upsert` are repeated too, safely: a failure whose
/// [outcome](crate::Error::outcome) is [`Unknown`](WriteOutcome::Unknown) is
/// first **resolved** by reading the entity back (see [`ResolveOutcome`]), so
/// the caller gets exactly one effect: the stored entity when the write had
/// landed, a repeat when it had not, and neither a duplicate nor a false
/// version conflict when a repeat meets the late first attempt.
///
/// Bounds: at most `max_attempts` calls of the operation; when resolving, in
/// addition one read after each failed write attempt (a failed read that is
/// retryable is repeated, using up the same attempts), each bounded by the
/// layers below (the [`Timeout`](super::Timeout)).
#[derive(Debug, Clone, Copy, Default)]
pub struct Retry {
    config: RetryConfig,
    resolve: ResolveOutcome,
}

impl Retry {
    /// With explicit settings (writes are resolved as
    /// [`RetryConfig::resolve_writes`] says).
    pub fn new(config: RetryConfig) -> Self {
        Retry {
            config,
            resolve: if config.resolve_writes {
                ResolveOutcome::ReadBack
            } else {
                ResolveOutcome::Never
            },
        }
    }

    /// The layer a database's optional `retry` configuration section
    /// describes: its settings, or without a section (`None`) the defaults
    /// with writes resolved (in a configuration, `resolve_writes` is on unless
    /// turned off).
    pub fn from_config(section: Option<&RetryConfig>) -> Self {
        Retry::new(section.copied().unwrap_or(RetryConfig {
            resolve_writes: resolve_writes_configured(),
            ..RetryConfig::default()
        }))
    }

    /// How single-entity writes with an unknown outcome are treated.
    pub fn writes(mut self, resolve: ResolveOutcome) -> Self {
        self.resolve = resolve;
        self.config.resolve_writes = resolve == ResolveOutcome::ReadBack;
        self
    }

    /// The settings.
    pub fn config(&self) -> RetryConfig {
        self.config
    }

    /// The write resolution in force.
    pub fn resolution(&self) -> ResolveOutcome {
        self.resolve
    }

    /// The full-jitter backoff before attempt `attempt + 1` (`attempt` ≥ 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.config.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.config.max_delay);
        cap.mul_f64(fastrand::f64())
    }

    /// Resolve-and-repeat loop of one single-entity write.
    async fn resolve_write<E: Entity>(&self, w: Write<'_, E>) -> Result<E> {
        let entity = E::meta().name;
        let op = w.op;
        let mut attempt = 1;
        // An earlier attempt failed and was repeated (its effect may be what a
        // repeat now runs into).
        let mut repeated = false;
        // An earlier attempt's outcome is unknown.
        let mut doubt = false;
        loop {
            let err = match (w.call)().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let unknown = err.outcome() == WriteOutcome::Unknown;
            let late = repeated && is_own_conflict(op, &err);
            if !unknown && !late {
                if err.is_retryable() && attempt < self.config.max_attempts {
                    tracing::debug!(entity, op = op.name(), attempt, error = %err, "retrying write");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                    repeated = true;
                    continue;
                }
                return Err(mark(err, doubt));
            }
            doubt |= unknown;
            // Did this (or an earlier) attempt land? Read it back.
            let stored = loop {
                match read_back((w.read)()).await {
                    Ok(stored) => break stored,
                    Err(read_err)
                        if read_err.is_retryable() && attempt < self.config.max_attempts =>
                    {
                        tracing::debug!(entity, op = op.name(), attempt, error = %read_err,
                            "reading back a write of unknown outcome failed; reading again");
                        tokio::time::sleep(self.backoff(attempt)).await;
                        attempt += 1;
                    }
                    Err(read_err) => {
                        tracing::debug!(entity, op = op.name(), error = %read_err,
                            "could not read back a write of unknown outcome");
                        count(entity, op, names::RESULT_UNRESOLVED);
                        return Err(mark(err, doubt));
                    }
                }
            };
            let own = match stored {
                Some(s) => match write_applied(op, w.entity, &s, &w.capabilities) {
                    Ok(true) => Some(s),
                    Ok(false) => None,
                    Err(_) => {
                        count(entity, op, names::RESULT_UNRESOLVED);
                        return Err(mark(err, doubt));
                    }
                },
                None => None,
            };
            if let Some(s) = own {
                tracing::debug!(
                    entity,
                    op = op.name(),
                    attempt,
                    "write of unknown outcome had been applied"
                );
                count(entity, op, names::RESULT_APPLIED);
                return Ok(s);
            }
            if late {
                // A real conflict: what is stored is not our write.
                if doubt {
                    count(entity, op, names::RESULT_UNRESOLVED);
                }
                return Err(mark(err, doubt));
            }
            if attempt >= self.config.max_attempts {
                count(entity, op, names::RESULT_UNRESOLVED);
                return Err(mark(err, doubt));
            }
            count(entity, op, names::RESULT_NOT_APPLIED);
            tracing::debug!(entity, op = op.name(), attempt, error = %err,
                "write of unknown outcome was not applied; repeating it");
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            repeated = true;
        }
    }
}

fn count(entity: &'static str, op: Op, result: &'static str) {
    metrics::counter!(names::WRITE_RESOLUTIONS,
        names::LABEL_ENTITY => entity,
        names::LABEL_OP => op.name(),
        names::LABEL_RESULT => result)
    .increment(1);
}

/// The conflict a repeat meets when an earlier attempt of the same write
/// landed late: the id exists (insert) or the version moved on (update).
fn is_own_conflict(op: Op, err: &Error) -> bool {
    match err.kind() {
        ErrorKind::Conflict(ConflictKind::DuplicateId) => op == Op::Insert,
        ErrorKind::Conflict(ConflictKind::Version { .. }) => op == Op::Update,
        _ => false,
    }
}

/// After an attempt of unknown outcome, a later error cannot say "not applied".
fn mark(err: Error, doubt: bool) -> Error {
    if doubt {
        err.with_outcome(WriteOutcome::Unknown)
    } else {
        err
    }
}

impl Around for Retry {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                super::trace::attempt(attempt);
                match call().await {
                    Err(e)
                        if e.is_retryable()
                            && op.is_idempotent()
                            && attempt < self.config.max_attempts =>
                    {
                        let wait = self.backoff(attempt);
                        tracing::debug!(entity, op = op.name(), attempt, ?wait, error = %e, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }

    fn around_write<'a, E: Entity>(&'a self, write: Write<'a, E>) -> BoxFuture<'a, Result<E>> {
        match self.resolve {
            ResolveOutcome::ReadBack => Box::pin(self.resolve_write(write)),
            ResolveOutcome::Never => self.around(E::meta().name, write.op, write.call),
        }
    }
}
