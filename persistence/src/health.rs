//! Health: the public report types ([`HealthState`], [`DatabaseHealth`],
//! [`HealthReport`]) and the check of a database with failover endpoints.
//! `Persistence::health` (in `manager/status.rs`) fills them in.

use std::time::{Duration, SystemTime};

use crate::failover::{EndpointHealth, Pinger, Role, Topology};
use crate::pool::PoolStatus;

/// The state of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Answered within the timeout.
    Healthy,
    /// Answered, slowly (over half the timeout) or with its breaker not closed.
    Degraded,
    /// Did not answer, or answered with an error.
    Unhealthy,
    /// Not built yet (databases are built on first use) or not checkable.
    Unknown,
}

/// Health of one database.
#[derive(Debug, Clone)]
pub struct DatabaseHealth {
    /// Configured name.
    pub name: String,
    /// Backend kind.
    pub kind: &'static str,
    /// State.
    pub state: HealthState,
    /// Round-trip time of the check.
    pub latency: Option<Duration>,
    /// The error, when unhealthy (no secrets).
    pub error: Option<String>,
    /// Connection pool occupancy (PostgreSQL/SQLite, once built).
    pub pool: Option<PoolStatus>,
    /// When the current failing streak began (the first failed check since
    /// the last good one); `None` while healthy.
    pub since: Option<SystemTime>,
    /// Primary, replicas and backup, when replicas or a backup are configured.
    pub endpoints: Vec<EndpointHealth>,
}

/// Health of every database, and the worst state among them.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// Worst state (Unknown counts as healthy here: it was never used).
    pub status: HealthState,
    /// Per database, in name order.
    pub databases: Vec<DatabaseHealth>,
}

/// The outcome of checking a database with failover endpoints.
pub(crate) struct Checked {
    pub state: HealthState,
    pub latency: Option<Duration>,
    pub error: Option<String>,
    pub endpoints: Vec<EndpointHealth>,
}

/// Ping every endpoint now (in parallel, each bounded by the topology's
/// `check_timeout`), record the outcomes for routing, and judge:
/// every endpoint up → `Healthy`; the primary up but a replica or the backup
/// down, or the primary down with the backup taking writes → `Degraded`;
/// no endpoint able to take writes → `Unhealthy`.
pub(crate) async fn check_endpoints(topology: &Topology, pingers: &[Pinger]) -> Checked {
    topology.check_all(pingers).await;
    let endpoints = topology.endpoints();
    let down: Vec<String> = endpoints
        .iter()
        .filter(|e| e.up == Some(false))
        .map(|e| {
            format!(
                "{} {}: {}",
                e.role,
                e.endpoint,
                e.error.as_deref().unwrap_or("down")
            )
        })
        .collect();
    let up = |role: Role| {
        endpoints
            .iter()
            .any(|e| e.role == role && e.up != Some(false))
    };
    let state = if down.is_empty() {
        HealthState::Healthy
    } else if up(Role::Primary) || up(Role::Backup) {
        HealthState::Degraded
    } else {
        HealthState::Unhealthy
    };
    let latency = endpoints
        .iter()
        .find(|e| e.role == Role::Primary)
        .and_then(|e| e.latency);
    Checked {
        state,
        latency,
        error: (!down.is_empty()).then(|| down.join("; ")),
        endpoints,
    }
}
