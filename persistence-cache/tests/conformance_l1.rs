//! The core conformance suite over a cached MemoryRepository (L1).
mod common;

use common::Levels;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::conformance::Backend;
use persistence_core::{Entity, MemoryRepository};

struct Cached {
    layer: CacheLayer,
    url: Option<String>,
}

impl Backend for Cached {
    type Repo<E: Entity> = CachedRepository<E, MemoryRepository<E>>;
    async fn repo<E: Entity>(&self) -> Self::Repo<E> {
        self.layer.wrap(MemoryRepository::new())
    }
    async fn cleanup(&self) {
        if let Some(url) = &self.url {
            common::delete_keys(url, self.layer.prefix()).await;
        }
    }
}

async fn make() -> Cached {
    let levels = Levels::L1;
    let prefix = common::prefix("conf");
    let url = if levels == Levels::L1 {
        None
    } else {
        common::redis_url()
    };
    let layer = match common::layer(levels, &prefix) {
        Some(l) => l,
        // Redis missing outside CI (SKIPPED was printed): run over L1 only.
        None => common::layer(Levels::L1, &prefix).expect("l1 layer"),
    };
    Cached { layer, url }
}

persistence_core::conformance_tests!(make);
