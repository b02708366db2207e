//! Failover and read replicas for one named database.
//!
//! A database configured with `replicas` and/or a `backup` gets one
//! connection pool per endpoint (primary, each replica, backup) and a
//! [`Topology`] that knows which endpoints answer. [`FailoverRepository`] is
//! a backend-agnostic decorator over the per-endpoint repositories that
//! forwards every [`Repository`] method to one of them:
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
//! * transactions are not part of [`Repository`]: a unit of work runs on the
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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::config::FailoverSettings;
use persistence_core::layer::BoxFuture;
use persistence_core::{
    BoxStream, Capabilities, Cursor, Entity, Error, ErrorKind, Filter, Page, Query, Repository,
    Result, SharedRepository,
};

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

/// Pings one endpoint (bounded by the caller).
pub(crate) type Pinger = Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

fn infrastructure(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
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

    /// The settings in force.
    pub fn settings(&self) -> &FailoverSettings {
        &self.settings
    }

    fn is_up(&self, i: usize) -> bool {
        self.endpoints
            .get(i)
            .is_some_and(|e| e.up.load(Ordering::Acquire))
    }

    fn backup_index(&self) -> Option<usize> {
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

    fn count_call(&self, i: usize) {
        if let Some(e) = self.endpoints.get(i) {
            e.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn is_replica(&self, i: usize) -> bool {
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

/// Routes each call to one endpoint's repository (see the module docs).
/// `endpoints[i]` is the repository on endpoint `i` of the topology.
pub struct FailoverRepository<E: Entity> {
    endpoints: Vec<SharedRepository<E>>,
    topology: Arc<Topology>,
}

impl<E: Entity> std::fmt::Debug for FailoverRepository<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverRepository")
            .field("entity", &E::meta().name)
            .field("topology", &self.topology)
            .finish()
    }
}

impl<E: Entity> FailoverRepository<E> {
    /// Route over `endpoints` (same order as the topology's; the first is the primary).
    pub fn new(endpoints: Vec<SharedRepository<E>>, topology: Arc<Topology>) -> Result<Self> {
        if endpoints.is_empty() || endpoints.len() != topology.endpoints.len() {
            return Err(Error::config(format!(
                "database `{}`: {} endpoint repositories for {} endpoints",
                topology.database,
                endpoints.len(),
                topology.endpoints.len()
            )));
        }
        Ok(FailoverRepository {
            endpoints,
            topology,
        })
    }

    /// The shared topology.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    fn at(&self, i: usize) -> &SharedRepository<E> {
        self.topology.count_call(i);
        // `new` checked that there is one repository per endpoint.
        self.endpoints.get(i).unwrap_or(&self.endpoints[0])
    }
}

/// A read: the read target; a replica failing with an infrastructure error
/// is marked down and the read repeated on the write target.
macro_rules! read_call {
    ($self:ident, |$r:ident| $call:expr) => {{
        let i = $self.topology.read_target();
        let first = {
            let $r = $self.at(i);
            $call.await
        };
        match first {
            Err(e) if $self.topology.is_replica(i) && infrastructure(&e) => {
                $self.topology.record(i, None, Err(e));
                let $r = $self.at($self.topology.write_target());
                $call.await
            }
            other => other,
        }
    }};
}

macro_rules! write_call {
    ($self:ident, |$r:ident| $call:expr) => {{
        let $r = $self.at($self.topology.write_target());
        $call.await
    }};
}

impl<E: Entity> Repository<E> for FailoverRepository<E> {
    fn capabilities(&self) -> Capabilities {
        self.endpoints[0].capabilities()
    }
    /// On the write target, then (best effort) on the backup when it is not
    /// the write target, so it can take writes later. Replicas are read-only.
    async fn ensure_schema(&self) -> Result<()> {
        // Not counted as routed calls: this is set-up, not traffic.
        let repo = |i: usize| self.endpoints.get(i).unwrap_or(&self.endpoints[0]);
        let w = self.topology.write_target();
        repo(w).ensure_schema().await?;
        for i in [0, self.topology.backup_index().unwrap_or(0)] {
            if i != w {
                if let Err(e) = repo(i).ensure_schema().await {
                    tracing::warn!(database = %self.topology.database, endpoint = %i, error = %e,
                        "ensure_schema on a standby endpoint failed; it will be retried on next start");
                }
            }
        }
        Ok(())
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        read_call!(self, |r| r.get(id))
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        read_call!(self, |r| r.get_many(ids))
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        write_call!(self, |r| r.insert(entity))
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        write_call!(self, |r| r.insert_many(entities))
    }
    async fn update(&self, entity: &E) -> Result<E> {
        write_call!(self, |r| r.update(entity))
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        write_call!(self, |r| r.upsert(entity))
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        write_call!(self, |r| r.delete(id))
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        write_call!(self, |r| r.delete_many(filter))
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        read_call!(self, |r| r.find(query))
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        read_call!(self, |r| r.find_one(query))
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        read_call!(self, |r| r.count(filter))
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        read_call!(self, |r| r.exists(filter))
    }
    /// From the read target; a stream is not repeated elsewhere on failure.
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.at(self.topology.read_target()).stream(query)
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        read_call!(self, |r| r.page(query, cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use persistence_core::conformance::entities::{Person, person};
    use persistence_core::layer::{Around, Call, LayerExt, Op};
    use persistence_core::repository::support::collect;
    use persistence_core::{MemoryRepository, Query};

    /// A server that refuses every call.
    struct Down;
    impl Around for Down {
        fn around<'a, T: Send + 'a>(
            &'a self,
            _: &'static str,
            _: Op,
            _: Call<'a, T>,
        ) -> BoxFuture<'a, Result<T>> {
            Box::pin(async { Err(Error::unavailable("connection refused")) })
        }
    }

    fn setup(
        read_from_replicas: bool,
    ) -> (
        FailoverRepository<Person>,
        [MemoryRepository<Person>; 3],
        Arc<Topology>,
    ) {
        let mems = [
            MemoryRepository::new(),
            MemoryRepository::new(),
            MemoryRepository::new(),
        ];
        let topology = Arc::new(Topology::new(
            "main",
            &["replica".to_string()],
            "primary".to_string(),
            Some("backup".to_string()),
            FailoverSettings {
                read_from_replicas,
                ..FailoverSettings::default()
            },
        ));
        let repos: Vec<SharedRepository<Person>> = mems
            .iter()
            .map(|m| Arc::new(m.clone()) as SharedRepository<Person>)
            .collect();
        let f = FailoverRepository::new(repos, topology.clone()).expect("aligned");
        (f, mems, topology)
    }

    fn down(t: &Topology, i: usize) {
        t.record(i, None, Err(Error::unavailable("test: down")));
    }

    #[tokio::test]
    async fn every_read_goes_to_the_replica_and_every_write_to_the_primary() {
        let (f, [primary, replica, backup], t) = setup(true);
        f.ensure_schema().await.expect("schema");
        replica.insert(&person(1)).await.expect("seed replica");
        let all = Query::default();
        assert!(f.get(&1).await.expect("get").is_some());
        assert_eq!(f.get_many(&[1]).await.expect("get_many").len(), 1);
        assert_eq!(f.find(&all).await.expect("find").len(), 1);
        assert!(f.find_one(&all).await.expect("find_one").is_some());
        assert_eq!(f.count(&Filter::all()).await.expect("count"), 1);
        assert!(f.exists(&Filter::all()).await.expect("exists"));
        assert_eq!(collect(f.stream(&all)).await.expect("stream").len(), 1);
        let q = Query::all().limit(10);
        assert_eq!(f.page(&q, None).await.expect("page").items.len(), 1);

        let two = f.insert(&person(2)).await.expect("insert");
        f.insert_many(&[person(3)]).await.expect("insert_many");
        f.update(&two).await.expect("update");
        f.upsert(&person(4)).await.expect("upsert");
        assert!(f.delete(&4).await.expect("delete"));
        f.delete_many(&Filter::all()).await.expect("delete_many");
        assert_eq!(
            replica.count(&Filter::all()).await.expect("n"),
            1,
            "no write on the replica"
        );
        assert_eq!(backup.count(&Filter::all()).await.expect("n"), 0);
        assert_eq!(
            primary.count(&Filter::all()).await.expect("n"),
            0,
            "all deleted"
        );
        let e = t.endpoints();
        assert_eq!((e[0].calls, e[1].calls, e[2].calls), (6, 8, 0));
    }

    #[tokio::test]
    async fn read_backs_of_writes_go_to_the_write_target() {
        let (f, [primary, replica, _backup], _t) = setup(true);
        primary.insert(&person(1)).await.expect("seed primary");
        // The replica lags: it has not seen the write yet.
        assert!(f.get(&1).await.expect("replica read").is_none());
        let back = persistence_core::layer::read_back(f.get(&1))
            .await
            .expect("read-back");
        assert!(back.is_some(), "read back from the primary");
        assert_eq!(replica.count(&Filter::all()).await.expect("n"), 0);
    }

    #[tokio::test]
    async fn traffic_follows_the_checker() {
        let (f, [primary, replica, backup], t) = setup(true);
        primary.insert(&person(1)).await.expect("seed");
        down(&t, 1);
        assert!(
            f.get(&1).await.expect("primary read").is_some(),
            "replica down: reads on the primary"
        );
        down(&t, 0);
        f.insert(&person(2)).await.expect("backup write");
        assert!(backup.get(&2).await.expect("on backup").is_some());
        assert!(f.get(&2).await.expect("read on backup").is_some());
        t.record(0, None, Ok(()));
        t.record(1, None, Ok(()));
        f.insert(&person(3)).await.expect("primary write");
        assert!(primary.get(&3).await.expect("on primary").is_some());
        replica.insert(&person(9)).await.expect("seed replica");
        assert!(
            f.get(&9).await.expect("replica read").is_some(),
            "reads back on the replica"
        );
        let e = t.endpoints();
        assert_eq!(e[0].up, Some(true));
        assert!(e[0].since.is_none() && e[0].error.is_none());
    }

    #[tokio::test]
    async fn a_failing_replica_read_is_repeated_on_the_primary_and_marks_it_down() {
        let primary = MemoryRepository::<Person>::new();
        primary.insert(&person(1)).await.expect("seed");
        let topology = Arc::new(Topology::new(
            "main",
            &["r".to_string()],
            "p".to_string(),
            None,
            FailoverSettings::default(),
        ));
        let f = FailoverRepository::new(
            vec![
                Arc::new(primary) as SharedRepository<Person>,
                Arc::new(MemoryRepository::<Person>::new().layer(Down)),
            ],
            topology.clone(),
        )
        .expect("aligned");
        assert!(f.get(&1).await.expect("served by primary").is_some());
        let e = topology.endpoints();
        assert_eq!(e[1].up, Some(false));
        assert!(e[1].since.is_some());
        assert!(e[1].error.as_deref().is_some_and(|m| m.contains("refused")));
        assert!(f.get(&1).await.expect("again").is_some());
        assert_eq!(
            topology.endpoints()[1].calls,
            1,
            "no second try on a down replica"
        );
    }

    #[tokio::test]
    async fn reads_stay_on_the_primary_when_replica_reads_are_off() {
        let (f, [primary, _replica, _backup], t) = setup(false);
        primary.insert(&person(1)).await.expect("seed");
        assert!(f.get(&1).await.expect("get").is_some());
        assert_eq!(t.endpoints()[1].calls, 0);
    }

    #[test]
    fn endpoints_must_match_the_topology() {
        let t = Arc::new(Topology::new(
            "main",
            &[],
            "p".to_string(),
            None,
            FailoverSettings::default(),
        ));
        let e = FailoverRepository::<Person>::new(Vec::new(), t).expect_err("empty");
        assert_eq!(*e.kind(), ErrorKind::Config);
    }
}
