//! The builder form `repo.search_text("query").filter(..).limit(10).await`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use crate::entity::Entity;
use crate::error::Result;
use crate::filter::Filter;
use crate::repository::Repository;

use super::TextQuery;

/// A text query being built over a repository; `.await` runs it
/// ([`Repository::find_text`]).
#[must_use = "a text query does nothing until awaited"]
#[derive(Debug)]
pub struct SearchText<'r, E, R: ?Sized> {
    repo: &'r R,
    query: TextQuery,
    _entity: std::marker::PhantomData<fn() -> E>,
}

impl<E: Entity, R: Repository<E> + ?Sized> SearchText<'_, E, R> {
    /// Only rows matching `filter` are candidates (pre-filter).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.query.filter = filter;
        self
    }
    /// At most `limit` rows (default [`super::DEFAULT_LIMIT`]).
    pub fn limit(mut self, limit: usize) -> Self {
        self.query.limit = limit;
        self
    }
    /// The query as built so far.
    pub fn query(&self) -> &TextQuery {
        &self.query
    }
}

impl<'r, E: Entity, R: Repository<E> + ?Sized> IntoFuture for SearchText<'r, E, R> {
    type Output = Result<Vec<(E, f64)>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'r>>;
    fn into_future(self) -> Self::IntoFuture {
        let SearchText { repo, query, .. } = self;
        Box::pin(async move { repo.find_text(&query).await })
    }
}

/// `search_text` on any [`Repository`].
pub trait TextSearchExt<E: Entity>: Repository<E> {
    /// The rows whose text-search fields match `text`, as `(entity,
    /// score)`, most relevant first; add `.filter(..)` / `.limit(..)`, then
    /// `.await`. See [`crate::text`] for the rules.
    fn search_text(&self, text: &str) -> SearchText<'_, E, Self> {
        SearchText {
            repo: self,
            query: TextQuery::new(text),
            _entity: std::marker::PhantomData,
        }
    }
}

impl<E: Entity, R: Repository<E> + ?Sized> TextSearchExt<E> for R {}
