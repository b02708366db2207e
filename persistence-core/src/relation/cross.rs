//! Cross-store relations: the `belongs_to` relations of an entity whose
//! target lives in another store ([`CrossStore`]), which that store's
//! repository does not enforce (no server can see both sides).
//!
//! The `Persistence` manager computes the set from where each entity is
//! placed and hands it to the backend repository it builds; a repository
//! built by hand enforces every relation (an empty set).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::entity::{EntityMeta, RelationKind, RelationMeta};

/// The names of the `belongs_to` relations of one entity whose target
/// lives in another store. A backend given this set does not check their
/// parents on writes, creates no foreign key for them and does not report
/// one as missing; everything else about the entity is unchanged. Empty by
/// default (every relation is within the store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrossStore(Arc<BTreeSet<&'static str>>);

impl CrossStore {
    /// No relation crosses stores.
    pub fn none() -> Self {
        Self::default()
    }

    /// The relations named `names` cross stores.
    pub fn of(names: impl IntoIterator<Item = &'static str>) -> Self {
        CrossStore(Arc::new(names.into_iter().collect()))
    }

    /// Whether no relation crosses stores.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `relation` (a `belongs_to` of the entity) crosses stores.
    pub fn contains(&self, relation: &RelationMeta) -> bool {
        relation.kind == RelationKind::BelongsTo && self.0.contains(relation.name)
    }

    /// The relation names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }

    /// The `belongs_to` relations of `meta` within the store: the ones a
    /// backend enforces.
    pub fn enforced<'m>(&'m self, meta: &'m EntityMeta) -> impl Iterator<Item = &'m RelationMeta> {
        meta.belongs_to().filter(move |r| !self.contains(r))
    }
}
