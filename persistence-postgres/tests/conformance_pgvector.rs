//! The conformance suite on a PostgreSQL with pgvector
//! (`VECTOR_DATABASE_URL`, see `scripts/services`): the same cases as
//! `conformance_postgres`, with vector fields stored in generated
//! `vector(n)` columns and `find_nearest` answered by their HNSW indexes.
//! Every case in its own schema, dropped afterwards. `harness = false`.
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Capabilities, Entity};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};

struct PgVector {
    store: RelationalStore,
}

impl Backend for PgVector {
    type Repo<E: Entity> = RelationalRepository<E>;

    fn capabilities() -> Capabilities {
        let mut caps = Capabilities::full("postgres");
        caps.approximate_nearest = true;
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
        self.store.close().await;
    }
}

async fn make(url: String) -> PgVector {
    let schema = format!("t_{}", unique_suffix().to_ascii_lowercase());
    let config = RelationalConfig::new(url).schema(schema).max_connections(8);
    match RelationalStore::connect(&config).await {
        Ok(store) => {
            assert!(
                store.vector_schema().is_some(),
                "the server of VECTOR_DATABASE_URL has no vector extension"
            );
            PgVector { store }
        }
        Err(e) => panic!("cannot connect to PostgreSQL with pgvector: {e}"),
    }
}

persistence_core::conformance_tests!(make, service = Service::PgVector);
