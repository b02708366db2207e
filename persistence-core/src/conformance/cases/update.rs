//! Atomic partial updates: `patch` (with guards), `update_where`, the
//! operators and their null, overflow and validation rules (see
//! [`crate::update`]).
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::sync::Arc;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::{ConflictKind, ErrorKind};
use crate::filter::Filter;
use crate::repository::Repository;
use crate::update::{Guard, Update, UpdateOp};
use crate::value::Value;

fn account(id: &str, balance: i64) -> Account {
    Account {
        id: id.to_string(),
        tenant: "t".into(),
        handle: id.to_string(),
        balance,
    }
}

async fn stored<B: Backend>(repo: &B::Repo<Person>, id: i64) -> Person {
    repo.get(&id).await.unwrap().expect("the row exists")
}

pub async fn update_concurrent_inc_is_exact<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Account>().await);
    repo.insert(&account("a", 0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 1..=32_i64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let u = Update::new().inc(Account::BALANCE, i);
                repo.patch(&"a".to_string(), &u, &Guard::none()).await?;
            }
            Ok::<_, crate::Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").unwrap();
    }
    let a = repo.get(&"a".to_string()).await.unwrap().unwrap();
    assert_eq!(
        a.balance,
        3 * (1..=32).sum::<i64>(),
        "no increment was lost"
    );
}

pub async fn update_guarded_decrement_never_below_zero<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Account>().await);
    repo.insert(&account("sku", 50)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let u = Update::new().inc(Account::BALANCE, -3);
            repo.patch(
                &"sku".to_string(),
                &u,
                &Guard::when(Account::BALANCE.gte(3)),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(a) => {
                assert!(a.balance >= 0, "a decrement went below zero: {a:?}");
                ok += 1;
            }
            Err(e) => assert_eq!(
                e.kind(),
                &ErrorKind::Conflict(ConflictKind::Guard),
                "losers fail the guard: {e}"
            ),
        }
    }
    assert_eq!(ok, 16, "exactly floor(50 / 3) decrements succeed");
    let a = repo.get(&"sku".to_string()).await.unwrap().unwrap();
    assert_eq!(a.balance, 2);
}

pub async fn update_patch_bumps_version_once<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    repo.insert(&person(1)).await.unwrap();
    let u = Update::new()
        .inc(Person::AGE, 2)
        .set(Person::NAME, "renamed")
        .push(Person::TAGS, "new");
    let got = repo.patch(&1, &u, &Guard::none()).await.unwrap();
    assert_eq!(got.version, 2, "one patch, one version step");
    assert_eq!(got.age, Some(3));
    assert_eq!(got.name, "renamed");
    assert_eq!(got.tags, vec!["t1".to_string(), "new".to_string()]);
    assert_eq!(
        stored::<B>(&repo, 1).await,
        got,
        "patch returns what get reads"
    );
    let again = repo
        .patch(
            &1,
            &Update::new().inc(Person::SCORE, 1.0),
            &Guard::version(2),
        )
        .await
        .unwrap();
    assert_eq!(again.version, 3);
    assert_eq!(again.score, 1.25);
}

pub async fn update_guard_version_mismatch_changes_nothing<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let before = repo.insert(&person(1)).await.unwrap();
    let u = Update::new().inc(Person::AGE, 1);
    let c = assert_conflict(repo.patch(&1, &u, &Guard::version(7)).await, "stale guard");
    assert!(matches!(c, ConflictKind::Version { .. }), "got {c:?}");
    let both = Guard::when(Person::AGE.gte(0)).and_version(5);
    let c = assert_conflict(repo.patch(&1, &u, &both).await, "stale guard with filter");
    assert!(matches!(c, ConflictKind::Version { .. }), "got {c:?}");
    assert_eq!(stored::<B>(&repo, 1).await, before, "nothing changed");
}

pub async fn update_guard_filter_miss_changes_nothing<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let before = repo.insert(&person(1)).await.unwrap();
    let u = Update::new().inc(Person::AGE, -5);
    let c = assert_conflict(
        repo.patch(&1, &u, &Guard::when(Person::AGE.gte(5))).await,
        "guard filter",
    );
    assert_eq!(c, ConflictKind::Guard);
    let c = assert_conflict(
        repo.patch(&1, &u, &Guard::when(Person::AGE.gte(5)).and_version(1))
            .await,
        "guard filter with the right version",
    );
    assert_eq!(c, ConflictKind::Guard);
    assert_eq!(stored::<B>(&repo, 1).await, before, "nothing changed");
    let ok = repo
        .patch(&1, &u, &Guard::when(Person::AGE.gte(1)).and_version(1))
        .await
        .unwrap();
    assert_eq!((ok.age, ok.version), (Some(-4), 2));
}

pub async fn update_patch_missing_id_is_not_found<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let before = repo.insert(&person(1)).await.unwrap();
    let u = Update::new().inc(Person::AGE, 1);
    for guard in [
        Guard::none(),
        Guard::version(1),
        Guard::when(Person::AGE.gte(0)),
    ] {
        match repo.patch(&2, &u, &guard).await {
            Err(e) => assert_eq!(e.kind(), &ErrorKind::NotFound, "{guard:?}: {e}"),
            Ok(p) => panic!("patch of a missing id returned {p:?}"),
        }
    }
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        1,
        "nothing inserted"
    );
    assert_eq!(stored::<B>(&repo, 1).await, before);
}

pub async fn update_where_counts_matches_and_bumps_versions<B: Backend>(b: &B) {
    let repo = people::<B>(b, 10).await;
    let u = Update::new()
        .inc(Person::SCORE, 10.0)
        .set(Person::CITY, "Rome");
    let n = repo.update_where(&Person::ID.lte(4), &u).await.unwrap();
    assert_eq!(n, 4, "the matched count");
    for id in 1..=10 {
        let p = stored::<B>(&repo, id).await;
        if id <= 4 {
            assert_eq!(p.version, 2, "updated rows get version + 1");
            assert_eq!(p.score, id as f64 / 4.0 + 10.0);
            assert_eq!(p.city.as_deref(), Some("Rome"));
        } else {
            assert_eq!(p.version, 1, "other rows are untouched");
            assert_eq!(p.score, id as f64 / 4.0);
        }
    }
    let none = repo.update_where(&Person::ID.gt(100), &u).await.unwrap();
    assert_eq!(none, 0);
    let all = repo
        .update_where(&Filter::all(), &Update::new().inc(Person::AGE, 1))
        .await
        .unwrap();
    assert_eq!(all, 10);
    assert_eq!(stored::<B>(&repo, 1).await.version, 3);
}

pub async fn update_set_unset_mul_min_max<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    repo.insert(&person(10)).await.unwrap(); // age 10, score 2.5, city Lima
    let u = Update::new()
        .set(Person::EMAIL, "new@example.com")
        .unset(Person::CITY)
        .mul(Person::SCORE, 3.0)
        .min(Person::AGE, 4);
    let p = repo.patch(&10, &u, &Guard::none()).await.unwrap();
    assert_eq!(p.email, "new@example.com");
    assert_eq!(p.city, None);
    assert_eq!(p.score, 7.5);
    assert_eq!(p.age, Some(4), "min takes the smaller");
    let p = repo
        .patch(&10, &Update::new().min(Person::AGE, 9), &Guard::none())
        .await
        .unwrap();
    assert_eq!(p.age, Some(4), "min keeps a smaller stored value");
    let p = repo
        .patch(&10, &Update::new().max(Person::AGE, 30), &Guard::none())
        .await
        .unwrap();
    assert_eq!(p.age, Some(30), "max takes the larger");
    assert_invalid(
        repo.patch(
            &10,
            &Update::new().max(Person::AGE, 3).mul(Person::AGE, 2),
            &Guard::none(),
        )
        .await,
        "two assignments on `age`",
    );
    let p = repo
        .patch(
            &10,
            &Update::new().max(Person::NAME, "zz").mul(Person::AGE, -2),
            &Guard::none(),
        )
        .await
        .unwrap();
    assert_eq!((p.name.as_str(), p.age), ("zz", Some(-60)));
    assert_eq!(stored::<B>(&repo, 10).await, p);
}

pub async fn update_push_and_pull<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut p = person(1);
    p.tags = vec!["a".into(), "b".into(), "a".into(), "c".into()];
    repo.insert(&p).await.unwrap();
    let got = repo
        .patch(&1, &Update::new().pull(Person::TAGS, "a"), &Guard::none())
        .await
        .unwrap();
    assert_eq!(
        got.tags,
        vec!["b".to_string(), "c".to_string()],
        "every equal element goes, order kept"
    );
    let got = repo
        .patch(&1, &Update::new().push(Person::TAGS, "b"), &Guard::none())
        .await
        .unwrap();
    assert_eq!(
        got.tags,
        vec!["b".to_string(), "c".to_string(), "b".to_string()]
    );
    let got = repo
        .patch(&1, &Update::new().pull(Person::TAGS, "zzz"), &Guard::none())
        .await
        .unwrap();
    assert_eq!(
        got.tags.len(),
        3,
        "pulling an absent value changes nothing in the array"
    );
    assert_eq!(got.version, 4);
    let labeled = b.repo::<Labeled>().await;
    labeled
        .insert(&Labeled {
            id: 1,
            labels: Some(vec!["x".into()]),
            codes: Some(vec![1, 2, 1]),
        })
        .await
        .unwrap();
    let got = labeled
        .patch(
            &1,
            &Update::new()
                .pull(Labeled::CODES, 1)
                .push(Labeled::LABELS, "y"),
            &Guard::none(),
        )
        .await
        .unwrap();
    assert_eq!(got.codes, Some(vec![2]));
    assert_eq!(got.labels, Some(vec!["x".to_string(), "y".to_string()]));
    let got = labeled
        .patch(&1, &Update::new().pull(Labeled::CODES, 2), &Guard::none())
        .await
        .unwrap();
    assert_eq!(
        got.codes,
        Some(vec![]),
        "pulling the last element leaves an empty array"
    );
}

pub async fn update_null_rules<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut base = person(1);
    base.age = None;
    for id in 1..=4 {
        base.id = id;
        base.email = format!("n{id}@example.com");
        repo.insert(&base).await.unwrap();
    }
    let cases: [(i64, Update<Person>, Option<i32>); 4] = [
        (1, Update::new().inc(Person::AGE, 5), Some(5)),
        (2, Update::new().mul(Person::AGE, 5), Some(0)),
        (3, Update::new().min(Person::AGE, 7), Some(7)),
        (4, Update::new().max(Person::AGE, -7), Some(-7)),
    ];
    for (id, u, want) in cases {
        let got = repo.patch(&id, &u, &Guard::none()).await.unwrap();
        assert_eq!(got.age, want, "{u:?} on a null age");
        assert_eq!(stored::<B>(&repo, id).await.age, want);
    }
    let labeled = b.repo::<Labeled>().await;
    labeled
        .insert_many(&[
            Labeled {
                id: 1,
                labels: None,
                codes: None,
            },
            Labeled {
                id: 2,
                labels: None,
                codes: None,
            },
        ])
        .await
        .unwrap();
    let got = labeled
        .patch(
            &1,
            &Update::new().push(Labeled::LABELS, "first"),
            &Guard::none(),
        )
        .await
        .unwrap();
    assert_eq!(
        got.labels,
        Some(vec!["first".to_string()]),
        "push on null gives [value]"
    );
    let got = labeled
        .patch(&2, &Update::new().pull(Labeled::CODES, 3), &Guard::none())
        .await
        .unwrap();
    assert_eq!(got.codes, None, "pull on null leaves null");
    assert_eq!(labeled.get(&2).await.unwrap().unwrap().codes, None);
}

pub async fn update_overflow_is_invalid_and_changes_nothing<B: Backend>(b: &B) {
    let accounts = b.repo::<Account>().await;
    accounts
        .insert(&account("big", i64::MAX - 1))
        .await
        .unwrap();
    accounts
        .insert(&account("small", i64::MIN + 1))
        .await
        .unwrap();
    accounts.insert(&account("ok", 1)).await.unwrap();
    let big = "big".to_string();
    assert_invalid(
        accounts
            .patch(
                &big,
                &Update::new().inc(Account::BALANCE, 2),
                &Guard::none(),
            )
            .await,
        "inc past i64::MAX",
    );
    assert_invalid(
        accounts
            .patch(
                &"small".to_string(),
                &Update::new().inc(Account::BALANCE, -2),
                &Guard::none(),
            )
            .await,
        "inc past i64::MIN",
    );
    assert_invalid(
        accounts
            .patch(
                &big,
                &Update::new().mul(Account::BALANCE, 2),
                &Guard::none(),
            )
            .await,
        "mul past i64::MAX",
    );
    assert_invalid(
        accounts
            .update_where(&Filter::all(), &Update::new().inc(Account::BALANCE, 5))
            .await,
        "update_where with one overflowing row",
    );
    let all = accounts.find(&crate::Query::all()).await.unwrap();
    let balances: Vec<i64> = all.iter().map(|a| a.balance).collect();
    assert_eq!(
        balances,
        vec![i64::MAX - 1, 1, i64::MIN + 1],
        "nothing changed"
    );
    let got = accounts
        .patch(
            &big,
            &Update::new().inc(Account::BALANCE, 1),
            &Guard::none(),
        )
        .await
        .unwrap();
    assert_eq!(got.balance, i64::MAX, "up to the limit is fine");

    let people = b.repo::<Person>().await;
    let mut p = person(1);
    p.age = Some(i32::MAX - 1);
    let before = people.insert(&p).await.unwrap();
    assert_invalid(
        people
            .patch(&1, &Update::new().inc(Person::AGE, 2), &Guard::none())
            .await,
        "inc past the i32 column",
    );
    assert_invalid(
        people
            .patch(&1, &Update::new().mul(Person::AGE, -2), &Guard::none())
            .await,
        "mul past the i32 column",
    );
    assert_eq!(stored::<B>(&people, 1).await, before, "nothing changed");
}

pub async fn update_invalid_updates_are_invalid_input<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let before = repo.insert(&person(1)).await.unwrap();
    let bad: Vec<(&str, Update<Person>)> = vec![
        ("empty", Update::new()),
        ("id", Update::new().set(Person::ID, 5)),
        ("version", Update::new().inc(Person::VERSION, 1)),
        (
            "unknown field",
            Update::new().assign("nope", UpdateOp::Set(Value::I64(1))),
        ),
        (
            "unknown nested",
            Update::new().assign("name.x", UpdateOp::Set(Value::I64(1))),
        ),
        (
            "twice",
            Update::new().inc(Person::AGE, 1).set(Person::AGE, 3),
        ),
        (
            "overlapping",
            Update::new()
                .assign("profile.level", UpdateOp::Inc(Value::I64(1)))
                .assign("profile.level.x", UpdateOp::Set(Value::I64(1))),
        ),
        (
            "unset required",
            Update::new().assign("name", UpdateOp::Unset),
        ),
        (
            "set required to null",
            Update::new().assign("email", UpdateOp::Set(Value::Null)),
        ),
        (
            "inc text",
            Update::new().assign("name", UpdateOp::Inc(Value::I64(1))),
        ),
        (
            "push scalar",
            Update::new().assign("name", UpdateOp::Push(Value::from("x"))),
        ),
        (
            "wrong type",
            Update::new().assign("age", UpdateOp::Set(Value::from("old"))),
        ),
        (
            "past i32",
            Update::new().assign("age", UpdateOp::Inc(Value::I64(i64::from(i32::MAX) + 1))),
        ),
    ];
    for (what, u) in bad {
        assert_invalid(repo.patch(&1, &u, &Guard::none()).await, what);
        assert_invalid(repo.update_where(&Filter::all(), &u).await, what);
    }
    assert_eq!(stored::<B>(&repo, 1).await, before, "nothing changed");
}

/// Needs: unique_constraints
pub async fn update_unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = people::<B>(b, 2).await;
    let before = stored::<B>(&repo, 2).await;
    let u = Update::new().set(Person::EMAIL, "p1@example.com");
    let c = assert_conflict(repo.patch(&2, &u, &Guard::none()).await, "duplicate email");
    assert!(matches!(c, ConflictKind::Unique { .. }), "got {c:?}");
    let c = assert_conflict(
        repo.update_where(&Person::ID.eq(2), &u).await,
        "duplicate email by filter",
    );
    assert!(matches!(c, ConflictKind::Unique { .. }), "got {c:?}");
    assert_eq!(stored::<B>(&repo, 2).await, before, "nothing changed");
}

/// Needs: nested_paths
pub async fn update_nested_json_paths<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut p = person(1);
    p.profile.level = 3;
    p.profile.zip = Some("0150".into());
    repo.insert(&p).await.unwrap();
    let u = Update::new()
        .inc(Person::PROFILE.nested::<i64>("level"), 4)
        .set(Person::PROFILE.nested::<String>("city"), "Bergen")
        .unset(Person::PROFILE.nested::<Option<String>>("zip"));
    let got = repo.patch(&1, &u, &Guard::none()).await.unwrap();
    assert_eq!(got.profile.level, 7);
    assert_eq!(got.profile.city, "Bergen");
    assert_eq!(got.profile.zip, None);
    assert_eq!(got.version, 2);
    assert_eq!(stored::<B>(&repo, 1).await, got);
    let n = repo
        .update_where(
            &Person::PROFILE.nested::<i64>("level").gte(7),
            &Update::new()
                .mul(Person::PROFILE.nested::<i64>("level"), 2)
                .max(Person::AGE, 50),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let got = stored::<B>(&repo, 1).await;
    assert_eq!((got.profile.level, got.age, got.version), (14, Some(50), 3));
}
