//! Shared by the PostgreSQL conformance suites (`conformance_postgres`,
//! `conformance_postgres_search_path`, `conformance_pgvector`): the
//! backend over one store, and the ways to build it. Each case gets a fresh
//! schema, dropped with its tables afterwards, and the pool is closed.
#![allow(dead_code)]

use persistence_core::conformance::Backend;
use persistence_core::conformance::services::unique_suffix;
use persistence_core::{Capabilities, Entity};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

/// Pool size of every suite.
const POOL: u32 = 8;

/// A PostgreSQL backend: repositories of `store`, whose schema `cleanup`
/// drops before closing `pool` (the store `store` was derived from, or
/// `store` itself). `ANN`: whether the server answers `find_nearest` from
/// an approximate index (pgvector).
pub struct Pg<const ANN: bool> {
    pool: RelationalStore,
    store: RelationalStore,
}

impl<const ANN: bool> Pg<ANN> {
    /// Repositories of `store` (a store derived from `pool`, e.g. a tenant's).
    pub fn new(pool: RelationalStore, store: RelationalStore) -> Self {
        Pg { pool, store }
    }

    /// A store on `url` in a fresh schema `t_<unique suffix>`.
    pub async fn in_fresh_schema(url: String) -> Self {
        let store = connect(config(url).schema(fresh_name())).await;
        Pg::new(store.clone(), store)
    }

    /// The store the repositories come from.
    pub fn store(&self) -> &RelationalStore {
        &self.store
    }
}

/// `t_<unique suffix>`: a schema or tenant name no other case uses.
pub fn fresh_name() -> String {
    format!("t_{}", unique_suffix().to_ascii_lowercase())
}

/// The suites' configuration for `url` (no schema yet).
pub fn config(url: String) -> RelationalConfig {
    RelationalConfig::new(url).max_connections(POOL)
}

/// Connect, or fail the case saying why.
pub async fn connect(config: RelationalConfig) -> RelationalStore {
    match RelationalStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!("cannot connect to PostgreSQL: {e}"),
    }
}

impl<const ANN: bool> Backend for Pg<ANN> {
    type Repo<E: Entity> = RelationalRepository<E>;

    fn capabilities() -> Capabilities {
        let mut caps = Capabilities::full("postgres");
        caps.approximate_nearest = ANN;
        caps
    }

    async fn repo<E: Entity>(&self) -> RelationalRepository<E> {
        let repo = self.store.repository::<E>();
        if let Err(e) = persistence_core::Repository::ensure_schema(&repo).await {
            panic!("ensure_schema for {} failed: {e:?}", E::meta().name);
        }
        repo
    }

    async fn cleanup(&self) {
        if let Err(e) = self.store.drop_schema().await {
            eprintln!("dropping the test schema failed: {e}");
        }
        self.pool.close().await;
    }
}
