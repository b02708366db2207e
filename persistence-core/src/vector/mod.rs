//! Nearest-neighbour queries over vector fields (issue #17).
//!
//! A field declared `#[entity(vector(dim = 384, metric = cosine))]` on a
//! `Vec<f32>` holds vectors of exactly `dim` finite components (checked on
//! every write: `InvalidInput` naming the field). [`NearestQuery`] asks for
//! the `k` rows nearest to a query vector by the field's [`Metric`](crate::Metric), as
//! `(entity, distance)` pairs in distance order (ties by id):
//!
//! ```ignore
//! let hits = docs.nearest(Doc::EMBEDDING, &query_vec, 10)
//!     .filter(Doc::LANG.eq("en"))
//!     .ef_search(100)
//!     .await?;
//! ```
//!
//! Rules shared by every backend (checked by the conformance suite):
//! * **Pre-filter semantics**: the filter selects the candidate rows, then
//!   the `k` nearest of those are returned, so a selective filter does not
//!   shrink the answer below `min(k, matching rows)`. Rows whose vector is
//!   null and soft-deleted rows are not candidates.
//! * `k` is `1..=`[`MAX_K`]; the query vector must have the field's
//!   dimension, finite components, and (cosine) a non-zero length; an
//!   unknown or non-vector field is `InvalidInput`.
//! * Distances are those of [`Metric::distance`](crate::Metric::distance) (pgvector's `<=>`, `<->`,
//!   `<#>`): exact on memory, SQLite, MongoDB and a PostgreSQL without the
//!   `vector` extension (brute force over the filtered rows, see
//!   [`rank_exact`]); approximate on pgvector, where the HNSW / IVFFlat index
//!   answers ([`Capabilities::approximate_nearest`](crate::Capabilities)).
//!   `ef_search` sets `hnsw.ef_search` for the one query there (more
//!   candidates, better recall) and is ignored where search is exact.

use std::cmp::Ordering;

use crate::entity::{Entity, EntityMeta, VectorField};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::value::{Record, Value};

mod ext;

pub use ext::{Nearest, NearestExt, VectorFieldName};

/// Largest `k` a nearest query accepts.
pub const MAX_K: usize = 1000;

/// Largest `ef_search` accepted (pgvector's limit).
pub const MAX_EF_SEARCH: u32 = 1000;

/// A nearest-neighbour query: the `k` rows matching `filter` whose `field`
/// is nearest to `vector`. Build it with [`NearestExt::nearest`] or
/// [`NearestQuery::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct NearestQuery {
    /// The stored name of the vector field.
    pub field: String,
    /// The query vector.
    pub vector: Vec<f32>,
    /// How many rows at most.
    pub k: usize,
    /// Which rows are candidates (pre-filter).
    pub filter: Filter,
    /// `hnsw.ef_search` for this query (pgvector; ignored by exact backends).
    pub ef_search: Option<u32>,
}

/// A validated [`NearestQuery`]: the vector field and the checked filter.
#[derive(Debug, Clone)]
pub struct CheckedNearest<'q> {
    /// The query.
    pub query: &'q NearestQuery,
    /// The field's declaration and position.
    pub field: VectorField,
    /// The filter after [`Filter::checked`] (soft-delete scope applied).
    pub filter: Filter,
}

impl NearestQuery {
    /// The `k` rows nearest to `vector` by `field`, among all rows.
    pub fn new(field: impl Into<String>, vector: Vec<f32>, k: usize) -> NearestQuery {
        NearestQuery {
            field: field.into(),
            vector,
            k,
            filter: Filter::all(),
            ef_search: None,
        }
    }

    /// Only rows matching `filter` are candidates.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> NearestQuery {
        self.filter = filter;
        self
    }

    /// Set `hnsw.ef_search` for this query.
    #[must_use]
    pub fn ef_search(mut self, ef_search: u32) -> NearestQuery {
        self.ef_search = Some(ef_search);
        self
    }

    /// Validate against the entity (see the module docs for the rules).
    pub fn checked(&self, meta: &EntityMeta) -> Result<CheckedNearest<'_>> {
        let Some(&field) = meta.vector(&self.field) else {
            return Err(Error::invalid_input(format!(
                "`{}` is not a vector field of {}",
                self.field.chars().take(64).collect::<String>(),
                meta.name
            )));
        };
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid_input(format!(
                "nearest: k must be 1..={MAX_K}, not {}",
                self.k
            )));
        }
        if let Some(ef) = self.ef_search {
            if ef == 0 || ef > MAX_EF_SEARCH {
                return Err(Error::invalid_input(format!(
                    "nearest: ef_search must be 1..={MAX_EF_SEARCH}, not {ef}"
                )));
            }
        }
        field
            .spec
            .check(&format!("query vector for `{}`", field.name), &self.vector)?;
        let filter = self.filter.checked(meta)?;
        Ok(CheckedNearest {
            query: self,
            field,
            filter,
        })
    }
}

/// The components of a stored vector value (`None` for null or a value that is no vector).
pub fn vector_of(v: &Value) -> Option<Vec<f32>> {
    let Value::Array(items) = v else {
        return None;
    };
    items
        .iter()
        .map(|x| match x {
            #[allow(clippy::cast_possible_truncation)]
            Value::F64(f) => Some(*f as f32),
            #[allow(clippy::cast_precision_loss)]
            Value::I64(i) => Some(*i as f32),
            _ => None,
        })
        .collect()
}

/// The exact answer over candidate rows (already filtered): each row's
/// distance by the field's metric, the `k` smallest in order, ties by id.
/// Rows whose vector is null are skipped. Used by every brute-force backend.
pub fn rank_exact<E: Entity>(
    rows: impl IntoIterator<Item = E>,
    q: &CheckedNearest<'_>,
) -> Result<Vec<(E, f64)>> {
    let meta = E::meta();
    let mut scored: Vec<(Value, f64, E)> = Vec::new();
    for row in rows {
        let mut record = Record::from_entity(&row)?;
        let Some(v) = vector_of(&record.values[q.field.index]) else {
            continue;
        };
        let d = q.field.spec.metric.distance(&v, &q.query.vector);
        let id = std::mem::replace(&mut record.values[meta.id_index], Value::Null);
        scored.push((id, d, row));
    }
    scored.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.0.total_cmp(&b.0))
    });
    scored.truncate(q.query.k);
    Ok(scored.into_iter().map(|(_, d, e)| (e, d)).collect())
}
