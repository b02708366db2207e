//! Round trips: every field type comes back as written (or as the backend's
//! declared precision keeps it), and writes return what is stored.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::support::*;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::repository::Repository;

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

/// Needs: non_finite_floats
pub async fn roundtrip_non_finite_floats<B: Backend>(b: &B) {
    let repo = b.repo::<AllTypes>().await;
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
