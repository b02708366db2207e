//! The [`Topology`] of one database: its endpoints (primary, replicas,
//! backup), which of them answer, where reads and writes go now, and the
//! background checker that pings them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::config::FailoverSettings;
use crate::failover::{EndpointHealth, Pinger, Role};
use persistence_core::{Error, Result};

#[derive(Debug, Default)]
struct Status {
    checked: bool,
    latency: Option<Duration>,
    error: Option<String>,
    since: Option<SystemTime>,
    checked_at: Option<SystemTime>,
}

#[derive(Debug)]
struct Endpoint {
    role: Role,
    label: String,
    /// Assumed up until a check says otherwise (a fresh pool is usable).
    up: AtomicBool,
    calls: AtomicU64,
    status: Mutex<Status>,
}

/// The endpoints of one database and which of them answer. Shared by every
/// repository of the database and by its background checker.
#[derive(Debug)]
pub struct Topology {
    database: String,
    endpoints: Vec<Endpoint>,
    settings: FailoverSettings,
    next_replica: AtomicUsize,
    checker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Topology {
    /// Endpoints in order: the primary, then `replicas` (labels are redacted
    /// URLs), then the backup if any.
    pub(crate) fn new(
        database: &str,
        replicas: &[String],
        primary: String,
        backup: Option<String>,
        settings: FailoverSettings,
    ) -> Self {
        let endpoint = |role, label| Endpoint {
            role,
            label,
            up: AtomicBool::new(true),
            calls: AtomicU64::new(0),
            status: Mutex::new(Status::default()),
        };
        let mut endpoints = vec![endpoint(Role::Primary, primary)];
        endpoints.extend(
            replicas
                .iter()
                .enumerate()
                .map(|(i, l)| endpoint(Role::Replica(i), l.clone())),
        );
        if let Some(b) = backup {
            endpoints.push(endpoint(Role::Backup, b));
        }
        Topology {
            database: database.to_string(),
            endpoints,
            settings,
            next_replica: AtomicUsize::new(0),
            checker: Mutex::new(None),
        }
    }

    /// The database's name.
    pub(super) fn database(&self) -> &str {
        &self.database
    }

    /// How many endpoints (primary, replicas, backup).
    pub(super) fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// The settings in force.
    pub fn settings(&self) -> &FailoverSettings {
        &self.settings
    }

    fn is_up(&self, i: usize) -> bool {
        self.endpoints
            .get(i)
            .is_some_and(|e| e.up.load(Ordering::Acquire))
    }

    pub(super) fn backup_index(&self) -> Option<usize> {
        self.endpoints.iter().position(|e| e.role == Role::Backup)
    }

    /// Where writes go now: the primary while it answers (or when nothing
    /// else does), else the backup.
    pub fn write_target(&self) -> usize {
        if self.is_up(0) {
            return 0;
        }
        match self.backup_index() {
            Some(b) if self.is_up(b) => b,
            _ => 0,
        }
    }

    /// Where the next read goes: the next replica that is up (round robin),
    /// else the write target; always the write target for the read-back of a
    /// write ([`persistence_core::layer::read_back`]).
    pub fn read_target(&self) -> usize {
        // Reading back a write of unknown outcome (`Retry` resolving it): a
        // lagging replica could miss it.
        if self.settings.read_from_replicas && !persistence_core::layer::is_read_back() {
            let replicas: Vec<usize> = self
                .endpoints
                .iter()
                .enumerate()
                .filter(|(i, e)| matches!(e.role, Role::Replica(_)) && self.is_up(*i))
                .map(|(i, _)| i)
                .collect();
            if !replicas.is_empty() {
                let n = self.next_replica.fetch_add(1, Ordering::Relaxed);
                return replicas[n % replicas.len()];
            }
        }
        self.write_target()
    }

    pub(super) fn count_call(&self, i: usize) {
        if let Some(e) = self.endpoints.get(i) {
            e.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn is_replica(&self, i: usize) -> bool {
        self.endpoints
            .get(i)
            .is_some_and(|e| matches!(e.role, Role::Replica(_)))
    }

    /// Record the outcome of a check (or of a failed call) of endpoint `i`.
    pub(crate) fn record(&self, i: usize, latency: Option<Duration>, outcome: Result<()>) {
        let Some(e) = self.endpoints.get(i) else {
            return;
        };
        let mut st = e.status.lock().unwrap_or_else(|p| p.into_inner());
        let was_up = e.up.load(Ordering::Acquire);
        st.checked = true;
        st.checked_at = Some(SystemTime::now());
        if latency.is_some() {
            st.latency = latency;
        }
        match outcome {
            Ok(()) => {
                st.error = None;
                st.since = None;
                e.up.store(true, Ordering::Release);
                if !was_up {
                    tracing::info!(database = %self.database, endpoint = %e.role, "endpoint is up again; traffic returns");
                }
            }
            Err(err) => {
                st.error = Some(err.to_string());
                if st.since.is_none() {
                    st.since = Some(SystemTime::now());
                }
                e.up.store(false, Ordering::Release);
                if was_up {
                    tracing::warn!(database = %self.database, endpoint = %e.role, error = %err, "endpoint is down; traffic moves");
                }
            }
        }
    }

    /// The state of every endpoint, primary first.
    pub fn endpoints(&self) -> Vec<EndpointHealth> {
        self.endpoints
            .iter()
            .map(|e| {
                let st = e.status.lock().unwrap_or_else(|p| p.into_inner());
                EndpointHealth {
                    role: e.role,
                    endpoint: e.label.clone(),
                    up: st.checked.then(|| e.up.load(Ordering::Acquire)),
                    latency: st.latency,
                    error: st.error.clone(),
                    since: st.since,
                    checked_at: st.checked_at,
                    calls: e.calls.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Ping every endpoint once, in parallel, each bounded by `check_timeout`,
    /// and record the outcomes.
    pub(crate) async fn check_all(&self, pingers: &[Pinger]) {
        let timeout = self.settings.check_timeout;
        let checks = pingers.iter().enumerate().map(|(i, ping)| async move {
            let start = Instant::now();
            let outcome = match tokio::time::timeout(timeout, ping()).await {
                Ok(r) => r,
                Err(_) => Err(Error::timeout(format!("no answer within {timeout:?}"))),
            };
            self.record(i, Some(start.elapsed()), outcome);
        });
        futures_util::future::join_all(checks).await;
    }

    /// Start the background checker (once). It holds the topology weakly and
    /// ends when the topology is dropped or [`stop`](Self::stop) is called.
    pub(crate) fn start_checker(self: &Arc<Self>, pingers: Vec<Pinger>) {
        let mut slot = self.checker.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        let weak: Weak<Topology> = Arc::downgrade(self);
        let interval = self.settings.check_interval;
        *slot = Some(tokio::spawn(async move {
            loop {
                let Some(topology) = weak.upgrade() else {
                    return;
                };
                topology.check_all(&pingers).await;
                drop(topology);
                tokio::time::sleep(interval).await;
            }
        }));
    }

    /// Stop the background checker.
    pub(crate) fn stop(&self) {
        if let Some(h) = self
            .checker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop();
    }
}
