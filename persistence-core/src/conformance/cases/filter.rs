//! Filters: every operator with the reference (memory) semantics, nulls,
//! literal string matching, arrays, nested paths and string order.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::filter::{Filter, StringField};
use crate::query::Query;
use crate::repository::Repository;

pub async fn filter_eq_ne_with_nulls<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    assert_eq!(
        find_ids(&repo, Person::AGE.eq(5)).await,
        expect_ids(&all, |p| p.age == Some(5))
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.ne(5)).await,
        expect_ids(&all, |p| p.age != Some(5)),
        "ne matches null"
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.eq(None::<i32>)).await,
        expect_ids(&all, |p| p.age.is_none())
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.ne(None::<i32>)).await,
        expect_ids(&all, |p| p.age.is_some())
    );
    assert_eq!(
        find_ids(&repo, Person::CITY.eq("Oslo")).await,
        expect_ids(&all, |p| p.city.as_deref() == Some("Oslo"))
    );
    assert_eq!(
        find_ids(&repo, Person::CITY.ne("Oslo")).await,
        expect_ids(&all, |p| p.city.as_deref() != Some("Oslo"))
    );
    assert_eq!(
        find_ids(&repo, Person::NAME.eq("alice")).await,
        expect_ids(&all, |p| p.name == "alice")
    );
    assert!(
        find_ids(&repo, Person::NAME.eq("ALICE")).await.is_empty(),
        "eq is case-sensitive"
    );
}

pub async fn filter_ordering_operators<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let age = |p: &Person| p.age;
    assert_eq!(
        find_ids(&repo, Person::AGE.lt(5)).await,
        expect_ids(&all, |p| age(p).is_some_and(|a| a < 5))
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.lte(5)).await,
        expect_ids(&all, |p| age(p).is_some_and(|a| a <= 5))
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.gt(5)).await,
        expect_ids(&all, |p| age(p).is_some_and(|a| a > 5))
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.gte(5)).await,
        expect_ids(&all, |p| age(p).is_some_and(|a| a >= 5))
    );
    assert_eq!(
        find_ids(&repo, Person::SCORE.gt(1.25)).await,
        expect_ids(&all, |p| p.score > 1.25)
    );
    assert_eq!(
        find_ids(&repo, Person::SCORE.lte(0.5)).await,
        expect_ids(&all, |p| p.score <= 0.5)
    );
    assert_eq!(find_ids(&repo, Person::ID.gte(10)).await, vec![10, 11, 12]);
    let t = ts(6);
    assert_eq!(
        find_ids(&repo, Person::CREATED.lt(t)).await,
        expect_ids(&all, |p| p.created < t)
    );
    assert_eq!(
        find_ids(&repo, Person::CREATED.gte(t)).await,
        expect_ids(&all, |p| p.created >= t)
    );
    assert_eq!(
        find_ids(&repo, Person::NAME.gt("carol")).await,
        expect_ids(&all, |p| p.name.as_str() > "carol")
    );
    assert_eq!(
        find_ids(&repo, Person::CITY.lt("Oslo")).await,
        expect_ids(&all, |p| p.city.as_deref().is_some_and(|c| c < "Oslo"))
    );
}

pub async fn filter_in_and_not_in<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    assert_eq!(
        find_ids(&repo, Person::ID.is_in([3, 5, 99])).await,
        vec![3, 5]
    );
    assert_eq!(
        find_ids(&repo, Person::ID.is_in(Vec::<i64>::new())).await,
        Vec::<i64>::new(),
        "in([]) matches nothing"
    );
    assert_eq!(
        find_ids(&repo, Person::ID.not_in(Vec::<i64>::new())).await,
        ids(&all),
        "not_in([]) matches everything"
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.is_in([1, 2, 3])).await,
        expect_ids(&all, |p| matches!(p.age, Some(1..=3)))
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.not_in([1, 2, 3])).await,
        expect_ids(&all, |p| !matches!(p.age, Some(1..=3))),
        "not_in matches null"
    );
    assert_eq!(
        find_ids(&repo, Person::CITY.is_in(["Oslo", "Lima"])).await,
        expect_ids(&all, |p| matches!(p.city.as_deref(), Some("Oslo" | "Lima")))
    );
}

pub async fn filter_is_null_and_is_not_null<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    assert_eq!(
        find_ids(&repo, Person::AGE.is_null()).await,
        expect_ids(&all, |p| p.age.is_none())
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.is_not_null()).await,
        expect_ids(&all, |p| p.age.is_some())
    );
    assert_eq!(
        find_ids(&repo, Person::CITY.is_null()).await,
        expect_ids(&all, |p| p.city.is_none())
    );
    assert!(find_ids(&repo, Person::EMAIL.is_null()).await.is_empty());
    assert_eq!(
        find_ids(&repo, Person::PROFILE.nested::<String>("zip").is_null()).await,
        ids(&all),
        "a null nested value is null"
    );
}

pub async fn filter_string_operators_are_literal<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let names = [
        "100% pure",
        "100 pure",
        "a_b",
        "axb",
        "A.B*",
        "[x]",
        "abc",
        "ABC",
        "xabcx",
        "^$",
    ];
    let rows: Vec<Person> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = person(i as i64 + 1);
            p.name = n.to_string();
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    let by = |f: Filter| find_ids(&repo, f);
    assert_eq!(by(Person::NAME.starts_with("100%")).await, vec![1]);
    assert_eq!(by(Person::NAME.contains("_")).await, vec![3]);
    assert_eq!(by(Person::NAME.starts_with("a_")).await, vec![3]);
    assert_eq!(by(Person::NAME.contains(".B*")).await, vec![5]);
    assert_eq!(by(Person::NAME.contains("[x]")).await, vec![6]);
    assert_eq!(
        by(Person::NAME.starts_with("abc")).await,
        vec![7],
        "case-sensitive prefix"
    );
    assert_eq!(
        by(Person::NAME.contains("abc")).await,
        vec![7, 9],
        "case-sensitive substring"
    );
    assert_eq!(by(Person::NAME.contains("^$")).await, vec![10]);
    assert_eq!(
        by(Person::NAME.starts_with("")).await.len(),
        names.len(),
        "empty prefix matches all"
    );
    assert_eq!(
        by(Person::CITY.starts_with("Os")).await,
        expect_ids(&rows, |p| p
            .city
            .as_deref()
            .is_some_and(|c| c.starts_with("Os")))
    );
}

pub async fn filter_array_contains<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    assert_eq!(
        find_ids(&repo, Person::TAGS.has("red")).await,
        expect_ids(&all, |p| p.tags.iter().any(|t| t == "red"))
    );
    assert_eq!(
        find_ids(&repo, Person::TAGS.has("blue")).await,
        expect_ids(&all, |p| p.tags.iter().any(|t| t == "blue"))
    );
    assert!(
        find_ids(&repo, Person::TAGS.has("re")).await.is_empty(),
        "element equality, not substring"
    );
    assert_eq!(
        find_ids(&repo, Person::TAGS.has("red").not()).await,
        expect_ids(&all, |p| !p.tags.iter().any(|t| t == "red"))
    );
}

/// `has` on an `Option<Vec<T>>` field: `None` holds nothing (and is
/// matched by the negation), empty arrays hold nothing.
pub async fn filter_array_contains_optional<B: Backend>(b: &B) {
    let repo = b.repo::<Labeled>().await;
    let all: Vec<Labeled> = (1..=9)
        .map(|id| Labeled {
            id,
            labels: match id % 3 {
                0 => None,
                1 => Some(vec![]),
                _ => Some(vec!["red".into(), format!("l{id}")]),
            },
            codes: (id % 2 == 0).then(|| vec![id, 100]),
        })
        .collect();
    repo.insert_many(&all).await.unwrap();
    let ids_of = |f: Filter| {
        let repo = &repo;
        async move {
            match repo.find(&Query::filter(f.clone())).await {
                Ok(rows) => rows.iter().map(|r| r.id).collect::<Vec<_>>(),
                Err(e) => panic!("find {f:?}: {e}"),
            }
        }
    };
    let expect = |pred: &dyn Fn(&Labeled) -> bool| {
        all.iter()
            .filter(|l| pred(l))
            .map(|l| l.id)
            .collect::<Vec<_>>()
    };
    let has_label = |l: &Labeled, x: &str| l.labels.iter().flatten().any(|t| t == x);
    assert_eq!(
        ids_of(Labeled::LABELS.has("red")).await,
        expect(&|l| has_label(l, "red"))
    );
    assert_eq!(
        ids_of(Labeled::LABELS.has("red").not()).await,
        expect(&|l| !has_label(l, "red")),
        "None and empty arrays match the negation"
    );
    assert_eq!(ids_of(Labeled::LABELS.has("l5")).await, vec![5]);
    assert_eq!(
        ids_of(Labeled::CODES.has(100)).await,
        expect(&|l| l.codes.is_some())
    );
    assert_eq!(ids_of(Labeled::CODES.has(4_i64)).await, vec![4]);
    assert_eq!(
        ids_of(Labeled::CODES.has(100).and(Labeled::LABELS.has("red"))).await,
        expect(&|l| l.codes.is_some() && has_label(l, "red"))
    );
    assert_eq!(
        ids_of(Labeled::LABELS.is_null()).await,
        expect(&|l| l.labels.is_none())
    );
}

pub async fn filter_and_or_not_two_valued<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let f = Person::AGE.gt(3).and(Person::CITY.eq("Oslo"));
    assert_eq!(
        find_ids(&repo, f.clone()).await,
        expect_ids(&all, |p| p.age.is_some_and(|a| a > 3)
            && p.city.as_deref() == Some("Oslo"))
    );
    let g = Person::AGE.gt(8).or(Person::CITY.is_null());
    assert_eq!(
        find_ids(&repo, g).await,
        expect_ids(&all, |p| p.age.is_some_and(|a| a > 8) || p.city.is_none())
    );
    assert_eq!(
        find_ids(&repo, Person::AGE.gt(3).not()).await,
        expect_ids(&all, |p| !p.age.is_some_and(|a| a > 3)),
        "not() includes rows where age is null"
    );
    assert_eq!(
        find_ids(&repo, f.not()).await,
        expect_ids(&all, |p| !(p.age.is_some_and(|a| a > 3)
            && p.city.as_deref() == Some("Oslo")))
    );
    assert_eq!(find_ids(&repo, Filter::all()).await, ids(&all));
    assert!(find_ids(&repo, Filter::none()).await.is_empty());
    assert_eq!(find_ids(&repo, Filter::none().not()).await, ids(&all));
    assert_eq!(
        find_ids(&repo, Filter::And(vec![Filter::all(), Person::ID.eq(3)])).await,
        vec![3]
    );
}

/// Needs: nested_paths
pub async fn filter_nested_paths<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut rows: Vec<Person> = (1..=8).map(person).collect();
    rows[2].profile.zip = Some("0150".into());
    rows[3].profile.zip = Some("1000".into());
    rows[4].profile.city = "Lima".into();
    repo.insert_many(&rows).await.unwrap();
    let city = Person::PROFILE.nested::<String>("city");
    let level = Person::PROFILE.nested::<i64>("level");
    let zip = Person::PROFILE.nested::<String>("zip");
    assert_eq!(find_ids(&repo, city.eq("Lima")).await, vec![5]);
    assert_eq!(
        find_ids(&repo, city.ne("Lima")).await,
        vec![1, 2, 3, 4, 6, 7, 8]
    );
    assert_eq!(
        find_ids(&repo, level.eq(2)).await,
        expect_ids(&rows, |p| p.profile.level == 2)
    );
    assert_eq!(
        find_ids(&repo, level.gte(2)).await,
        expect_ids(&rows, |p| p.profile.level >= 2)
    );
    assert_eq!(find_ids(&repo, zip.is_not_null()).await, vec![3, 4]);
    assert_eq!(find_ids(&repo, zip.starts_with("01")).await, vec![3]);
    assert_eq!(
        find_ids(&repo, Person::PROFILE.nested::<String>("missing").is_null())
            .await
            .len(),
        8
    );
    let sorted = repo
        .find(
            &Query::filter(Filter::all())
                .sort(level.desc())
                .sort(Person::ID.asc()),
        )
        .await
        .unwrap();
    let mut expected = rows.clone();
    expected.sort_by(|a, b| b.profile.level.cmp(&a.profile.level).then(a.id.cmp(&b.id)));
    assert_eq!(ids(&sorted), ids(&expected), "sort on a nested path");
}

pub async fn filter_string_order_is_code_point<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let names = ["b", "a", "B", "A", "é", "z", "Z", "aa", "", "ä", "🦀", "~"];
    let rows: Vec<Person> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = person(i as i64 + 1);
            p.name = n.to_string();
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    let got = repo
        .find(&Query::all().sort(Person::NAME.asc()))
        .await
        .unwrap();
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort(); // Rust's str order is code-point order
    assert_eq!(
        got.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        find_ids(&repo, Person::NAME.gt("Z")).await,
        expect_ids(&rows, |p| p.name.as_str() > "Z"),
        "lowercase sorts after uppercase"
    );
}
