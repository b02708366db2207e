//! The conformance suite on PostgreSQL: every case in its own schema
//! `t_<unique_suffix>`, dropped with CASCADE afterwards (also on failure).
//! `harness = false`: the macro defines `main`.
#[path = "support/pg_conformance.rs"]
mod support;

use persistence_core::conformance::services::Service;
use support::Pg;

async fn make(url: String) -> Pg<false> {
    Pg::in_fresh_schema(url).await
}

persistence_core::conformance_tests!(make, service = Service::Postgres);
