//! Health of databases with failover endpoints, and failing-streak tracking.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::failover::{EndpointHealth, Pinger, Role, Topology};
use crate::manager::HealthState;

/// Remembers when the current failing streak of a database began.
#[derive(Debug, Default)]
pub(crate) struct Streak(Mutex<Option<SystemTime>>);

impl Streak {
    /// Record one check; returns the first failure of the current streak
    /// (`None` once a check succeeds).
    pub(crate) fn observe(&self, failing: bool) -> Option<SystemTime> {
        let mut since = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if failing {
            Some(*since.get_or_insert_with(SystemTime::now))
        } else {
            *since = None;
            None
        }
    }
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
