//! `find_one_and_delete`: the first row in the query's order, removed and
//! returned atomically (the job-queue pop).
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::Repository;

pub async fn pop_returns_first_in_sort_order<B: Backend>(b: &B) {
    let repo = people::<B>(b, 12).await;
    // Scores are id / 4; the highest score among ids 1..=6 is id 6.
    let q = Query::filter(Person::ID.lte(6)).sort(Person::SCORE.desc());
    let got = repo.find_one_and_delete(&q).await.unwrap().expect("a row");
    assert_eq!(got.id, 6);
    assert_eq!(got.version, 1, "the row as it was stored");
    assert!(repo.get(&6).await.unwrap().is_none(), "it is gone");
    let next = repo.find_one_and_delete(&q).await.unwrap().expect("a row");
    assert_eq!(next.id, 5, "then the next in order");
    // Without sort keys: id order.
    let first = repo
        .find_one_and_delete(&Query::all())
        .await
        .unwrap()
        .expect("a row");
    assert_eq!(first.id, 1);
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 9);
}

pub async fn pop_no_match_is_none<B: Backend>(b: &B) {
    let repo = people::<B>(b, 3).await;
    let got = repo
        .find_one_and_delete(&Query::filter(Person::ID.gt(100)))
        .await
        .unwrap();
    assert!(got.is_none(), "no match, nothing deleted: {got:?}");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 3);
    let empty = b.repo::<Account>().await;
    assert!(
        empty
            .find_one_and_delete(&Query::all())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn pop_concurrent_pops_are_distinct<B: Backend>(b: &B) {
    let repo = Arc::new(people::<B>(b, 32).await);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            repo.find_one_and_delete(&Query::all().sort(Person::CREATED.asc()))
                .await
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        let got = t.await.expect("task").unwrap();
        let p = got.expect("32 pops of 32 rows each get one");
        assert!(seen.insert(p.id), "row {} was popped twice", p.id);
    }
    assert_eq!(seen.len(), 32);
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 0);
    assert!(
        repo.find_one_and_delete(&Query::all())
            .await
            .unwrap()
            .is_none()
    );
}
