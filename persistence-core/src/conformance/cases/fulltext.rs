//! Full-text search (`find_text`, `search_text(..)`, `Filter::matches_text`)
//! over the corpus of [`crate::conformance::corpus`]: the same match sets
//! as the word rules of [`crate::text`] (the substring rules where
//! `native_text_search` is off), the clear winners first, composition
//! with other filters, hostile search strings inert, writes seen, bad
//! input refused.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::corpus::*;
use crate::conformance::entities::Person;
use crate::entity::{Entity, TextLanguage};
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::Repository;
use crate::text::{Document, MAX_LIMIT, ParsedQuery, TextQuery, TextSearchExt};

async fn corpus<B: Backend>(b: &B) -> (B::Repo<Article>, Vec<Article>) {
    let repo = b.repo::<Article>().await;
    let all = articles();
    repo.insert_many(&all).await.unwrap();
    (repo, all)
}

/// The reference answer: `(id, score)` of the matching articles, best
/// first, ties by id, by the word rules (`native`) or the substring rules.
fn reference(all: &[Article], q: &str, native: bool) -> Vec<(i64, f64)> {
    let p = ParsedQuery::parse(TextLanguage::English, q).unwrap();
    let mut hits: Vec<(i64, f64)> = all
        .iter()
        .filter_map(|a| {
            let body = a.body.as_deref().unwrap_or("");
            if native {
                let d = Document::new(TextLanguage::English, [a.title.as_str(), body]);
                p.matches(&d).then(|| (a.id, p.score(&d)))
            } else {
                let t = format!("{} {body}", a.title);
                p.matches_substring(&t)
                    .then(|| (a.id, p.score_substring(&t)))
            }
        })
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits
}

fn ids<E: Entity>(rows: &[(E, f64)], id: impl Fn(&E) -> i64) -> BTreeSet<i64> {
    rows.iter().map(|(e, _)| id(e)).collect()
}

fn set(want: &[(i64, f64)]) -> BTreeSet<i64> {
    want.iter().map(|(i, _)| *i).collect()
}

/// Hits in descending score order, the expected set, and the clear
/// winner (scoring at least twice the runner-up) first.
fn check(hits: &[(Article, f64)], want: &[(i64, f64)], what: &str) {
    assert_eq!(ids(hits, |a| a.id), set(want), "{what}: match set");
    assert!(
        hits.windows(2).all(|w| w[0].1 >= w[1].1),
        "{what}: scores descend: {:?}",
        hits.iter().map(|(a, s)| (a.id, *s)).collect::<Vec<_>>()
    );
    if let [(top, s1), rest @ ..] = want {
        let clear = rest.first().is_none_or(|(_, s2)| *s1 >= 2.0 * s2);
        if clear {
            assert_eq!(hits[0].0.id, *top, "{what}: the clear winner first");
        }
    }
}

/// The 30 corpus queries give the reference's match sets and clear
/// winners, through `search_text` and through `find` with `matches_text`.
/// Needs: native_text_search
pub async fn text_search_matches_the_reference_on_30_queries<B: Backend>(b: &B) {
    let (repo, all) = corpus(b).await;
    for q in QUERIES {
        let want = reference(&all, q, true);
        let hits = repo.search_text(q).limit(100).await.unwrap();
        check(&hits, &want, q);
        let rows = repo
            .find(&Query::filter(Filter::matches_text(q)))
            .await
            .unwrap();
        let got: BTreeSet<i64> = rows.iter().map(|a| a.id).collect();
        assert_eq!(got, set(&want), "{q}: find(matches_text)");
    }
    // A few answers written out, so the reference itself is checked.
    for (q, want) in [
        ("database", vec![1, 4]),
        ("tomatoes", vec![8, 9, 11]),
        ("run", vec![21, 25]),
        ("\"in the rain\"", vec![23]),
        ("the", vec![]),
    ] {
        let hits = repo.search_text(q).await.unwrap();
        assert_eq!(ids(&hits, |a| a.id), want.into_iter().collect(), "{q}");
    }
}

/// Words, phrases, `or` and `-` whose answers are the same under the word
/// and the substring rules: every backend gives them.
pub async fn text_search_finds_words_and_phrases<B: Backend>(b: &B) {
    let (repo, all) = corpus(b).await;
    let native = B::capabilities().native_text_search;
    for (q, want) in [
        ("garlic bread", vec![9]),
        ("\"text search\"", vec![1, 2]),
        ("jazz or piano", vec![26, 29]),
        ("bread -garlic", vec![6]),
        ("PostgreSQL", vec![1]),
        ("the of and", vec![]),
    ] {
        let hits = repo.search_text(q).await.unwrap();
        let want: BTreeSet<i64> = want.into_iter().collect();
        assert_eq!(ids(&hits, |a| a.id), want, "{q}");
        assert_eq!(set(&reference(&all, q, native)), want, "{q}: reference");
    }
}

/// The best match first, `limit` cuts the answer.
pub async fn text_search_orders_by_relevance<B: Backend>(b: &B) {
    let (repo, all) = corpus(b).await;
    let native = B::capabilities().native_text_search;
    for (q, top) in [("tomatoes", 11), ("songs", 28)] {
        let hits = repo.search_text(q).await.unwrap();
        check(&hits, &reference(&all, q, native), q);
        assert_eq!(hits[0].0.id, top, "{q}");
        let one = repo.search_text(q).limit(1).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0.id, top, "{q} limit 1");
    }
}

/// `matches_text` is a filter like any other: under `and`, `or`, `not`,
/// in `count`, and as `search_text`'s pre-filter.
pub async fn text_search_composes_with_filters<B: Backend>(b: &B) {
    let (repo, _) = corpus(b).await;
    let find = |f: Filter| {
        let repo = &repo;
        async move {
            let rows = repo.find(&Query::filter(f)).await.unwrap();
            rows.iter().map(|a| a.id).collect::<BTreeSet<i64>>()
        }
    };
    let topic = |t: &str| Filter::field("topic").eq(t);
    assert_eq!(
        find(Filter::matches_text("tomatoes").and(topic("garden"))).await,
        [11].into()
    );
    assert_eq!(
        find(Filter::matches_text("garlic").not().and(topic("cooking"))).await,
        [6, 8, 10].into()
    );
    assert_eq!(
        find(Filter::matches_text("jazz").or(Filter::matches_text("piano"))).await,
        [26, 29].into()
    );
    assert_eq!(
        find(Filter::matches_text("garden").or(Filter::field("id").eq(1))).await,
        [1, 13, 14, 15].into()
    );
    assert_eq!(
        repo.count(&Filter::matches_text("bread or soup"))
            .await
            .unwrap(),
        2
    );
    let hits = repo
        .search_text("bread or pasta or garlic")
        .filter(topic("cooking").and(Filter::field("id").ne(9)))
        .await
        .unwrap();
    assert_eq!(ids(&hits, |a| a.id), [6, 7].into());
}

/// Strings that look like SQL, FTS5, regex or MongoDB injections are just
/// words: answered like the reference, and the table is intact.
pub async fn text_search_hostile_strings_are_inert<B: Backend>(b: &B) {
    let (repo, all) = corpus(b).await;
    let native = B::capabilities().native_text_search;
    for q in HOSTILE {
        let want = reference(&all, q, native);
        let hits = repo.search_text(q).await.unwrap();
        assert_eq!(ids(&hits, |a| a.id), set(&want), "{q:?}");
        let rows = repo
            .find(&Query::filter(Filter::matches_text(q)))
            .await
            .unwrap();
        assert_eq!(rows.len(), want.len(), "{q:?}: find");
    }
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 30);
    assert_eq!(repo.get(&1).await.unwrap().unwrap(), all[0]);
}

/// Inserts, updates and deletes are searchable at once.
pub async fn text_search_sees_writes<B: Backend>(b: &B) {
    let (repo, _) = corpus(b).await;
    let found = |q: &'static str| {
        let repo = &repo;
        async move {
            let hits = repo.search_text(q).await.unwrap();
            hits.iter().map(|(a, _)| a.id).collect::<Vec<i64>>()
        }
    };
    assert!(found("sourdough").await.is_empty());
    let mut a = Article {
        id: 31,
        topic: "cooking".into(),
        title: "Sourdough starter".into(),
        body: None,
    };
    repo.insert(&a).await.unwrap();
    assert_eq!(found("sourdough").await, [31]);
    a.title = "Rye starter".into();
    a.body = Some("Feed it flour".into());
    repo.update(&a).await.unwrap();
    assert!(found("sourdough").await.is_empty());
    assert_eq!(found("rye flour").await, [31]);
    repo.delete(&31).await.unwrap();
    assert!(found("rye").await.is_empty());
}

/// No text-search field, a bad limit, an over-long string: `InvalidInput`.
pub async fn text_search_bad_input_is_invalid_input<B: Backend>(b: &B) {
    let (repo, _) = corpus(b).await;
    assert_invalid(repo.search_text("x").limit(0).await, "limit 0");
    assert_invalid(
        repo.search_text("x").limit(MAX_LIMIT + 1).await,
        "limit too large",
    );
    let long = "word ".repeat(300);
    assert_invalid(repo.search_text(&long).await, "too long");
    assert_invalid(
        repo.find(&Query::filter(Filter::matches_text(long.as_str())))
            .await,
        "too long filter",
    );
    let people = b.repo::<Person>().await;
    assert_invalid(
        people.find_text(&TextQuery::new("x")).await,
        "no text field",
    );
    assert_invalid(
        people.find(&Query::filter(Filter::matches_text("x"))).await,
        "no text field filter",
    );
}

/// Language `simple`: stop words kept, no stemming.
/// Needs: native_text_search
pub async fn text_search_simple_language_keeps_words<B: Backend>(b: &B) {
    let repo = b.repo::<Jotting>().await;
    let rows = [(1, "The running dogs"), (2, "run dog run"), (3, "the end")];
    for (id, text) in rows {
        repo.insert(&Jotting {
            id,
            text: text.into(),
        })
        .await
        .unwrap();
    }
    for (q, want) in [
        ("run", vec![2]),
        ("running", vec![1]),
        ("the", vec![1, 3]),
        ("dog or dogs", vec![1, 2]),
    ] {
        let hits = repo.search_text(q).await.unwrap();
        assert_eq!(ids(&hits, |j| j.id), want.into_iter().collect(), "{q}");
    }
    let hits = repo.search_text("run").await.unwrap();
    assert_eq!(hits[0].0.id, 2);
}
