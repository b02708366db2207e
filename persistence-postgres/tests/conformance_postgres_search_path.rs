//! The conformance suite on PostgreSQL through a tenant's store under
//! `TenantStatements::SearchPath`: bare table names, every call in a
//! transaction with `SET LOCAL search_path` to the tenant's schema (each
//! case its own tenant `t_<unique_suffix>`, dropped afterwards).
//! `harness = false`: the macro defines `main`.
#[path = "support/pg_conformance.rs"]
mod support;

use persistence_core::conformance::services::Service;
use persistence_postgres::{TenantId, TenantStatements, Tenants};
use support::Pg;

async fn make(url: String) -> Pg<false> {
    let tenant = TenantId::new(support::fresh_name()).expect("tenant id");
    let base =
        support::connect(support::config(url).tenant_statements(TenantStatements::SearchPath))
            .await;
    let store = Tenants::new(&base).expect("tenants").store(&tenant);
    store.create_schema().await.expect("tenant schema");
    Pg::new(base, store)
}

persistence_core::conformance_tests!(make, service = Service::Postgres);
