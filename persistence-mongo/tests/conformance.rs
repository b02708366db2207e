//! The conformance suite on MongoDB: each case in its own database, dropped afterwards.
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{self, Service};
use persistence_core::{Entity, Repository};
use persistence_mongo::{MongoConfig, MongoRepository, MongoStore};

struct Mongo {
    store: MongoStore,
}

impl Backend for Mongo {
    type Repo<E: Entity> = MongoRepository<E>;
    async fn repo<E: Entity>(&self) -> MongoRepository<E> {
        let repo = self.store.repository::<E>();
        if let Err(e) = repo.ensure_schema().await {
            panic!("ensure_schema for {}: {e}", E::meta().name);
        }
        repo
    }
    async fn cleanup(&self) {
        if let Err(e) = self.store.drop_database().await {
            eprintln!("cleanup: {e}");
        }
    }
}

async fn make() -> Mongo {
    // Without a server (and without CI=true) the cases fail fast with
    // `Unavailable` after a short server selection timeout: the suite
    // macro has no skip hook, so `services::url` only decides the URL here.
    let url =
        services::url(Service::Mongo).unwrap_or_else(|| Service::Mongo.default_url().to_string());
    let db = format!("conf_{}", services::unique_suffix());
    let config = MongoConfig::new(url, db);
    let store = MongoStore::connect(&config)
        .await
        .expect("connect to MongoDB");
    Mongo { store }
}

persistence_core::conformance_tests!(make);
