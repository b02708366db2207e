//! [`AggregateExt::aggregate_as`]: aggregate rows decoded into a struct.

use std::future::Future;

use serde::de::DeserializeOwned;

use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::repository::Repository;
use crate::value::Value;

use super::GroupBy;

/// Typed aggregation on every [`Repository`].
pub trait AggregateExt<E: Entity>: Repository<E> {
    /// [`Repository::aggregate`], each row decoded into `R` (a struct whose
    /// fields are the key names and aliases) with the same value-to-serde
    /// rules as entities ([`Record::into_entity`](crate::Record::into_entity)):
    /// timestamps, UUIDs, dates and decimals from their canonical forms,
    /// null as `None`. A row that does not fit `R` is a `Decode` error.
    fn aggregate_as<R: DeserializeOwned>(
        &self,
        filter: &Filter,
        group: &GroupBy<E>,
    ) -> impl Future<Output = Result<Vec<R>>> + Send {
        let rows = self.aggregate(filter, group);
        async move { rows.await?.into_iter().map(decode_row).collect() }
    }
}

impl<E: Entity, T: Repository<E> + ?Sized> AggregateExt<E> for T {}

/// One aggregate row as `R`.
pub fn decode_row<R: DeserializeOwned>(row: Value) -> Result<R> {
    R::deserialize(serde_value::ValueDeserializer::<
        serde_value::DeserializerError,
    >::new(row.into_serde_value()))
    .map_err(|e| {
        Error::decode(format!(
            "cannot decode an aggregate row as {}: {e}",
            std::any::type_name::<R>()
        ))
    })
}
