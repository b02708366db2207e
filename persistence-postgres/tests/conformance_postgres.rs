//! The conformance suite on PostgreSQL: every case in its own schema
//! `t_<unique_suffix>`, dropped with CASCADE afterwards (also on failure).
//! `harness = false`: the macro defines `main`.
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Capabilities, Entity};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

struct Postgres {
    store: RelationalStore,
}

impl Backend for Postgres {
    type Repo<E: Entity> = RelationalRepository<E>;

    fn capabilities() -> Capabilities {
        Capabilities::full("postgres")
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
        self.store.close().await;
    }
}

async fn make(url: String) -> Postgres {
    let schema = format!("t_{}", unique_suffix().to_ascii_lowercase());
    let config = RelationalConfig::new(url).schema(schema).max_connections(8);
    match RelationalStore::connect(&config).await {
        Ok(store) => Postgres { store },
        Err(e) => panic!("cannot connect to PostgreSQL: {e}"),
    }
}

persistence_core::conformance_tests!(make, service = Service::Postgres);
