//! Concurrency: racing writers see exactly one winner; the repository is
//! object safe.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::sync::Arc;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::entity::Entity;
use crate::error::{ConflictKind, Error, ErrorKind};
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::Repository;

/// Needs: unique_constraints
pub async fn concurrent_unique_inserts_one_wins<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Person>().await);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut p = person(1_000 + i);
            p.email = "same@example.com".into();
            repo.insert(&p).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is_conflict(), "losers get Conflict, got {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one insert wins");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn concurrent_version_updates_one_wins<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Person>().await);
    let base = repo.insert(&person(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let repo = repo.clone();
        let mut mine = base.clone();
        mine.name = format!("writer {i}");
        tasks.push(tokio::spawn(async move { repo.update(&mine).await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(p) => winners.push(p),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Conflict(ConflictKind::Version { .. } | ConflictKind::Concurrent)
                ),
                "losers get a version conflict, got {e}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update wins");
    let stored = repo.get(&1).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.name, winners[0].name);
}

pub async fn concurrent_distinct_inserts_all_succeed<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Person>().await);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                repo.insert(&person(i * 100 + j + 1)).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").unwrap();
    }
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 320);
}

pub async fn object_safe_repository<B: Backend>(b: &B) {
    let repo: Arc<dyn crate::repository::DynRepository<Person>> =
        Arc::new(b.repo::<Person>().await);
    let caps = repo.capabilities();
    repo.insert(&person(1)).await.unwrap();
    repo.insert_many(&[person(2), person(3)]).await.unwrap();
    let p = repo.get(&1).await.unwrap().unwrap();
    assert_eq!(fit_person(&caps, person(1)).created, p.created);
    // The Arc<dyn ...> is itself a Repository, so generic code accepts it.
    async fn generic<R: Repository<Person>>(r: &R) -> u64 {
        r.count(&Filter::all()).await.unwrap()
    }
    assert_eq!(generic(&repo).await, 3);
    let page = repo.page(&Query::all().limit(2), None).await.unwrap();
    assert_eq!(ids(&page.items), vec![1, 2]);
    assert!(repo.delete(&2).await.unwrap());
    assert_eq!(repo.find(&Query::all()).await.unwrap().len(), 2);
    let _ = Person::meta();
}
