//! Bound every call in time.

use std::time::Duration;

use futures_util::StreamExt as _;

use super::{Around, BoxFuture, Call, Op};
use crate::error::{Error, Result, WriteOutcome};
use crate::repository::BoxStream;

/// Fails a call that takes longer than the limit with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
/// For `stream`, the limit applies to each item.
///
/// A timed-out **write** ([`Op::is_write`]) may have been sent and committed:
/// its error's [outcome](crate::Error::outcome) is
/// [`WriteOutcome::Unknown`], so it is not retryable for `insert`,
/// `insert_many` and `update` (see [`Error::is_retryable`]) unless
/// [`Retry::writes`](super::Retry::writes) resolves it. A timed-out read is
/// retryable.
///
/// `insert_many` of `n` entities gets the limit once per
/// [`ROWS_PER_LIMIT`](Self::ROWS_PER_LIMIT) rows (`limit × ⌈n / 1000⌉`,
/// at least one limit): a bulk load through the manager (COPY on
/// PostgreSQL) is bounded in proportion to its size instead of failing
/// because one statement's limit was too short for 100,000 rows.
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    limit: Duration,
}

impl Timeout {
    /// How many rows of an `insert_many` one limit covers.
    pub const ROWS_PER_LIMIT: usize = 1_000;

    /// A limit per call.
    pub fn new(limit: Duration) -> Self {
        Timeout { limit }
    }

    /// The limit of a call over `rows` input rows.
    pub fn limit_for_rows(&self, rows: usize) -> Duration {
        let chunks = rows.div_ceil(Self::ROWS_PER_LIMIT).max(1);
        self.limit
            .saturating_mul(u32::try_from(chunks).unwrap_or(u32::MAX))
    }

    fn bounded<'a, T: Send + 'a>(
        &'a self,
        limit: Duration,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        Box::pin(async move {
            match tokio::time::timeout(limit, call()).await {
                Ok(r) => r,
                Err(_) => {
                    let e = Error::timeout(format!("no answer within {limit:?}"))
                        .in_context(entity, op.name());
                    Err(if op.is_write() {
                        e.with_outcome(WriteOutcome::Unknown)
                    } else {
                        e
                    })
                }
            }
        })
    }
}

impl Around for Timeout {
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        self.bounded(self.limit, entity, op, call)
    }

    fn around_rows<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        rows: usize,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        self.bounded(self.limit_for_rows(rows), entity, op, call)
    }

    fn around_stream<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        stream: BoxStream<'a, Result<T>>,
    ) -> BoxStream<'a, Result<T>> {
        let limit = self.limit;
        Box::pin(futures_util::stream::unfold(
            Some(stream),
            move |state| async move {
                let mut s = state?;
                match tokio::time::timeout(limit, s.next()).await {
                    Ok(Some(item)) => Some((item, Some(s))),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(Error::timeout(format!("no row within {limit:?}"))
                            .in_context(entity, "stream")),
                        None,
                    )),
                }
            },
        ))
    }
}
