//! [`FailoverRepository`]: forwards every [`Repository`] method to one
//! endpoint of a [`Topology`] (see the `failover` module docs for the rules).

use std::sync::Arc;

use crate::failover::Topology;
use persistence_core::{
    BoxStream, Capabilities, Cursor, Entity, Error, ErrorKind, Filter, GroupBy, Guard,
    NearestQuery, Page, Query, Repository, Result, SharedRepository, Update, Value,
};

fn infrastructure(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
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
        if endpoints.is_empty() || endpoints.len() != topology.endpoint_count() {
            return Err(Error::config(format!(
                "database `{}`: {} endpoint repositories for {} endpoints",
                topology.database(),
                endpoints.len(),
                topology.endpoint_count()
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
                    tracing::warn!(database = %self.topology.database(), endpoint = %i, error = %e,
                        "ensure_schema on a standby endpoint failed; it will be retried on next start");
                }
            }
        }
        Ok(())
    }
    /// On the write target (the endpoint `ensure_schema` must have set up);
    /// replicas and a standby backup are not checked.
    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        let w = self.topology.write_target();
        self.endpoints
            .get(w)
            .unwrap_or(&self.endpoints[0])
            .verify_schema()
            .await
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
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        write_call!(self, |r| r.purge(filter))
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        read_call!(self, |r| r.find(query))
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        read_call!(self, |r| r.find_unordered(query))
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
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        write_call!(self, |r| r.patch(id, update, guard))
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        write_call!(self, |r| r.update_where(filter, update))
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        write_call!(self, |r| r.find_one_and_delete(query))
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        read_call!(self, |r| r.select(query, fields))
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        read_call!(self, |r| r.distinct(field, filter))
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        read_call!(self, |r| r.aggregate(filter, group))
    }
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        read_call!(self, |r| r.find_nearest(query))
    }
    async fn find_text(&self, query: &persistence_core::TextQuery) -> Result<Vec<(E, f64)>> {
        read_call!(self, |r| r.find_text(query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailoverSettings;
    use persistence_core::conformance::entities::{Person, person};
    use persistence_core::layer::BoxFuture;
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
