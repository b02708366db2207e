//! The core conformance suite over a cached MongoDB repository at every cache level
//! (L1 only, L2 only, L1 + L2; L1 only when Redis is missing outside CI). Every case has its own
//! database and key prefix, dropped afterwards; skipped (failing under CI)
//! without MongoDB.
#[macro_use]
mod common;

use common::Levels;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Capabilities, Entity, Repository, TimestampPrecision};
use persistence_mongo::{MongoConfig, MongoRepository, MongoStore};

struct CachedMongo {
    store: MongoStore,
    layer: CacheLayer,
    url: Option<String>,
}

impl Backend for CachedMongo {
    type Repo<E: Entity> = CachedRepository<E, MongoRepository<E>>;

    fn capabilities() -> Capabilities {
        // The cache reports what the repository under it does.
        // Transactions (and so atomic batches) depend on the server (replica
        // set or not); no case is skipped on them.
        let mut caps = Capabilities::full("mongo");
        caps.timestamp_precision = TimestampPrecision::Millis;
        caps.row_locks = false;
        // Text search: the substring fallback (see persistence_mongo's text module).
        caps.native_text_search = false;
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
        if let Err(e) = self.store.drop_database().await {
            eprintln!("dropping the test database failed: {e}");
        }
        if let Some(url) = &self.url {
            common::delete_keys(url, self.layer.prefix()).await;
        }
        // Stop the driver's workers before this case's runtime goes away.
        self.store.close().await;
    }
}

async fn make_at(mongo_url: String, levels: Levels) -> CachedMongo {
    let config = MongoConfig::new(mongo_url, format!("cmongo_{}", unique_suffix()));
    let store = match MongoStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!("cannot connect to MongoDB: {e}"),
    };
    let prefix = common::prefix("cmg");
    let layer = common::layer(levels, &prefix)
        .or_else(|| common::layer(Levels::L1, &prefix))
        .expect("layer");
    CachedMongo {
        store,
        layer,
        url: if levels == Levels::L1 {
            None
        } else {
            common::redis_url()
        },
    }
}

conformance_at_every_level!(make_at, service = Service::Mongo);
