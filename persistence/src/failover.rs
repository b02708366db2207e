//! Failover and read replicas for one named database.
//!
//! A database configured with `replicas` and/or a `backup` gets one
//! connection pool per endpoint (primary, each replica, backup) and a
//! [`Topology`] that knows which endpoints answer. [`FailoverRepository`] is
//! a backend-agnostic decorator over the per-endpoint repositories that
//! forwards every [`Repository`](persistence_core::Repository) method to one of them:
//!
//! * **writes** (`insert`, `update`, `upsert`, `delete`, `delete_many`,
//!   `ensure_schema`) go to the primary; while the primary is marked down
//!   they go to the backup, if one is configured and up;
//! * **reads** (`get`, `get_many`, `find`, `find_one`, `count`, `exists`,
//!   `page`, `stream`) go round robin to the replicas that are up when
//!   `failover.read_from_replicas` is on (the default), else to the write
//!   target. A replica read that fails with `Unavailable`/`Timeout` marks the
//!   replica down at once and is repeated on the write target (reads are
//!   idempotent), so a failing replica costs at most one extra round trip.
//!   The read-back of a write of unknown outcome (`Retry` resolving it, see
//!   [`persistence_core::layer::read_back`]) always goes to the write target.
//! * transactions are not part of [`Repository`](persistence_core::Repository): a unit of work runs on the
//!   connection it was opened on, the primary's, so in-transaction reads
//!   always see the primary.
//!
//! A background task pings every endpoint each `failover.check_interval`,
//! each ping bounded by `failover.check_timeout` (a server that accepts TCP
//! but never answers — paused, hung — counts as down after the timeout). One
//! failed ping marks an endpoint down, one successful ping marks it up, so
//! traffic moves within about `check_interval + check_timeout` and comes back
//! after the endpoint answers again.
//!
//! **Consistency.** Replicas may lag the primary: reads from replicas are
//! eventually consistent (no read-your-writes across calls); turn
//! `read_from_replicas` off where that matters. The backup is a write target
//! of last resort: there is one write target at a time per process (the
//! primary whenever it answers), and writes accepted by the backup during an
//! outage are **not** copied back to the primary when it returns — keeping
//! the two in step (replication, promotion, reconciliation) is the
//! operator's job. With a backup that is a promoted standby of the primary
//! this is the usual "fail over, then rebuild the old primary" procedure.
//!
//! Files: [`topology`](Topology) tracks which endpoints answer (and runs the
//! checker); `repository` routes each call of a [`FailoverRepository`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use persistence_core::Result;
use persistence_core::layer::BoxFuture;

mod repository;
mod topology;

pub use repository::FailoverRepository;
pub use topology::Topology;

/// What an endpoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The configured `url`: every write, and reads when no replica is up.
    Primary,
    /// `replicas[i]`: reads.
    Replica(usize),
    /// `backup`: writes and reads while the primary is down.
    Backup,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Primary => f.write_str("primary"),
            Role::Replica(i) => write!(f, "replica[{i}]"),
            Role::Backup => f.write_str("backup"),
        }
    }
}

/// The last known state of one endpoint (as seen by the checker and by
/// `Persistence::health`).
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    /// Primary, replica or backup.
    pub role: Role,
    /// The endpoint's URL, redacted (no password, no query string).
    pub endpoint: String,
    /// `None` until the first check; then whether the last check (or a
    /// failed replica read) found it answering.
    pub up: Option<bool>,
    /// Round trip of the last check.
    pub latency: Option<Duration>,
    /// The error of the current failing streak (no secrets).
    pub error: Option<String>,
    /// When the current failing streak began (first failure), `None` while up.
    pub since: Option<SystemTime>,
    /// When it was last checked.
    pub checked_at: Option<SystemTime>,
    /// Calls routed to it so far (reads and writes).
    pub calls: u64,
}

/// Pings one endpoint (bounded by the caller).
pub(crate) type Pinger = Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;
