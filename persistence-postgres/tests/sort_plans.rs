//! The plans of the library's sorted finds (issue #19, item 1): on NOT NULL
//! columns the order is written without a nulls clause and a btree index
//! provides it (no `Sort` node; an `Incremental Sort` of the tie-breaker
//! within equal scores is what the hand-written SQL gets too), for the
//! custom and the generic plan; `LIMIT` is a bound parameter; a nullable
//! key keeps its nulls clause. The library's statement is read back from
//! `pg_prepared_statements` of its one connection, so what is explained is
//! exactly what it sent. Each test runs in a schema of its own.

use persistence_core::{Entity, Query, Repository};
use persistence_postgres::sea_orm::{ConnectionTrait as _, Statement, Value as SV};
use persistence_postgres::{RelationalRepository, RelationalStore};
use persistence_testing::TestPostgres;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "ranked", index(tier, score))]
struct Ranked {
    #[entity(id)]
    id: i64,
    tier: i32,
    score: f64,
    tag: Option<String>,
}

const ROWS: i64 = 100_000;

fn ranked(i: i64) -> Ranked {
    Ranked {
        id: i,
        tier: (i % 10) as i32,
        score: ((i * 7919) % 100_000) as f64 / 100.0,
        tag: (i % 3 == 0).then(|| format!("t{}", i % 7)),
    }
}

/// The example query of the issue: `tier = 3 AND 0 <= score < 1000 ORDER BY
/// score DESC, id LIMIT 1000` (~10,000 matches).
fn example() -> Query {
    Query::filter(
        Ranked::TIER
            .eq(3)
            .and(Ranked::SCORE.gte(0.0))
            .and(Ranked::SCORE.lt(1000.0)),
    )
    .sort(Ranked::SCORE.desc())
    .limit(1_000)
}

fn binds() -> Vec<SV> {
    vec![
        SV::Int(Some(3)),
        SV::Double(Some(0.0)),
        SV::Double(Some(1000.0)),
        SV::BigInt(Some(1_000)),
    ]
}

async fn text_rows(store: &RelationalStore, sql: &str, values: Vec<SV>) -> Vec<String> {
    let db = store.connection();
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        values,
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).expect("text column"))
    .collect()
}

/// The library's prepared statements (of its single connection) with `ORDER BY`.
async fn library_statements(store: &RelationalStore) -> Vec<String> {
    text_rows(
        store,
        "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%ORDER BY%' \
         AND statement NOT LIKE '%pg_prepared_statements%'",
        vec![],
    )
    .await
}

/// The plan nodes (`Limit`, `Sort`, `Index Scan Backward using ...`).
fn nodes(plan: &[String]) -> Vec<String> {
    plan.iter()
        .filter(|l| l.contains("(cost="))
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("->").unwrap_or(l).trim_start();
            l.split("  (cost=").next().unwrap_or(l).to_string()
        })
        .collect()
}

fn assert_index_order(plan: &[String], what: &str) {
    let nodes = nodes(plan);
    assert!(
        !nodes.iter().any(|n| n == "Sort"),
        "{what}: no Sort node (the index provides the order): {plan:#?}"
    );
    assert!(
        nodes
            .iter()
            .any(|n| n.starts_with("Index Scan") && n.contains("ix_ranked_tier_score")),
        "{what}: an index scan of (tier, score): {plan:#?}"
    );
}

/// A store of one connection in a fresh schema, the table loaded and analyzed.
async fn loaded() -> Option<(RelationalStore, RelationalRepository<Ranked>, TestPostgres)> {
    let pg = TestPostgres::schema().await?;
    let store = RelationalStore::connect(&pg.config().max_connections(1))
        .await
        .expect("connect");
    let repo = store.repository::<Ranked>();
    repo.ensure_schema().await.expect("schema");
    let rows: Vec<Ranked> = (0..ROWS).map(ranked).collect();
    repo.bulk_insert(&rows).await.expect("load");
    store
        .connection()
        .execute_unprepared(&format!("ANALYZE {}", repo.table_name()))
        .await
        .expect("analyze");
    Some((store, repo, pg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_provides_the_order_of_a_sorted_find() {
    let Some((store, repo, pg)) = loaded().await else {
        return;
    };
    let found = repo.find(&example()).await.expect("find");
    assert_eq!(found.len(), 1_000);
    let mut want: Vec<Ranked> = (0..ROWS)
        .map(ranked)
        .filter(|r| r.tier == 3 && (0.0..1000.0).contains(&r.score))
        .collect();
    want.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    // Keyset pages (cursor predicates on the same keys) walk the same order.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = repo.page(&example(), cursor.as_ref()).await.expect("page");
        paged.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, want, "pages");
    want.truncate(1_000);
    assert_eq!(found, want);

    let statements = library_statements(&store).await;
    let sql = statements
        .iter()
        .find(|s| !s.contains(" OR "))
        .expect("the find's statement");
    assert!(
        sql.ends_with("ORDER BY \"score\" DESC, \"id\" ASC LIMIT $4"),
        "plain order on NOT NULL columns, bound limit: {sql}"
    );

    // The custom plan (the parameters' values known).
    let plan = text_rows(&store, &format!("EXPLAIN {sql}"), binds()).await;
    assert_index_order(&plan, "custom plan");

    // The generic plan, chosen by the plan cache after five executions.
    let db = store.connection();
    db.execute_unprepared(&format!(
        "PREPARE sort_plans_probe(integer, double precision, double precision, bigint) AS {sql}"
    ))
    .await
    .expect("prepare");
    db.execute_unprepared("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("set");
    let generic = text_rows(
        &store,
        "EXPLAIN EXECUTE sort_plans_probe(3, 0, 1000, 1000)",
        vec![],
    )
    .await;
    db.execute_unprepared("RESET plan_cache_mode; DEALLOCATE sort_plans_probe")
        .await
        .expect("reset");
    assert!(
        generic.iter().any(|l| l.contains("$1")),
        "a generic plan: {generic:#?}"
    );
    assert_index_order(&generic, "generic plan");

    store.close().await;
    pg.cleanup().await.expect("drop schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nullable_keys_keep_their_nulls_clause_and_offsets_are_bound() {
    let Some((store, repo, pg)) = loaded().await else {
        return;
    };
    let q = Query::filter(Ranked::TIER.eq(3))
        .sort(Ranked::TAG.desc())
        .sort(Ranked::SCORE.asc())
        .limit(5)
        .offset(10);
    let found = repo.find(&q).await.expect("find");
    // Nulls lowest: descending, the rows without a tag come last.
    let mut want: Vec<Ranked> = (0..ROWS).map(ranked).filter(|r| r.tier == 3).collect();
    want.sort_by(|a, b| {
        b.tag
            .cmp(&a.tag)
            .then(a.score.total_cmp(&b.score))
            .then(a.id.cmp(&b.id))
    });
    assert_eq!(found, want[10..15].to_vec());
    let statements = library_statements(&store).await;
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(
        statements[0].ends_with(
            "ORDER BY \"tag\" COLLATE \"C\" DESC NULLS LAST, \"score\" ASC, \"id\" ASC \
             LIMIT $2 OFFSET $3"
        ),
        "{}",
        statements[0]
    );
    store.close().await;
    pg.cleanup().await.expect("drop schema");
}

/// Before `ensure_schema` has told the repository that the columns are NOT
/// NULL (here: a second store on the same schema that never ran it), the
/// nulls clauses stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ensure_schema_nothing_is_assumed() {
    let Some((store, _repo, pg)) = loaded().await else {
        return;
    };
    let other = RelationalStore::connect(&pg.config().max_connections(1))
        .await
        .expect("connect");
    let found = other
        .repository::<Ranked>()
        .find(&example())
        .await
        .expect("find");
    assert_eq!(found.len(), 1_000);
    let statements = library_statements(&other).await;
    assert!(
        statements[0]
            .ends_with("ORDER BY \"score\" DESC NULLS LAST, \"id\" ASC NULLS FIRST LIMIT $4"),
        "{statements:#?}"
    );
    other.close().await;
    store.close().await;
    pg.cleanup().await.expect("drop schema");
}
