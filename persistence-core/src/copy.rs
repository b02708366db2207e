//! Cross-store copy: move every entity of one repository into another
//! (PostgreSQL ↔ MongoDB, memory, any [`Repository`] pair).
//!
//! * Streams the source in id order and writes in batches.
//! * Idempotent, safe to re-run after a crash midway: each batch looks up
//!   which ids the target already holds (one id-range query per batch); missing ones are inserted with
//!   `insert_many`, present ones are overwritten with `upsert` only when they
//!   differ, so a second run over a complete copy writes nothing.
//! * Reports progress after every batch and counts at the end.
//! * Verifies: after copying, both sides are read again in id order and
//!   compared by count and by a checksum over every field except the
//!   version. Timestamps are compared at the coarser precision of the two
//!   stores (a MongoDB copy keeps milliseconds).
//!
//! Versions are not copied: both `insert_many` and `upsert` assign the
//! target's own version (1 for new rows), as optimistic-locking counters are
//! per store.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::{Entity, Error, Filter, Query, Record, Repository, Result, TimestampPrecision, Value};
use futures_util::StreamExt as _;

/// Options of [`copy_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Entities per batch (at least 1).
    pub batch_size: usize,
    /// Verify counts and checksums at the end.
    pub verify: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch_size: 1000,
            verify: true,
        }
    }
}

/// Progress and final counts of a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Entities read from the source.
    pub read: u64,
    /// Entities inserted into the target.
    pub inserted: u64,
    /// Entities overwritten in the target because they differed.
    pub overwritten: u64,
    /// Entities already identical in the target.
    pub unchanged: u64,
    /// Verification: (source count, target count), when verified.
    pub counts: Option<(u64, u64)>,
    /// Verification: the checksum both sides agreed on, when verified.
    pub checksum: Option<u64>,
}

fn coarsest(a: TimestampPrecision, b: TimestampPrecision) -> TimestampPrecision {
    a.max(b)
}

fn fit(v: &Value, p: TimestampPrecision) -> Value {
    match (v, p) {
        (Value::DateTime(t), TimestampPrecision::Millis) => {
            let ms = t.timestamp_millis();
            chrono::DateTime::from_timestamp_millis(ms).map_or(v.clone(), Value::DateTime)
        }
        (Value::Array(items), _) => Value::Array(items.iter().map(|x| fit(x, p)).collect()),
        _ => v.clone(),
    }
}

/// The comparable form of an entity: every field but the version, timestamps fitted.
fn fingerprint<E: Entity>(e: &E, p: TimestampPrecision) -> Result<Vec<Value>> {
    let meta = E::meta();
    let r = Record::from_entity(e)?;
    Ok(r.values
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != meta.version_index)
        .map(|(_, v)| fit(v, p))
        .collect())
}

fn hash_into(h: &mut DefaultHasher, values: &[Value]) {
    for v in values {
        v.to_json().to_string().hash(h);
    }
}

async fn checksum<E: Entity, R: Repository<E>>(
    repo: &R,
    p: TimestampPrecision,
) -> Result<(u64, u64)> {
    let mut h = DefaultHasher::new();
    let mut n = 0u64;
    let mut s = repo.stream(&Query::all());
    while let Some(e) = s.next().await {
        hash_into(&mut h, &fingerprint(&e?, p)?);
        n += 1;
    }
    Ok((n, h.finish()))
}

/// Copy every entity of `source` into `target` (see the module docs);
/// `progress` is called after each batch with the counts so far.
pub async fn copy_all<E, S, D>(
    source: &S,
    target: &D,
    options: CopyOptions,
    mut progress: impl FnMut(&CopyReport),
) -> Result<CopyReport>
where
    E: Entity,
    S: Repository<E>,
    D: Repository<E>,
{
    let p = coarsest(
        source.capabilities().timestamp_precision,
        target.capabilities().timestamp_precision,
    );
    let size = options.batch_size.max(1);
    let mut report = CopyReport::default();
    let mut stream = source.stream(&Query::all());
    let mut batch: Vec<E> = Vec::with_capacity(size);
    loop {
        let next = stream.next().await;
        let done = next.is_none();
        if let Some(e) = next {
            batch.push(e?);
        }
        if batch.len() >= size || (done && !batch.is_empty()) {
            write_batch(target, &mut batch, p, &mut report).await?;
            progress(&report);
        }
        if done {
            break;
        }
    }
    drop(stream);
    if options.verify {
        let (sn, sh) = checksum(source, p).await?;
        let (tn, th) = checksum(target, p).await?;
        report.counts = Some((sn, tn));
        if sn != tn || sh != th {
            return Err(Error::backend(format!(
                "copy verification failed: source has {sn} entities (checksum {sh:016x}), target {tn} ({th:016x})"
            ))
            .in_context(E::meta().name, "copy"));
        }
        report.checksum = Some(sh);
    }
    Ok(report)
}

async fn write_batch<E: Entity, D: Repository<E>>(
    target: &D,
    batch: &mut Vec<E>,
    p: TimestampPrecision,
    report: &mut CopyReport,
) -> Result<()> {
    report.read += batch.len() as u64;
    // The batch is in id order: one range query finds what the target holds
    // (cheaper than a long `$in` / `IN` list on every backend).
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Ok(());
    };
    let id = Filter::field(E::meta().id_field().name);
    let range = id
        .gte(Value::from_serialize(first.id())?)
        .and(id.lte(Value::from_serialize(last.id())?));
    let existing = target.find(&Query::filter(range)).await?;
    let present: HashSet<E::Id> = existing.iter().map(|e| e.id().clone()).collect();
    let mut missing = Vec::with_capacity(batch.len());
    let mut by_id: std::collections::HashMap<E::Id, E> =
        existing.into_iter().map(|e| (e.id().clone(), e)).collect();
    for e in batch.drain(..) {
        if present.contains(e.id()) {
            let same = match by_id.remove(e.id()) {
                Some(t) => fingerprint(&t, p)? == fingerprint(&e, p)?,
                None => false,
            };
            if same {
                report.unchanged += 1;
            } else {
                target.upsert(&e).await?;
                report.overwritten += 1;
            }
        } else {
            missing.push(e);
        }
    }
    if !missing.is_empty() {
        report.inserted += target.insert_many(&missing).await?;
    }
    Ok(())
}
