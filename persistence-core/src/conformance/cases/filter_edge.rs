//! Filters at the edges: typed scalars, bad input and limits refused as
//! `InvalidInput`, 100,000-value lists, signed zero, values never read as operators.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use futures_util::StreamExt as _;
use rust_decimal::Decimal;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::{Error, ErrorKind};
use crate::filter::{Filter, StringField};
use crate::query::Query;
use crate::repository::Repository;

pub async fn filter_typed_scalars<B: Backend>(b: &B) {
    let repo = b.repo::<AllTypes>().await;
    let mut rows = Vec::new();
    for i in 0..6u128 {
        let mut e = sample_all_types(600 + i);
        e.dec = Decimal::new(i as i64 * 250, 2);
        e.date = NaiveDate::from_ymd_opt(2024, 1, 1 + i as u32).unwrap();
        e.status = [Status::Active, Status::Suspended, Status::PendingReview][(i % 3) as usize];
        e.bytes = vec![i as u8];
        rows.push(e);
    }
    repo.insert_many(&rows).await.unwrap();
    let idset = |v: Vec<AllTypes>| v.into_iter().map(|e| e.id).collect::<BTreeSet<_>>();
    let want = |pred: &dyn Fn(&AllTypes) -> bool| {
        rows.iter()
            .filter(|e| pred(e))
            .map(|e| e.id)
            .collect::<BTreeSet<_>>()
    };
    let q = |f: Filter| Query::filter(f);
    assert_eq!(
        idset(
            repo.find(&q(AllTypes::UUID.eq(rows[2].uuid)))
                .await
                .unwrap()
        ),
        want(&|e| e.uuid == rows[2].uuid)
    );
    assert_eq!(
        idset(repo.find(&q(AllTypes::B.eq(true))).await.unwrap()),
        want(&|e| e.b)
    );
    assert_eq!(
        idset(
            repo.find(&q(AllTypes::DEC.gt(Decimal::new(500, 2))))
                .await
                .unwrap()
        ),
        want(&|e| e.dec > Decimal::new(500, 2))
    );
    let d = NaiveDate::from_ymd_opt(2024, 1, 3).unwrap();
    assert_eq!(
        idset(repo.find(&q(AllTypes::DATE.lte(d))).await.unwrap()),
        want(&|e| e.date <= d)
    );
    assert_eq!(
        idset(
            repo.find(&q(AllTypes::STATUS.eq(Status::PendingReview)))
                .await
                .unwrap()
        ),
        want(&|e| e.status == Status::PendingReview)
    );
    assert_eq!(
        idset(
            repo.find(&q(
                AllTypes::STATUS.is_in([Status::Active, Status::Suspended])
            ))
            .await
            .unwrap()
        ),
        want(&|e| e.status != Status::PendingReview)
    );
    assert_eq!(
        idset(repo.find(&q(AllTypes::NUMS.has(-2))).await.unwrap()),
        want(&|_| true)
    );
    assert_eq!(
        idset(repo.find(&q(AllTypes::BYTES.eq(vec![3u8]))).await.unwrap()),
        want(&|e| e.bytes == [3])
    );
}

pub async fn filter_bad_input_is_invalid_input<B: Backend>(b: &B) {
    let repo = people(b, 3).await;
    let q = Query::filter;
    assert_invalid(
        repo.find(&q(Filter::field("no_such_field").eq(1))).await,
        "unknown field",
    );
    assert_invalid(
        repo.find(&q(Filter::field("email.$ne").eq(1))).await,
        "path into a scalar",
    );
    assert_invalid(
        repo.find(&q(Filter::field("profile.$where").eq("1"))).await,
        "operator segment",
    );
    assert_invalid(
        repo.find(&q(Filter::field("profile..city").eq("x"))).await,
        "empty segment",
    );
    assert_invalid(
        repo.find(&q(Filter::field("profile.ci\0ty").eq("x"))).await,
        "NUL in path",
    );
    assert_invalid(
        repo.find(&q(Filter::field("email").gt(5))).await,
        "wrong value type",
    );
    assert_invalid(
        repo.find(&q(Filter::field("created").eq("not a date")))
            .await,
        "unparseable timestamp",
    );
    assert_invalid(
        repo.find(&q(Filter::field("age").lt(crate::Value::Null)))
            .await,
        "ordering against null",
    );
    assert_invalid(
        repo.find(&q(Filter::field("age").eq(i64::MAX))).await,
        "out of i32 range",
    );
    assert_invalid(
        repo.find(&q(Filter::field("email").has("x"))).await,
        "has on a scalar",
    );
    assert_invalid(
        repo.find(&q(Filter::field("score").starts_with("1"))).await,
        "starts_with on a number",
    );
    assert_invalid(
        repo.find(&Query::all().sort(Filter::field("nope").asc()))
            .await,
        "unknown sort field",
    );
    assert_invalid(
        repo.find(&Query::all().sort(Filter::field("tags").asc()))
            .await,
        "sort on an array",
    );
    assert_invalid(
        repo.count(&Filter::field("nope").eq(1)).await,
        "count with unknown field",
    );
    assert_invalid(
        repo.delete_many(&Filter::field("nope").eq(1)).await,
        "delete_many with unknown field",
    );
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        3,
        "nothing was deleted"
    );
    let mut s = repo.stream(&q(Filter::field("nope").eq(1)));
    match s.next().await {
        Some(Err(e)) => assert_eq!(e.kind(), &ErrorKind::InvalidInput),
        other => panic!("stream with a bad filter should yield InvalidInput, got {other:?}"),
    }
}

/// A `not()` chain `depth` deep, built without recursion.
fn not_chain(depth: usize) -> Filter {
    let mut f = Person::ID.eq(1);
    for _ in 0..depth {
        f = f.not();
    }
    f
}

/// Filter `which` (0..4) just beyond `limits`, and the limit's name.
fn over_limit(which: usize, limits: &crate::FilterLimits) -> (Filter, &'static str) {
    match which {
        0 => (not_chain(100_000), "max_depth"),
        1 => (
            Filter::And(
                (0..=limits.max_nodes as i64)
                    .map(|i| Person::ID.ne(i))
                    .collect(),
            ),
            "max_nodes",
        ),
        2 => (Person::ID.is_in(0..=limits.max_values as i64), "max_values"),
        _ => {
            let mut v = crate::Value::I64(1);
            for _ in 0..1_000 {
                v = crate::Value::Array(vec![v]);
            }
            (Filter::field("age").eq(v), "max_depth")
        }
    }
}

/// Filters beyond [`crate::FilterLimits`] are refused by every entry point
/// with `InvalidInput` naming the limit, on a tokio worker thread (whose
/// stack is small), without overflowing the stack.
pub async fn filter_limits_are_invalid_input<B: Backend>(b: &B) {
    let repo = Arc::new(people(b, 5).await);
    let worker = tokio::spawn(async move {
        let limits = crate::FilterLimits::global();
        for which in 0..4 {
            let make = || over_limit(which, &limits).0;
            let limit = over_limit(which, &limits).1;
            let check = |r: Result<String, Error>, op: &str| match r {
                Err(e) => {
                    assert_eq!(kind(&e), &ErrorKind::InvalidInput, "{op} {limit}: {e}");
                    assert!(e.to_string().contains(limit), "{op}: {e} names {limit}");
                }
                Ok(v) => panic!("{op} beyond {limit}: expected InvalidInput, got {v}"),
            };
            let f = make();
            let q = Query::filter(make());
            check(repo.find(&q).await.map(|v| format!("{v:?}")), "find");
            check(
                repo.find_one(&q).await.map(|v| format!("{v:?}")),
                "find_one",
            );
            check(repo.count(&f).await.map(|v| v.to_string()), "count");
            check(repo.exists(&f).await.map(|v| v.to_string()), "exists");
            check(
                repo.page(&q, None).await.map(|p| format!("{:?}", p.items)),
                "page",
            );
            let first = repo.stream(&q).next().await;
            check(
                first
                    .map(|r| r.map(|p| format!("{p:?}")))
                    .unwrap_or_else(|| Ok("empty stream".into())),
                "stream",
            );
            check(
                repo.delete_many(&f).await.map(|v| v.to_string()),
                "delete_many",
            );
        }
        // Exactly at the limits works.
        let depth = limits.max_depth - 1;
        let at = not_chain(depth);
        let expected: Vec<i64> = if depth % 2 == 0 {
            vec![1]
        } else {
            vec![2, 3, 4, 5]
        };
        assert_eq!(
            find_ids(&*repo, at).await,
            expected,
            "not chain at max_depth"
        );
        assert_eq!(
            find_ids(&*repo, Person::ID.is_in(-1_000..=0).or(Person::ID.eq(4))).await,
            vec![4]
        );
        assert_eq!(
            repo.count(&Person::ID.ne(0)).await.unwrap(),
            5,
            "rows untouched"
        );
    });
    if let Err(e) = worker.await {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `in` / `not_in` with 100,000 values (one list parameter, not one bind
/// each), on a column and on a nested JSON path.
pub async fn filter_in_with_100000_values<B: Backend>(b: &B) {
    // Two 100,000-value lists (a column, a nested path); the other checks
    // use 1,000 values, which keeps the case quick on slow test servers.
    let repo = people(b, 30).await;
    let many: Vec<i64> = (0..100_000).map(|i| i * 3).collect();
    let expected: Vec<i64> = (1..=30).filter(|i| i % 3 == 0).collect();
    assert_eq!(find_ids(&repo, Person::ID.is_in(many)).await, expected);
    let some: Vec<i64> = (0..1_000).map(|i| i * 3).collect();
    assert_eq!(
        find_ids(&repo, Person::ID.not_in(some.clone())).await,
        (1..=30).filter(|i| i % 3 != 0).collect::<Vec<_>>()
    );
    assert_eq!(repo.count(&Person::ID.is_in(some)).await.unwrap(), 10);
    let emails: Vec<String> = (0..1_000)
        .map(|i| format!("p{}@example.com", i * 7))
        .collect();
    assert_eq!(
        find_ids(&repo, Person::EMAIL.is_in(emails)).await,
        vec![7, 14, 21, 28]
    );
    if repo.capabilities().nested_paths {
        let level = Person::PROFILE.nested::<i64>("level");
        assert_eq!(
            find_ids(&repo, level.is_in((2..100_002).collect::<Vec<i64>>())).await,
            (1..=30).filter(|i| i % 4 >= 2).collect::<Vec<_>>()
        );
        assert_eq!(
            find_ids(&repo, level.not_in((2..1_002).collect::<Vec<i64>>())).await,
            (1..=30).filter(|i| i % 4 < 2).collect::<Vec<_>>()
        );
        let cities: Vec<String> = (0..999)
            .map(|i| format!("city {i}"))
            .chain(["Oslo".into()])
            .collect();
        assert_eq!(
            find_ids(
                &repo,
                Person::PROFILE.nested::<String>("city").is_in(cities)
            )
            .await
            .len(),
            30
        );
        // Kinds never mix: the number 1 is not `true`, nor the string "1".
        assert_eq!(
            find_ids(
                &repo,
                Filter::field("profile.level")
                    .is_in([crate::Value::Bool(true), crate::Value::String("1".into())])
            )
            .await,
            Vec::<i64>::new()
        );
    }
}

/// IEEE equality: `-0.0` equals `0.0` in every comparison and sorts as one value.
pub async fn filter_signed_zero_is_zero<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let scores = [-0.0, 0.0, 1.0, -1.0, -0.0, 0.5];
    let rows: Vec<Person> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| Person {
            score: *s,
            ..person(i as i64 + 1)
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    for zero in [0.0, -0.0] {
        assert_eq!(
            find_ids(&repo, Person::SCORE.eq(zero)).await,
            vec![1, 2, 5],
            "eq {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.ne(zero)).await,
            vec![3, 4, 6],
            "ne {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.lt(zero)).await,
            vec![4],
            "lt {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.lte(zero)).await,
            vec![1, 2, 4, 5],
            "lte {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.gt(zero)).await,
            vec![3, 6],
            "gt {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.gte(zero)).await,
            vec![1, 2, 3, 5, 6],
            "gte {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.is_in([zero])).await,
            vec![1, 2, 5],
            "in {zero:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::SCORE.not_in([zero, 1.0])).await,
            vec![4, 6],
            "not_in {zero:?}"
        );
    }
    for dir in [false, true] {
        let key = if dir {
            Person::SCORE.desc()
        } else {
            Person::SCORE.asc()
        };
        let sorted = ids(&repo.find(&Query::all().sort(key.clone())).await.unwrap());
        let expected = if dir {
            vec![3, 6, 1, 2, 5, 4]
        } else {
            vec![4, 1, 2, 5, 6, 3]
        };
        assert_eq!(sorted, expected, "zeros tie, broken by id (desc = {dir})");
        // Keyset pages of 2 across the tie.
        let mut walked = Vec::new();
        let mut cursor = None;
        loop {
            let page = repo
                .page(&Query::all().sort(key.clone()).limit(2), cursor.as_ref())
                .await
                .unwrap();
            walked.extend(ids(&page.items));
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(walked, expected, "keyset walk across zeros (desc = {dir})");
    }
}

pub async fn values_are_never_operators<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let hostile = [
        "'; DROP TABLE conf_people; --",
        "{\"$gt\": \"\"}",
        "$where",
        "$ne",
        "1 OR 1=1",
        "\\",
        "%",
        "_",
        ".*",
        "Robert'); DELETE FROM x;--",
    ];
    let rows: Vec<Person> = hostile
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut p = person(i as i64 + 1);
            p.name = h.to_string();
            p.email = format!("{h}@{i}");
            p.tags = vec![h.to_string()];
            p.profile.city = h.to_string();
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    for (i, h) in hostile.iter().enumerate() {
        let id = i as i64 + 1;
        assert_eq!(
            find_ids(&repo, Person::NAME.eq(*h)).await,
            vec![id],
            "eq {h:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::NAME.starts_with(h)).await,
            expect_ids(&rows, |p| p.name.starts_with(h)),
            "starts_with {h:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::NAME.contains(h)).await,
            expect_ids(&rows, |p| p.name.contains(h)),
            "contains {h:?}"
        );
        assert_eq!(
            find_ids(&repo, Person::TAGS.has(*h)).await,
            vec![id],
            "has {h:?}"
        );
        if repo.capabilities().nested_paths {
            assert_eq!(
                find_ids(&repo, Person::PROFILE.nested::<String>("city").eq(*h)).await,
                vec![id],
                "nested {h:?}"
            );
        }
    }
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        hostile.len() as u64,
        "table intact"
    );
}
