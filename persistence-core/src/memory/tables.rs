//! [`MemoryStore`]: memory tables that know each other, for declared
//! relations (see `relations.rs`) and eager loading
//! ([`Resolve`](crate::relation::Resolve)).

use std::sync::Arc;

use parking_lot::RwLock;

use crate::entity::Entity;
use crate::error::Result;
use crate::relation::Resolve;
use crate::repository::SharedRepository;

use super::relations::{Shared, Table};
use super::repository::MemoryRepository;
use super::store::State;

/// A set of memory tables, one per entity type, that see each other: a
/// `belongs_to` checks its parent in the store and deleting a parent
/// applies its children's `on_delete` there. Cheap to clone (shares the
/// tables).
///
/// ```
/// # use persistence_core::{MemoryStore, conformance::entities::Person};
/// let store = MemoryStore::new();
/// let people = store.repository::<Person>();    // the same table every time
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tables", &self.shared.tables.read().len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The repository of `E`'s table, created empty on first use. A table
    /// is found by the entity's name; another type with the same name
    /// replaces it.
    pub fn repository<E: Entity>(&self) -> MemoryRepository<E> {
        let existing = self.shared.tables.read().get(E::meta().name).and_then(|t| {
            let t: &Arc<dyn Table> = t;
            t.as_any().downcast_ref::<Arc<RwLock<State<E>>>>().cloned()
        });
        match existing {
            Some(state) => MemoryRepository {
                state,
                shared: self.shared.clone(),
                cross: crate::relation::CrossStore::none(),
            },
            None => MemoryRepository::in_store(self.shared.clone()),
        }
    }
}

impl Resolve for MemoryStore {
    async fn repository<T: Entity>(&self) -> Result<SharedRepository<T>> {
        Ok(Arc::new(MemoryStore::repository::<T>(self)))
    }
}
