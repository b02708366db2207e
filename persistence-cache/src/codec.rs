//! The value encoding of L2 entries.
//!
//! Layout: one format byte ([`FORMAT`]), the 8-byte little-endian *stamp*
//! (the generation/epoch token the entry was loaded under), then a
//! [postcard](https://docs.rs/postcard) body.
//!
//! Why postcard: a small, stable (1.0 wire-format spec), `no_std`-grade
//! serde format with varint integers, so entries are compact and fast to
//! encode; it is actively maintained (bincode 1 is frozen and its successor
//! line was withdrawn). Postcard is *not* self-describing, so it cannot
//! carry every serde shape an entity may use (`#[serde(flatten)]`, untagged
//! enums, `serde_json::Value` fields, `skip_serializing_if`...). We therefore
//! never hand the entity to postcard directly: the entity is first taken
//! apart into the core's [`Record`] (the same path every backend uses), and
//! the record's [`Value`]s are encoded through the closed `Wire` enum below,
//! which postcard handles fully. Decoding rebuilds the record and calls
//! [`Record::into_entity`]. Timestamps keep nanoseconds, floats keep NaN,
//! infinities and the sign of zero.
//!
//! A body that fails to decode (a corrupted entry, an entry written by an
//! incompatible version) is treated as a miss by the caller, never an error.
//!
//! Without the `redis` feature only `Cached` and the canonical bytes of
//! values (for keys) are used; the entry format stays compiled with them.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike as _, NaiveDate};
use persistence_core::{Entity, Error, Record, Result, Value};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The current format byte; bump when `Wire` or `Body` change incompatibly.
pub const FORMAT: u8 = 1;

/// A closed mirror of [`Value`] that postcard can encode and decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Wire {
    Null,
    Bool(bool),
    I64(i64),
    F64(f64),
    String(String),
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
    DateTime(i64, u32),
    Date(i32),
    Decimal([u8; 16]),
    Array(Vec<Wire>),
    Object(Vec<(String, Wire)>),
}

impl Wire {
    pub(crate) fn from_value(v: &Value) -> Wire {
        match v {
            Value::Null => Wire::Null,
            Value::Bool(b) => Wire::Bool(*b),
            Value::I64(i) => Wire::I64(*i),
            Value::F64(x) => Wire::F64(*x),
            Value::String(s) => Wire::String(s.clone()),
            Value::Bytes(b) => Wire::Bytes(b.clone()),
            Value::Uuid(u) => Wire::Uuid(*u.as_bytes()),
            Value::DateTime(d) => Wire::DateTime(d.timestamp(), d.timestamp_subsec_nanos()),
            Value::Date(d) => Wire::Date(d.num_days_from_ce()),
            Value::Decimal(d) => Wire::Decimal(d.serialize()),
            Value::Array(a) => Wire::Array(a.iter().map(Wire::from_value).collect()),
            Value::Object(o) => Wire::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Wire::from_value(v)))
                    .collect(),
            ),
        }
    }

    pub(crate) fn into_value(self) -> Result<Value> {
        Ok(match self {
            Wire::Null => Value::Null,
            Wire::Bool(b) => Value::Bool(b),
            Wire::I64(i) => Value::I64(i),
            Wire::F64(x) => Value::F64(x),
            Wire::String(s) => Value::String(s),
            Wire::Bytes(b) => Value::Bytes(b),
            Wire::Uuid(u) => Value::Uuid(Uuid::from_bytes(u)),
            Wire::DateTime(s, n) => Value::DateTime(
                DateTime::from_timestamp(s, n)
                    .ok_or_else(|| Error::decode("cached timestamp out of range"))?,
            ),
            Wire::Date(d) => Value::Date(
                NaiveDate::from_num_days_from_ce_opt(d)
                    .ok_or_else(|| Error::decode("cached date out of range"))?,
            ),
            Wire::Decimal(b) => Value::Decimal(Decimal::deserialize(b)),
            Wire::Array(a) => {
                Value::Array(a.into_iter().map(Wire::into_value).collect::<Result<_>>()?)
            }
            Wire::Object(o) => {
                let mut m = BTreeMap::new();
                for (k, v) in o {
                    m.insert(k, v.into_value()?);
                }
                Value::Object(m)
            }
        })
    }
}

/// Canonical bytes of one value (for hashing into keys).
pub(crate) fn canonical_value(v: &Value) -> Vec<u8> {
    // Encoding a closed enum of owned data into a Vec cannot fail.
    postcard::to_allocvec(&Wire::from_value(v)).unwrap_or_default()
}

/// What is cached for one key.
#[derive(Debug, Clone)]
pub(crate) enum Cached<E> {
    /// `get`/`find_one`: the entity, or `None` (negative entry).
    Entity(Option<E>),
    /// `find`.
    Rows(Arc<Vec<E>>),
    /// `count`.
    Count(u64),
    /// `exists`.
    Bool(bool),
    /// `find_nearest` / `find_text`: rows with their distances / scores.
    Nearest(Arc<Vec<(E, f64)>>),
}

impl<E> Cached<E> {
    /// A rough weight for size-bounded caches: one per entity held, at least one.
    pub(crate) fn weight(&self) -> u32 {
        match self {
            Cached::Rows(r) => u32::try_from(r.len()).unwrap_or(u32::MAX).max(1),
            Cached::Nearest(r) => u32::try_from(r.len()).unwrap_or(u32::MAX).max(1),
            _ => 1,
        }
    }
    /// True for a cached "not found".
    pub(crate) fn is_negative(&self) -> bool {
        matches!(self, Cached::Entity(None))
    }
}

#[derive(Serialize, Deserialize)]
enum Body {
    Entity(Option<Vec<Wire>>),
    Rows(Vec<Vec<Wire>>),
    Count(u64),
    Bool(bool),
    Nearest(Vec<(Vec<Wire>, f64)>),
}

fn row<E: Entity>(e: &E) -> Result<Vec<Wire>> {
    Ok(Record::from_entity(e)?
        .values
        .iter()
        .map(Wire::from_value)
        .collect())
}

fn entity<E: Entity>(row: Vec<Wire>) -> Result<E> {
    let values = row
        .into_iter()
        .map(Wire::into_value)
        .collect::<Result<Vec<_>>>()?;
    Record::from_values(E::meta(), values)?.into_entity::<E>()
}

/// Encode a cached value with its stamp.
pub(crate) fn encode<E: Entity>(stamp: u64, value: &Cached<E>) -> Result<Vec<u8>> {
    let body = match value {
        Cached::Entity(e) => Body::Entity(e.as_ref().map(row).transpose()?),
        Cached::Rows(rows) => Body::Rows(rows.iter().map(row).collect::<Result<_>>()?),
        Cached::Count(n) => Body::Count(*n),
        Cached::Bool(b) => Body::Bool(*b),
        Cached::Nearest(rows) => Body::Nearest(
            rows.iter()
                .map(|(e, d)| Ok((row(e)?, *d)))
                .collect::<Result<_>>()?,
        ),
    };
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT);
    out.extend_from_slice(&stamp.to_le_bytes());
    postcard::to_extend(&body, out)
        .map_err(|e| Error::backend(format!("cannot encode cache entry: {e}")))
}

/// Read only the stamp of an entry (None for an unknown format or a short entry).
pub(crate) fn stamp(bytes: &[u8]) -> Option<u64> {
    if bytes.first() != Some(&FORMAT) || bytes.len() < 9 {
        return None;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[1..9]);
    Some(u64::from_le_bytes(s))
}

/// Decode an entry's body.
pub(crate) fn decode<E: Entity>(bytes: &[u8]) -> Result<Cached<E>> {
    if stamp(bytes).is_none() {
        return Err(Error::decode("unknown cache entry format"));
    }
    let body: Body = postcard::from_bytes(&bytes[9..])
        .map_err(|e| Error::decode(format!("cannot decode cache entry: {e}")))?;
    Ok(match body {
        Body::Entity(r) => Cached::Entity(r.map(entity).transpose()?),
        Body::Rows(rows) => Cached::Rows(Arc::new(
            rows.into_iter().map(entity).collect::<Result<_>>()?,
        )),
        Body::Count(n) => Cached::Count(n),
        Body::Bool(b) => Cached::Bool(b),
        Body::Nearest(rows) => Cached::Nearest(Arc::new(
            rows.into_iter()
                .map(|(r, d)| Ok((entity(r)?, d)))
                .collect::<Result<_>>()?,
        )),
    })
}
