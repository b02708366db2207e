//! Projections (`select`, `select_as`) and distinct values (`distinct`,
//! `distinct_of`): only the asked fields, values equal to the full
//! entity's, unknown fields refused, distinct ascending with null last.
#![allow(clippy::unwrap_used, missing_docs)]

use serde::Deserialize;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::entity::Entity;
use crate::filter::{Filter, StringField};
use crate::query::Query;
use crate::repository::Repository;
use crate::select::{SelectExt, sort_distinct};
use crate::value::{Record, Value};

/// What `select(query, fields)` must return, computed from `find(query)`.
fn projected(rows: &[Person], fields: &[&str]) -> Vec<Value> {
    let meta = Person::meta();
    rows.iter()
        .map(|p| {
            let r = Record::from_entity(p).unwrap();
            Value::Object(
                fields
                    .iter()
                    .map(|f| {
                        let (i, _) = meta.field(f).unwrap();
                        ((*f).to_string(), r.get(i).clone())
                    })
                    .collect(),
            )
        })
        .collect()
}

/// `select` returns exactly the asked fields of every row, in the query's
/// order, each value equal to the full entity's.
pub async fn select_returns_only_asked_fields<B: Backend>(b: &B) {
    let (repo, _) = population(b).await;
    let fields = ["city", "id", "created", "profile", "tags", "score", "age"];
    let q = Query::all();
    let full = repo.find(&q).await.unwrap();
    let rows = repo.select(&q, &fields).await.unwrap();
    assert_eq!(rows.len(), full.len());
    for row in &rows {
        let Value::Object(o) = row else {
            panic!("a projected row is an object, got {row:?}")
        };
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "only the asked fields");
    }
    assert_eq!(rows, projected(&full, &fields), "values equal the entity's");
    let one = repo.select(&q, &["name", "name"]).await.unwrap();
    assert_eq!(one, projected(&full, &["name"]), "a repeated field once");
}

/// `select` applies the query's filter, sort, offset and limit exactly as `find`.
pub async fn select_with_filter_sort_and_limit<B: Backend>(b: &B) {
    let (repo, _) = population(b).await;
    let queries = [
        Query::filter(Person::AGE.gte(3))
            .sort(Person::NAME.desc())
            .limit(4)
            .offset(1),
        Query::filter(Person::CITY.eq_ignore_case("OSLO")).sort(Person::AGE.asc()),
        Query::filter(Person::NAME.starts_with("zz")),
        Query::all().limit(0),
        Query::all().sort(Person::SCORE.desc()).offset(10),
    ];
    for q in &queries {
        let full = repo.find(q).await.unwrap();
        let rows = repo.select(q, &["id", "name", "age"]).await.unwrap();
        assert_eq!(rows, projected(&full, &["id", "name", "age"]), "{q:?}");
    }
}

/// An unknown field, a nested path or no field at all is `InvalidInput`,
/// also when the query matches nothing.
pub async fn select_unknown_field_is_invalid_input<B: Backend>(b: &B) {
    let (repo, _) = population(b).await;
    for fields in [
        &["nope"][..],
        &["name", "nope"][..],
        &["profile.city"][..],
        &["Name"][..],
        &[][..],
    ] {
        assert_invalid(
            repo.select(&Query::all(), fields).await,
            &format!("select {fields:?}"),
        );
        assert_invalid(
            repo.select(&Query::filter(Filter::none()), fields).await,
            &format!("select {fields:?} matching nothing"),
        );
    }
    assert_invalid(
        repo.select(&Query::filter(Filter::field("nope").eq(1)), &["name"])
            .await,
        "select with an unknown filter field",
    );
}

#[derive(Debug, PartialEq, Deserialize)]
struct NameAge {
    id: i64,
    name: String,
    age: Option<i32>,
    profile: Profile,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct WithUnknown {
    id: i64,
    nickname: String,
}

/// `select_as::<P>` reads the fields of `P` and decodes each row into it.
pub async fn select_as_decodes_into_a_struct<B: Backend>(b: &B) {
    let (repo, _) = population(b).await;
    let q = Query::filter(Person::AGE.is_not_null()).sort(Person::NAME.asc());
    let full = repo.find(&q).await.unwrap();
    let got: Vec<NameAge> = repo.select_as(&q).await.unwrap();
    let want: Vec<NameAge> = full
        .into_iter()
        .map(|p| NameAge {
            id: p.id,
            name: p.name,
            age: p.age,
            profile: p.profile,
        })
        .collect();
    assert_eq!(got, want);
    assert_invalid(
        repo.select_as::<WithUnknown>(&Query::all()).await,
        "select_as with a field the entity lacks",
    );
}

/// Distinct values ascending (code-point order for strings), null last.
pub async fn distinct_with_nulls<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let meta = Person::meta();
    for field in ["city", "age", "name", "score", "created"] {
        let (i, _) = meta.field(field).unwrap();
        let mut want: Vec<Value> = all
            .iter()
            .map(|p| Record::from_entity(p).unwrap().get(i).clone())
            .collect();
        sort_distinct(&mut want);
        let got = repo.distinct(field, &Filter::all()).await.unwrap();
        if field == "created" {
            // Timestamps come back at the backend's precision.
            assert_eq!(got.len(), want.len(), "distinct {field}");
        } else {
            assert_eq!(got, want, "distinct {field}");
        }
    }
    let cities = repo
        .distinct_of(&Person::CITY, &Filter::all())
        .await
        .unwrap();
    assert_eq!(
        cities,
        vec![
            Some("Lima".to_string()),
            Some("Oslo".to_string()),
            Some("Pune".to_string()),
            None
        ]
    );
    let names = repo
        .distinct_of(&Person::NAME, &Filter::all())
        .await
        .unwrap();
    assert_eq!(names, ["Bob", "Dave", "alice", "carol", "zoë", "émile"]);
}

/// `distinct` with a filter sees only the matching rows; no match, no values.
pub async fn distinct_with_filter<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let mut want: Vec<Option<i32>> = all
        .iter()
        .filter(|p| p.name.starts_with(['a', 'c', 'é']))
        .map(|p| p.age)
        .collect();
    want.sort_by_key(|a| (a.is_none(), *a));
    want.dedup();
    let got = repo
        .distinct_of(
            &Person::AGE,
            &Person::NAME
                .eq_ignore_case("ALICE")
                .or(Person::NAME.starts_with("c"))
                .or(Person::NAME.starts_with("é")),
        )
        .await
        .unwrap();
    assert_eq!(got, want);
    assert_eq!(
        repo.distinct("city", &Person::AGE.is_null())
            .await
            .unwrap()
            .len(),
        {
            let mut v: Vec<Value> = all
                .iter()
                .filter(|p| p.age.is_none())
                .map(|p| p.city.clone().into())
                .collect();
            sort_distinct(&mut v);
            v.len()
        }
    );
    assert!(
        repo.distinct("name", &Filter::none())
            .await
            .unwrap()
            .is_empty()
    );
}

/// `distinct` on an unknown field, a nested path, an array or JSON field is
/// `InvalidInput`; so is an invalid filter.
pub async fn distinct_unknown_field_is_invalid_input<B: Backend>(b: &B) {
    let (repo, _) = population(b).await;
    for field in ["nope", "profile.city", "tags", "profile", ""] {
        assert_invalid(
            repo.distinct(field, &Filter::all()).await,
            &format!("distinct {field:?}"),
        );
    }
    assert_invalid(
        repo.distinct("name", &Filter::field("nope").eq(1)).await,
        "distinct with an unknown filter field",
    );
}
