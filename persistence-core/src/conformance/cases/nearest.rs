//! Nearest-neighbour queries (`find_nearest`, `nearest(..)`): distances and
//! order as the exact reference gives them, pre-filter semantics, `k`
//! bounds, dimension and non-finite checks on queries and writes, null
//! vectors skipped, writes seen by the next query. On backends with
//! `approximate_nearest` the sets are small enough (and `ef_search` large
//! enough) for the index to find every neighbour.
#![allow(clippy::unwrap_used, missing_docs)]

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::entity::{Entity, Metric};
use crate::filter::Filter;
use crate::repository::Repository;
use crate::vector::{MAX_K, NearestExt, NearestQuery};

const N: i64 = 40;

async fn docs<B: Backend>(b: &B) -> (B::Repo<Doc>, Vec<Doc>) {
    let repo = b.repo::<Doc>().await;
    let all: Vec<Doc> = (1..=N).map(doc).collect();
    repo.insert_many(&all).await.unwrap();
    (repo, all)
}

fn field_of(d: &Doc, field: &str) -> Option<Vec<f32>> {
    match field {
        "emb" => Some(d.emb.clone()),
        "dir" => Some(d.dir.clone()),
        _ => d.ip.clone(),
    }
}

/// The exact answer's distances, ascending.
fn reference(
    all: &[Doc],
    field: &str,
    metric: Metric,
    q: &[f32],
    pred: impl Fn(&Doc) -> bool,
) -> Vec<f64> {
    let mut ds: Vec<f64> = all
        .iter()
        .filter(|d| pred(d))
        .filter_map(|d| Some(metric.distance(&field_of(d, field)?, q)))
        .collect();
    ds.sort_by(f64::total_cmp);
    ds
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

/// Each hit's distance is its own vector's distance, the list ascends, and
/// it equals the first `k` of the exact reference.
fn check_hits(
    hits: &[(Doc, f64)],
    field: &str,
    metric: Metric,
    q: &[f32],
    want: &[f64],
    what: &str,
) {
    let got: Vec<f64> = hits.iter().map(|(_, d)| *d).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} hits, want {}: {got:?}",
        got.len(),
        want.len()
    );
    for (i, (doc, d)) in hits.iter().enumerate() {
        let own = metric.distance(&field_of(doc, field).expect("a hit has a vector"), q);
        assert!(
            close(own, *d),
            "{what}: hit {i} (id {}) reports {d}, its vector is at {own}",
            doc.id
        );
        assert!(
            close(*d, want[i]),
            "{what}: distance {i} is {d}, exact answer {}",
            want[i]
        );
    }
    assert!(
        got.windows(2).all(|w| w[0] <= w[1] + 1e-9),
        "{what}: not ascending: {got:?}"
    );
    let mut ids: Vec<i64> = hits.iter().map(|(d, _)| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), hits.len(), "{what}: a row twice");
}

/// Every metric ranks exactly as [`Metric::distance`]: the `k` nearest in
/// ascending distance, distances as defined (cosine `1 - cos`, L2
/// Euclidean, inner product negated).
pub async fn nearest_orders_by_exact_distance<B: Backend>(b: &B) {
    let (repo, all) = docs(b).await;
    let queries: [[f32; 4]; 3] = [
        [0.5, -1.0, 2.0, 0.25],
        [3.0, 3.0, -3.0, 1.0],
        [-0.125, 0.0, 0.0, 1.0],
    ];
    for (field, metric) in [
        ("emb", Metric::L2),
        ("dir", Metric::Cosine),
        ("ip", Metric::InnerProduct),
    ] {
        for q in &queries {
            for k in [1, 5, 10] {
                let hits = repo
                    .find_nearest(&NearestQuery::new(field, q.to_vec(), k).ef_search(200))
                    .await
                    .unwrap();
                let want = reference(&all, field, metric, q, |_| true);
                check_hits(
                    &hits,
                    field,
                    metric,
                    q,
                    &want[..k],
                    &format!("{field} k={k} q={q:?}"),
                );
            }
        }
    }
}

/// The typed builder is the same query: `nearest(Doc::EMB, &v, k)`.
pub async fn nearest_builder_matches_find_nearest<B: Backend>(b: &B) {
    let (repo, _) = docs(b).await;
    let q = [1.0, 2.0, 3.0, 4.0];
    let a = repo.nearest(Doc::EMB, &q, 7).ef_search(100).await.unwrap();
    let b2 = repo
        .find_nearest(&NearestQuery::new("emb", q.to_vec(), 7).ef_search(100))
        .await
        .unwrap();
    let ids = |v: &[(Doc, f64)]| v.iter().map(|(d, _)| d.id).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b2));
}

/// The filter chooses the candidates first (pre-filter): a selective filter
/// still yields `min(k, matching)` rows, all matching, nearest first.
pub async fn nearest_with_filter_is_pre_filter<B: Backend>(b: &B) {
    let (repo, all) = docs(b).await;
    let q = [0.0, 1.0, 0.0, -1.0];
    let fr = |d: &Doc| d.lang == "fr";
    let n_fr = all.iter().filter(|d| fr(d)).count();
    for k in [3, n_fr, 20] {
        let hits = repo
            .nearest(Doc::EMB, &q, k)
            .filter(Doc::LANG.eq("fr"))
            .await
            .unwrap();
        assert!(
            hits.iter().all(|(d, _)| d.lang == "fr"),
            "only matching rows"
        );
        let want = reference(&all, "emb", Metric::L2, &q, fr);
        check_hits(
            &hits,
            "emb",
            Metric::L2,
            &q,
            &want[..k.min(n_fr)],
            &format!("filtered k={k}"),
        );
    }
    let f = Doc::LANG.eq("en").and(Doc::ID.gt(30));
    let hits = repo.nearest(Doc::DIR, &q, 4).filter(f).await.unwrap();
    let want = reference(&all, "dir", Metric::Cosine, &q, |d| {
        d.lang == "en" && d.id > 30
    });
    check_hits(&hits, "dir", Metric::Cosine, &q, &want[..4], "and-filter");
    let none = repo
        .nearest(Doc::EMB, &q, 5)
        .filter(Doc::LANG.eq("de"))
        .await
        .unwrap();
    assert!(none.is_empty(), "no candidates, no rows");
}

/// `k` is `1..=MAX_K`; a `k` above the row count returns every row.
pub async fn nearest_k_bounds<B: Backend>(b: &B) {
    let (repo, all) = docs(b).await;
    let q = vec![1.0, 0.0, 0.0, 0.0];
    assert_invalid(
        repo.find_nearest(&NearestQuery::new("emb", q.clone(), 0))
            .await,
        "k = 0",
    );
    assert_invalid(
        repo.find_nearest(&NearestQuery::new("emb", q.clone(), MAX_K + 1))
            .await,
        "k > MAX_K",
    );
    assert_invalid(
        repo.find_nearest(&NearestQuery::new("emb", q.clone(), 3).ef_search(0))
            .await,
        "ef_search = 0",
    );
    let hits = repo
        .find_nearest(&NearestQuery::new("emb", q.clone(), 100))
        .await
        .unwrap();
    assert_eq!(hits.len(), all.len(), "k above the row count: every row");
    let with_ip = all.iter().filter(|d| d.ip.is_some()).count();
    let hits = repo
        .find_nearest(&NearestQuery::new("ip", q, 100))
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        with_ip,
        "rows without a vector are not candidates"
    );
}

/// A query vector or a stored vector of the wrong dimension is
/// `InvalidInput`, and nothing is written.
pub async fn nearest_dimension_mismatch_is_invalid_input<B: Backend>(b: &B) {
    let (repo, _) = docs(b).await;
    assert_invalid(
        repo.nearest(Doc::EMB, &[1.0, 2.0, 3.0], 3).await,
        "3-dim query",
    );
    assert_invalid(repo.nearest(Doc::EMB, &[1.0; 5], 3).await, "5-dim query");
    let mut bad = doc(N + 1);
    bad.emb.push(1.0);
    assert_invalid(repo.insert(&bad).await, "5-dim insert");
    let mut bad = doc(N + 2);
    bad.ip = Some(vec![1.0]);
    assert_invalid(repo.insert(&bad).await, "1-dim optional vector");
    let mut bad = doc(3);
    bad.dir.pop();
    assert_invalid(repo.upsert(&bad).await, "3-dim upsert");
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        u64::try_from(N).unwrap()
    );
    assert_eq!(
        repo.get(&3).await.unwrap(),
        Some(doc(3)),
        "the upsert wrote nothing"
    );
}

/// NaN and infinities are refused in queries and writes; a zero vector has
/// no cosine distance; unknown and non-vector fields are refused.
pub async fn nearest_rejects_non_finite_and_bad_fields<B: Backend>(b: &B) {
    let (repo, _) = docs(b).await;
    for q in [
        [f32::NAN, 0.0, 0.0, 0.0],
        [0.0, f32::INFINITY, 0.0, 0.0],
        [0.0, 0.0, f32::NEG_INFINITY, 1.0],
    ] {
        assert_invalid(repo.nearest(Doc::EMB, &q, 3).await, "non-finite query");
    }
    assert_invalid(
        repo.nearest(Doc::DIR, &[0.0; 4], 3).await,
        "zero cosine query",
    );
    let mut bad = doc(N + 1);
    bad.emb[2] = f32::NAN;
    assert_invalid(repo.insert(&bad).await, "NaN stored");
    let mut bad = doc(N + 1);
    bad.emb[0] = f32::INFINITY;
    assert_invalid(repo.insert(&bad).await, "inf stored");
    let mut bad = doc(N + 1);
    bad.dir = vec![0.0; 4];
    assert_invalid(repo.insert(&bad).await, "zero cosine vector stored");
    assert_invalid(
        repo.find_nearest(&NearestQuery::new("lang", vec![1.0; 4], 3))
            .await,
        "text field",
    );
    assert_invalid(
        repo.find_nearest(&NearestQuery::new("nope", vec![1.0; 4], 3))
            .await,
        "unknown field",
    );
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        u64::try_from(N).unwrap()
    );
}

/// Writes are seen by the next query: an inserted exact match comes first,
/// a moved vector moves, a deleted row is gone.
pub async fn nearest_sees_writes<B: Backend>(b: &B) {
    let (repo, _) = docs(b).await;
    let q = [3.5, -3.5, 3.5, -3.5];
    let before = repo.nearest(Doc::EMB, &q, 3).await.unwrap();
    assert_ne!(before[0].0.id, 100);
    let mut exact = doc(100);
    exact.emb = q.to_vec();
    repo.insert(&exact).await.unwrap();
    let hits = repo.nearest(Doc::EMB, &q, 3).await.unwrap();
    assert_eq!(hits[0].0.id, 100, "the inserted exact match first");
    assert!(hits[0].1.abs() < 1e-6, "at distance 0");
    let mut moved = repo.get(&7).await.unwrap().unwrap();
    moved.emb = vec![3.5, -3.5, 3.5, -3.375];
    repo.update(&moved).await.unwrap();
    let hits = repo.nearest(Doc::EMB, &q, 3).await.unwrap();
    assert_eq!(
        hits.iter().map(|(d, _)| d.id).take(2).collect::<Vec<_>>(),
        [100, 7]
    );
    assert!(repo.delete(&100).await.unwrap());
    let hits = repo.nearest(Doc::EMB, &q, 3).await.unwrap();
    assert_eq!(hits[0].0.id, 7, "the deleted row is gone");
    assert_eq!(Doc::meta().vectors.len(), 3);
}
