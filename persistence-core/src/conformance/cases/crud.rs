//! CRUD semantics: missing rows, conflicts (duplicate ids, unique
//! constraints, stale versions), versions, upserts and batch writes.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::{ConflictKind, ErrorKind};
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::Repository;

pub async fn get_missing_is_none<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    assert_eq!(repo.get(&42).await.unwrap(), None);
    let accounts = b.repo::<Account>().await;
    assert_eq!(accounts.get(&"nope".to_string()).await.unwrap(), None);
}

pub async fn update_missing_is_not_found<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut p = person(1);
    p.version = 1;
    let err = repo
        .update(&p)
        .await
        .expect_err("update of a missing row fails");
    assert_eq!(kind(&err), &ErrorKind::NotFound, "{err}");
    let accounts = b.repo::<Account>().await;
    let a = Account {
        id: "a".into(),
        tenant: "t".into(),
        handle: "h".into(),
        balance: 1,
    };
    let err = accounts
        .update(&a)
        .await
        .expect_err("update of a missing row fails");
    assert_eq!(kind(&err), &ErrorKind::NotFound, "{err}");
}

pub async fn delete_reports_whether_deleted<B: Backend>(b: &B) {
    let repo = people(b, 3).await;
    assert!(repo.delete(&2).await.unwrap());
    assert!(!repo.delete(&2).await.unwrap());
    assert!(!repo.delete(&99).await.unwrap());
    assert_eq!(repo.get(&2).await.unwrap(), None);
    assert_eq!(ids(&repo.find(&Query::all()).await.unwrap()), vec![1, 3]);
    // The unique email of a deleted row is free again.
    repo.insert(&person(2)).await.unwrap();
}

pub async fn duplicate_id_is_conflict<B: Backend>(b: &B) {
    let repo = people(b, 1).await;
    let mut again = person(1);
    again.email = "other@example.com".into();
    let c = assert_conflict(repo.insert(&again).await, "duplicate id");
    assert_eq!(c, ConflictKind::DuplicateId);
    assert_eq!(repo.get(&1).await.unwrap().unwrap().email, "p1@example.com");
}

/// Needs: unique_constraints
pub async fn unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    repo.insert(&person(1)).await.unwrap();
    let mut dup = person(2);
    dup.email = "p1@example.com".into();
    let c = assert_conflict(repo.insert(&dup).await, "unique email");
    match c {
        ConflictKind::Unique { constraint } => {
            if let Some(name) = constraint {
                assert!(
                    name.contains("email"),
                    "constraint name {name:?} should name the email index"
                );
            }
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert_eq!(repo.get(&2).await.unwrap(), None, "nothing was written");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

/// Needs: unique_constraints
pub async fn composite_unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = b.repo::<Account>().await;
    let a = |id: &str, t: &str, h: &str| Account {
        id: id.into(),
        tenant: t.into(),
        handle: h.into(),
        balance: 0,
    };
    repo.insert(&a("1", "t1", "bob")).await.unwrap();
    repo.insert(&a("2", "t2", "bob")).await.unwrap();
    repo.insert(&a("3", "t1", "amy")).await.unwrap();
    let c = assert_conflict(repo.insert(&a("4", "t1", "bob")).await, "composite unique");
    assert!(matches!(c, ConflictKind::Unique { .. }), "{c:?}");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 3);
}

/// Needs: unique_constraints
pub async fn update_into_unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = people(b, 2).await;
    let mut p2 = repo.get(&2).await.unwrap().unwrap();
    p2.email = "p1@example.com".into();
    let c = assert_conflict(repo.update(&p2).await, "update into a taken email");
    assert!(matches!(c, ConflictKind::Unique { .. }), "{c:?}");
    let stored = repo.get(&2).await.unwrap().unwrap();
    assert_eq!(stored.email, "p2@example.com");
    assert_eq!(
        stored.version, 1,
        "a failed update does not bump the version"
    );
}

pub async fn versions_start_at_one_and_increment<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut p = person(1);
    p.version = 77; // ignored on insert
    let stored = repo.insert(&p).await.unwrap();
    assert_eq!(stored.version, 1);
    let mut next = stored.clone();
    next.name = "renamed".into();
    let v2 = repo.update(&next).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.name, "renamed");
    let v3 = repo.update(&v2).await.unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(repo.get(&1).await.unwrap().unwrap().version, 3);
}

pub async fn stale_version_is_conflict<B: Backend>(b: &B) {
    let repo = people(b, 1).await;
    let v1 = repo.get(&1).await.unwrap().unwrap();
    let mut a = v1.clone();
    a.name = "first writer".into();
    repo.update(&a).await.unwrap();
    let mut stale = v1.clone();
    stale.name = "second writer".into();
    let c = assert_conflict(repo.update(&stale).await, "stale version");
    assert!(matches!(c, ConflictKind::Version { .. }), "{c:?}");
    let stored = repo.get(&1).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.version), ("first writer", 2));
}

pub async fn upsert_inserts_then_overwrites<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let first = repo.upsert(&person(1)).await.unwrap();
    assert_eq!(first.version, 1);
    let mut changed = person(1);
    changed.name = "changed".into();
    changed.version = 0; // upsert ignores the version
    let second = repo.upsert(&changed).await.unwrap();
    assert_eq!((second.name.as_str(), second.version), ("changed", 2));
    assert_eq!(repo.get(&1).await.unwrap().unwrap(), second);
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn unversioned_update_overwrites<B: Backend>(b: &B) {
    let repo = b.repo::<Account>().await;
    let a = Account {
        id: "x".into(),
        tenant: "t".into(),
        handle: "h".into(),
        balance: 5,
    };
    repo.insert(&a).await.unwrap();
    let mut b2 = a.clone();
    b2.balance = 10;
    assert_eq!(repo.update(&b2).await.unwrap(), b2);
    let mut b3 = a.clone();
    b3.balance = 20;
    assert_eq!(
        repo.update(&b3).await.unwrap(),
        b3,
        "no version: last write wins"
    );
    assert_eq!(
        repo.get(&"x".to_string()).await.unwrap().unwrap().balance,
        20
    );
}

pub async fn get_many_keeps_order_and_skips_missing<B: Backend>(b: &B) {
    let repo = people(b, 5).await;
    let got = repo.get_many(&[4, 99, 1, 4, 3]).await.unwrap();
    assert_eq!(ids(&got), vec![4, 1, 3]);
    assert!(repo.get_many(&[]).await.unwrap().is_empty());
}

pub async fn insert_many_inserts_all<B: Backend>(b: &B) {
    let repo = people(b, 2_500).await;
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 2_500);
    let p = repo.get(&1234).await.unwrap().unwrap();
    assert_eq!(p.version, 1);
    assert_eq!(
        fit_person(&repo.capabilities(), person(1234)).email,
        p.email
    );
    assert_eq!(repo.insert_many(&[]).await.unwrap(), 0);
}

pub async fn insert_many_conflict_is_all_or_nothing<B: Backend>(b: &B) {
    let repo = people(b, 1).await;
    let mut batch: Vec<Person> = (10..20).map(person).collect();
    batch.push(person(1)); // duplicate id at index 10
    let err = repo
        .insert_many(&batch)
        .await
        .expect_err("duplicate in batch");
    assert!(err.is_conflict(), "{err}");
    if repo.capabilities().atomic_batch {
        assert_eq!(
            repo.count(&Filter::all()).await.unwrap(),
            1,
            "nothing of the failed batch was kept"
        );
    }
}
