//! The conformance suite on MongoDB: each case in its own database
//! `conf_<unique_suffix>`, dropped afterwards (also when the case panics).
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix, url};
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
            eprintln!("dropping the test database failed: {e}");
        }
    }
}

async fn make(url: String) -> Mongo {
    let config = MongoConfig::new(url, format!("conf_{}", unique_suffix()));
    match MongoStore::connect(&config).await {
        Ok(store) => Mongo { store },
        Err(e) => panic!("cannot connect to MongoDB: {e}"),
    }
}

/// Like `conformance_tests!`, but each test first locates MongoDB (a SKIPPED
/// line when it is missing, a failure under CI=true).
macro_rules! mongo_cases {
    (; $($case:ident),* $(,)?) => {
        mod conformance {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let Some(url) = url(Service::Mongo) else { return };
                    persistence_core::conformance::run(
                        move || make(url),
                        |b| Box::pin(persistence_core::conformance::cases::$case(b)),
                    );
                }
            )*
        }
    };
}

persistence_core::__conformance_cases!(mongo_cases;);
