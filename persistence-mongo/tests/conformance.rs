//! The conformance suite on MongoDB: each case in its own database
//! `conf_<unique_suffix>`, dropped afterwards (also when the case panics).
//! `harness = false`: the macro defines `main`.
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Capabilities, Entity, Repository, TimestampPrecision};
use persistence_mongo::{MongoConfig, MongoRepository, MongoStore};

struct Mongo {
    store: MongoStore,
}

impl Backend for Mongo {
    type Repo<E: Entity> = MongoRepository<E>;

    fn capabilities() -> Capabilities {
        // Transactions (and so atomic batches) depend on the server (replica
        // set or not); no case is skipped on them.
        let mut caps = Capabilities::full("mongo");
        caps.timestamp_precision = TimestampPrecision::Millis;
        // No row locks on MongoDB (see persistence_mongo::transaction).
        caps.row_locks = false;
        // Text search: the substring fallback (see persistence_mongo's text module).
        caps.native_text_search = false;
        caps
    }
    async fn repo<E: Entity>(&self) -> MongoRepository<E> {
        let repo = self.store.repository::<E>();
        if let Err(e) = repo.ensure_schema().await {
            panic!("ensure_schema for {}: {e}", E::meta().name);
        }
        repo
    }
    async fn cleanup(&self) {
        if let Err(e) = self.store.drop_database().await {
            eprintln!("dropping the test database failed: {e}");
        }
        // Stop the driver's workers before this case's runtime goes away.
        self.store.close().await;
    }
}

async fn make(url: String) -> Mongo {
    let config = MongoConfig::new(url, format!("conf_{}", unique_suffix()));
    match MongoStore::connect(&config).await {
        Ok(store) => Mongo { store },
        Err(e) => panic!("cannot connect to MongoDB: {e}"),
    }
}

persistence_core::conformance_tests!(make, service = Service::Mongo);
