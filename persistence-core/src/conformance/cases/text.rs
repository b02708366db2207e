//! Case-insensitive and pattern matching: `eq_ignore_case`,
//! `starts_with_ignore_case`, `contains_ignore_case` and escape-safe `like`
//! patterns, with the case-folding rule of [`crate::filter`].
#![allow(clippy::unwrap_used, missing_docs)]

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::filter::{Filter, Pattern, StringField, fold_case};
use crate::query::Query;
use crate::repository::Repository;

/// People with the given names (ids 1..), every other field derived.
async fn named<B: Backend>(b: &B, names: &[&str]) -> (B::Repo<Person>, Vec<Person>) {
    let repo = b.repo::<Person>().await;
    let all: Vec<Person> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = person(i as i64 + 1);
            p.name = (*n).to_string();
            p
        })
        .collect();
    repo.insert_many(&all).await.unwrap();
    (repo, all)
}

/// The names `f` selects, in id order.
async fn names_of<R: Repository<Person>>(repo: &R, all: &[Person], f: Filter) -> Vec<String> {
    let ids = find_ids(repo, f).await;
    ids.iter()
        .map(|id| all.iter().find(|p| p.id == *id).unwrap().name.clone())
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// ASCII letters match across case everywhere; other letters that differ
/// only in ASCII letters' case match too (`Émile`/`ÉMILE`).
pub async fn text_ignore_case_ascii<B: Backend>(b: &B) {
    let (repo, all) = named(
        b,
        &[
            "Alice", "ALICE", "alice", "Alicia", "bob", "Émile", "ÉMILE", "malice",
        ],
    )
    .await;
    assert_eq!(
        names_of(&repo, &all, Person::NAME.eq_ignore_case("aLiCe")).await,
        strs(&["Alice", "ALICE", "alice"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.starts_with_ignore_case("ALI")).await,
        strs(&["Alice", "ALICE", "alice", "Alicia"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.contains_ignore_case("LIC")).await,
        strs(&["Alice", "ALICE", "alice", "Alicia", "malice"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.eq_ignore_case("Émile")).await,
        strs(&["Émile", "ÉMILE"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.eq_ignore_case("alice").not()).await,
        strs(&["Alicia", "bob", "Émile", "ÉMILE", "malice"]),
        "not(eq_ignore_case) is the exact complement"
    );
    assert_eq!(
        repo.count(&Person::NAME.contains_ignore_case("ALIC"))
            .await
            .unwrap(),
        5
    );
    assert!(
        !repo
            .exists(&Person::NAME.eq_ignore_case("ali"))
            .await
            .unwrap(),
        "eq_ignore_case is not a prefix test"
    );
}

/// Non-ASCII letters fold by the Unicode lowercase rule: `É`/`é`, Greek
/// with accents; `ß` stays `ß` (no `ss` expansion).
/// Needs: unicode_case_folding
pub async fn text_ignore_case_unicode<B: Backend>(b: &B) {
    let names = [
        "École",
        "ÉCOLE",
        "école",
        "ecole",
        "ΑΘΉΝΑ",
        "αθήνα",
        "Αθηνα",
        "Straße",
        "STRASSE",
        "STRAßE",
        "ÇA VA",
        "ça va",
    ];
    let (repo, all) = named(b, &names).await;
    let reference = |needle: &str| -> Vec<String> {
        let n = fold_case(needle);
        names
            .iter()
            .filter(|x| fold_case(x) == n)
            .map(|x| (*x).to_string())
            .collect()
    };
    for needle in ["école", "ÉCOLE", "Αθήνα", "straße", "STRASSE", "ça VA"] {
        let got = names_of(&repo, &all, Person::NAME.eq_ignore_case(needle)).await;
        assert_eq!(got, reference(needle), "eq_ignore_case({needle:?})");
    }
    assert_eq!(
        names_of(&repo, &all, Person::NAME.eq_ignore_case("straße")).await,
        strs(&["Straße", "STRAßE"]),
        "ß is its own lowercase: STRASSE does not match"
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.starts_with_ignore_case("éC")).await,
        strs(&["École", "ÉCOLE", "école"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.contains_ignore_case("θή")).await,
        strs(&["ΑΘΉΝΑ", "αθήνα"]),
        "ή and η are different letters"
    );
    assert_eq!(
        names_of(
            &repo,
            &all,
            Person::NAME.like(Pattern::new().literal("Ç").one().any().ignore_case())
        )
        .await,
        strs(&["ÇA VA", "ça va"])
    );
}

/// `%`, `_`, `\` and other pattern or regex characters in literal text
/// match only themselves, in every operator.
pub async fn text_pattern_metacharacters_are_literal<B: Backend>(b: &B) {
    let names = [
        "100%", "100x", "1000", "a_b", "axb", "a\\b", "a\\\\b", "x*y", "xzy", "x.y", "[ab]", "a",
        "b", "^(x)$", "c?", "co",
    ];
    let (repo, all) = named(b, &names).await;
    let lit = |s: &str| Person::NAME.like(Pattern::new().literal(s));
    for s in names {
        assert_eq!(
            names_of(&repo, &all, lit(s)).await,
            strs(&[s]),
            "like(literal({s:?})) matches only itself"
        );
        assert_eq!(
            names_of(&repo, &all, Person::NAME.eq_ignore_case(s)).await,
            strs(&[s]),
            "eq_ignore_case({s:?}) matches only itself"
        );
    }
    assert_eq!(
        names_of(&repo, &all, Person::NAME.contains_ignore_case("%")).await,
        strs(&["100%"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.contains_ignore_case("_")).await,
        strs(&["a_b"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.contains_ignore_case("\\")).await,
        strs(&["a\\b", "a\\\\b"])
    );
    assert_eq!(
        names_of(&repo, &all, Person::NAME.starts_with_ignore_case("[")).await,
        strs(&["[ab]"])
    );
    assert_eq!(
        names_of(
            &repo,
            &all,
            Person::NAME.like(Pattern::new().literal("x").one().literal("y"))
        )
        .await,
        strs(&["x*y", "xzy", "x.y"]),
        "one() is a wildcard, a literal `*`/`.` is not"
    );
    assert_eq!(
        names_of(
            &repo,
            &all,
            Person::NAME.like(Pattern::new().literal("100").one())
        )
        .await,
        strs(&["100%", "100x", "1000"])
    );
}

/// `any()` and `one()` wildcards, case-sensitive and ignoring case; the
/// whole value must match; `one()` is one code point.
pub async fn text_like_wildcards<B: Backend>(b: &B) {
    let names = [
        "cat", "cart", "coat", "ct", "Cat", "scat", "c\nt", "cét", "",
    ];
    let (repo, all) = named(b, &names).await;
    let like = |p: Pattern| Person::NAME.like(p);
    assert_eq!(
        names_of(
            &repo,
            &all,
            like(Pattern::new().literal("c").one().literal("t"))
        )
        .await,
        strs(&["cat", "c\nt", "cét"])
    );
    assert_eq!(
        names_of(
            &repo,
            &all,
            like(Pattern::new().literal("c").any().literal("t"))
        )
        .await,
        strs(&["cat", "cart", "coat", "ct", "c\nt", "cét"])
    );
    assert_eq!(
        names_of(
            &repo,
            &all,
            like(Pattern::new().literal("c").any().literal("t").ignore_case())
        )
        .await,
        strs(&["cat", "cart", "coat", "ct", "Cat", "c\nt", "cét"])
    );
    assert_eq!(
        names_of(&repo, &all, like(Pattern::new().any().literal("at"))).await,
        strs(&["cat", "coat", "Cat", "scat"])
    );
    assert_eq!(
        names_of(&repo, &all, like(Pattern::new().literal("ca"))).await,
        Vec::<String>::new(),
        "a pattern matches the whole value"
    );
    assert_eq!(
        names_of(&repo, &all, like(Pattern::new())).await,
        strs(&[""]),
        "the empty pattern matches the empty string only"
    );
    assert_eq!(
        names_of(&repo, &all, like(Pattern::new().any())).await,
        strs(&names),
    );
    assert_eq!(
        names_of(&repo, &all, like(Pattern::new().one().one())).await,
        strs(&["ct"]),
    );
    assert_eq!(
        names_of(
            &repo,
            &all,
            like(Pattern::new().literal("c").one().one().literal("t")).not()
        )
        .await,
        strs(&["cat", "ct", "Cat", "scat", "c\nt", "cét", ""]),
    );
}

/// Ignore-case operators and patterns never match null; their negations do.
pub async fn text_ignore_case_on_nullable_fields<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let cities = [
        Some("Oslo"),
        Some("OSLO"),
        None,
        Some("oslofjord"),
        None,
        Some("Lima"),
    ];
    let all: Vec<Person> = cities
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut p = person(i as i64 + 1);
            p.city = c.map(str::to_string);
            p
        })
        .collect();
    repo.insert_many(&all).await.unwrap();
    let check = |f: Filter, want: &'static [i64]| {
        let repo = &repo;
        async move {
            assert_eq!(find_ids(repo, f.clone()).await, want.to_vec(), "{f:?}");
        }
    };
    check(Person::CITY.eq_ignore_case("oslo"), &[1, 2]).await;
    check(Person::CITY.eq_ignore_case("oslo").not(), &[3, 4, 5, 6]).await;
    check(Person::CITY.starts_with_ignore_case("OSLO"), &[1, 2, 4]).await;
    check(Person::CITY.contains_ignore_case("").not(), &[3, 5]).await;
    check(Person::CITY.like(Pattern::new().any()), &[1, 2, 4, 6]).await;
    check(Person::CITY.like(Pattern::new().any()).not(), &[3, 5]).await;
    check(
        Person::CITY
            .eq_ignore_case("lima")
            .or(Person::CITY.is_null()),
        &[3, 5, 6],
    )
    .await;
    check(Filter::field("city").contains_ignore_case("FJORD"), &[4]).await;
}

/// Ignore-case and `like` on a string inside a JSON field.
/// Needs: nested_paths
pub async fn text_ignore_case_nested_path<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let all: Vec<Person> = ["Oslo", "OSLO", "Bergen", "oslo-øst"]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut p = person(i as i64 + 1);
            p.profile.city = (*c).to_string();
            p.profile.zip = (i % 2 == 0).then(|| format!("Z{i}"));
            p
        })
        .collect();
    repo.insert_many(&all).await.unwrap();
    let city = Person::PROFILE.nested::<String>("city");
    assert_eq!(
        find_ids(&repo, city.eq_ignore_case("oslo")).await,
        vec![1, 2]
    );
    assert_eq!(
        find_ids(&repo, city.starts_with_ignore_case("OSLO")).await,
        vec![1, 2, 4]
    );
    let zip = Person::PROFILE.nested::<Option<String>>("zip");
    assert_eq!(find_ids(&repo, zip.eq_ignore_case("z0")).await, vec![1]);
    assert_eq!(
        find_ids(&repo, zip.like(Pattern::new().literal("Z").one())).await,
        vec![1, 3]
    );
    assert_eq!(
        find_ids(&repo, zip.like(Pattern::new().any()).not()).await,
        vec![2, 4],
        "absent/null nested values match only the negation"
    );
}

/// `like` and the ignore-case operators need a string field; unknown fields
/// are `InvalidInput`; the checks apply to every read and `delete_many`.
pub async fn text_operators_need_string_fields<B: Backend>(b: &B) {
    let (repo, _) = named(b, &["Ann", "ann", "Bo"]).await;
    assert_invalid(
        repo.find(&Query::filter(Filter::field("age").eq_ignore_case("1")))
            .await,
        "eq_ignore_case on an integer field",
    );
    assert_invalid(
        repo.count(&Filter::field("score").like(Pattern::new().any()))
            .await,
        "like on a float field",
    );
    assert_invalid(
        repo.find(&Query::filter(
            Filter::field("nope").contains_ignore_case("a"),
        ))
        .await,
        "unknown field",
    );
    assert_invalid(
        repo.delete_many(&Filter::field("tags").starts_with_ignore_case("a"))
            .await,
        "array field",
    );
    assert_eq!(
        repo.delete_many(&Person::NAME.eq_ignore_case("ANN"))
            .await
            .unwrap(),
        2
    );
    let left: Vec<String> = repo
        .find(&Query::all())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(left, strs(&["Bo"]));
}
