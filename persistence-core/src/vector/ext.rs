//! The builder form `repo.nearest(Doc::EMBEDDING, &v, 10).filter(..).await`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use crate::entity::Entity;
use crate::error::Result;
use crate::filter::{Field, Filter};
use crate::repository::Repository;

use super::NearestQuery;

/// A field a nearest query may rank by: the typed handle of a `Vec<f32>`,
/// `Vec<f64>` (or optional) field, or its stored name.
pub trait VectorFieldName<E> {
    /// The stored field name.
    fn vector_field_name(&self) -> String;
}

macro_rules! vector_handles {
    ($($t:ty),*) => {$(
        impl<E> VectorFieldName<E> for Field<E, $t> {
            fn vector_field_name(&self) -> String {
                self.path().to_string()
            }
        }
    )*};
}
vector_handles!(Vec<f32>, Vec<f64>, Option<Vec<f32>>, Option<Vec<f64>>);

impl<E> VectorFieldName<E> for &str {
    fn vector_field_name(&self) -> String {
        (*self).to_string()
    }
}

/// A nearest query being built over a repository; `.await` runs it
/// ([`Repository::find_nearest`]).
#[must_use = "a nearest query does nothing until awaited"]
#[derive(Debug)]
pub struct Nearest<'r, E, R: ?Sized> {
    repo: &'r R,
    query: NearestQuery,
    _entity: std::marker::PhantomData<fn() -> E>,
}

impl<E: Entity, R: Repository<E> + ?Sized> Nearest<'_, E, R> {
    /// Only rows matching `filter` are candidates (pre-filter).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.query.filter = filter;
        self
    }
    /// `hnsw.ef_search` for this query (pgvector; exact backends ignore it).
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.query.ef_search = Some(ef_search);
        self
    }
    /// The query as built so far.
    pub fn query(&self) -> &NearestQuery {
        &self.query
    }
}

impl<'r, E: Entity, R: Repository<E> + ?Sized> IntoFuture for Nearest<'r, E, R> {
    type Output = Result<Vec<(E, f64)>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'r>>;
    fn into_future(self) -> Self::IntoFuture {
        let Nearest { repo, query, .. } = self;
        Box::pin(async move { repo.find_nearest(&query).await })
    }
}

/// `nearest` on any [`Repository`].
pub trait NearestExt<E: Entity>: Repository<E> {
    /// The `k` rows nearest to `vector` by `field`, as `(entity, distance)`
    /// in distance order; add `.filter(..)` / `.ef_search(..)`, then `.await`.
    /// See [`crate::vector`] for the rules.
    fn nearest(
        &self,
        field: impl VectorFieldName<E>,
        vector: &[f32],
        k: usize,
    ) -> Nearest<'_, E, Self> {
        Nearest {
            repo: self,
            query: NearestQuery::new(field.vector_field_name(), vector.to_vec(), k),
            _entity: std::marker::PhantomData,
        }
    }
}

impl<E: Entity, R: Repository<E> + ?Sized> NearestExt<E> for R {}
