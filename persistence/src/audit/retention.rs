//! [`Retention`]: deleting old audit records in bounded batches.

use chrono::{DateTime, Utc};
use persistence_core::{Query, Repository, Result};

use super::AuditRecord;

/// Deletes audit records older than a cut-off in bounded batches: each batch
/// reads at most `batch_size` ids (oldest first, through the index on `at`)
/// and deletes exactly those ids, then pauses. Each statement touches few rows
/// and no lock is held between batches, so writers are never blocked for long.
#[derive(Debug, Clone)]
pub struct Retention {
    max_age: chrono::Duration,
    batch_size: usize,
    pause: std::time::Duration,
    max_batches: Option<u32>,
}

/// What a retention run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Records deleted.
    pub deleted: u64,
    /// Delete statements run (non-empty batches).
    pub batches: u32,
    /// Records with `at` before this were eligible.
    pub cutoff: DateTime<Utc>,
    /// Whether it stopped at `max_batches` with old records left.
    pub truncated: bool,
}

impl Retention {
    /// Keep `days` days; batches of 1,000, 50 ms apart, no batch limit.
    pub fn days(days: u32) -> Self {
        Retention {
            max_age: chrono::Duration::days(i64::from(days)),
            batch_size: 1_000,
            pause: std::time::Duration::from_millis(50),
            max_batches: None,
        }
    }

    /// Records per delete statement (at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The pause between batches.
    pub fn pause(mut self, pause: std::time::Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Stop after this many batches (the rest waits for the next run).
    pub fn max_batches(mut self, n: u32) -> Self {
        self.max_batches = Some(n);
        self
    }

    /// Delete the records of `log` older than the retention period, now.
    pub async fn run<L: Repository<AuditRecord>>(&self, log: &L) -> Result<RetentionReport> {
        self.run_before(log, Utc::now() - self.max_age).await
    }

    /// Delete the records of `log` with `at` before `cutoff`.
    pub async fn run_before<L: Repository<AuditRecord>>(
        &self,
        log: &L,
        cutoff: DateTime<Utc>,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport {
            deleted: 0,
            batches: 0,
            cutoff,
            truncated: false,
        };
        loop {
            if self.max_batches.is_some_and(|m| report.batches >= m) {
                report.truncated = log.exists(&AuditRecord::AT.lt(cutoff)).await?;
                break;
            }
            let old = log
                .find(
                    &Query::filter(AuditRecord::AT.lt(cutoff))
                        .sort(AuditRecord::AT.asc())
                        .limit(self.batch_size as u64),
                )
                .await?;
            if old.is_empty() {
                break;
            }
            if report.batches > 0 && !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
            let ids = old.iter().map(|r| r.id);
            let n = log.delete_many(&AuditRecord::ID.is_in(ids)).await?;
            report.deleted += n;
            report.batches += 1;
            if n == 0 {
                // Someone else deleted them first; stop rather than spin (the next run goes on).
                break;
            }
        }
        Ok(report)
    }
}
