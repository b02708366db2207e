//! [`RelationalStore`]: a database (PostgreSQL or SQLite) reached through
//! a sea-orm connection pool, plus the schema its tables live in. The
//! repositories ([`RelationalStore::repository`]) and units of work
//! ([`RelationalStore::transaction`]) are made in `repository.rs` and
//! `transaction.rs`; how statements reach the driver is in `store/conn.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use persistence_core::{Error, Result};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::config::{RelationalConfig, validate_schema_name};
use crate::error::map_db_err;
use crate::query::Dialect;

pub(crate) mod conn;

/// sqlx's pool size when `max_connections` is not set.
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// FNV-1a of `schema`: the same in every process.
fn fnv1a(schema: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The group of `schema` among `n`.
fn shard_of(schema: &str, n: usize) -> usize {
    (fnv1a(schema) % n as u64) as usize
}

/// Slots counting the calls in flight per tenant (`TenantRouting::Spill`),
/// a tenant's slot chosen by its hash: tenants sharing a slot add up,
/// which at worst lets them leave their group a little early.
const TENANT_SLOTS: usize = 4096;

/// Tenant-affine groups (`RelationalConfig::tenant_shards`) and, for
/// `TenantRouting::Spill`, the calls in flight on each group and of each
/// tenant (repository calls of `Spill` tenant stores, waiting for a
/// connection or running, counted by [`Routed`]).
#[derive(Default)]
struct Groups {
    /// The groups' pools (the first is the store's own pool).
    pools: Vec<DatabaseConnection>,
    /// Calls in flight per group.
    loads: Vec<AtomicUsize>,
    /// Calls in flight per tenant slot (`TENANT_SLOTS`).
    tenants: Vec<AtomicUsize>,
    /// Connections per group.
    per_group: usize,
}

impl Groups {
    /// `TenantRouting::Spill`: the tenant's `home` group while the tenant
    /// (slot `tenant`) has at most as many calls in flight as a group has
    /// connections; beyond that the group with the fewest calls in flight
    /// (`home` on a tie). Load spread over many tenants thus stays home,
    /// and only a tenant that alone fills its group, a single or a hot
    /// one, spreads over the others.
    fn route(&self, home: usize, tenant: usize) -> usize {
        if self.tenants[tenant].load(Ordering::Relaxed) <= self.per_group {
            return home;
        }
        let mut best = (self.loads[home].load(Ordering::Relaxed), home);
        for (g, load) in self.loads.iter().enumerate() {
            let l = load.load(Ordering::Relaxed);
            if l < best.0 {
                best = (l, g);
            }
        }
        best.1
    }
}

/// The pool a repository call runs on; for a `Spill` tenant store it
/// counts as in flight on its group until dropped.
pub(crate) struct Routed<'a> {
    db: &'a DatabaseConnection,
    /// The group's and the tenant's counters.
    load: Option<(&'a AtomicUsize, &'a AtomicUsize)>,
}

impl std::ops::Deref for Routed<'_> {
    type Target = DatabaseConnection;
    fn deref(&self) -> &DatabaseConnection {
        self.db
    }
}

impl Drop for Routed<'_> {
    fn drop(&mut self) {
        if let Some((group, tenant)) = self.load {
            group.fetch_sub(1, Ordering::Relaxed);
            tenant.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

struct StoreInner {
    db: DatabaseConnection,
    dialect: Dialect,
    schema: Option<String>,
    /// Shared with stores derived by `with_schema`.
    leaks: Arc<std::sync::OnceLock<persistence_core::layer::LeakDetector>>,
    /// Records the raw calls (`query_as`, `execute`); shared like `leaks`.
    metrics: Arc<std::sync::OnceLock<persistence_core::layer::Metrics>>,
    /// What `ensure_schema` learned about tables' columns; shared like `leaks`.
    facts: Arc<crate::query::facts::FactsRegistry>,
    /// The schema of the pgvector `vector` extension (`None`: not
    /// installed), once looked up; shared like `leaks`. See [`crate::vector`].
    vector: Arc<std::sync::OnceLock<Option<String>>>,
    /// Tenant-affine connection groups (`RelationalConfig::tenant_shards`):
    /// empty, or the pools a schema of `with_schema` is routed to (the
    /// first is this store's own pool); shared like `leaks`.
    shards: Arc<Groups>,
    /// `RelationalConfig::tenant_routing`, handed to derived stores.
    routing: crate::TenantRouting,
    /// A tenant store under `TenantRouting::Spill`: its home group and
    /// its slot in `Groups::tenants` (see [`Groups::route`]).
    spill_from: Option<(usize, usize)>,
    /// `RelationalConfig::tenant_statements`, handed to derived stores.
    statements: crate::TenantStatements,
    /// A tenant store (`with_schema`) under `TenantStatements::SearchPath`:
    /// its repositories use bare table names in transactions that set
    /// `search_path` to `schema`.
    search_path: bool,
}

/// A database (PostgreSQL or SQLite) reached through a sea-orm connection
/// pool, plus the PostgreSQL schema its tables live in. Cheap to clone.
#[derive(Clone)]
pub struct RelationalStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for RelationalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationalStore")
            .field("dialect", &self.inner.dialect)
            .field("schema", &self.inner.schema)
            .finish()
    }
}

impl RelationalStore {
    /// Connect with `config` (the pool is created; the first connection is opened).
    pub async fn connect(config: &RelationalConfig) -> Result<RelationalStore> {
        config.validate()?;
        let groups = config.tenant_shards.unwrap_or(1).max(1);
        if groups == 1 {
            let db = Self::open(config).await?;
            let store = Self::from_connection(db, config.schema.clone())?;
            return Self::finish_connect(store, config).await;
        }
        // Tenant-affine groups: `max_connections` split between them; the
        // first is the store's own pool, the others open lazily.
        let per = (config.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS) / groups).max(1);
        let mut group = config.clone();
        group.max_connections = Some(per);
        group.min_connections = config.min_connections.map(|n| (n / groups).min(per));
        let first = Self::open(&group).await?;
        let mut shards = vec![first.clone()];
        group.connect_lazy = true;
        for _ in 1..groups {
            shards.push(Self::open(&group).await?);
        }
        let mut store = Self::from_connection(first, config.schema.clone())?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.shards = Arc::new(Groups {
                loads: shards.iter().map(|_| AtomicUsize::new(0)).collect(),
                tenants: (0..TENANT_SLOTS).map(|_| AtomicUsize::new(0)).collect(),
                pools: shards,
                per_group: per as usize,
            });
        }
        Self::finish_connect(store, config).await
    }

    /// One sea-orm pool for `config`, statements reported to the probe.
    async fn open(config: &RelationalConfig) -> Result<DatabaseConnection> {
        let mut db = sea_orm::Database::connect(config.connect_options())
            .await
            .map_err(|e| crate::error::map_connect_err(e, &config.url))?;
        // The SQL text only (placeholders, never the bound values) for the slow log.
        db.set_metric_callback(|info| {
            persistence_core::layer::probe::statement_executed(&info.statement.sql, info.elapsed)
        });
        Ok(db)
    }

    async fn finish_connect(
        mut store: RelationalStore,
        config: &RelationalConfig,
    ) -> Result<RelationalStore> {
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.statements = config.tenant_statements;
            inner.routing = config.tenant_routing;
        }
        // A lazy pool touches no server here: the lookup then happens at
        // the first `ensure_schema` / `find_nearest` of a vector entity.
        if !config.connect_lazy {
            store.vector_extension().await?;
        }
        Ok(store)
    }

    /// Wrap an existing sea-orm connection; tables go to `schema` (PostgreSQL only).
    pub fn from_connection(
        db: DatabaseConnection,
        schema: Option<String>,
    ) -> Result<RelationalStore> {
        let dialect = match db.get_database_backend() {
            DbBackend::Postgres => Dialect::Postgres,
            DbBackend::Sqlite => Dialect::Sqlite,
            other => {
                return Err(Error::config(format!(
                    "unsupported database backend {other:?}"
                )));
            }
        };
        if let Some(s) = &schema {
            validate_schema_name(s)?;
            if dialect == Dialect::Sqlite {
                return Err(Error::config("schemas are not supported on SQLite"));
            }
        }
        Ok(RelationalStore {
            inner: Arc::new(StoreInner {
                db,
                dialect,
                schema,
                leaks: Arc::default(),
                metrics: Arc::default(),
                facts: Arc::default(),
                vector: Arc::default(),
                shards: Arc::default(),
                routing: crate::TenantRouting::Home,
                spill_from: None,
                statements: crate::TenantStatements::Qualified,
                search_path: false,
            }),
        })
    }

    /// The same pool with tables in another (validated) PostgreSQL schema;
    /// with tenant-affine groups, the group `schema` hashes to.
    pub(crate) fn with_schema(&self, schema: &str) -> RelationalStore {
        let home = self.tenant_shard(schema);
        let db = match home {
            None => &self.inner.db,
            Some(i) => &self.inner.shards.pools[i],
        };
        let spill_from = home
            .filter(|_| self.inner.routing == crate::TenantRouting::Spill)
            .map(|h| (h, (fnv1a(schema) % TENANT_SLOTS as u64) as usize));
        RelationalStore {
            inner: Arc::new(StoreInner {
                db: db.clone(),
                dialect: self.inner.dialect,
                schema: Some(schema.to_string()),
                leaks: self.inner.leaks.clone(),
                metrics: self.inner.metrics.clone(),
                facts: self.inner.facts.clone(),
                vector: self.inner.vector.clone(),
                shards: self.inner.shards.clone(),
                routing: self.inner.routing,
                spill_from,
                statements: self.inner.statements,
                search_path: self.inner.statements == crate::TenantStatements::SearchPath,
            }),
        }
    }

    /// The schema this store's repositories reach through a transaction-local
    /// `search_path` (a tenant's store under `TenantStatements::SearchPath`),
    /// `None` when their statements name tables schema-qualified.
    pub(crate) fn search_path(&self) -> Option<&str> {
        if self.inner.search_path {
            self.inner.schema.as_deref()
        } else {
            None
        }
    }

    /// How tenant stores derived from this one name their tables.
    pub fn tenant_statements(&self) -> crate::TenantStatements {
        self.inner.statements
    }

    /// The index in [`tenant_shards`](RelationalStore::tenant_shards) of
    /// the group the stores of `schema` use (`None` without groups).
    pub fn tenant_shard(&self, schema: &str) -> Option<usize> {
        match self.inner.shards.pools.len() {
            0 => None,
            n => Some(shard_of(schema, n)),
        }
    }

    /// The tenant-affine connection groups (`RelationalConfig::tenant_shards`),
    /// empty without them; the first is the store's own pool.
    pub fn tenant_shards(&self) -> &[DatabaseConnection] {
        &self.inner.shards.pools
    }

    /// The schema of the pgvector `vector` extension when the store has
    /// looked it up and found it (`connect` does): vector fields then get
    /// generated `vector(n)` columns and ANN indexes (see the README, "Vectors").
    pub fn vector_schema(&self) -> Option<&str> {
        self.inner.vector.get().and_then(Option::as_deref)
    }

    /// Look up (once) where the pgvector extension is installed in this
    /// database: `Some(schema)` or `None` (not installed, or SQLite).
    pub(crate) async fn vector_extension(&self) -> Result<Option<&str>> {
        if self.inner.vector.get().is_none() {
            let found = match self.inner.dialect {
                Dialect::Postgres => crate::vector::lookup(&self.inner.db)
                    .await
                    .map_err(|e| map_db_err(e, &crate::error::ConstraintNames::default()))?,
                Dialect::Sqlite => None,
            };
            let _ = self.inner.vector.set(found);
        }
        Ok(self.vector_schema())
    }

    /// The sea-orm connection (pool). For a tenant's store under
    /// `TenantRouting::Spill`, the group a repository call made now would
    /// be routed to: its home group unless the tenant already has more
    /// calls in flight than a group has connections.
    pub fn connection(&self) -> &DatabaseConnection {
        match self.inner.spill_from {
            Some((home, tenant)) => &self.inner.shards.pools[self.inner.shards.route(home, tenant)],
            None => &self.inner.db,
        }
    }

    /// The pool for one repository call, counted in flight on its group
    /// until dropped (`TenantRouting::Spill`; otherwise `connection()`).
    pub(crate) fn routed(&self) -> Routed<'_> {
        match self.inner.spill_from {
            Some((home, tenant)) => {
                let groups = &*self.inner.shards;
                let g = groups.route(home, tenant);
                let (group, tenant) = (&groups.loads[g], &groups.tenants[tenant]);
                group.fetch_add(1, Ordering::Relaxed);
                tenant.fetch_add(1, Ordering::Relaxed);
                Routed {
                    db: &groups.pools[g],
                    load: Some((group, tenant)),
                }
            }
            None => Routed {
                db: &self.inner.db,
                load: None,
            },
        }
    }

    /// How tenant stores derived from this one choose among the groups.
    pub fn tenant_routing(&self) -> crate::TenantRouting {
        self.inner.routing
    }

    /// Report transactions of this store (and of stores derived from it)
    /// held open longer than the detector's threshold. Set once; later calls
    /// are ignored.
    pub fn set_leak_detector(&self, detector: persistence_core::layer::LeakDetector) {
        let _ = self.inner.leaks.set(detector);
    }

    /// Record the raw calls of this store's repositories
    /// ([`query_as`](crate::RelationalRepository::query_as),
    /// [`execute`](crate::RelationalRepository::execute), also in
    /// transactions) with `metrics`: counted and timed as operations
    /// `query_as` / `execute`, slow ones in the slow log with their SQL text.
    /// Repository methods are recorded by a `Metrics` layer around the
    /// repository instead (raw calls are not repository methods). Set once
    /// (later calls are ignored); shared with tenant stores derived from this one.
    pub fn set_metrics(&self, metrics: persistence_core::layer::Metrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    pub(crate) fn metrics(&self) -> Option<&persistence_core::layer::Metrics> {
        self.inner.metrics.get()
    }

    /// The shared facts of table `qualified` (see [`crate::query::facts`]).
    pub(crate) fn table_facts(&self, qualified: &str) -> Arc<crate::query::facts::TableFacts> {
        self.inner.facts.table(qualified)
    }

    pub(crate) fn leak_detector(&self) -> Option<&persistence_core::layer::LeakDetector> {
        self.inner.leaks.get()
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The PostgreSQL schema, if one is configured.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// Create the configured schema if it does not exist, marked as the
    /// library's (PostgreSQL; see [`crate::schema`]). Returns whether the
    /// schema is the library's (created now or earlier); an existing schema
    /// without the mark is left alone (`false`). `true` without a schema.
    pub async fn create_schema(&self) -> Result<bool> {
        match (self.schema(), self.dialect()) {
            (Some(s), Dialect::Postgres) => crate::schema::ensure_namespace(&self.inner.db, s)
                .await
                .map_err(|e| map_db_err(e, &Default::default()).with_operation("create_schema")),
            _ => Ok(true),
        }
    }

    /// Drop the configured schema and everything in it (PostgreSQL), only
    /// if the library created it (it carries the mark, see
    /// [`crate::schema`]): a schema made otherwise is refused with a
    /// `Config` error and left intact. A no-op without a schema (the
    /// default schema, e.g. `public`, is never dropped), on SQLite, or when
    /// the schema does not exist.
    pub async fn drop_schema(&self) -> Result<()> {
        if let (Some(s), Dialect::Postgres) = (self.schema(), self.dialect()) {
            crate::schema::drop_namespace(&self.inner.db, s)
                .await
                .map_err(|e| e.with_operation("drop_schema"))?;
        }
        Ok(())
    }

    /// Close the pool (shared by every clone of this store and by tenant
    /// stores derived from it).
    pub async fn close(&self) {
        match self.dialect() {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => {
                for db in self.inner.shards.pools.iter() {
                    db.get_postgres_connection_pool().close().await;
                }
                self.inner.db.get_postgres_connection_pool().close().await
            }
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => self.inner.db.get_sqlite_connection_pool().close().await,
            // A store of a dialect not compiled in cannot be connected.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn tenant_routing_is_stable_and_bounded() {
        // FNV-1a, not a per-process seeded hash: every process (and every
        // release) sends a tenant to the same group. Pinned values.
        assert_eq!(shard_of("acme", 8), 7);
        assert_eq!(shard_of("globex", 8), 6);
        assert_eq!(shard_of("t_0", 8), 4);
        assert_eq!(shard_of("acme", 1), 0);
        // Bounded: always a valid group, and 1,000 tenants spread over all
        // 8 groups without one taking more than twice its share.
        let mut per = [0usize; 8];
        for t in 0..1_000 {
            let g = shard_of(&format!("t_{t}"), 8);
            assert!(g < 8);
            assert_eq!(g, shard_of(&format!("t_{t}"), 8), "same answer twice");
            per[g] += 1;
        }
        assert!(per.iter().all(|&n| n > 0 && n <= 250), "{per:?}");
    }
}
