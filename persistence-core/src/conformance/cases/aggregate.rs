//! Aggregations (`Repository::aggregate`, `AggregateExt::aggregate_as`):
//! grouping, the null and empty-group rules, result types, `having`, sort
//! and limit, and the checks on a grouping (see [`crate::aggregate`]).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::support::*;
use crate::Entity;
use crate::aggregate::{AggFn, Aggregate, GroupBy};
use crate::conformance::Backend;
use crate::conformance::entities::ts;
use crate::filter::Filter;
use crate::repository::Repository;
use crate::value::Value;

/// A sale: the entity the aggregation cases group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_sales")]
pub struct Sale {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// Region (a nullable group key).
    pub region: Option<String>,
    /// Product name.
    pub product: String,
    /// Quantity (an `i32`).
    pub qty: i32,
    /// Amount, often missing.
    pub amount: Option<i64>,
    /// Unit price.
    pub price: f64,
    /// When.
    pub at: DateTime<Utc>,
}

fn sale(id: i64, region: Option<&str>, product: &str, qty: i32, amount: Option<i64>) -> Sale {
    let price = [1.5, 2.25, 0.5, 1.25, 4.0, 0.75, 3.5, 1.0][(id as usize - 1) % 8];
    let at = [10, 20, 5, 30, 1, 40, 2, 15][(id as usize - 1) % 8];
    Sale {
        id,
        region: region.map(str::to_string),
        product: product.to_string(),
        qty,
        amount,
        price,
        at: ts(at),
    }
}

/// Eight sales in regions N (3), S (2), E (1, no amount) and none (2).
fn sales() -> Vec<Sale> {
    vec![
        sale(1, Some("N"), "apple", 2, Some(10)),
        sale(2, Some("N"), "pear", 1, Some(20)),
        sale(3, Some("N"), "fig", 5, None),
        sale(4, Some("S"), "apple", 3, Some(7)),
        sale(5, Some("S"), "kiwi", 1, None),
        sale(6, None, "zucchini", 4, Some(100)),
        sale(7, None, "banana", 2, None),
        sale(8, Some("E"), "cherry", 7, None),
    ]
}

pub(super) async fn stocked<B: Backend>(b: &B) -> B::Repo<Sale> {
    let repo = b.repo::<Sale>().await;
    let all = sales();
    assert_eq!(repo.insert_many(&all).await.unwrap(), all.len() as u64);
    repo
}

fn row(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The values of one column of the rows.
fn column(rows: Vec<Value>, name: &str) -> Vec<Value> {
    rows.into_iter()
        .map(|r| match r {
            Value::Object(mut o) => o.remove(name).unwrap_or_else(|| panic!("no {name}")),
            other => panic!("row is not an object: {other:?}"),
        })
        .collect()
}

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

async fn run<B: Backend>(repo: &B::Repo<Sale>, filter: &Filter, g: &GroupBy<Sale>) -> Vec<Value> {
    repo.aggregate(filter, g)
        .await
        .unwrap_or_else(|e| panic!("aggregate {g:?}: {e}"))
}

pub async fn aggregate_count_sum_avg_min_max_per_group<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let g = GroupBy::new()
        .key(Sale::REGION)
        .count()
        .sum(Sale::QTY)
        .sum(Sale::AMOUNT)
        .avg(Sale::AMOUNT)
        .min(Sale::QTY)
        .max(Sale::AMOUNT);
    let got = run::<B>(&repo, &Filter::all(), &g).await;
    let r = |region: Value, n: i64, qty: i64, amt: Value, avg: Value, min_q: i64, max_a: Value| {
        row(&[
            ("region", region),
            ("count", Value::I64(n)),
            ("sum_qty", Value::I64(qty)),
            ("sum_amount", amt),
            ("avg_amount", avg),
            ("min_qty", Value::I64(min_q)),
            ("max_amount", max_a),
        ])
    };
    let expected = vec![
        r(
            Value::Null,
            2,
            6,
            Value::I64(100),
            Value::F64(100.0),
            2,
            Value::I64(100),
        ),
        r(s("E"), 1, 7, Value::Null, Value::Null, 7, Value::Null),
        r(
            s("N"),
            3,
            8,
            Value::I64(30),
            Value::F64(15.0),
            1,
            Value::I64(20),
        ),
        r(
            s("S"),
            2,
            4,
            Value::I64(7),
            Value::F64(7.0),
            1,
            Value::I64(7),
        ),
    ];
    assert_eq!(
        got, expected,
        "one row per region (null first), keys ascending; integer sums are integers, avg a float"
    );
}

pub async fn aggregate_empty_set_without_keys_is_one_row<B: Backend>(b: &B) {
    let repo = b.repo::<Sale>().await;
    let g = GroupBy::new()
        .count()
        .sum(Sale::QTY)
        .sum(Sale::PRICE)
        .avg(Sale::AMOUNT)
        .min(Sale::AT)
        .max(Sale::PRODUCT);
    let expected = vec![row(&[
        ("count", Value::I64(0)),
        ("sum_qty", Value::Null),
        ("sum_price", Value::Null),
        ("avg_amount", Value::Null),
        ("min_at", Value::Null),
        ("max_product", Value::Null),
    ])];
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        expected,
        "an empty repository without keys: one row, count 0, the rest null"
    );
    repo.insert_many(&sales()).await.unwrap();
    assert_eq!(
        run::<B>(&repo, &Sale::QTY.gt(1000), &g).await,
        expected,
        "a filter matching nothing without keys: one row, count 0, the rest null"
    );
    let dropped = g.clone().having(Filter::field("count").gt(0));
    assert_eq!(
        run::<B>(&repo, &Sale::QTY.gt(1000), &dropped).await,
        Vec::<Value>::new(),
        "having may drop the single row"
    );
}

pub async fn aggregate_empty_set_with_keys_is_no_rows<B: Backend>(b: &B) {
    let repo = b.repo::<Sale>().await;
    let g = GroupBy::new().key(Sale::REGION).count().sum(Sale::QTY);
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        Vec::<Value>::new()
    );
    repo.insert_many(&sales()).await.unwrap();
    assert_eq!(
        run::<B>(&repo, &Sale::PRODUCT.eq("durian"), &g).await,
        Vec::<Value>::new(),
        "with keys, no matching rows means no groups"
    );
}

pub async fn aggregate_nulls_in_values_and_keys<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    // Only the rows whose amount is null: every amount aggregate is null,
    // count still counts them; the null region is a group of its own.
    let g = GroupBy::new()
        .key(Sale::REGION)
        .count()
        .sum(Sale::AMOUNT)
        .avg(Sale::AMOUNT)
        .min(Sale::AMOUNT)
        .max(Sale::AMOUNT);
    let got = run::<B>(&repo, &Filter::field("amount").is_null(), &g).await;
    let r = |region: Value, n: i64| {
        row(&[
            ("region", region),
            ("count", Value::I64(n)),
            ("sum_amount", Value::Null),
            ("avg_amount", Value::Null),
            ("min_amount", Value::Null),
            ("max_amount", Value::Null),
        ])
    };
    assert_eq!(
        got,
        vec![r(Value::Null, 1), r(s("E"), 1), r(s("N"), 1), r(s("S"), 1)],
        "aggregates over only nulls are null; count counts the rows"
    );
    // Mixed: nulls are ignored, not counted as zero (avg of N is 30 / 2).
    let g = GroupBy::new()
        .key(Sale::REGION)
        .avg(Sale::AMOUNT)
        .having(Filter::field("region").eq("N"));
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![row(&[("region", s("N")), ("avg_amount", Value::F64(15.0))])],
        "avg ignores nulls"
    );
    // A having on the null key.
    let g = GroupBy::new()
        .key(Sale::REGION)
        .count()
        .having(Filter::field("region").is_null());
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![row(&[("region", Value::Null), ("count", Value::I64(2))])]
    );
}

pub async fn aggregate_having_on_aggregates<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let g = GroupBy::new()
        .key(Sale::REGION)
        .count()
        .sum(Sale::AMOUNT)
        .alias("total")
        .having(
            Filter::field("count")
                .gte(2)
                .and(Filter::field("total").lt(50)),
        );
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![
            row(&[
                ("region", s("N")),
                ("count", Value::I64(3)),
                ("total", Value::I64(30))
            ]),
            row(&[
                ("region", s("S")),
                ("count", Value::I64(2)),
                ("total", Value::I64(7))
            ]),
        ],
        "having keeps the groups with count >= 2 and total < 50 (E's null total is not < 50)"
    );
    // `not` is two-valued over the groups too: the null total of E matches.
    let g = GroupBy::new()
        .key(Sale::REGION)
        .sum(Sale::AMOUNT)
        .alias("total")
        .having(Filter::field("total").gte(20).not());
    let regions = column(run::<B>(&repo, &Filter::all(), &g).await, "region");
    assert_eq!(regions, vec![s("E"), s("S")]);
}

pub async fn aggregate_sort_by_aggregate_desc_and_limit<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let g = GroupBy::new()
        .key(Sale::REGION)
        .sum(Sale::QTY)
        .alias("units")
        .sort(Filter::field("units").desc())
        .limit(3);
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![
            row(&[("region", s("N")), ("units", Value::I64(8))]),
            row(&[("region", s("E")), ("units", Value::I64(7))]),
            row(&[("region", Value::Null), ("units", Value::I64(6))]),
        ],
        "sorted by units descending, at most 3 groups"
    );
    // Ties on the sort value are broken by the keys, ascending.
    let g = GroupBy::new()
        .key(Sale::PRODUCT)
        .count()
        .sort(Filter::field("count").desc())
        .limit(3);
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![
            row(&[("product", s("apple")), ("count", Value::I64(2))]),
            row(&[("product", s("banana")), ("count", Value::I64(1))]),
            row(&[("product", s("cherry")), ("count", Value::I64(1))]),
        ]
    );
    // Descending on a nullable key: null last.
    let g = GroupBy::new()
        .key(Sale::REGION)
        .count()
        .sort(Filter::field("region").desc());
    let regions = column(run::<B>(&repo, &Filter::all(), &g).await, "region");
    assert_eq!(regions, vec![s("S"), s("N"), s("E"), Value::Null]);
}

pub async fn aggregate_sum_and_avg_of_floats<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let g = GroupBy::new()
        .key(Sale::REGION)
        .sum(Sale::PRICE)
        .avg(Sale::PRICE)
        .min(Sale::PRICE)
        .avg(Sale::QTY);
    let r = |region: Value, sum: f64, avg: f64, min: f64, avg_q: f64| {
        row(&[
            ("region", region),
            ("sum_price", Value::F64(sum)),
            ("avg_price", Value::F64(avg)),
            ("min_price", Value::F64(min)),
            ("avg_qty", Value::F64(avg_q)),
        ])
    };
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![
            r(Value::Null, 4.25, 2.125, 0.75, 3.0),
            r(s("E"), 1.0, 1.0, 1.0, 7.0),
            r(s("N"), 4.25, 4.25 / 3.0, 0.5, 8.0 / 3.0),
            r(s("S"), 5.25, 2.625, 1.25, 2.0),
        ],
        "float sums are floats; avg is a float, also of an integer field"
    );
}

pub async fn aggregate_min_max_of_strings_and_timestamps<B: Backend>(b: &B) {
    let repo = b.repo::<Sale>().await;
    let caps = repo.capabilities();
    // Code-point order: "Zed" < "apple" < "éclair" (a locale would put Zed last).
    let rows = vec![
        sale(1, Some("N"), "apple", 1, None),
        sale(2, Some("N"), "éclair", 1, None),
        sale(3, Some("N"), "Zed", 1, None),
        sale(4, Some("S"), "kiwi", 1, None),
    ];
    repo.insert_many(&rows).await.unwrap();
    let g = GroupBy::new()
        .key(Sale::REGION)
        .min(Sale::PRODUCT)
        .max(Sale::PRODUCT)
        .min(Sale::AT)
        .alias("first")
        .max(Sale::AT)
        .alias("last");
    let t = |n: i64| Value::DateTime(fit_ts(&caps, ts(n)));
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![
            row(&[
                ("region", s("N")),
                ("min_product", s("Zed")),
                ("max_product", s("éclair")),
                ("first", t(5)),
                ("last", t(20)),
            ]),
            row(&[
                ("region", s("S")),
                ("min_product", s("kiwi")),
                ("max_product", s("kiwi")),
                ("first", t(30)),
                ("last", t(30)),
            ]),
        ],
        "min/max of strings by code point, of timestamps as timestamps"
    );
    // A having and a sort on a timestamp aggregate.
    let g = GroupBy::new()
        .key(Sale::REGION)
        .max(Sale::AT)
        .alias("last")
        .having(Filter::field("last").gt(ts(25)))
        .sort(Filter::field("last").desc());
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &g).await,
        vec![row(&[("region", s("S")), ("last", t(30))])]
    );
}

pub async fn aggregate_two_keys_with_a_filter<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let g = GroupBy::new()
        .key(Sale::REGION)
        .key(Sale::PRODUCT)
        .count()
        .sum(Sale::QTY);
    let got = run::<B>(&repo, &Sale::QTY.gte(2), &g).await;
    let r = |region: Value, product: &str, qty: i64| {
        row(&[
            ("region", region),
            ("product", s(product)),
            ("count", Value::I64(1)),
            ("sum_qty", Value::I64(qty)),
        ])
    };
    assert_eq!(
        got,
        vec![
            r(Value::Null, "banana", 2),
            r(Value::Null, "zucchini", 4),
            r(s("E"), "cherry", 7),
            r(s("N"), "apple", 2),
            r(s("N"), "fig", 5),
            r(s("S"), "apple", 3),
        ],
        "the filter applies before grouping; rows ordered by both keys"
    );
    // Only aggregates, with a filter.
    let g = GroupBy::new().count().sum(Sale::AMOUNT).max(Sale::PRODUCT);
    assert_eq!(
        run::<B>(&repo, &Filter::field("region").eq("N"), &g).await,
        vec![row(&[
            ("count", Value::I64(3)),
            ("sum_amount", Value::I64(30)),
            ("max_product", s("pear")),
        ])]
    );
}

pub async fn aggregate_invalid_groupings_are_invalid_input<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let check = |g: GroupBy<Sale>, what: &'static str| {
        let repo = &repo;
        async move {
            let r = repo.aggregate(&Filter::all(), &g).await;
            if let Err(e) = &r {
                assert!(
                    e.to_string().contains(what),
                    "the error for {what:?} should name it: {e}"
                );
            }
            assert_invalid(r, what);
        }
    };
    let mut unknown = GroupBy::new().count();
    unknown.keys.push("colour".into());
    check(unknown, "colour").await;
    let mut sum_string = GroupBy::new().key(Sale::REGION);
    sum_string.aggregates.push(Aggregate {
        alias: "total".into(),
        func: AggFn::Sum("product".into()),
    });
    check(sum_string, "product").await;
    check(
        GroupBy::new().count().alias("n").sum(Sale::QTY).alias("n"),
        "n",
    )
    .await;
    check(
        GroupBy::new().key(Sale::REGION).count().alias("region"),
        "region",
    )
    .await;
    check(GroupBy::new().count().alias("not valid"), "not valid").await;
    check(
        GroupBy::new()
            .key(Sale::REGION)
            .count()
            .having(Filter::field("sum_qty").gt(1)),
        "sum_qty",
    )
    .await;
    check(
        GroupBy::new()
            .key(Sale::REGION)
            .count()
            .sort(Filter::field("qty").desc()),
        "qty",
    )
    .await;
    check(GroupBy::new(), "at least one").await;
    // A valid grouping still works on the same repository.
    assert_eq!(
        run::<B>(&repo, &Filter::all(), &GroupBy::new().count())
            .await
            .len(),
        1
    );
}

pub async fn aggregate_sum_overflow_is_invalid_input<B: Backend>(b: &B) {
    let repo = b.repo::<Sale>().await;
    let mut big = vec![
        sale(1, Some("N"), "a", 1, Some(i64::MAX - 1)),
        sale(2, Some("N"), "b", 1, Some(2)),
        sale(3, Some("S"), "c", 1, Some(i64::MAX)),
    ];
    big[2].amount = Some(i64::MAX);
    repo.insert_many(&big).await.unwrap();
    let g = GroupBy::new().key(Sale::REGION).sum(Sale::AMOUNT);
    assert_invalid(repo.aggregate(&Filter::all(), &g).await, "i64 sum overflow");
    // The same sum within range is exact.
    assert_eq!(
        run::<B>(&repo, &Filter::field("region").eq("S"), &g).await,
        vec![row(&[
            ("region", s("S")),
            ("sum_amount", Value::I64(i64::MAX))
        ])]
    );
}
