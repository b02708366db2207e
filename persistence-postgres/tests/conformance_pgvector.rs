//! The conformance suite on a PostgreSQL with pgvector
//! (`VECTOR_DATABASE_URL`, see `scripts/services`): the same cases as
//! `conformance_postgres`, with vector fields stored in generated
//! `vector(n)` columns and `find_nearest` answered by their HNSW indexes.
//! Every case in its own schema, dropped afterwards. `harness = false`.
#[path = "support/pg_conformance.rs"]
mod support;

use persistence_core::conformance::services::Service;
use support::Pg;

async fn make(url: String) -> Pg<true> {
    let pg = Pg::in_fresh_schema(url).await;
    assert!(
        pg.store().vector_schema().is_some(),
        "the server of VECTOR_DATABASE_URL has no vector extension"
    );
    pg
}

persistence_core::conformance_tests!(make, service = Service::PgVector);
