//! The conformance cases. Each is `pub async fn name<B: Backend>(b: &B)` and
//! panics on a violation with a message naming what differed.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::StreamExt as _;
use rust_decimal::Decimal;

use super::Backend;
use super::entities::*;
use super::faults::{AckFault, LostAck};
use crate::entity::Entity;
use crate::error::{ConflictKind, Error, ErrorKind, WriteOutcome};
use crate::filter::{Filter, StringField};
use crate::layer::{LayerExt as _, Layered, ResolveOutcome, Retry, RetryConfig};
use crate::query::{Cursor, Query};
use crate::repository::{Capabilities, Repository};

/// The list of cases, passed to `$callback!($($args)*; case, case, ...)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($callback:path; $($args:tt)*) => {
        $callback!($($args)*;
            roundtrip_all_types,
            roundtrip_unicode_and_quotes,
            roundtrip_empty_strings,
            roundtrip_one_megabyte_string,
            roundtrip_integer_extremes,
            roundtrip_float_edge_values,
            roundtrip_non_finite_floats,
            roundtrip_timestamps_and_dates,
            roundtrip_none_vs_some,
            roundtrip_nested_structs,
            roundtrip_empty_and_large_vecs,
            roundtrip_maps_and_enums,
            roundtrip_decimals,
            writes_return_what_is_stored,
            get_missing_is_none,
            update_missing_is_not_found,
            delete_reports_whether_deleted,
            duplicate_id_is_conflict,
            unique_violation_is_conflict,
            composite_unique_violation_is_conflict,
            update_into_unique_violation_is_conflict,
            versions_start_at_one_and_increment,
            stale_version_is_conflict,
            upsert_inserts_then_overwrites,
            unversioned_update_overwrites,
            get_many_keeps_order_and_skips_missing,
            insert_many_inserts_all,
            insert_many_conflict_is_all_or_nothing,
            filter_eq_ne_with_nulls,
            filter_ordering_operators,
            filter_in_and_not_in,
            filter_is_null_and_is_not_null,
            filter_string_operators_are_literal,
            filter_array_contains,
            filter_array_contains_optional,
            filter_and_or_not_two_valued,
            filter_nested_paths,
            filter_string_order_is_code_point,
            filter_typed_scalars,
            filter_bad_input_is_invalid_input,
            filter_limits_are_invalid_input,
            filter_in_with_100000_values,
            filter_signed_zero_is_zero,
            values_are_never_operators,
            sort_multi_key_with_ties,
            sort_nulls_lowest,
            limit_and_offset,
            offset_paging_1000_rows,
            keyset_paging_1000_rows_with_inserts,
            keyset_paging_descending_with_nulls,
            cursor_tampering_is_invalid_input,
            count_and_exists,
            delete_many_by_filter,
            find_one_respects_sort,
            stream_20000_rows,
            stream_with_filter_and_sort,
            concurrent_unique_inserts_one_wins,
            concurrent_version_updates_one_wins,
            concurrent_distinct_inserts_all_succeed,
            object_safe_repository,
            unknown_outcome_is_not_retryable_without_resolution,
            unknown_outcome_applied_is_resolved_once,
            unknown_outcome_not_applied_is_repeated,
            unknown_outcome_applied_late_is_resolved,
        );
    };
}

// ---------------------------------------------------------------- helpers

fn kind(e: &Error) -> &ErrorKind {
    e.kind()
}

fn assert_conflict(r: Result<impl std::fmt::Debug, Error>, what: &str) -> ConflictKind {
    match r {
        Err(e) => match e.kind() {
            ErrorKind::Conflict(c) => c.clone(),
            other => panic!("{what}: expected Conflict, got {other:?}: {e}"),
        },
        Ok(v) => panic!("{what}: expected Conflict, got Ok({v:?})"),
    }
}

fn assert_invalid(r: Result<impl std::fmt::Debug, Error>, what: &str) {
    match r {
        Err(e) => assert_eq!(kind(&e), &ErrorKind::InvalidInput, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected InvalidInput, got Ok({v:?})"),
    }
}

/// Truncate a timestamp (toward the past) to what the backend keeps.
fn fit_ts(caps: &Capabilities, t: DateTime<Utc>) -> DateTime<Utc> {
    caps.timestamp_precision.truncate(t)
}

fn fit_all(caps: &Capabilities, mut e: AllTypes) -> AllTypes {
    e.ts = fit_ts(caps, e.ts);
    e.opt_ts = e.opt_ts.map(|t| fit_ts(caps, t));
    e
}

fn fit_person(caps: &Capabilities, mut p: Person) -> Person {
    p.created = fit_ts(caps, p.created);
    p
}

async fn roundtrip<B: Backend>(b: &B, items: Vec<AllTypes>) {
    let repo = b.repo::<AllTypes>().await;
    let caps = repo.capabilities();
    for item in items {
        let stored = repo
            .insert(&item)
            .await
            .unwrap_or_else(|e| panic!("insert {item:?}: {e}"));
        let mut expected = fit_all(&caps, item.clone());
        expected.version = 1;
        assert_eq!(stored, expected, "insert returned a different entity");
        let got = repo
            .get(&item.id)
            .await
            .unwrap()
            .expect("inserted row is found");
        assert_eq!(got, expected, "round trip changed the entity");
        // Found again through a query on its id.
        let found = repo
            .find(&Query::filter(AllTypes::ID.eq(item.id)))
            .await
            .unwrap();
        assert_eq!(found, vec![expected]);
    }
}

async fn people<B: Backend>(b: &B, n: i64) -> B::Repo<Person> {
    let repo = b.repo::<Person>().await;
    let rows: Vec<Person> = (1..=n).map(person).collect();
    assert_eq!(repo.insert_many(&rows).await.unwrap(), n as u64);
    repo
}

fn ids(ps: &[Person]) -> Vec<i64> {
    ps.iter().map(|p| p.id).collect()
}

async fn find_ids<R: Repository<Person>>(repo: &R, f: Filter) -> Vec<i64> {
    let q = Query::filter(f.clone());
    match repo.find(&q).await {
        Ok(rows) => ids(&rows),
        Err(e) => panic!("find {f:?}: {e}"),
    }
}

/// The ids `memory` would return: evaluate with the reference semantics.
fn expect_ids(all: &[Person], pred: impl Fn(&Person) -> bool) -> Vec<i64> {
    all.iter().filter(|p| pred(p)).map(|p| p.id).collect()
}

/// A small population with nulls in `age` and `city`.
async fn population<B: Backend>(b: &B) -> (B::Repo<Person>, Vec<Person>) {
    let repo = b.repo::<Person>().await;
    let mut all = Vec::new();
    for id in 1..=12 {
        let mut p = person(id);
        if id % 4 == 0 {
            p.age = None;
        }
        if id % 5 == 0 {
            p.city = None;
        }
        p.name = ["alice", "Bob", "carol", "Dave", "émile", "zoë"][(id % 6) as usize].to_string();
        p.tags = match id % 3 {
            0 => vec![],
            1 => vec!["red".into(), "blue".into()],
            _ => vec!["blue".into()],
        };
        all.push(p);
    }
    repo.insert_many(&all).await.unwrap();
    for p in &mut all {
        p.version = 1;
    }
    (repo, all)
}

// ---------------------------------------------------------------- round trips

pub async fn roundtrip_all_types<B: Backend>(b: &B) {
    roundtrip(b, vec![sample_all_types(1), sample_all_types(2)]).await;
}

pub async fn roundtrip_unicode_and_quotes<B: Backend>(b: &B) {
    let mut e = sample_all_types(3);
    e.s = "héllo wörld — 日本語 — 🦀🚀 — עברית — \u{200d}\u{1F468}\u{200D}\u{1F469}".into();
    e.opt_s = Some("it's \"quoted\" \\ back\\slash; -- comment /* c */ %_ $1 ?".into());
    e.tags = vec![
        "'".into(),
        "\"".into(),
        "\\".into(),
        "$".into(),
        "{}".into(),
        "ünïcödé".into(),
    ];
    e.nested.name = "nested 'quote' \"dq\" \\ 🎉".into();
    e.map = BTreeMap::from([("ключ".to_string(), 1), ("a'b\"c".to_string(), 2)]);
    roundtrip(b, vec![e]).await;
}

pub async fn roundtrip_empty_strings<B: Backend>(b: &B) {
    let mut e = sample_all_types(4);
    e.s = String::new();
    e.opt_s = Some(String::new());
    e.tags = vec![String::new()];
    e.nested.name = String::new();
    roundtrip(b, vec![e]).await;
}

pub async fn roundtrip_one_megabyte_string<B: Backend>(b: &B) {
    let mut e = sample_all_types(5);
    e.s = "abcdefghij🦀".repeat(1024 * 1024 / 14);
    assert!(e.s.len() > 1_000_000);
    roundtrip(b, vec![e]).await;
}

pub async fn roundtrip_integer_extremes<B: Backend>(b: &B) {
    let mut lo = sample_all_types(6);
    (lo.i16v, lo.i32v, lo.i64v, lo.opt_i) = (i16::MIN, i32::MIN, i64::MIN, Some(i64::MIN));
    lo.nums = vec![i64::MIN, 0, i64::MAX];
    lo.nested.inner.x = i64::MIN;
    let mut hi = sample_all_types(7);
    (hi.i16v, hi.i32v, hi.i64v, hi.opt_i) = (i16::MAX, i32::MAX, i64::MAX, Some(i64::MAX));
    hi.nested.inner.x = i64::MAX;
    let mut zero = sample_all_types(8);
    (zero.i16v, zero.i32v, zero.i64v, zero.opt_i) = (0, 0, 0, Some(0));
    roundtrip(b, vec![lo, hi, zero]).await;
}

pub async fn roundtrip_float_edge_values<B: Backend>(b: &B) {
    let repo = b.repo::<AllTypes>().await;
    let signed_zero = repo.capabilities().signed_zero;
    let mut values = vec![
        (f64::MIN, f32::MIN),
        (f64::MAX, f32::MAX),
        (f64::MIN_POSITIVE, f32::MIN_POSITIVE),
        (f64::EPSILON, f32::EPSILON),
        (5e-324, 1e-45),
        (0.1 + 0.2, 0.1),
        (-1.0 / 3.0, -1.0 / 3.0),
        (0.0, 0.0),
    ];
    if signed_zero {
        values.push((-0.0, -0.0));
    }
    for (i, (d, f)) in values.into_iter().enumerate() {
        let mut e = sample_all_types(100 + i as u128);
        e.f64v = d;
        e.f32v = f;
        repo.insert(&e).await.unwrap();
        let got = repo.get(&e.id).await.unwrap().expect("found");
        // Bit-exact: also distinguishes -0.0 from 0.0.
        assert_eq!(
            got.f64v.to_bits(),
            d.to_bits(),
            "f64 {d:e} came back as {:e}",
            got.f64v
        );
        assert_eq!(
            got.f32v.to_bits(),
            f.to_bits(),
            "f32 {f:e} came back as {:e}",
            got.f32v
        );
    }
}

pub async fn roundtrip_non_finite_floats<B: Backend>(b: &B) {
    let repo = b.repo::<AllTypes>().await;
    if !repo.capabilities().non_finite_floats {
        eprintln!("capability non_finite_floats = false: case not applicable");
        return;
    }
    for (i, (d, f)) in [
        (f64::INFINITY, f32::INFINITY),
        (f64::NEG_INFINITY, f32::NEG_INFINITY),
        (f64::NAN, f32::NAN),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = sample_all_types(200 + i as u128);
        e.f64v = d;
        e.f32v = f;
        repo.insert(&e).await.unwrap();
        let got = repo.get(&e.id).await.unwrap().expect("found");
        assert!(
            got.f64v.to_bits() == d.to_bits() || (d.is_nan() && got.f64v.is_nan()),
            "f64 {d} came back as {}",
            got.f64v
        );
        assert!(
            got.f32v == f || (f.is_nan() && got.f32v.is_nan()),
            "f32 {f} came back as {}",
            got.f32v
        );
    }
}

pub async fn roundtrip_timestamps_and_dates<B: Backend>(b: &B) {
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let cases = [
        ("1970-01-01T00:00:00Z", "1970-01-01"),
        ("1969-12-31T23:59:59.999999Z", "1900-01-01"),
        ("2024-02-29T12:34:56.789012Z", "2024-02-29"),
        ("2038-01-19T03:14:08.000001Z", "2038-01-19"),
        ("2199-12-31T23:59:59.5Z", "2199-12-31"),
    ];
    let items = cases
        .iter()
        .enumerate()
        .map(|(i, (t, d))| {
            let mut e = sample_all_types(300 + i as u128);
            e.ts = parse(t);
            e.opt_ts = Some(parse(t));
            e.date = d.parse::<NaiveDate>().unwrap();
            e
        })
        .collect();
    roundtrip(b, items).await;
}

pub async fn roundtrip_none_vs_some<B: Backend>(b: &B) {
    let mut none = sample_all_types(9);
    (none.opt_s, none.opt_i, none.opt_ts, none.opt_nested) = (None, None, None, None);
    let mut some = sample_all_types(10);
    (some.opt_s, some.opt_i) = (Some(String::new()), Some(0));
    some.opt_nested = Some(Nested {
        name: String::new(),
        inner: Inner { x: 0, label: None },
        list: vec![],
    });
    roundtrip(b, vec![none, some]).await;
}

pub async fn roundtrip_nested_structs<B: Backend>(b: &B) {
    let mut e = sample_all_types(11);
    e.nested = Nested {
        name: "outer".into(),
        inner: Inner {
            x: -7,
            label: Some("label".into()),
        },
        list: (0..50)
            .map(|x| Inner {
                x,
                label: (x % 2 == 0).then(|| format!("l{x}")),
            })
            .collect(),
    };
    e.opt_nested = Some(e.nested.clone());
    roundtrip(b, vec![e]).await;
}

pub async fn roundtrip_empty_and_large_vecs<B: Backend>(b: &B) {
    let mut empty = sample_all_types(12);
    (empty.tags, empty.nums, empty.bytes) = (vec![], vec![], vec![]);
    empty.nested.list = vec![];
    let mut large = sample_all_types(13);
    large.tags = (0..10_000).map(|i| format!("tag-{i}")).collect();
    large.nums = (0..10_000).map(|i| i * i - 5_000).collect();
    large.bytes = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    roundtrip(b, vec![empty, large]).await;
}

pub async fn roundtrip_maps_and_enums<B: Backend>(b: &B) {
    let items = [Status::Active, Status::Suspended, Status::PendingReview]
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut e = sample_all_types(400 + i as u128);
            e.status = s;
            e.map = (0..i as i64 * 20)
                .map(|k| (format!("key {k}"), k))
                .collect();
            e
        })
        .collect();
    roundtrip(b, items).await;
}

pub async fn roundtrip_decimals<B: Backend>(b: &B) {
    let decs = [
        "0",
        "-1.5",
        "12345678901234567890.123456789",
        "0.0000000001",
        "-79228162514264337593543950335",
    ];
    let items = decs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut e = sample_all_types(500 + i as u128);
            e.dec = d.parse::<Decimal>().unwrap();
            e
        })
        .collect::<Vec<_>>();
    let repo = b.repo::<AllTypes>().await;
    for e in &items {
        repo.insert(e).await.unwrap();
        let got = repo.get(&e.id).await.unwrap().expect("found");
        // Numeric equality: backends may normalize trailing zeros / scale.
        assert_eq!(
            got.dec.normalize(),
            e.dec.normalize(),
            "decimal {} came back as {}",
            e.dec,
            got.dec
        );
    }
}

/// `insert`, `update` and `upsert` return what `get` reads afterwards, not
/// their input: nanosecond timestamps (after and before 1970 and 2000) come
/// back truncated toward the past to the backend's precision, decimals with
/// the most scale a `Decimal` holds come back equal.
pub async fn writes_return_what_is_stored<B: Backend>(b: &B) {
    let repo = b.repo::<AllTypes>().await;
    let caps = repo.capabilities();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    let assert_stored = |what: &str, returned: &AllTypes, read: &AllTypes, input: &AllTypes| {
        assert_eq!(returned, read, "{what}: returned entity differs from get");
        assert_eq!(returned.ts, fit_ts(&caps, input.ts), "{what}: ts");
        assert_eq!(
            returned.opt_ts,
            input.opt_ts.map(|t| fit_ts(&caps, t)),
            "{what}: opt_ts"
        );
        assert_eq!(returned.dec, input.dec, "{what}: decimal");
    };
    let mut e = sample_all_types(700);
    e.ts = at("2024-05-06T07:08:09.123456789Z");
    e.opt_ts = Some(at("1969-12-31T23:59:59.999999999Z"));
    e.dec = dec("0.1234567890123456789012345678");
    let inserted = repo.insert(&e).await.unwrap();
    let read = repo.get(&e.id).await.unwrap().expect("inserted");
    assert_stored("insert", &inserted, &read, &e);
    assert_eq!(inserted.version, 1);

    let mut next = inserted.clone();
    next.ts = at("1999-12-31T23:59:59.999999999Z");
    next.opt_ts = Some(at("1900-01-01T00:00:00.000000001Z"));
    next.dec = dec("-7922816251426433759354.395033");
    let updated = repo.update(&next).await.unwrap();
    let read = repo.get(&e.id).await.unwrap().expect("updated");
    assert_stored("update", &updated, &read, &next);
    assert_eq!(updated.version, 2);

    let mut over = updated.clone();
    over.ts = at("2038-01-19T03:14:07.999999999Z");
    over.opt_ts = None;
    over.dec = dec("1.5000000000000000000000000000");
    let upserted = repo.upsert(&over).await.unwrap();
    let read = repo.get(&e.id).await.unwrap().expect("upserted");
    assert_stored("upsert (overwrite)", &upserted, &read, &over);
    assert_eq!(upserted.version, 3);

    let mut fresh = sample_all_types(701);
    fresh.ts = at("2001-02-03T04:05:06.000999999Z");
    fresh.opt_ts = Some(at("2001-02-03T04:05:06.000000999Z"));
    let created = repo.upsert(&fresh).await.unwrap();
    let read = repo.get(&fresh.id).await.unwrap().expect("upserted");
    assert_stored("upsert (insert)", &created, &read, &fresh);
    assert_eq!(created.version, 1);
}

// ---------------------------------------------------------------- CRUD semantics

pub async fn get_missing_is_none<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    assert_eq!(repo.get(&42).await.unwrap(), None);
    let accounts = b.repo::<Account>().await;
    assert_eq!(accounts.get(&"nope".to_string()).await.unwrap(), None);
}

pub async fn update_missing_is_not_found<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut p = person(1);
    p.version = 1;
    let err = repo
        .update(&p)
        .await
        .expect_err("update of a missing row fails");
    assert_eq!(kind(&err), &ErrorKind::NotFound, "{err}");
    let accounts = b.repo::<Account>().await;
    let a = Account {
        id: "a".into(),
        tenant: "t".into(),
        handle: "h".into(),
        balance: 1,
    };
    let err = accounts
        .update(&a)
        .await
        .expect_err("update of a missing row fails");
    assert_eq!(kind(&err), &ErrorKind::NotFound, "{err}");
}

pub async fn delete_reports_whether_deleted<B: Backend>(b: &B) {
    let repo = people(b, 3).await;
    assert!(repo.delete(&2).await.unwrap());
    assert!(!repo.delete(&2).await.unwrap());
    assert!(!repo.delete(&99).await.unwrap());
    assert_eq!(repo.get(&2).await.unwrap(), None);
    assert_eq!(ids(&repo.find(&Query::all()).await.unwrap()), vec![1, 3]);
    // The unique email of a deleted row is free again.
    repo.insert(&person(2)).await.unwrap();
}

pub async fn duplicate_id_is_conflict<B: Backend>(b: &B) {
    let repo = people(b, 1).await;
    let mut again = person(1);
    again.email = "other@example.com".into();
    let c = assert_conflict(repo.insert(&again).await, "duplicate id");
    assert_eq!(c, ConflictKind::DuplicateId);
    assert_eq!(repo.get(&1).await.unwrap().unwrap().email, "p1@example.com");
}

pub async fn unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    if !repo.capabilities().unique_constraints {
        eprintln!("capability unique_constraints = false: case not applicable");
        return;
    }
    repo.insert(&person(1)).await.unwrap();
    let mut dup = person(2);
    dup.email = "p1@example.com".into();
    let c = assert_conflict(repo.insert(&dup).await, "unique email");
    match c {
        ConflictKind::Unique { constraint } => {
            if let Some(name) = constraint {
                assert!(
                    name.contains("email"),
                    "constraint name {name:?} should name the email index"
                );
            }
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert_eq!(repo.get(&2).await.unwrap(), None, "nothing was written");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn composite_unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = b.repo::<Account>().await;
    if !repo.capabilities().unique_constraints {
        eprintln!("capability unique_constraints = false: case not applicable");
        return;
    }
    let a = |id: &str, t: &str, h: &str| Account {
        id: id.into(),
        tenant: t.into(),
        handle: h.into(),
        balance: 0,
    };
    repo.insert(&a("1", "t1", "bob")).await.unwrap();
    repo.insert(&a("2", "t2", "bob")).await.unwrap();
    repo.insert(&a("3", "t1", "amy")).await.unwrap();
    let c = assert_conflict(repo.insert(&a("4", "t1", "bob")).await, "composite unique");
    assert!(matches!(c, ConflictKind::Unique { .. }), "{c:?}");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 3);
}

pub async fn update_into_unique_violation_is_conflict<B: Backend>(b: &B) {
    let repo = people(b, 2).await;
    if !repo.capabilities().unique_constraints {
        return;
    }
    let mut p2 = repo.get(&2).await.unwrap().unwrap();
    p2.email = "p1@example.com".into();
    let c = assert_conflict(repo.update(&p2).await, "update into a taken email");
    assert!(matches!(c, ConflictKind::Unique { .. }), "{c:?}");
    let stored = repo.get(&2).await.unwrap().unwrap();
    assert_eq!(stored.email, "p2@example.com");
    assert_eq!(
        stored.version, 1,
        "a failed update does not bump the version"
    );
}

pub async fn versions_start_at_one_and_increment<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let mut p = person(1);
    p.version = 77; // ignored on insert
    let stored = repo.insert(&p).await.unwrap();
    assert_eq!(stored.version, 1);
    let mut next = stored.clone();
    next.name = "renamed".into();
    let v2 = repo.update(&next).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.name, "renamed");
    let v3 = repo.update(&v2).await.unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(repo.get(&1).await.unwrap().unwrap().version, 3);
}

pub async fn stale_version_is_conflict<B: Backend>(b: &B) {
    let repo = people(b, 1).await;
    let v1 = repo.get(&1).await.unwrap().unwrap();
    let mut a = v1.clone();
    a.name = "first writer".into();
    repo.update(&a).await.unwrap();
    let mut stale = v1.clone();
    stale.name = "second writer".into();
    let c = assert_conflict(repo.update(&stale).await, "stale version");
    assert!(matches!(c, ConflictKind::Version { .. }), "{c:?}");
    let stored = repo.get(&1).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.version), ("first writer", 2));
}

pub async fn upsert_inserts_then_overwrites<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let first = repo.upsert(&person(1)).await.unwrap();
    assert_eq!(first.version, 1);
    let mut changed = person(1);
    changed.name = "changed".into();
    changed.version = 0; // upsert ignores the version
    let second = repo.upsert(&changed).await.unwrap();
    assert_eq!((second.name.as_str(), second.version), ("changed", 2));
    assert_eq!(repo.get(&1).await.unwrap().unwrap(), second);
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn unversioned_update_overwrites<B: Backend>(b: &B) {
    let repo = b.repo::<Account>().await;
    let a = Account {
        id: "x".into(),
        tenant: "t".into(),
        handle: "h".into(),
        balance: 5,
    };
    repo.insert(&a).await.unwrap();
    let mut b2 = a.clone();
    b2.balance = 10;
    assert_eq!(repo.update(&b2).await.unwrap(), b2);
    let mut b3 = a.clone();
    b3.balance = 20;
    assert_eq!(
        repo.update(&b3).await.unwrap(),
        b3,
        "no version: last write wins"
    );
    assert_eq!(
        repo.get(&"x".to_string()).await.unwrap().unwrap().balance,
        20
    );
}

pub async fn get_many_keeps_order_and_skips_missing<B: Backend>(b: &B) {
    let repo = people(b, 5).await;
    let got = repo.get_many(&[4, 99, 1, 4, 3]).await.unwrap();
    assert_eq!(ids(&got), vec![4, 1, 3]);
    assert!(repo.get_many(&[]).await.unwrap().is_empty());
}

pub async fn insert_many_inserts_all<B: Backend>(b: &B) {
    let repo = people(b, 2_500).await;
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 2_500);
    let p = repo.get(&1234).await.unwrap().unwrap();
    assert_eq!(p.version, 1);
    assert_eq!(
        fit_person(&repo.capabilities(), person(1234)).email,
        p.email
    );
    assert_eq!(repo.insert_many(&[]).await.unwrap(), 0);
}

pub async fn insert_many_conflict_is_all_or_nothing<B: Backend>(b: &B) {
    let repo = people(b, 1).await;
    let mut batch: Vec<Person> = (10..20).map(person).collect();
    batch.push(person(1)); // duplicate id at index 10
    let err = repo
        .insert_many(&batch)
        .await
        .expect_err("duplicate in batch");
    assert!(err.is_conflict(), "{err}");
    if repo.capabilities().atomic_batch {
        assert_eq!(
            repo.count(&Filter::all()).await.unwrap(),
            1,
            "nothing of the failed batch was kept"
        );
    }
}

// ---------------------------------------------------------------- filters

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

pub async fn filter_nested_paths<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    if !repo.capabilities().nested_paths {
        eprintln!("capability nested_paths = false: case not applicable");
        return;
    }
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

// ---------------------------------------------------------------- sort and paging

pub async fn sort_multi_key_with_ties<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    let rows: Vec<Person> = (1..=30)
        .map(|i| {
            let mut p = person(i);
            p.name = format!("n{}", i % 3);
            p.score = (i % 4) as f64;
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    let got = repo
        .find(
            &Query::all()
                .sort(Person::NAME.asc())
                .sort(Person::SCORE.desc()),
        )
        .await
        .unwrap();
    let mut expected = rows.clone();
    expected.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    assert_eq!(ids(&got), ids(&expected), "ties broken by id ascending");
    let got = repo
        .find(&Query::all().sort(Person::SCORE.asc()))
        .await
        .unwrap();
    expected.sort_by(|a, b| a.score.total_cmp(&b.score).then(a.id.cmp(&b.id)));
    assert_eq!(ids(&got), ids(&expected));
    let got = repo
        .find(&Query::all().sort(Person::ID.desc()))
        .await
        .unwrap();
    assert_eq!(ids(&got), (1..=30).rev().collect::<Vec<_>>());
    let got = repo.find(&Query::all()).await.unwrap();
    assert_eq!(
        ids(&got),
        (1..=30).collect::<Vec<_>>(),
        "default order is by id"
    );
}

pub async fn sort_nulls_lowest<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let asc = repo
        .find(&Query::all().sort(Person::AGE.asc()))
        .await
        .unwrap();
    let mut expected = all.clone();
    expected.sort_by(|a, b| a.age.cmp(&b.age).then(a.id.cmp(&b.id))); // None < Some
    assert_eq!(ids(&asc), ids(&expected), "nulls first ascending");
    let desc = repo
        .find(&Query::all().sort(Person::AGE.desc()))
        .await
        .unwrap();
    expected.sort_by(|a, b| b.age.cmp(&a.age).then(a.id.cmp(&b.id)));
    assert_eq!(ids(&desc), ids(&expected), "nulls last descending");
}

pub async fn limit_and_offset<B: Backend>(b: &B) {
    let repo = people(b, 20).await;
    let q = Query::all().sort(Person::ID.desc());
    assert_eq!(
        ids(&repo.find(&q.clone().limit(3)).await.unwrap()),
        vec![20, 19, 18]
    );
    assert_eq!(
        ids(&repo.find(&q.clone().offset(18)).await.unwrap()),
        vec![2, 1]
    );
    assert_eq!(
        ids(&repo.find(&q.clone().offset(5).limit(2)).await.unwrap()),
        vec![15, 14]
    );
    assert!(repo.find(&q.clone().offset(50)).await.unwrap().is_empty());
    assert!(repo.find(&q.clone().limit(0)).await.unwrap().is_empty());
}

pub async fn offset_paging_1000_rows<B: Backend>(b: &B) {
    let repo = people(b, 1_000).await;
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut next_id = 10_000;
    loop {
        let page = repo
            .find(
                &Query::all()
                    .sort(Person::CREATED.asc())
                    .offset(offset)
                    .limit(73),
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        seen.extend(ids(&page));
        // Rows appended after the current position (later timestamps) between pages.
        if next_id < 10_005 {
            repo.insert(&person(next_id)).await.unwrap();
            next_id += 1;
        }
    }
    let originals: Vec<i64> = seen.iter().copied().filter(|i| *i <= 1_000).collect();
    assert_eq!(
        originals,
        (1..=1_000).collect::<Vec<_>>(),
        "every original row exactly once, in order"
    );
    assert_eq!(seen.len(), 1_005, "appended rows were reached too");
}

pub async fn keyset_paging_1000_rows_with_inserts<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    // Ids 2, 4, ..., 2000; many ties in `name`.
    let rows: Vec<Person> = (1..=1_000)
        .map(|i| {
            let mut p = person(i * 2);
            p.name = format!("group {:02}", i % 17);
            p
        })
        .collect();
    repo.insert_many(&rows).await.unwrap();
    let q = Query::all().sort(Person::NAME.asc()).limit(64);
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut inserted = 0;
    let mut pages = 0;
    loop {
        let page = repo.page(&q, cursor.as_ref()).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 64);
        seen.extend(ids(&page.items));
        // Between pages, insert rows that sort both before and after the position.
        if inserted < 40 {
            for name in ["group 00", "group 99"] {
                let mut p = person(100_001 + inserted);
                p.name = name.to_string();
                repo.insert(&p).await.unwrap();
                inserted += 1;
            }
        }
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging does not terminate");
    }
    let originals: Vec<i64> = seen.iter().copied().filter(|i| *i <= 2_000).collect();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    let mut expected = rows.clone();
    expected.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    assert_eq!(
        originals,
        ids(&expected),
        "every original row once, in sort order, no gaps"
    );
    assert!(
        seen.iter().any(|i| *i > 100_000),
        "rows inserted after the position are reached"
    );
}

pub async fn keyset_paging_descending_with_nulls<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let q = Query::all()
        .sort(Person::AGE.desc())
        .sort(Person::CITY.asc())
        .limit(5);
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = repo.page(&q, cursor.as_ref()).await.unwrap();
        seen.extend(ids(&page.items));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = all.clone();
    expected.sort_by(|a, b| {
        b.age
            .cmp(&a.age)
            .then(a.city.cmp(&b.city))
            .then(a.id.cmp(&b.id))
    });
    assert_eq!(seen, ids(&expected));
}

pub async fn cursor_tampering_is_invalid_input<B: Backend>(b: &B) {
    let repo = people(b, 10).await;
    let q = Query::all().sort(Person::NAME.asc()).limit(3);
    let first = repo.page(&q, None).await.unwrap();
    let cursor = first.next.expect("more pages");
    assert_invalid(
        repo.page(&q, Some(&Cursor::from_token("not base64 !!")))
            .await,
        "garbage cursor",
    );
    assert_invalid(
        repo.page(&q, Some(&Cursor::from_token("e30"))).await,
        "empty JSON object",
    );
    let other = Query::all().sort(Person::AGE.desc()).limit(3);
    assert_invalid(
        repo.page(&other, Some(&cursor)).await,
        "cursor of another sort order",
    );
    assert_invalid(
        repo.page(&q.clone().offset(2), None).await,
        "offset with page()",
    );
    assert_invalid(repo.page(&Query::all().limit(0), None).await, "page size 0");
    let second = repo.page(&q, Some(&cursor)).await.unwrap();
    assert_eq!(second.items.len(), 3);
}

// ---------------------------------------------------------------- count, delete, find_one, stream

pub async fn count_and_exists<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), all.len() as u64);
    assert_eq!(
        repo.count(&Person::AGE.is_null()).await.unwrap(),
        all.iter().filter(|p| p.age.is_none()).count() as u64
    );
    assert!(repo.exists(&Person::ID.eq(3)).await.unwrap());
    assert!(!repo.exists(&Person::ID.eq(300)).await.unwrap());
    assert_eq!(repo.count(&Filter::none()).await.unwrap(), 0);
}

pub async fn delete_many_by_filter<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let doomed = Person::AGE.is_null().or(Person::CITY.eq("Lima"));
    let expected_deleted = all
        .iter()
        .filter(|p| p.age.is_none() || p.city.as_deref() == Some("Lima"))
        .count() as u64;
    assert_eq!(repo.delete_many(&doomed).await.unwrap(), expected_deleted);
    assert_eq!(repo.count(&doomed).await.unwrap(), 0);
    assert_eq!(
        repo.count(&Filter::all()).await.unwrap(),
        all.len() as u64 - expected_deleted
    );
    assert_eq!(repo.delete_many(&Filter::none()).await.unwrap(), 0);
    assert_eq!(
        repo.delete_many(&Filter::all()).await.unwrap(),
        all.len() as u64 - expected_deleted
    );
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 0);
}

pub async fn find_one_respects_sort<B: Backend>(b: &B) {
    let repo = people(b, 10).await;
    let top = repo
        .find_one(&Query::all().sort(Person::SCORE.desc()))
        .await
        .unwrap();
    assert_eq!(top.map(|p| p.id), Some(10));
    let none = repo
        .find_one(&Query::filter(Person::ID.gt(100)))
        .await
        .unwrap();
    assert_eq!(none, None);
    let second = repo.find_one(&Query::all().offset(1)).await.unwrap();
    assert_eq!(second.map(|p| p.id), Some(2));
}

pub async fn stream_20000_rows<B: Backend>(b: &B) {
    let repo = b.repo::<Person>().await;
    for chunk in (1..=20_000).collect::<Vec<i64>>().chunks(5_000) {
        let rows: Vec<Person> = chunk.iter().map(|i| person(*i)).collect();
        repo.insert_many(&rows).await.unwrap();
    }
    let mut s = repo.stream(&Query::all());
    let mut n = 0i64;
    let mut last = 0;
    while let Some(item) = s.next().await {
        let p = item.unwrap();
        assert!(p.id > last, "stream is in id order");
        last = p.id;
        n += 1;
    }
    assert_eq!(n, 20_000);
}

pub async fn stream_with_filter_and_sort<B: Backend>(b: &B) {
    let (repo, all) = population(b).await;
    let q = Query::filter(Person::AGE.is_not_null())
        .sort(Person::NAME.desc())
        .offset(1)
        .limit(5);
    let streamed: Vec<Person> = repo.stream(&q).map(|r| r.unwrap()).collect().await;
    let found = repo.find(&q).await.unwrap();
    assert_eq!(ids(&streamed), ids(&found));
    assert_eq!(
        streamed.len(),
        5.min(all.iter().filter(|p| p.age.is_some()).count() - 1)
    );
}

// ---------------------------------------------------------------- concurrency

pub async fn concurrent_unique_inserts_one_wins<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Person>().await);
    if !repo.capabilities().unique_constraints {
        return;
    }
    let mut tasks = Vec::new();
    for i in 0..32 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut p = person(1_000 + i);
            p.email = "same@example.com".into();
            repo.insert(&p).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is_conflict(), "losers get Conflict, got {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one insert wins");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn concurrent_version_updates_one_wins<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Person>().await);
    let base = repo.insert(&person(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let repo = repo.clone();
        let mut mine = base.clone();
        mine.name = format!("writer {i}");
        tasks.push(tokio::spawn(async move { repo.update(&mine).await }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            Ok(p) => winners.push(p),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Conflict(ConflictKind::Version { .. } | ConflictKind::Concurrent)
                ),
                "losers get a version conflict, got {e}"
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update wins");
    let stored = repo.get(&1).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.name, winners[0].name);
}

pub async fn concurrent_distinct_inserts_all_succeed<B: Backend>(b: &B) {
    let repo = Arc::new(b.repo::<Person>().await);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                repo.insert(&person(i * 100 + j + 1)).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").unwrap();
    }
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 320);
}

pub async fn object_safe_repository<B: Backend>(b: &B) {
    let repo: Arc<dyn crate::repository::DynRepository<Person>> =
        Arc::new(b.repo::<Person>().await);
    let caps = repo.capabilities();
    repo.insert(&person(1)).await.unwrap();
    repo.insert_many(&[person(2), person(3)]).await.unwrap();
    let p = repo.get(&1).await.unwrap().unwrap();
    assert_eq!(fit_person(&caps, person(1)).created, p.created);
    // The Arc<dyn ...> is itself a Repository, so generic code accepts it.
    async fn generic<R: Repository<Person>>(r: &R) -> u64 {
        r.count(&Filter::all()).await.unwrap()
    }
    assert_eq!(generic(&repo).await, 3);
    let page = repo.page(&Query::all().limit(2), None).await.unwrap();
    assert_eq!(ids(&page.items), vec![1, 2]);
    assert!(repo.delete(&2).await.unwrap());
    assert_eq!(repo.find(&Query::all()).await.unwrap().len(), 2);
    let _ = Person::meta();
}

// ------------------------------------------------ writes of unknown outcome

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
