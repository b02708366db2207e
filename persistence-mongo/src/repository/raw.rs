//! The raw escape hatch of [`MongoRepository`]: a filter document of your
//! own ([`find_raw`](MongoRepository::find_raw)) or an aggregation
//! pipeline ([`aggregate_raw`](MongoRepository::aggregate_raw),
//! [`aggregate_raw_documents`](MongoRepository::aggregate_raw_documents)),
//! results decoded into entities by the codec `get` uses.
//!
//! The documents are sent as BSON: values in them stay values (a string
//! holding `{"$ne": 1}` or `'; drop …` is just a string); nothing is parsed
//! from text. Field names are the stored names: the entity id is `_id`, the
//! other fields keep their names (see [`crate::codec`]). Inside a
//! transaction (a repository from [`Transaction::repository`](crate::Transaction::repository))
//! they run in its session; `with_max_time` limits them like `find`.
//!
//! Metrics: with a [`Metrics`] set ([`MongoRepository::with_metrics`], or
//! [`MongoStore::set_metrics`](crate::MongoStore::set_metrics) for every
//! repository of a store), each call is counted and timed as operation
//! `find_raw` / `aggregate_raw`, and a slow call lands in the slow log with
//! its command shape (values replaced, as for every command).

use std::sync::Arc;

use bson::Document;
use futures_util::TryStreamExt as _;
use mongodb::action::Action as _;
use persistence_core::layer::Metrics;
use persistence_core::{Entity, Result};

use super::MongoRepository;
use crate::codec::from_document;

impl<E: Entity> MongoRepository<E> {
    /// Record the raw calls of this repository (and of its clones) with
    /// `metrics`: each [`find_raw`](Self::find_raw) /
    /// [`aggregate_raw`](Self::aggregate_raw) is counted by outcome and timed
    /// as operation `find_raw` / `aggregate_raw`, and a call slower than the
    /// threshold lands in the slow log with its command shape (values
    /// replaced, as for every command). Repository methods are recorded by a
    /// `Metrics` layer around the repository instead (raw calls are not
    /// repository methods). [`MongoStore::set_metrics`](crate::MongoStore::set_metrics)
    /// sets it for every repository a store hands out.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.raw_metrics = Some(Arc::new(metrics));
        self
    }

    async fn observed<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match &self.raw_metrics {
            Some(m) => m.observe(E::meta().name, op, fut).await,
            None => fut.await,
        }
    }

    pub(crate) async fn raw_documents(
        &self,
        op: &'static str,
        filter: Option<Document>,
        pipeline: Vec<Document>,
    ) -> Result<Vec<Document>> {
        let err = self.err(op);
        match (&self.session, filter) {
            (Some(s), Some(filter)) => {
                let mut guard = s.lock().await;
                let mut cursor = self
                    .coll
                    .find(filter)
                    .optional(self.max_time, |a, t| a.max_time(t))
                    .session(&mut *guard)
                    .await
                    .map_err(&err)?;
                cursor.stream(&mut guard).try_collect().await.map_err(&err)
            }
            (Some(s), None) => {
                let mut guard = s.lock().await;
                let mut cursor = self
                    .coll
                    .aggregate(pipeline)
                    .optional(self.max_time, |a, t| a.max_time(t))
                    .session(&mut *guard)
                    .await
                    .map_err(&err)?;
                cursor.stream(&mut guard).try_collect().await.map_err(&err)
            }
            (None, Some(filter)) => self
                .coll
                .find(filter)
                .optional(self.max_time, |a, t| a.max_time(t))
                .await
                .map_err(&err)?
                .try_collect()
                .await
                .map_err(&err),
            (None, None) => self
                .coll
                .aggregate(pipeline)
                .optional(self.max_time, |a, t| a.max_time(t))
                .await
                .map_err(&err)?
                .try_collect()
                .await
                .map_err(&err),
        }
    }

    fn decode_all(docs: &[Document], op: &'static str) -> Result<Vec<E>> {
        docs.iter()
            .map(|d| from_document::<E>(d).map_err(|e| e.in_context(E::meta().name, op)))
            .collect()
    }

    /// The entities matching a filter document of your own (any query
    /// operator the server supports), in the server's natural order,
    /// decoded by the codec `get` uses.
    ///
    /// The document is sent as BSON: values in it stay values (a string
    /// holding `{"$ne": 1}` or `'; drop …` is just a string). Field names
    /// are the stored names: the entity id is `_id`, the other fields keep
    /// their names. In a transaction's repository it runs in the
    /// transaction; `with_max_time` limits it like `find`; see
    /// [`with_metrics`](Self::with_metrics) for metrics and the slow log.
    ///
    /// A stored document that does not decode is `Decode` naming the field;
    /// a filter the server rejects is mapped like any other command error
    /// (`InvalidInput` for an unknown operator).
    pub async fn find_raw(&self, filter: Document) -> Result<Vec<E>> {
        let op = "find_raw";
        self.observed(op, async {
            let docs = self.raw_documents(op, Some(filter), Vec::new()).await?;
            Self::decode_all(&docs, op)
        })
        .await
    }

    /// Run an aggregation pipeline of your own over the collection and decode
    /// each output document into `E`, as [`find_raw`](Self::find_raw) does
    /// (the output must have the entity's shape: `_id` and the stored fields; see
    /// [`aggregate_raw_documents`](Self::aggregate_raw_documents) for any other shape).
    pub async fn aggregate_raw(&self, pipeline: Vec<Document>) -> Result<Vec<E>> {
        let op = "aggregate_raw";
        self.observed(op, async {
            let docs = self.raw_documents(op, None, pipeline).await?;
            Self::decode_all(&docs, op)
        })
        .await
    }

    /// [`aggregate_raw`](Self::aggregate_raw) returning the output documents
    /// as they come (group results, `$facet`s, counts...).
    pub async fn aggregate_raw_documents(&self, pipeline: Vec<Document>) -> Result<Vec<Document>> {
        let op = "aggregate_raw";
        self.observed(op, self.raw_documents(op, None, pipeline))
            .await
    }
}
