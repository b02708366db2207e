//! The core conformance suite over a cached PostgreSQL repository (L1 + L2;
//! L1 only when Redis is missing outside CI). Every case has its own schema
//! and key prefix, dropped afterwards; skipped (failing under CI) without PostgreSQL.
mod common;

use common::Levels;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Entity, Repository};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

struct CachedPostgres {
    store: RelationalStore,
    layer: CacheLayer,
    url: Option<String>,
}

impl Backend for CachedPostgres {
    type Repo<E: Entity> = CachedRepository<E, RelationalRepository<E>>;

    async fn repo<E: Entity>(&self) -> Self::Repo<E> {
        let repo = self.layer.wrap(self.store.repository::<E>());
        if let Err(e) = repo.ensure_schema().await {
            panic!("ensure_schema for {} failed: {e:?}", E::meta().name);
        }
        repo
    }

    async fn cleanup(&self) {
        if let Err(e) = self.store.drop_schema().await {
            eprintln!("dropping the test schema failed: {e}");
        }
        self.store.close().await;
        if let Some(url) = &self.url {
            common::delete_keys(url, self.layer.prefix()).await;
        }
    }
}

async fn make(db_url: String) -> CachedPostgres {
    let schema = format!("t_{}", unique_suffix().to_ascii_lowercase());
    let config = RelationalConfig::new(db_url)
        .schema(schema)
        .max_connections(8);
    let store = match RelationalStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!("cannot connect to PostgreSQL: {e}"),
    };
    let prefix = common::prefix("cpg");
    let layer = common::layer(Levels::Both, &prefix)
        .or_else(|| common::layer(Levels::L1, &prefix))
        .expect("layer");
    CachedPostgres {
        store,
        layer,
        url: common::redis_url(),
    }
}

persistence_core::conformance_tests!(make, service = Service::Postgres);
