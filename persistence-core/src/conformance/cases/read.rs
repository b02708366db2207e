//! Reads besides `find`: count, exists, delete by filter, `find_one` and streams.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use futures_util::StreamExt as _;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::Repository;

pub async fn count_and_exists<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), all.len() as u64);
    assert_eq!(
        repo.count(&Person::AGE.is_null()).await.unwrap(),
        all.iter().filter(|p| p.age.is_none()).count() as u64
    );
    assert!(repo.exists(&Person::ID.eq(3)).await.unwrap());
    assert!(!repo.exists(&Person::ID.eq(300)).await.unwrap());
    assert_eq!(repo.count(&Filter::none()).await.unwrap(), 0);
}

pub async fn delete_many_by_filter<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let doomed = Person::AGE.is_null().or(Person::CITY.eq("Lima"));
    let expected_deleted = all
        .iter()
        .filter(|p| p.age.is_none() || p.city.as_deref() == Some("Lima"))
        .count() as u64;
    assert_eq!(repo.delete_many(&doomed).await.unwrap(), expected_deleted);
    assert_eq!(repo.count(&doomed).await.unwrap(), 0);
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        all.len() as u64 - expected_deleted
    );
    assert_eq!(repo.delete_many(&Filter::none()).await.unwrap(), 0);
    assert_eq!(
        repo.delete_many(&Filter::all()).await.unwrap(),
        all.len() as u64 - expected_deleted
    );
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 0);
}

pub async fn find_one_respects_sort<B: Backend>(b: &B) {
    let repo = people(b, 10).await;
    let top = repo
        .find_one(&Query::all().sort(Person::SCORE.desc()))
        .await
        .unwrap();
    assert_eq!(top.map(|p| p.id), Some(10));
    let none = repo
        .find_one(&Query::filter(Person::ID.gt(100)))
        .await
        .unwrap();
    assert_eq!(none, None);
    let second = repo.find_one(&Query::all().offset(1)).await.unwrap();
    assert_eq!(second.map(|p| p.id), Some(2));
}

pub async fn stream_20000_rows<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    for chunk in (1..=20_000).collect::<Vec<i64>>().chunks(5_000) {
        let rows: Vec<Person> = chunk.iter().map(|i| person(*i)).collect();
        repo.insert_many(&rows).await.unwrap();
    }
    let mut s = repo.stream(&Query::all());
    let mut n = 0i64;
    let mut last = 0;
    while let Some(item) = s.next().await {
        let p = item.unwrap();
        assert!(p.id > last, "stream is in id order");
        last = p.id;
        n += 1;
    }
    assert_eq!(n, 20_000);
}

pub async fn stream_with_filter_and_sort<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let q = Query::filter(Person::AGE.is_not_null())
        .sort(Person::NAME.desc())
        .offset(1)
        .limit(5);
    let streamed: Vec<Person> = repo.stream(&q).map(|r| r.unwrap()).collect().await;
    let found = repo.find(&q).await.unwrap();
    assert_eq!(ids(&streamed), ids(&found));
    assert_eq!(
        streamed.len(),
        5.min(all.iter().filter(|p| p.age.is_some()).count() - 1)
    );
}
