//! Typed aggregation: `AggregateExt::aggregate_as` decodes the rows of
//! `Repository::aggregate` into a struct (the cases of `aggregate.rs`
//! check the rows themselves).
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::aggregate::{Sale, stocked};
use super::support::*;
use crate::aggregate::{AggregateExt as _, GroupBy};
use crate::conformance::Backend;
use crate::conformance::entities::ts;
use crate::filter::Filter;
use crate::repository::Repository;

/// A typed aggregate row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct RegionStats {
    region: Option<String>,
    count: u64,
    units: i64,
    avg_amount: Option<f64>,
    first: Option<DateTime<Utc>>,
    top: Option<String>,
}

pub async fn aggregate_as_decodes_rows_into_a_struct<B: Backend>(b: &B) {
    let repo = stocked(b).await;
    let caps = repo.capabilities();
    let g = GroupBy::new()
        .key(Sale::REGION)
        .count()
        .sum(Sale::QTY)
        .alias("units")
        .avg(Sale::AMOUNT)
        .min(Sale::AT)
        .alias("first")
        .max(Sale::PRODUCT)
        .alias("top")
        .sort(Filter::field("units").desc())
        .limit(2);
    let got: Vec<RegionStats> = repo
        .aggregate_as(&Sale::QTY.gte(1), &g)
        .await
        .unwrap_or_else(|e| panic!("aggregate_as: {e}"));
    assert_eq!(
        got,
        vec![
            RegionStats {
                region: Some("N".into()),
                count: 3,
                units: 8,
                avg_amount: Some(15.0),
                first: Some(fit_ts(&caps, ts(5))),
                top: Some("pear".into()),
            },
            RegionStats {
                region: Some("E".into()),
                count: 1,
                units: 7,
                avg_amount: None,
                first: Some(fit_ts(&caps, ts(15))),
                top: Some("cherry".into()),
            },
        ]
    );
    // A struct that does not fit the rows is a decode error, not a panic.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        region: i64,
    }
    let r = repo.aggregate_as::<Wrong>(&Filter::all(), &g).await;
    match r {
        Err(e) => assert_eq!(kind(&e), &crate::error::ErrorKind::Decode, "{e}"),
        Ok(v) => panic!("expected a decode error, got {v:?}"),
    }
}
