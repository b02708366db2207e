//! Open pools of the registry: a [`Pool`] (relational store or MongoDB
//! client), the [`PoolHandle`] lease that keeps it from being closed by the
//! cap, its usage clock, and connecting a definition.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use persistence_core::layer::{Around, BoxFuture, Call, LayerExt, Op};
use persistence_core::{Entity, Error, Result, SharedRepository};
#[cfg(feature = "mongo")]
use persistence_mongo::{MongoConfig, MongoStore};
use persistence_postgres::{Dialect, RelationalStore};

use crate::config::DatabaseKind;
use crate::registry::definition::ConnectionDefinition;

/// How long [`Pool::settle`] waits at most for a new pool's connections to come back.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// An open pool. `Debug` shows the dialect and schema or database name only.
#[derive(Clone)]
pub enum Pool {
    /// PostgreSQL or SQLite.
    Relational(RelationalStore),
    /// MongoDB.
    #[cfg(feature = "mongo")]
    Mongo(MongoStore),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pool::Relational(store) => f.debug_tuple("Relational").field(store).finish(),
            #[cfg(feature = "mongo")]
            Pool::Mongo(store) => f
                .debug_struct("Mongo")
                .field("database", &store.database().name())
                .finish(),
        }
    }
}

impl Pool {
    pub(super) async fn close(&self) {
        match self {
            Pool::Relational(store) => store.close().await,
            #[cfg(feature = "mongo")]
            Pool::Mongo(store) => store.client().clone().shutdown().immediate(true).await,
        }
    }

    /// Wait (bounded) until the connections that opening the pool used are
    /// back in it. sqlx returns a dropped connection from a spawned task, so
    /// right after `connect` a pool nobody holds can still count one in use,
    /// and the LRU cap would take the new, unused pool for a busy one.
    pub(super) async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        while self.connections_in_use() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn connections_in_use(&self) -> usize {
        match self {
            Pool::Relational(store) => match store.dialect() {
                #[cfg(feature = "postgres")]
                Dialect::Postgres => {
                    let p = store.connection().get_postgres_connection_pool();
                    (p.size() as usize).saturating_sub(p.num_idle())
                }
                #[cfg(feature = "sqlite")]
                Dialect::Sqlite => {
                    let p = store.connection().get_sqlite_connection_pool();
                    (p.size() as usize).saturating_sub(p.num_idle())
                }
                #[allow(unreachable_patterns)]
                _ => 0,
            },
            #[cfg(feature = "mongo")]
            Pool::Mongo(_) => 0,
        }
    }
}

/// Per-pool usage, shared by every handle: the handles' count is the lease
/// count; `last_used` is a tick of the registry's clock.
#[derive(Debug)]
pub(super) struct Usage {
    pub(super) last_used: AtomicU64,
    pub(super) clock: Arc<AtomicU64>,
}

impl Usage {
    pub(super) fn touch(&self) {
        let t = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        self.last_used.store(t, Ordering::Relaxed);
    }
}

/// A lease on an open pool: while it (or a repository made from it) lives,
/// the pool is not idle and the LRU cap does not close it.
#[derive(Clone, Debug)]
pub struct PoolHandle {
    pub(super) name: String,
    pub(super) pool: Pool,
    pub(super) usage: Arc<Usage>,
}

impl PoolHandle {
    /// The connection name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The relational store, if this is a PostgreSQL or SQLite connection.
    pub fn relational(&self) -> Option<&RelationalStore> {
        match &self.pool {
            Pool::Relational(s) => Some(s),
            #[cfg(feature = "mongo")]
            Pool::Mongo(_) => None,
        }
    }

    /// The MongoDB store, if this is a MongoDB connection.
    #[cfg(feature = "mongo")]
    pub fn mongo(&self) -> Option<&MongoStore> {
        match &self.pool {
            Pool::Mongo(s) => Some(s),
            Pool::Relational(_) => None,
        }
    }

    /// A repository of `E` on this pool (schema not ensured). It holds the
    /// lease and counts as a use of the pool on every call.
    pub fn repository<E: Entity>(&self) -> SharedRepository<E> {
        let lease = Lease(self.usage.clone());
        match &self.pool {
            Pool::Relational(s) => Arc::new(s.repository::<E>().layer(lease)),
            #[cfg(feature = "mongo")]
            Pool::Mongo(s) => Arc::new(s.repository::<E>().layer(lease)),
        }
    }
}

/// The hook that keeps a pool leased and marks it used.
#[derive(Debug, Clone)]
struct Lease(Arc<Usage>);

impl Around for Lease {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        self.0.touch();
        call()
    }
}

/// A pool the registry keeps open.
pub(super) struct OpenPool {
    pub(super) pool: Pool,
    /// The definition it was opened with.
    pub(super) def: ConnectionDefinition,
    pub(super) usage: Arc<Usage>,
}

impl OpenPool {
    pub(super) fn is_idle(&self) -> bool {
        Arc::strong_count(&self.usage) == 1 && self.pool.connections_in_use() == 0
    }
}

/// Open the pool of `def` (connects now).
pub(super) async fn connect(def: &ConnectionDefinition) -> Result<Pool> {
    let in_context = |e: Error| {
        Error::new(
            e.kind().clone(),
            format!("registry connection `{}`: {}", def.name, e.message()),
        )
    };
    def.kind.check_compiled(&def.name)?;
    match def.kind {
        DatabaseKind::Postgres | DatabaseKind::Sqlite => {
            let rc = crate::database::relational_config(
                def.url.expose().to_string(),
                def.schema.clone(),
                &def.pool,
            );
            Ok(Pool::Relational(
                RelationalStore::connect(&rc).await.map_err(in_context)?,
            ))
        }
        #[cfg(feature = "mongo")]
        DatabaseKind::Mongo => {
            let database = def.database.clone().unwrap_or_else(|| def.name.clone());
            let store = MongoStore::connect(&MongoConfig::new(def.url.expose(), database))
                .await
                .map_err(in_context)?;
            Ok(Pool::Mongo(store))
        }
        other => Err(Error::config(format!(
            "registry connection `{}`: kind {} is not supported",
            def.name,
            other.name()
        ))),
    }
}
