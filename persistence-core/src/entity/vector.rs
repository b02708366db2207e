//! Vector fields (`#[entity(vector(dim = 384, metric = cosine))]`): the
//! declared dimension, distance metric and approximate-nearest-neighbour
//! index of a `Vec<f32>` field, the checks every write and every query
//! vector goes through, and the distances themselves (the exact reference
//! every brute-force backend uses; pgvector computes the same ones).
//!
//! A vector field is an ordinary `Vec<f32>` (or `Vec<f64>`) field for
//! storage and filters ([`FieldType::Array`](super::FieldType)); its
//! [`VectorSpec`] says how `nearest` ranks by it (see [`crate::vector`]).

use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};

/// How the distance between two vectors is measured. Smaller is nearer for
/// all three (pgvector's `<=>`, `<->` and `<#>` operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `1 - cos(a, b)`, in `0..=2`. Zero vectors have no direction and are rejected.
    Cosine,
    /// Euclidean distance `|a - b|`.
    L2,
    /// The negated dot product `-(a · b)` (so larger products are nearer).
    InnerProduct,
}

impl Metric {
    /// The name used in the derive attribute and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
            Metric::InnerProduct => "inner_product",
        }
    }

    /// The distance between `a` and `b` (same length), computed in `f64`.
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        let pairs = a.iter().zip(b).map(|(&x, &y)| (f64::from(x), f64::from(y)));
        match self {
            Metric::L2 => pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
            Metric::InnerProduct => -pairs.map(|(x, y)| x * y).sum::<f64>(),
            Metric::Cosine => {
                let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
                for (x, y) in pairs {
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                1.0 - dot / (na.sqrt() * nb.sqrt())
            }
        }
    }
}

/// The approximate-nearest-neighbour index a vector field gets where the
/// backend has one (pgvector); brute-force backends ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorIndex {
    /// No index: exact scans everywhere.
    None,
    /// HNSW with `m` links per node and `ef_construction` candidates while
    /// building (pgvector defaults: 16 and 64).
    Hnsw {
        /// Links per node (2..=100).
        m: u16,
        /// Candidate list size while building (4..=1000, at least `2 * m`).
        ef_construction: u16,
    },
    /// IVFFlat with `lists` inverted lists (1..=32768; built from the rows
    /// present at creation, so create it after loading data).
    IvfFlat {
        /// Number of lists.
        lists: u32,
    },
}

impl VectorIndex {
    /// pgvector's default HNSW parameters.
    pub const HNSW_DEFAULT: VectorIndex = VectorIndex::Hnsw {
        m: 16,
        ef_construction: 64,
    };
}

/// The declaration of one vector field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VectorSpec {
    /// Number of components every stored and query vector has (1..=16000).
    pub dim: u32,
    /// The distance `nearest` ranks by.
    pub metric: Metric,
    /// The ANN index (default HNSW with pgvector's defaults).
    pub index: VectorIndex,
}

/// Largest dimension accepted (pgvector's limit for `vector`).
pub const MAX_DIM: u32 = 16_000;

impl VectorSpec {
    /// A spec with the default index (HNSW, m = 16, ef_construction = 64).
    pub const fn new(dim: u32, metric: Metric) -> VectorSpec {
        VectorSpec {
            dim,
            metric,
            index: VectorIndex::HNSW_DEFAULT,
        }
    }

    /// The same spec with another index.
    #[must_use]
    pub const fn with_index(mut self, index: VectorIndex) -> VectorSpec {
        self.index = index;
        self
    }

    /// Check the declaration itself (a `Config` error naming the field).
    pub fn validate(&self, entity: &str, field: &str) -> Result<()> {
        let bad = |why: String| Err(Error::config(format!("{entity}.{field}: {why}")));
        if self.dim == 0 || self.dim > MAX_DIM {
            return bad(format!(
                "vector dim must be 1..={MAX_DIM}, not {}",
                self.dim
            ));
        }
        match self.index {
            VectorIndex::Hnsw { m, ef_construction } => {
                if !(2..=100).contains(&m) {
                    return bad(format!("hnsw m must be 2..=100, not {m}"));
                }
                if !(4..=1000).contains(&ef_construction) || ef_construction < 2 * m {
                    return bad(format!(
                        "hnsw ef_construction must be 4..=1000 and at least 2 * m, not {ef_construction}"
                    ));
                }
            }
            VectorIndex::IvfFlat { lists } if !(1..=32_768).contains(&lists) => {
                return bad(format!("ivfflat lists must be 1..=32768, not {lists}"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Check one vector against the declaration: the dimension, every
    /// component finite, and for cosine a non-zero length. `what` names
    /// the vector in the `InvalidInput` error (`field \`embedding\``).
    pub fn check(&self, what: &str, v: &[f32]) -> Result<()> {
        if v.len() != self.dim as usize {
            return Err(Error::invalid_input(format!(
                "{what}: expected a vector of {} dimensions, got {}",
                self.dim,
                v.len()
            )));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid_input(format!(
                "{what}: component {i} is {} (vectors must be finite)",
                v[i]
            )));
        }
        if self.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
            return Err(Error::invalid_input(format!(
                "{what}: a zero vector has no cosine distance"
            )));
        }
        Ok(())
    }

    pub(crate) fn hash_into(&self, field: &str, h: &mut impl Hasher) {
        (field, self.dim, self.metric, self.index).hash(h);
    }
}

/// A vector field of an entity: its index in [`EntityMeta::fields`](super::EntityMeta) and its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorField {
    /// The stored field name.
    pub name: &'static str,
    /// Index in the entity's fields.
    pub index: usize,
    /// The declaration.
    pub spec: VectorSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_their_definitions() {
        let (a, b) = ([1.0, 0.0], [0.0, 2.0]);
        assert!((Metric::L2.distance(&a, &b) - 5f64.sqrt()).abs() < 1e-12);
        assert!((Metric::Cosine.distance(&a, &b) - 1.0).abs() < 1e-12);
        assert!((Metric::InnerProduct.distance(&[1.0, 2.0], &[3.0, 4.0]) + 11.0).abs() < 1e-12);
    }

    #[test]
    fn checks_name_the_problem() {
        let s = VectorSpec::new(3, Metric::Cosine);
        let e = s.check("field `e`", &[1.0, 2.0]).expect_err("2 dims");
        assert!(
            e.message()
                .contains("expected a vector of 3 dimensions, got 2"),
            "{e}"
        );
        let e = s.check("q", &[1.0, f32::NAN, 0.0]).expect_err("NaN");
        assert!(e.message().contains("component 1 is NaN"), "{e}");
        assert!(s.check("q", &[0.0; 3]).is_err());
        assert!(s.check("q", &[0.0, 0.0, 1.0]).is_ok());
        assert!(VectorSpec::new(0, Metric::L2).validate("E", "f").is_err());
        let bad = VectorSpec::new(3, Metric::L2).with_index(VectorIndex::Hnsw {
            m: 16,
            ef_construction: 8,
        });
        assert!(bad.validate("E", "f").is_err());
    }
}
