//! Writes of unknown outcome: a lost acknowledgement is not retried blindly,
//! and a resolving retry applies the write exactly once.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::conformance::faults::{AckFault, LostAck};
use crate::error::{ConflictKind, ErrorKind, WriteOutcome};
use crate::filter::Filter;
use crate::layer::{LayerExt as _, Layered, ResolveOutcome, Retry, RetryConfig};
use crate::repository::{Capabilities, Repository};

fn fast_retry() -> Retry {
    Retry::new(RetryConfig {
        max_attempts: 3,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
        resolve_writes: false,
    })
}

/// A repository of `Person` whose writes lose their answer as `fault` says,
/// under a retry that resolves unknown outcomes.
async fn resolving<B: Backend>(
    b: &B,
    fault: AckFault,
) -> Layered<LostAck<Person, B::Repo<Person>>, Retry> {
    LostAck::new(b.repo::<Person>().await, fault, 0)
        .layer(fast_retry().writes(ResolveOutcome::ReadBack))
}

fn same_person(caps: &Capabilities, got: &Person, want: &Person, what: &str) {
    let mut want = fit_person(caps, want.clone());
    want.version = got.version;
    assert_eq!(&fit_person(caps, got.clone()), &want, "{what}");
}

pub async fn unknown_outcome_is_not_retryable_without_resolution<B: Backend>(b: &B) {
    let repo =
        LostAck::new(b.repo::<Person>().await, AckFault::AppliedThenLost, 1).layer(fast_retry());
    let err = repo.insert(&person(1)).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Timeout, "{err}");
    assert_eq!(err.outcome(), WriteOutcome::Unknown, "{err}");
    assert!(
        !err.is_retryable(),
        "an insert of unknown outcome is not retryable"
    );
    assert!(err.to_string().contains("may have been applied"), "{err}");
    assert_eq!(repo.inner().writes(), 1, "the insert was not repeated");
    // It had been applied: exactly one row.
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
    // An upsert of unknown outcome stays retryable (it is idempotent) and is repeated.
    repo.inner().lose_next(1);
    let mut p = person(1);
    p.name = "upserted".into();
    let got = repo.upsert(&p).await.unwrap();
    assert_eq!(got.name, "upserted");
    assert_eq!(repo.inner().writes(), 3);
}

pub async fn unknown_outcome_applied_is_resolved_once<B: Backend>(b: &B) {
    let repo = resolving(b, AckFault::AppliedThenLost).await;
    let caps = repo.capabilities();
    // insert: committed, answer lost → the stored entity, no duplicate error.
    repo.inner().lose_next(1);
    let v1 = repo.insert(&person(1)).await.unwrap();
    assert_eq!(v1.version, 1);
    same_person(&caps, &v1, &person(1), "insert resolved as applied");
    assert_eq!(
        repo.inner().writes(),
        1,
        "an applied insert is not repeated"
    );
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
    // update: committed, answer lost → version + 1 once, no false version conflict.
    repo.inner().lose_next(1);
    let mut next = v1.clone();
    next.name = "renamed".into();
    let v2 = repo.update(&next).await.unwrap();
    assert_eq!(v2.version, 2, "one effect");
    same_person(&caps, &v2, &next, "update resolved as applied");
    assert_eq!(
        repo.inner().writes(),
        2,
        "an applied update is not repeated"
    );
    assert_eq!(repo.get(&1).await.unwrap().unwrap().version, 2);
    // upsert: committed, answer lost → not applied twice.
    repo.inner().lose_next(1);
    let mut up = v2.clone();
    up.name = "upserted".into();
    let v3 = repo.upsert(&up).await.unwrap();
    assert_eq!(v3.version, 3, "one effect");
    same_person(&caps, &v3, &up, "upsert resolved as applied");
    assert_eq!(repo.inner().writes(), 3);
    assert_eq!(repo.get(&1).await.unwrap().unwrap().version, 3);
}

pub async fn unknown_outcome_not_applied_is_repeated<B: Backend>(b: &B) {
    let repo = resolving(b, AckFault::LostBeforeApplied).await;
    let caps = repo.capabilities();
    repo.inner().lose_next(1);
    let v1 = repo.insert(&person(1)).await.unwrap();
    assert_eq!(v1.version, 1);
    same_person(&caps, &v1, &person(1), "insert repeated");
    assert_eq!(
        repo.inner().writes(),
        2,
        "the lost insert was repeated once"
    );
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
    repo.inner().lose_next(1);
    let mut next = v1.clone();
    next.name = "renamed".into();
    let v2 = repo.update(&next).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        repo.inner().writes(),
        4,
        "the lost update was repeated once"
    );
    assert_eq!(repo.get(&1).await.unwrap().unwrap().name, "renamed");
    // Not applied, and meanwhile someone else wrote: the repeat's version
    // conflict is real, and since the first attempt's fate is unknown the
    // error says so.
    repo.inner().inner().update(&v2).await.unwrap();
    repo.inner().lose_next(1);
    let mut stale = v2.clone();
    stale.name = "stale writer".into();
    let err = repo.update(&stale).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Conflict(ConflictKind::Version { .. })
        ),
        "{err}"
    );
    assert_eq!(err.outcome(), WriteOutcome::Unknown, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(repo.get(&1).await.unwrap().unwrap().version, 3);
    // Attempts run out: the error keeps its unknown outcome.
    repo.inner().lose_next(3);
    let err = repo.insert(&person(2)).await.unwrap_err();
    assert_eq!(err.outcome(), WriteOutcome::Unknown, "{err}");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn unknown_outcome_applied_late_is_resolved<B: Backend>(b: &B) {
    let repo = resolving(b, AckFault::AppliedLate).await;
    let caps = repo.capabilities();
    // The read-back finds nothing, the repeat meets the late first attempt
    // (duplicate id): resolved as applied, once.
    repo.inner().lose_next(1);
    let v1 = repo.insert(&person(1)).await.unwrap();
    assert_eq!(v1.version, 1);
    same_person(&caps, &v1, &person(1), "late insert");
    assert_eq!(repo.inner().writes(), 2);
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
    // The same for an update: the repeat's version conflict is our own write.
    repo.inner().lose_next(1);
    let mut next = v1.clone();
    next.name = "renamed".into();
    let v2 = repo.update(&next).await.unwrap();
    assert_eq!(v2.version, 2, "one effect, no false version conflict");
    same_person(&caps, &v2, &next, "late update");
    assert_eq!(repo.inner().writes(), 4);
    assert_eq!(repo.get(&1).await.unwrap().unwrap().version, 2);
}
