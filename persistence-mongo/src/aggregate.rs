//! Typed aggregation pipelines.
//!
//! A [`Pipeline`] is a list of stages: `$match` built from a core [`Filter`]
//! (checked against the entity's metadata and translated like every other
//! query, so values stay BSON values), group-by helpers with count / sum /
//! avg / min / max, `$lookup` between two entity collections by field names
//! from metadata, and raw [`bson::Document`] stages for everything else.
//! [`MongoRepository::aggregate_pipeline`] runs it and deserializes each output
//! document into `Out` (with the `bson` serde rules: a stored `_id` is `_id`,
//! decimals are `bson::Decimal128`, UUIDs `bson::Binary` or `bson::Uuid`).

use std::marker::PhantomData;

use bson::{Bson, Document, doc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use persistence_core::entity::validate_identifier;
use persistence_core::{BoxStream, Entity, EntityMeta, Error, Filter, Result, SortKey};
use serde::de::DeserializeOwned;

use crate::codec::stored_name;
use crate::error::map;
use crate::query::{to_query, to_sort};
use crate::repository::MongoRepository;

/// An aggregation over the collection of `E`.
#[derive(Debug, Clone)]
pub struct Pipeline<E: Entity> {
    stages: Vec<Document>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Default for Pipeline<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// The stored key (`_id` for the id, dotted for nested paths) of a validated path.
fn stored_path(meta: &EntityMeta, path: &str) -> Result<String> {
    let r = meta.resolve_path(path)?;
    let mut key = stored_name(meta, r.index).to_string();
    for seg in &r.rest {
        key.push('.');
        key.push_str(seg);
    }
    Ok(key)
}

fn output_name(name: &str) -> Result<()> {
    if name == "_id" {
        return Err(Error::invalid_input(
            "`_id` is the group key; pick another output name",
        ));
    }
    validate_identifier(name)
}

/// An accumulator of a group-by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agg {
    /// Number of documents in the group.
    Count,
    /// Sum of a numeric field.
    Sum(String),
    /// Average of a numeric field (null values are ignored).
    Avg(String),
    /// Smallest value of a field.
    Min(String),
    /// Largest value of a field.
    Max(String),
}

impl<E: Entity> Pipeline<E> {
    /// An empty pipeline (returns every stored document).
    pub fn new() -> Self {
        Pipeline {
            stages: Vec::new(),
            _entity: PhantomData,
        }
    }

    /// `$match` from a core filter (checked against `E`'s metadata).
    pub fn filter(mut self, filter: &Filter) -> Result<Self> {
        let meta = E::meta();
        let q = to_query(meta, &filter.checked(meta)?)?;
        self.stages.push(doc! { "$match": q });
        Ok(self)
    }

    /// `$sort` by entity fields (nulls lowest; append the id yourself if you need a total order).
    pub fn sort(mut self, keys: &[SortKey]) -> Result<Self> {
        let s = to_sort(E::meta(), keys)?;
        if !s.is_empty() {
            self.stages.push(doc! { "$sort": s });
        }
        Ok(self)
    }

    /// `$group` by a field (`None`: one group over everything) with named accumulators.
    /// The group key is the output's `_id`.
    pub fn group_by(mut self, key: Option<&str>, aggs: &[(&str, Agg)]) -> Result<Self> {
        let meta = E::meta();
        let mut group = Document::new();
        match key {
            Some(k) => group.insert("_id", format!("${}", stored_path(meta, k)?)),
            None => group.insert("_id", Bson::Null),
        };
        for (name, agg) in aggs {
            output_name(name)?;
            let acc = match agg {
                Agg::Count => doc! { "$sum": 1 },
                Agg::Sum(f) => doc! { "$sum": format!("${}", stored_path(meta, f)?) },
                Agg::Avg(f) => doc! { "$avg": format!("${}", stored_path(meta, f)?) },
                Agg::Min(f) => doc! { "$min": format!("${}", stored_path(meta, f)?) },
                Agg::Max(f) => doc! { "$max": format!("${}", stored_path(meta, f)?) },
            };
            group.insert(*name, acc);
        }
        self.stages.push(doc! { "$group": group });
        self.stages.push(doc! { "$sort": { "_id": 1 } });
        Ok(self)
    }

    /// `$lookup`: attach, as array `as_field`, the `F` entities whose
    /// `foreign_field` equals this entity's `local_field`.
    pub fn lookup<F: Entity>(
        mut self,
        local_field: &str,
        foreign_field: &str,
        as_field: &str,
    ) -> Result<Self> {
        output_name(as_field)?;
        let local = stored_path(E::meta(), local_field)?;
        let foreign = stored_path(F::meta(), foreign_field)?;
        self.stages.push(doc! { "$lookup": {
            "from": F::meta().name,
            "localField": local,
            "foreignField": foreign,
            "as": as_field,
        } });
        Ok(self)
    }

    /// `$limit`.
    pub fn limit(mut self, n: u64) -> Self {
        self.stages
            .push(doc! { "$limit": i64::try_from(n).unwrap_or(i64::MAX) });
        self
    }

    /// Any other stage, as written (its values are yours to keep literal).
    pub fn stage(mut self, stage: Document) -> Self {
        self.stages.push(stage);
        self
    }

    /// The stages.
    pub fn stages(&self) -> &[Document] {
        &self.stages
    }
}

impl<E: Entity> MongoRepository<E> {
    /// Run a pipeline and read every output document as `Out`.
    pub async fn aggregate_pipeline<Out: DeserializeOwned + Send + 'static>(
        &self,
        pipeline: Pipeline<E>,
    ) -> Result<Vec<Out>> {
        self.aggregate_stream(pipeline).try_collect().await
    }

    /// Run a pipeline, streaming the output from the server cursor.
    pub fn aggregate_stream<Out: DeserializeOwned + Send + 'static>(
        &self,
        pipeline: Pipeline<E>,
    ) -> BoxStream<'static, Result<Out>> {
        let meta = E::meta();
        let coll = self.collection().clone();
        let max_time = self.max_time();
        let open = async move {
            let mut action = coll.aggregate(pipeline.stages);
            if let Some(t) = max_time {
                action = action.max_time(t);
            }
            let cursor = action
                .await
                .map_err(|e| map(e, meta).in_context(meta.name, "aggregate"))?;
            Ok::<_, Error>(cursor.map(move |d| {
                let d = d.map_err(|e| map(e, meta).in_context(meta.name, "aggregate"))?;
                bson::from_document::<Out>(d).map_err(|e| {
                    Error::decode(format!("aggregate output: {e}"))
                        .in_context(meta.name, "aggregate")
                })
            }))
        };
        Box::pin(futures_util::stream::once(open).try_flatten())
    }
}

impl<E: Entity> MongoRepository<E> {
    /// A projection: the rows matching `query` (filter, sort with the id
    /// tie-breaker, limit, offset — as `find`), returning only `fields`
    /// (entity paths, validated against the metadata; the id is stored as
    /// `_id` and always included), each read as `Out`.
    pub async fn find_fields<Out: DeserializeOwned + Send + 'static>(
        &self,
        query: &persistence_core::Query,
        fields: &[&str],
    ) -> Result<Vec<Out>> {
        let meta = E::meta();
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find_fields"))?;
        if q.limit == Some(0) {
            return Ok(Vec::new());
        }
        let mut projection = Document::new();
        for f in fields {
            projection.insert(
                stored_path(meta, f).map_err(|e| e.in_context(meta.name, "find_fields"))?,
                1,
            );
        }
        let mut find = self
            .collection()
            .find(to_query(meta, &q.filter)?)
            .sort(to_sort(meta, &q.sort)?)
            .projection(projection)
            .skip(q.offset);
        if let Some(l) = q.limit {
            find = find.limit(i64::try_from(l).unwrap_or(i64::MAX));
        }
        if let Some(t) = self.max_time() {
            find = find.max_time(t);
        }
        let docs: Vec<Document> = find
            .await
            .map_err(|e| map(e, meta).in_context(meta.name, "find_fields"))?
            .try_collect()
            .await
            .map_err(|e| map(e, meta).in_context(meta.name, "find_fields"))?;
        docs.into_iter()
            .map(|d| {
                bson::from_document::<Out>(d).map_err(|e| {
                    Error::decode(format!("projection: {e}")).in_context(meta.name, "find_fields")
                })
            })
            .collect()
    }
}
