//! The core conformance suite over a cached SQLite repository at every cache level
//! (L1 only, L2 only, L1 + L2; L1 only when Redis is missing outside CI). Every case has its own
//! database file and key prefix, removed afterwards.
#[macro_use]
mod common;

use std::path::PathBuf;

use common::Levels;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::unique_suffix;
use persistence_core::{Capabilities, Entity, Repository};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

struct CachedSqlite {
    store: RelationalStore,
    path: PathBuf,
    layer: CacheLayer,
    url: Option<String>,
}

impl Backend for CachedSqlite {
    type Repo<E: Entity> = CachedRepository<E, RelationalRepository<E>>;

    fn capabilities() -> Capabilities {
        // SQLite stores NaN as NULL and drops the sign of -0.0 in REAL columns.
        let mut caps = Capabilities::full("sqlite");
        caps.non_finite_floats = false;
        caps.signed_zero = false;
        caps.row_locks = false;
        caps.unicode_case_folding = false;
        caps
    }

    async fn repo<E: Entity>(&self) -> Self::Repo<E> {
        let repo = self.layer.wrap(self.store.repository::<E>());
        if let Err(e) = repo.ensure_schema().await {
            panic!("ensure_schema for {} failed: {e:?}", E::meta().name);
        }
        repo
    }

    async fn cleanup(&self) {
        self.store.close().await;
        for ext in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.path.display()));
        }
        if let Some(url) = &self.url {
            common::delete_keys(url, self.layer.prefix()).await;
        }
    }
}

async fn make_at(levels: Levels) -> CachedSqlite {
    let path = std::env::temp_dir().join(format!("persistence-cache-conf-{}.db", unique_suffix()));
    let config =
        RelationalConfig::new(format!("sqlite://{}?mode=rwc", path.display())).max_connections(8);
    let store = match RelationalStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!("cannot open SQLite at {}: {e}", path.display()),
    };
    let prefix = common::prefix("csql");
    let url = if levels == Levels::L1 {
        None
    } else {
        common::redis_url()
    };
    let layer = common::layer(levels, &prefix)
        .or_else(|| common::layer(Levels::L1, &prefix))
        .expect("layer");
    CachedSqlite {
        store,
        path,
        layer,
        url,
    }
}

conformance_at_every_level!(make_at);
