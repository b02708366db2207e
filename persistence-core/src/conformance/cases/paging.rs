//! Sort and paging: multi-key sorts, nulls lowest, limit/offset, keyset
//! cursors (also under concurrent inserts) and tampered cursors.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::collections::BTreeSet;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::query::{Cursor, Query};
use crate::repository::Repository;

pub async fn sort_multi_key_with_ties<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let rows: Vec<Person> = (1..=30)
        .map(|i| {
            let mut p = person(i);
            p.name = format!("n{}", i % 3);
            p.score = (i % 4) as f64;
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    let got = repo
        .find(
            &Query::all()
                .sort(Person::NAME.asc())
                .sort(Person::SCORE.desc()),
        )
        .await
        .unwrap();
    let mut expected = rows.clone();
    expected.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    assert_eq!(ids(&got), ids(&expected), "ties broken by id ascending");
    let got = repo
        .find(&Query::all().sort(Person::SCORE.asc()))
        .await
        .unwrap();
    expected.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.id.cmp(&b.id)));
    assert_eq!(ids(&got), ids(&expected));
    let got = repo
        .find(&Query::all().sort(Person::ID.desc()))
        .await
        .unwrap();
    assert_eq!(ids(&got), (1..=30).rev().collect::<Vec<_>>());
    let got = repo.find(&Query::all()).await.unwrap();
    assert_eq!(
        ids(&got),
        (1..=30).collect::<Vec<_>>(),
        "default order is by id"
    );
}

pub async fn sort_nulls_lowest<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let asc = repo
        .find(&Query::all().sort(Person::AGE.asc()))
        .await
        .unwrap();
    let mut expected = all.clone();
    expected.sort_by(|a, b| a.age.cmp(&b.age).then(a.id.cmp(&b.id))); // None < Some
    assert_eq!(ids(&asc), ids(&expected), "nulls first ascending");
    let desc = repo
        .find(&Query::all().sort(Person::AGE.desc()))
        .await
        .unwrap();
    expected.sort_by(|a, b| b.age.cmp(&a.age).then(a.id.cmp(&b.id)));
    assert_eq!(ids(&desc), ids(&expected), "nulls last descending");
}

pub async fn limit_and_offset<B: Backend>(b: &B) {
    let repo = people(b, 20).await;
    let q = Query::all().sort(Person::ID.desc());
    assert_eq!(
        ids(&repo.find(&q.clone().limit(3)).await.unwrap()),
        vec![20, 19, 18]
    );
    assert_eq!(
        ids(&repo.find(&q.clone().offset(18)).await.unwrap()),
        vec![2, 1]
    );
    assert_eq!(
        ids(&repo.find(&q.clone().offset(5).limit(2)).await.unwrap()),
        vec![15, 14]
    );
    assert!(repo.find(&q.clone().offset(50)).await.unwrap().is_empty());
    assert!(repo.find(&q.clone().limit(0)).await.unwrap().is_empty());
}

pub async fn offset_paging_1000_rows<B: Backend>(b: &B) {
    let repo = people(b, 1_000).await;
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut next_id = 10_000;
    loop {
        let page = repo
            .find(
                &Query::all()
                    .sort(Person::CREATED.asc())
                    .offset(offset)
                    .limit(73),
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        seen.extend(ids(&page));
        // Rows appended after the current position (later timestamps) between pages.
        if next_id < 10_005 {
            repo.insert(&person(next_id)).await.unwrap();
            next_id += 1;
        }
    }
    let originals: Vec<i64> = seen.iter().copied().filter(|i| *i <= 1_000).collect();
    assert_eq!(
        originals,
        (1..=1_000).collect::<Vec<_>>(),
        "every original row exactly once, in order"
    );
    assert_eq!(seen.len(), 1_005, "appended rows were reached too");
}

pub async fn keyset_paging_1000_rows_with_inserts<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    // Ids 2, 4, ..., 2000; many ties in `name`.
    let rows: Vec<Person> = (1..=1_000)
        .map(|i| {
            let mut p = person(i * 2);
            p.name = format!("group {:02}", i % 17);
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    let q = Query::all().sort(Person::NAME.asc()).limit(64);
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut inserted = 0;
    let mut pages = 0;
    loop {
        let page = repo.page(&q, cursor.as_ref()).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 64);
        seen.extend(ids(&page.items));
        // Between pages, insert rows that sort both before and after the position.
        if inserted < 40 {
            for name in ["group 00", "group 99"] {
                let mut p = person(100_001 + inserted);
                p.name = name.to_string();
                repo.insert(&p).await.unwrap();
                inserted += 1;
            }
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging does not terminate");
    }
    let originals: Vec<i64> = seen.iter().copied().filter(|i| *i <= 2_000).collect();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    let mut expected = rows.clone();
    expected.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    assert_eq!(
        originals,
        ids(&expected),
        "every original row once, in sort order, no gaps"
    );
    assert!(
        seen.iter().any(|i| *i > 100_000),
        "rows inserted after the position are reached"
    );
}

pub async fn keyset_paging_descending_with_nulls<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let q = Query::all()
        .sort(Person::AGE.desc())
        .sort(Person::CITY.asc())
        .limit(5);
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = repo.page(&q, cursor.as_ref()).await.unwrap();
        seen.extend(ids(&page.items));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = all.clone();
    expected.sort_by(|a, b| {
        b.age
            .cmp(&a.age)
            .then(a.city.cmp(&b.city))
            .then(a.id.cmp(&b.id))
    });
    assert_eq!(seen, ids(&expected));
}

pub async fn cursor_tampering_is_invalid_input<B: Backend>(b: &B) {
    let repo = people(b, 10).await;
    let q = Query::all().sort(Person::NAME.asc()).limit(3);
    let first = repo.page(&q, None).await.unwrap();
    let cursor = first.next.expect("more pages");
    assert_invalid(
        repo.page(&q, Some(&Cursor::from_token("not base64 !!")))
            .await,
        "garbage cursor",
    );
    assert_invalid(
        repo.page(&q, Some(&Cursor::from_token("e30"))).await,
        "empty JSON object",
    );
    let other = Query::all().sort(Person::AGE.desc()).limit(3);
    assert_invalid(
        repo.page(&other, Some(&cursor)).await,
        "cursor of another sort order",
    );
    assert_invalid(
        repo.page(&q.clone().offset(2), None).await,
        "offset with page()",
    );
    assert_invalid(repo.page(&Query::all().limit(0), None).await, "page size 0");
    let second = repo.page(&q, Some(&cursor)).await.unwrap();
    assert_eq!(second.items.len(), 3);
}
