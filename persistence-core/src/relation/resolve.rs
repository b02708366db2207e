//! Where related rows come from: [`Resolve`] hands out the repository of
//! any entity type; [`Repos`] is the one you fill by hand.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::repository::{DynRepository, Repository, SharedRepository};

/// A source of repositories by entity type, for loading related rows.
/// Implemented by [`Repos`], the stores (`RelationalStore`, `MongoStore`,
/// `MemoryStore`) and the `Persistence` manager.
pub trait Resolve: Send + Sync {
    /// The repository of `T`; an error when this source has none.
    fn repository<T: Entity>(&self) -> impl Future<Output = Result<SharedRepository<T>>> + Send;
}

/// Repositories given one by one (any store, any layers): the simplest
/// [`Resolve`], and the way to load a relation whose target lives in
/// another store.
#[derive(Default, Clone)]
pub struct Repos {
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Repos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repos")
            .field("repositories", &self.by_type.len())
            .finish()
    }
}

impl Repos {
    /// No repositories.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add (or replace) the repository of `T`.
    pub fn with<T: Entity, R: Repository<T> + 'static>(mut self, repo: R) -> Self {
        self.insert::<T, R>(repo);
        self
    }
    /// Add (or replace) the repository of `T`.
    pub fn insert<T: Entity, R: Repository<T> + 'static>(&mut self, repo: R) {
        let shared: SharedRepository<T> = Arc::new(repo) as Arc<dyn DynRepository<T>>;
        self.by_type.insert(TypeId::of::<T>(), Arc::new(shared));
    }
}

impl Resolve for Repos {
    async fn repository<T: Entity>(&self) -> Result<SharedRepository<T>> {
        self.by_type
            .get(&TypeId::of::<T>())
            .and_then(|any| any.downcast_ref::<SharedRepository<T>>())
            .cloned()
            .ok_or_else(|| {
                Error::config(format!(
                    "no repository of {} was given to load related rows from",
                    T::meta().name
                ))
            })
    }
}

impl<S: Resolve> Resolve for &S {
    fn repository<T: Entity>(&self) -> impl Future<Output = Result<SharedRepository<T>>> + Send {
        (**self).repository::<T>()
    }
}

impl<S: Resolve> Resolve for Arc<S> {
    fn repository<T: Entity>(&self) -> impl Future<Output = Result<SharedRepository<T>>> + Send {
        (**self).repository::<T>()
    }
}
