//! Projections and distinct values of [`MongoRepository`]: a `find` with a
//! projection of only the asked fields, and a `$group` on one field for
//! `distinct` (so a missing field counts as null, as a SQL NULL does),
//! inside the bound transaction's session when there is one.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use persistence_core::select::{check_distinct, check_select, project_values, sort_distinct};
use persistence_core::{Entity, Error, Filter, Query, Result, Value};

use super::MongoRepository;
use crate::codec::{from_bson, stored_name};
use crate::query::{to_query, to_sort};

impl<E: Entity> MongoRepository<E> {
    pub(super) async fn select_docs(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "select");
        let cols = check_select(meta, fields).map_err(ctx)?;
        let q = query.checked(meta).map_err(ctx)?;
        if q.limit == Some(0) {
            return Ok(Vec::new());
        }
        let filter = to_query(meta, &q.filter).map_err(ctx)?;
        let sort = to_sort(meta, &q.sort).map_err(ctx)?;
        let mut projection = Document::new();
        for (i, _) in &cols {
            projection.insert(stored_name(meta, *i), 1);
        }
        if !cols.iter().any(|(i, _)| *i == meta.id_index) {
            projection.insert("_id", 0);
        }
        let limit = q.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let find = || {
            let mut f = self
                .coll
                .find(filter.clone())
                .projection(projection.clone())
                .sort(sort.clone());
            if let Some(t) = self.max_time {
                f = f.max_time(t);
            }
            if q.offset > 0 {
                f = f.skip(q.offset);
            }
            if let Some(l) = limit {
                f = f.limit(l);
            }
            f
        };
        let docs = match &self.session {
            Some(session) => {
                let mut guard = session.lock().await;
                let mut cursor = find()
                    .session(&mut *guard)
                    .await
                    .map_err(self.err("select"))?;
                cursor
                    .stream(&mut guard)
                    .try_collect()
                    .await
                    .map_err(self.err("select"))?
            }
            None => find()
                .await
                .map_err(self.err("select"))?
                .try_collect::<Vec<_>>()
                .await
                .map_err(self.err("select"))?,
        };
        docs.iter()
            .map(|d| {
                let values = cols
                    .iter()
                    .map(|(i, name)| match d.get(stored_name(meta, *i)) {
                        None => Ok(Value::Null),
                        Some(b) => from_bson(b, meta.fields[*i].ty).map_err(|e| {
                            Error::decode(format!("{}.{name}: {}", meta.name, e.message()))
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?;
                project_values(meta, &cols, values)
            })
            .collect::<Result<_>>()
            .map_err(ctx)
    }

    pub(super) async fn distinct_values(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "distinct");
        let (i, _) = check_distinct(meta, field).map_err(ctx)?;
        let f = filter
            .checked(meta)
            .and_then(|f| to_query(meta, &f))
            .map_err(ctx)?;
        let key = format!("${}", stored_name(meta, i));
        let pipeline = vec![doc! { "$match": f }, doc! { "$group": { "_id": key } }];
        let aggregate = || {
            let mut a = self.coll.aggregate(pipeline.clone());
            if let Some(t) = self.max_time {
                a = a.max_time(t);
            }
            a
        };
        let docs = match &self.session {
            Some(session) => {
                let mut guard = session.lock().await;
                let mut cursor = aggregate()
                    .session(&mut *guard)
                    .await
                    .map_err(self.err("distinct"))?;
                cursor
                    .stream(&mut guard)
                    .try_collect()
                    .await
                    .map_err(self.err("distinct"))?
            }
            None => aggregate()
                .await
                .map_err(self.err("distinct"))?
                .try_collect::<Vec<_>>()
                .await
                .map_err(self.err("distinct"))?,
        };
        let ty = meta.fields[i].ty;
        let mut values = docs
            .iter()
            .map(|d| {
                from_bson(d.get("_id").unwrap_or(&Bson::Null), ty)
                    .and_then(|v| v.normalize(ty))
                    .map_err(|e| Error::decode(format!("{}.{field}: {}", meta.name, e.message())))
            })
            .collect::<Result<Vec<_>>>()
            .map_err(ctx)?;
        sort_distinct(&mut values);
        Ok(values)
    }
}
