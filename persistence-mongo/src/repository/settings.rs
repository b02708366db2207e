//! The per-repository settings of [`MongoRepository`]: validation, schema
//! policy, declared partial indexes, atomic batches and the server time
//! limit of reads (builder methods and their getters), and the raw collection.

use std::sync::Arc;
use std::time::Duration;

use bson::Document;
use mongodb::Collection;
use persistence_core::Entity;

use super::MongoRepository;
use crate::schema::{PartialIndex, Validation};

impl<E: Entity> MongoRepository<E> {
    /// What `ensure_schema` may do to an existing collection it did not
    /// create (default `Managed`: verify, change nothing; see
    /// [`schema`](crate::schema#ownership-only-collections-the-library-created-are-changed)).
    pub fn with_schema_policy(mut self, policy: persistence_core::names::SchemaPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Declare a partial index, created and checked by `ensure_schema`
    /// (see [`schema`](crate::schema#partial-indexes)).
    pub fn with_partial_index(mut self, index: PartialIndex) -> Self {
        Arc::make_mut(&mut self.partial_indexes).push(index);
        self
    }

    /// The declared partial indexes.
    pub fn partial_indexes(&self) -> &[PartialIndex] {
        &self.partial_indexes
    }

    /// Whether `insert_many` runs in a transaction when the deployment
    /// supports them (default `true`; see
    /// [`Repository::insert_many`](persistence_core::Repository::insert_many) on
    /// this type). `false` gives a plain ordered insert, which is not
    /// bounded by transaction limits but may leave a prefix of a failed batch.
    pub fn with_atomic_batches(mut self, atomic: bool) -> Self {
        self.atomic_batches = atomic;
        self
    }

    /// Limit the server time of `find`, `stream`, `count` and `aggregate`
    /// (`maxTimeMS`); a query that runs longer fails with `Timeout` (server code 50).
    pub fn with_max_time(mut self, limit: Option<Duration>) -> Self {
        self.max_time = limit;
        self
    }

    /// The configured server time limit of reads.
    pub fn max_time(&self) -> Option<Duration> {
        self.max_time
    }

    /// Schema validation applied by `ensure_schema` (`None`: no validator is set or changed).
    pub fn with_validation(mut self, validation: Option<Validation>) -> Self {
        self.validation = validation;
        self
    }

    /// The underlying collection (raw documents).
    pub fn collection(&self) -> &Collection<Document> {
        &self.coll
    }
}
