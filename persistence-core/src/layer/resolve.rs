//! Resolving a write whose outcome is unknown: read the entity back and
//! decide whether the write was applied.

use crate::entity::Entity;
use crate::error::Result;
use crate::repository::{Capabilities, TimestampPrecision};
use crate::value::{Record, Value};

use super::Op;

tokio::task_local! {
    static READ_BACK: ();
}

/// Run `f` as the read-back of a write: decorators that route reads (read
/// replicas, see `persistence::FailoverRepository`) send every read made
/// inside it to the write target, because a lagging replica could miss the
/// write being resolved. [`Retry`](super::Retry) wraps its read-backs in it.
pub async fn read_back<F: std::future::Future>(f: F) -> F::Output {
    READ_BACK.scope((), f).await
}

/// Whether the current task is inside [`read_back`].
pub fn is_read_back() -> bool {
    READ_BACK.try_with(|_| ()).is_ok()
}

/// How [`Retry`](super::Retry) treats an `insert`, `update` or `upsert` that
/// failed with an [`Unknown`](crate::WriteOutcome::Unknown) outcome (see
/// [`Retry::writes`](super::Retry::writes)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ResolveOutcome {
    /// Do not resolve: the error is returned as it is (not retryable for
    /// `insert`/`update`, see [`Error::is_retryable`](crate::Error::is_retryable)).
    #[default]
    Never,
    /// Read the entity back by id (through the layers below the retry, so the
    /// read is bounded by the same timeout) and compare it with what the write
    /// stores:
    ///
    /// * `insert`: version 1 (for a versioned entity) and the same content;
    /// * `update`: the caller's version + 1 (for a versioned entity) and the
    ///   same content;
    /// * `upsert`: the same content (any version).
    ///
    /// Equal → the write was applied: the stored entity is returned as the
    /// success of the call (once: the write is not repeated). Different or
    /// missing → it was not applied (yet): the write is repeated, within the
    /// retry's `max_attempts`. A `Conflict(DuplicateId)` or
    /// `Conflict(Version)` answering such a repeat (the first attempt landed
    /// after all, late) is resolved the same way, so the caller sees neither a
    /// duplicate nor a false version conflict. When the read fails, or the
    /// attempts run out, the error is returned with its outcome still
    /// `Unknown`.
    ReadBack,
}

/// Whether `stored` (read back by id) is what the write `op` of `written`
/// stores: the version the backend gives it (1 for an insert, the caller's
/// version + 1 for an update, any for an upsert) and the same value in every
/// other field, timestamps compared at the backend's precision.
///
/// This is the test behind [`ResolveOutcome::ReadBack`]; backends use it too
/// (the MongoDB repository turns the false version conflict of a write the
/// driver repeated into the success it was).
pub fn write_applied<E: Entity>(
    op: Op,
    written: &E,
    stored: &E,
    capabilities: &Capabilities,
) -> Result<bool> {
    let version_ok = match (op, written.version(), stored.version()) {
        (Op::Insert, Some(_), Some(s)) => s == 1,
        (Op::Update, Some(w), Some(s)) => w.checked_add(1) == Some(s),
        (Op::Upsert, _, _) => true,
        (Op::Insert | Op::Update, None, None) => true,
        // One side versioned, the other not: not the same write.
        (Op::Insert | Op::Update, _, _) => false,
        // Not a single-entity write.
        _ => false,
    };
    if !version_ok {
        return Ok(false);
    }
    same_content(written, stored, capabilities.timestamp_precision)
}

/// Every field but the version and the managed timestamps (the repository
/// sets those, so the written entity's values say nothing) equal,
/// timestamps truncated to `precision`.
pub(crate) fn same_content<E: Entity>(a: &E, b: &E, precision: TimestampPrecision) -> Result<bool> {
    let meta = E::meta();
    let managed = [meta.version_index, meta.created_at, meta.updated_at];
    let (a, b) = (Record::from_entity(a)?, Record::from_entity(b)?);
    Ok(a.values
        .iter()
        .zip(&b.values)
        .enumerate()
        .all(|(i, (x, y))| managed.contains(&Some(i)) || same_value(x, y, precision)))
}

fn same_value(a: &Value, b: &Value, precision: TimestampPrecision) -> bool {
    match (a, b) {
        (Value::DateTime(x), Value::DateTime(y)) => {
            let unit: i64 = match precision {
                TimestampPrecision::Micros => 1_000,
                TimestampPrecision::Millis => 1_000_000,
            };
            let trunc = |t: &chrono::DateTime<chrono::Utc>| {
                (t.timestamp(), i64::from(t.timestamp_subsec_nanos()) / unit)
            };
            trunc(x) == trunc(y)
        }
        (Value::F64(x), Value::F64(y)) => x == y || (x.is_nan() && y.is_nan()),
        // Numbers inside JSON may come back as the other representation.
        #[allow(clippy::cast_precision_loss)]
        (Value::I64(i), Value::F64(f)) | (Value::F64(f), Value::I64(i)) => *i as f64 == *f,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y, precision))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy, precision))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, crate::Entity)]
    #[entity(name = "resolve_people")]
    struct Person {
        #[entity(id)]
        id: i64,
        name: String,
        age: Option<i32>,
        created: chrono::DateTime<chrono::Utc>,
        #[entity(version)]
        version: i64,
    }

    fn applied(op: Op, w: &Person, s: &Person, c: &Capabilities) -> bool {
        write_applied(op, w, s, c).expect("comparable")
    }

    fn caps(p: TimestampPrecision) -> Capabilities {
        let mut c = Capabilities::full("test");
        c.timestamp_precision = p;
        c
    }

    fn person() -> Person {
        Person {
            id: 7,
            name: "seven".into(),
            age: Some(41),
            created: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789)
                .expect("valid timestamp"),
            version: 3,
        }
    }

    #[test]
    fn update_is_applied_when_version_and_content_match() {
        let c = caps(TimestampPrecision::Micros);
        let mine = person();
        let mut stored = mine.clone();
        stored.version = 4;
        // The backend kept microseconds only.
        stored.created =
            chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).expect("valid timestamp");
        assert!(applied(Op::Update, &mine, &stored, &c));
        // Someone else's write at the same version.
        let mut other = stored.clone();
        other.name = "someone else".into();
        assert!(!applied(Op::Update, &mine, &other, &c));
        // Our content, but the version moved on (a later write).
        let mut later = stored.clone();
        later.version = 5;
        assert!(!applied(Op::Update, &mine, &later, &c));
        // Not yet applied: still the old version.
        let mut old = mine.clone();
        old.name = "before".into();
        assert!(!applied(Op::Update, &mine, &old, &c));
    }

    #[test]
    fn insert_expects_version_one_and_upsert_any_version() {
        let c = caps(TimestampPrecision::Millis);
        let mut mine = person();
        mine.version = 0;
        let mut stored = mine.clone();
        stored.version = 1;
        stored.created =
            chrono::DateTime::from_timestamp(1_700_000_000, 123_000_000).expect("valid timestamp");
        assert!(applied(Op::Insert, &mine, &stored, &c));
        stored.version = 2;
        assert!(!applied(Op::Insert, &mine, &stored, &c));
        assert!(applied(Op::Upsert, &mine, &stored, &c));
        // Millisecond precision does not hide a different millisecond.
        stored.created =
            chrono::DateTime::from_timestamp(1_700_000_000, 124_000_000).expect("valid timestamp");
        assert!(!applied(Op::Upsert, &mine, &stored, &c));
        // Only single-entity writes can be resolved.
        assert!(!applied(Op::Delete, &mine, &mine, &c));
    }

    #[tokio::test]
    async fn read_back_is_scoped_to_the_task() {
        assert!(!is_read_back());
        assert!(read_back(async { is_read_back() }).await);
        assert!(!is_read_back());
    }

    #[test]
    fn values_compare_structurally() {
        let p = TimestampPrecision::Micros;
        assert!(same_value(&Value::F64(f64::NAN), &Value::F64(f64::NAN), p));
        assert!(same_value(&Value::I64(2), &Value::F64(2.0), p));
        assert!(!same_value(&Value::I64(2), &Value::F64(2.5), p));
        let obj = |v: Value| Value::Object([("a".to_string(), v)].into_iter().collect());
        assert!(same_value(&obj(Value::I64(1)), &obj(Value::F64(1.0)), p));
        assert!(!same_value(&obj(Value::I64(1)), &obj(Value::Null), p));
        assert!(!same_value(
            &Value::Array(vec![Value::I64(1)]),
            &Value::Array(vec![Value::I64(1), Value::I64(2)]),
            p
        ));
    }
}
