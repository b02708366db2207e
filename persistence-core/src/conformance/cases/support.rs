//! Helpers the conformance cases share: error-kind assertions, fitting
//! values to a backend's precision, and the populations cases query.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use chrono::{DateTime, Utc};

use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::{ConflictKind, Error, ErrorKind};
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::{Capabilities, Repository};

pub(super) fn kind(e: &Error) -> &ErrorKind {
    e.kind()
}

pub(super) fn assert_conflict(r: Result<impl std::fmt::Debug, Error>, what: &str) -> ConflictKind {
    match r {
        Err(e) => match e.kind() {
            ErrorKind::Conflict(c) => c.clone(),
            other => panic!("{what}: expected Conflict, got {other:?}: {e}"),
        },
        Ok(v) => panic!("{what}: expected Conflict, got Ok({v:?})"),
    }
}

pub(super) fn assert_invalid(r: Result<impl std::fmt::Debug, Error>, what: &str) {
    match r {
        Err(e) => assert_eq!(kind(&e), &ErrorKind::InvalidInput, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected InvalidInput, got Ok({v:?})"),
    }
}

/// Truncate a timestamp (toward the past) to what the backend keeps.
pub(super) fn fit_ts(caps: &Capabilities, t: DateTime<Utc>) -> DateTime<Utc> {
    caps.timestamp_precision.truncate(t)
}

pub(super) fn fit_all(caps: &Capabilities, mut e: AllTypes) -> AllTypes {
    e.ts = fit_ts(caps, e.ts);
    e.opt_ts = e.opt_ts.map(|t| fit_ts(caps, t));
    e
}

pub(super) fn fit_person(caps: &Capabilities, mut p: Person) -> Person {
    p.created = fit_ts(caps, p.created);
    p
}

pub(super) async fn roundtrip<B: Backend>(b: &B, items: Vec<AllTypes>) {
    let repo = b.repo::<AllTypes>().await;
    let caps = repo.capabilities();
    for item in items {
        let stored = repo
            .insert(&item)
            .await
            .unwrap_or_else(|e| panic!("insert {item:?}: {e}"));
        let mut expected = fit_all(&caps, item.clone());
        expected.version = 1;
        assert_eq!(stored, expected, "insert returned a different entity");
        let got = repo
            .get(&item.id)
            .await
            .unwrap()
            .expect("inserted row is found");
        assert_eq!(got, expected, "round trip changed the entity");
        // Found again through a query on its id.
        let found = repo
            .find(&Query::filter(AllTypes::ID.eq(item.id)))
            .await
            .unwrap();
        assert_eq!(found, vec![expected]);
    }
}

pub(super) async fn people<B: Backend>(b: &B, n: i64) -> B::Repo<Person> {
    let repo = b.repo::<Person>().await;
    let rows: Vec<Person> = (1..=n).map(person).collect();
    assert_eq!(repo.insert_many(&rows).await.unwrap(), n as u64);
    repo
}

pub(super) fn ids(ps: &[Person]) -> Vec<i64> {
    ps.iter().map(|p| p.id).collect()
}

pub(super) async fn find_ids<R: Repository<Person>>(repo: &R, f: Filter) -> Vec<i64> {
    let q = Query::filter(f.clone());
    match repo.find(&q).await {
        Ok(rows) => ids(&rows),
        Err(e) => panic!("find {f:?}: {e}"),
    }
}

/// The ids `memory` would return: evaluate with the reference semantics.
pub(super) fn expect_ids(all: &[Person], pred: impl Fn(&Person) -> bool) -> Vec<i64> {
    all.iter().filter(|p| pred(p)).map(|p| p.id).collect()
}

/// A small population with nulls in `age` and `city`.
pub(super) async fn population<B: Backend>(b: &B) -> (B::Repo<Person>, Vec<Person>) {
    let repo = b.repo::<Person>().await;
    let mut all = Vec::new();
    for id in 1..=12 {
        let mut p = person(id);
        if id % 4 == 0 {
            p.age = None;
        }
        if id % 5 == 0 {
            p.city = None;
        }
        p.name = ["alice", "Bob", "carol", "Dave", "émile", "zoë"][(id % 6) as usize].to_string();
        p.tags = match id % 3 {
            0 => vec![],
            1 => vec!["red".into(), "blue".into()],
            _ => vec!["blue".into()],
        };
        all.push(p);
    }
    repo.insert_many(&all).await.unwrap();
    for p in &mut all {
        p.version = 1;
    }
    (repo, all)
}
