//! The conformance suite on PostgreSQL through a tenant's store under
//! `TenantStatements::SearchPath`: bare table names, every call in a
//! transaction with `SET LOCAL search_path` to the tenant's schema (each
//! case its own tenant `t_<unique_suffix>`, dropped afterwards).
//! `harness = false`: the macro defines `main`.
use persistence_core::conformance::Backend;
use persistence_core::conformance::services::{Service, unique_suffix};
use persistence_core::{Capabilities, Entity};
use persistence_postgres::{
    RelationalConfig, RelationalRepository, RelationalStore, TenantId, TenantStatements, Tenants,
};

struct SearchPath {
    base: RelationalStore,
    store: RelationalStore,
}

impl Backend for SearchPath {
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
        self.base.close().await;
    }
}

async fn make(url: String) -> SearchPath {
    let tenant =
        TenantId::new(format!("t_{}", unique_suffix().to_ascii_lowercase())).expect("tenant id");
    let config = RelationalConfig::new(url)
        .max_connections(8)
        .tenant_statements(TenantStatements::SearchPath);
    let base = match RelationalStore::connect(&config).await {
        Ok(store) => store,
        Err(e) => panic!("cannot connect to PostgreSQL: {e}"),
    };
    let store = Tenants::new(&base).expect("tenants").store(&tenant);
    store.create_schema().await.expect("tenant schema");
    SearchPath { base, store }
}

persistence_core::conformance_tests!(make, service = Service::Postgres);
