//! `Persistence::repo` / `repo_in`: a repository of an entity on a built
//! database, with the failover router, the layers and the read-through cache
//! the configuration asks for; one per database and entity type.

use std::any::TypeId;
use std::sync::Arc;
use std::time::Duration;

use crate::Persistence;
use crate::config::{CachePolicy, SchemaMode};
use crate::database::{Backend, Database, raw_repo};
use crate::failover::FailoverRepository;
use persistence_cache::{CacheLayer, EntityTtl, L1Config};
use persistence_core::layer::{LayerExt, Metrics, Retry, Timeout, Tracing};
use persistence_core::{Entity, Error, Repository, Result, Severity, SharedRepository};

/// What `schema_mode` asks for the entity's table / collection (see
/// [`crate::config::keys::SCHEMA_MODE`]).
async fn prepare_schema<E: Entity>(
    raw: &SharedRepository<E>,
    database: &str,
    mode: SchemaMode,
) -> Result<()> {
    match mode {
        SchemaMode::Ensure => raw.ensure_schema().await,
        SchemaMode::Off => Ok(()),
        SchemaMode::Verify => {
            let report = raw.verify_schema().await?;
            for d in report
                .differences
                .iter()
                .filter(|d| d.severity != Severity::Error)
            {
                if d.severity == Severity::Warning {
                    tracing::warn!(database, entity = report.entity, difference = %d, "schema drift");
                } else {
                    tracing::info!(database, entity = report.entity, difference = %d, "schema drift");
                }
            }
            match report.into_error() {
                None => Ok(()),
                Some(e) => Err(Error::config(format!(
                    "database `{database}` ({}: verify): {}",
                    crate::config::keys::SCHEMA_MODE,
                    e.message()
                ))),
            }
        }
    }
}

impl Persistence {
    /// A repository of `E` in its database: where it was
    /// [placed](Self::place), else the default one (`main`).
    pub async fn repo<E: Entity>(&self) -> Result<SharedRepository<E>> {
        let name = self.home(E::meta())?;
        self.repo_in::<E>(&name).await
    }

    /// A repository of `E` in database `name`, layers applied, its table /
    /// collection ensured or verified first as the database's `schema_mode`
    /// says (default `ensure`; with `verify`, a drifted table is a `Config`
    /// error listing every difference, one per line, and no repository).
    ///
    /// A `belongs_to` of `E` whose target lives in another database (see
    /// [`place`](Self::place)) is a cross-store relation: not enforced by
    /// this store (no foreign key, no parent check), and refused with a
    /// `Config` error unless it is `on_delete = restrict`; so is a
    /// `has_many` / `has_one` of `E` whose child lives elsewhere with a
    /// `cascade` or `set_null`. See the README's "Relations across stores".
    pub async fn repo_in<E: Entity>(&self, name: &str) -> Result<SharedRepository<E>> {
        let key = (name.to_string(), TypeId::of::<E>());
        let mut repos = self.repos.lock().await;
        if let Some(r) = repos
            .get(&key)
            .and_then(|b| b.downcast_ref::<SharedRepository<E>>())
        {
            return Ok(r.clone());
        }
        let db = self.database(name)?.clone();
        let cross = self.cross_store::<E>(name)?;
        let backend = self.backend(&db).await?;
        let primary = raw_repo::<E>(backend, name, &cross)?;
        let raw: SharedRepository<E> = match db.failover(backend).await? {
            None => primary,
            Some(fo) => {
                let mut endpoints = vec![primary];
                for b in &fo.others {
                    endpoints.push(raw_repo::<E>(b, name, &cross)?);
                }
                Arc::new(FailoverRepository::new(endpoints, fo.topology.clone())?)
            }
        };
        prepare_schema(&raw, name, db.config.schema_mode).await?;
        let repo = self.decorate(raw, &db, backend, name, None).await?;
        repos.insert(key, Box::new(repo.clone()));
        Ok(repo)
    }

    /// `raw` with the database's layers and, per the entity's cache policy,
    /// the read-through cache. With `scope` (a tenant's repository in its
    /// own schema or database) the cache keys live under
    /// `{prefix}.{cache_scope}` and the cache is not listed in the cache status
    /// (one per tenant would flood it).
    pub(super) async fn decorate<E: Entity>(
        &self,
        raw: SharedRepository<E>,
        db: &Database,
        backend: &Backend,
        name: &str,
        cache_scope: Option<&str>,
    ) -> Result<SharedRepository<E>> {
        let layered = raw
            .layer(Timeout::new(
                db.config.timeout.unwrap_or(Duration::from_secs(30)),
            ))
            .layer(Retry::from_config(db.config.retry.as_ref()))
            .layer(db.breaker.clone())
            .layer(self.metrics_layer(db, backend))
            .layer(Tracing::new(
                db.config.kind.db_system(),
                db.config
                    .schema
                    .as_deref()
                    .or(db.config.database.as_deref())
                    .unwrap_or(name),
            ));
        let policy = self.config.cache_policy(E::meta().name).clone();
        let repo: SharedRepository<E> = if policy.disabled {
            Arc::new(layered)
        } else {
            // The prefix names the database *and* its schema / Mongo database, so two
            // deployments (or tests) sharing one Redis never read each other's entries.
            let scope = db
                .config
                .schema
                .as_deref()
                .or(db.config.database.as_deref())
                .unwrap_or("default");
            if let Some(l2) = &policy.l2 {
                // Built (no connection yet) so that `health()` pings it.
                self.backend(self.database(l2)?).await?;
            }
            let prefix = format!("persistence.{name}.{scope}");
            let layer = self.cache_layer(name, &prefix, policy.l2.as_deref(), &policy)?;
            let defaults = layer.default_ttl();
            let ttl = EntityTtl {
                ttl: policy.ttl.unwrap_or(defaults.ttl),
                negative_ttl: policy.negative_ttl.unwrap_or(defaults.negative_ttl),
                l1_ttl: policy.l1_ttl.or(defaults.l1_ttl),
                l2_ttl: policy.l2_ttl.or(defaults.l2_ttl),
            };
            ttl.validate().map_err(|e| {
                Error::config(format!(
                    "cache policy of {}: {}",
                    E::meta().name,
                    e.message()
                ))
            })?;
            let read = policy.read_policy();
            let through = policy.write_through.unwrap_or(true);
            let wrapped = match cache_scope {
                None => layer.wrap(layered),
                Some(cache_scope) => {
                    let cached = layer.wrap_scoped(cache_scope, layered)?;
                    let cached = cached.with_ttl(ttl).with_read_policy(read)?;
                    return Ok(Arc::new(cached.with_write_through(through)));
                }
            };
            let cached = wrapped
                .with_ttl(ttl)
                .with_read_policy(read)
                .map_err(|e| {
                    Error::config(format!(
                        "cache policy of {}: {}",
                        E::meta().name,
                        e.message()
                    ))
                })?
                .with_write_through(through);
            let handle = cached.clone();
            if let Ok(mut stats) = self.cache_stats.lock() {
                stats.insert(
                    (name.to_string(), E::meta().name),
                    Arc::new(move || handle.stats()),
                );
            }
            if let Ok(mut ttls) = self.cache_ttls.lock() {
                let layer_key = (
                    name.to_string(),
                    policy.l2.clone(),
                    self.config.cache.backplane_for(&policy),
                );
                ttls.insert((name.to_string(), E::meta().name), (layer_key, ttl, read));
            }
            Arc::new(cached)
        };
        Ok(repo)
    }

    /// The cache layer of database `name` with L2 `l2` and the policy's
    /// backplane setting: one per combination, shared by every entity type
    /// (one Redis pool, one backplane subscription and heartbeat).
    fn cache_layer(
        &self,
        name: &str,
        prefix: &str,
        l2: Option<&str>,
        policy: &CachePolicy,
    ) -> Result<CacheLayer> {
        let c = &self.config.cache;
        let backplane = c.backplane_for(policy);
        let key = (name.to_string(), l2.map(str::to_string), backplane);
        let mut layers = self
            .cache_layers
            .lock()
            .map_err(|_| Error::backend("cache layer registry lock poisoned"))?;
        if let Some(layer) = layers.get(&key) {
            return Ok(layer.clone());
        }
        let l1 = |bytes: Option<u64>| L1Config {
            max_bytes: bytes,
            ..L1Config::default()
        };
        let mut b = CacheLayer::builder()
            .prefix(prefix)
            .db_label(name)
            .l1(l1(c.default.l1_max_bytes));
        for (entity, p) in &c.entities {
            if p.l1_max_bytes != c.default.l1_max_bytes {
                b = b.entity_l1(entity, l1(p.l1_max_bytes));
            }
        }
        // Without the `redis` feature no L2 passes config validation.
        #[cfg(not(feature = "redis"))]
        let _ = (l2, backplane, c);
        #[cfg(feature = "redis")]
        if let Some(l2) = l2 {
            let db = self.database(l2)?;
            if db.config.url.is_some() || !db.config.cluster.is_empty() {
                let url = db.config.url.as_ref().map_or("", |u| u.expose());
                let endpoint = crate::database::redis_endpoint(l2, &db.config, url)?;
                b = b.redis_endpoint(endpoint).backplane(backplane);
            }
        }
        #[cfg(feature = "redis")]
        {
            if let Some(t) = c.heartbeat {
                b = b.heartbeat(t);
            }
            if let Some(t) = c.heartbeat_timeout {
                b = b.heartbeat_timeout(t);
            }
            if let Some(t) = c.degraded_ttl {
                b = b.backplane_degraded_ttl(t);
            }
            if let Some(n) = c.max_queued_invalidations {
                b = b.max_queued_invalidations(n);
            }
        }
        let layer = b.build()?;
        layers.insert(key, layer.clone());
        Ok(layer)
    }

    /// The `Metrics` layer of a database: slow threshold from the config, pool
    /// probe for relational pools, leak detection for databases with connections.
    /// The metrics layer of `db`; also given to its store, which records
    /// raw statements (`query_as`, `execute`, `find_raw`, `aggregate_raw`) with it.
    pub(super) fn metrics_layer(&self, db: &Database, backend: &Backend) -> Metrics {
        #[cfg_attr(not(any(relational, feature = "mongo")), allow(unused_mut))]
        let mut m = Metrics::new(&db.name).slow_threshold(self.config.metrics.slow_threshold);
        match backend {
            #[cfg(relational)]
            Backend::Relational(store) => {
                m = m
                    .pool_probe(db.probe.clone())
                    .leak_detector(db.leaks.clone());
                // Raw SQL (`query_as`, `execute`) is recorded by the store itself.
                store.set_metrics(m.clone());
            }
            #[cfg(feature = "mongo")]
            Backend::Mongo(store) => {
                m = m.leak_detector(db.leaks.clone());
                // So are `find_raw` and `aggregate_raw`.
                store.set_metrics(m.clone());
            }
            _ => {}
        }
        m
    }
}

/// Related rows for eager loading come from the manager's repositories: each
/// entity's own database (where it was [placed](Persistence::place), else
/// `main`), with its layers and cache, so a relation across stores loads
/// with one batched query per level on each store (see
/// [`persistence_core::relation`]).
impl persistence_core::relation::Resolve for Persistence {
    async fn repository<T: Entity>(&self) -> Result<SharedRepository<T>> {
        self.repo::<T>().await
    }
}
