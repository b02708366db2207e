//! The core conformance suite over a cached PostgreSQL repository at every cache level
//! (L1 only, L2 only, L1 + L2; L1 only when Redis is missing outside CI). Every case has its own schema
//! and key prefix, dropped afterwards; skipped (failing under CI) without PostgreSQL.
#[macro_use]
mod common;

use common::Levels;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Capabilities, Entity, Repository};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

struct CachedPostgres {
    store: RelationalStore,
    layer: CacheLayer,
    url: Option<String>,
}

impl Backend for CachedPostgres {
    type Repo<E: Entity> = CachedRepository<E, RelationalRepository<E>>;

    fn capabilities() -> Capabilities {
        Capabilities::full("postgres")
    }

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

async fn make_at(db_url: String, levels: Levels) -> CachedPostgres {
    let schema = format!("t_{}", unique_suffix().to_ascii_lowercase());
    let config = RelationalConfig::new(db_url)
        .schema(schema)
        .max_connections(8);
    let store = match RelationalStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!("cannot connect to PostgreSQL: {e}"),
    };
    let prefix = common::prefix("cpg");
    let layer = common::layer(levels, &prefix)
        .or_else(|| common::layer(Levels::L1, &prefix))
        .expect("layer");
    CachedPostgres {
        store,
        layer,
        url: if levels == Levels::L1 {
            None
        } else {
            common::redis_url()
        },
    }
}

conformance_at_every_level!(make_at, service = Service::Postgres);
