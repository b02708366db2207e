//! Schema drift: what `ensure_schema` set up, `verify_schema` finds as
//! declared (see [`crate::drift`]).
#![allow(clippy::unwrap_used, missing_docs)]

use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::drift::{DifferenceKind, SchemaReport, Severity};
use crate::entity::Entity;
use crate::repository::Repository;

/// No error or warning; "cannot verify" is allowed (a server without a command).
fn matches<E: Entity>(report: &SchemaReport) {
    assert_eq!(report.entity, E::meta().name);
    let drift: Vec<String> = report
        .differences
        .iter()
        .filter(|d| d.severity > Severity::Info && d.kind != DifferenceKind::Unverifiable)
        .map(ToString::to_string)
        .collect();
    assert!(
        drift.is_empty(),
        "{}: ensure_schema then verify_schema differs:\n{}",
        E::meta().name,
        drift.join("\n")
    );
    assert!(report.is_ok(), "{report}");
}

pub async fn verify_schema_matches_what_ensure_schema_made<B: Backend>(b: &B) {
    matches::<Person>(&b.repo::<Person>().await.verify_schema().await.unwrap());
    matches::<Account>(&b.repo::<Account>().await.verify_schema().await.unwrap());
    matches::<Note>(&b.repo::<Note>().await.verify_schema().await.unwrap());
    matches::<AllTypes>(&b.repo::<AllTypes>().await.verify_schema().await.unwrap());
    matches::<Labeled>(&b.repo::<Labeled>().await.verify_schema().await.unwrap());
}
