//! The read path of [`RelationalRepository`]: `get`, `get_many`, `find`,
//! `count`, `exists` and `stream`, on the pool or in a transaction.
//!
//! Soft-deleted rows: `find`, `count`, `exists` and `stream` check their
//! filter, which adds the scope condition to the SQL; `get` and `get_many`
//! read by id and drop what [`lifecycle::visible`] refuses (the statement
//! of `get` stays the one prepared per repository).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;
use persistence_core::lifecycle;
use persistence_core::memory::Key;
use persistence_core::{BoxStream, Entity, Filter, Query, Result};
use sea_orm::{Statement, StreamTrait, Value as SV};

use super::RelationalRepository;
use crate::codec::{entity, to_bind};
use crate::query::{Dialect, Sql};
use crate::store::conn::Conn;

impl<E: Entity> RelationalRepository<E> {
    /// `SELECT ... WHERE ... ORDER BY ... LIMIT ... OFFSET ...` for a checked query.
    pub(super) fn select_sql(&self, q: &Query) -> Result<Sql> {
        self.select_sql_from(self.select_head(), q)
    }

    /// `head` (a `SELECT ... FROM table`) followed by the query's filter,
    /// order, limit and offset. The limit and offset are bound parameters,
    /// so the statement text (and the plan PostgreSQL caches for it, generic
    /// after five executions) does not depend on them.
    pub(super) fn select_sql_from(&self, mut sql: Sql, q: &Query) -> Result<Sql> {
        if !q.filter.is_all() {
            sql.push(" WHERE ");
            self.tr().filter(&mut sql, &q.filter)?;
        }
        let facts = &self.table.facts;
        self.tr()
            .order_by_known(&mut sql, &q.sort, &|c| facts.not_null(c))?;
        let bigint = |n: u64| SV::BigInt(Some(i64::try_from(n).unwrap_or(i64::MAX)));
        match (q.limit, q.offset, self.dialect()) {
            (Some(l), _, _) => {
                sql.push(" LIMIT ").bind(bigint(l));
            }
            // SQLite has no OFFSET without a LIMIT; a negative limit is none.
            (None, o, Dialect::Sqlite) if o > 0 => {
                sql.push(" LIMIT -1");
            }
            _ => {}
        }
        if q.offset > 0 {
            sql.push(" OFFSET ").bind(bigint(q.offset));
        }
        Ok(sql)
    }

    pub(crate) async fn get_on<C: Conn>(&self, c: &C, id: &E::Id) -> Result<Option<E>> {
        let id = self.id_value(id)?;
        if self.table.facts.adapted().is_some() {
            let mut sql = self.select_head();
            self.where_id(&mut sql, &id)?;
            let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "get"))?;
            let entity = rows
                .first()
                .map(|r| self.decode_row(r))
                .transpose()
                .map_err(|e| e.in_context(E::meta().name, "get"))?;
            return Ok(entity.filter(lifecycle::visible));
        }
        // The statement text is built once per repository.
        let bind = to_bind(self.dialect(), E::meta().id_field().ty, &id)?;
        let stmt = Statement::from_sql_and_values(
            self.dialect().backend(),
            self.table.select_by_id.as_str(),
            [bind],
        );
        let row = c.row(stmt).await.map_err(|e| self.err(e, "get"))?;
        let entity = row
            .map(|r| self.decode_row(&r))
            .transpose()
            .map_err(|e| e.in_context(E::meta().name, "get"))?;
        Ok(entity.filter(lifecycle::visible))
    }

    pub(crate) async fn get_many_on<C: Conn>(&self, c: &C, ids: &[E::Id]) -> Result<Vec<E>> {
        let meta = E::meta();
        let idf = meta.id_field();
        let mut seen = BTreeSet::new();
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            let k = Key(self.id_value(id)?);
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
        let mut found: BTreeMap<Key, E> = BTreeMap::new();
        for chunk in keys.chunks(1000) {
            let mut sql = self.select_head();
            sql.push(" WHERE ").ident(idf.name).push(" IN (");
            for (i, k) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(to_bind(self.dialect(), idf.ty, &k.0)?);
            }
            sql.push(")");
            for row in self
                .rows(c, sql)
                .await
                .map_err(|e| self.err(e, "get_many"))?
            {
                let record = self
                    .decode_record(&row)
                    .map_err(|e| e.in_context(meta.name, "get_many"))?;
                let key = Key(record.get(meta.id_index).clone());
                let entity =
                    entity(meta, record.values).map_err(|e| e.in_context(meta.name, "get_many"))?;
                if lifecycle::visible(&entity) {
                    found.insert(key, entity);
                }
            }
        }
        Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
    }

    pub(crate) async fn find_on<C: Conn>(&self, c: &C, query: &Query) -> Result<Vec<E>> {
        let meta = E::meta();
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find"))?;
        self.find_checked_on(c, &q).await
    }

    /// `find` without `ORDER BY` when the query has no limit and no offset
    /// (see `Repository::find_unordered`): eager loading's `key = ANY($1)`
    /// reads skip the sort, and PostgreSQL keeps a cheaper generic plan.
    pub(crate) async fn find_unordered_on<C: Conn>(&self, c: &C, query: &Query) -> Result<Vec<E>> {
        let meta = E::meta();
        let mut q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find"))?;
        if q.limit.is_none() && q.offset == 0 {
            q.sort.clear();
        }
        self.find_checked_on(c, &q).await
    }

    async fn find_checked_on<C: Conn>(&self, c: &C, q: &Query) -> Result<Vec<E>> {
        let meta = E::meta();
        let sql = self
            .select_sql(q)
            .map_err(|e| e.in_context(meta.name, "find"))?;
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "find"))?;
        rows.iter()
            .map(|r| self.decode_row(r))
            .collect::<Result<_>>()
            .map_err(|e| e.in_context(meta.name, "find"))
    }

    pub(crate) async fn count_on<C: Conn>(&self, c: &C, filter: &Filter) -> Result<u64> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "count"))?;
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) FROM ");
        self.push_source(&mut sql);
        self.where_filter(&mut sql, &f)
            .map_err(|e| e.in_context(meta.name, "count"))?;
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "count"))?;
        let n = rows
            .first()
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()
            .map_err(|e| self.err(e, "count"))?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn exists_on<C: Conn>(&self, c: &C, filter: &Filter) -> Result<bool> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "exists"))?;
        let mut sql = self.sql();
        sql.push("SELECT 1 FROM ");
        self.push_source(&mut sql);
        self.where_filter(&mut sql, &f)
            .map_err(|e| e.in_context(meta.name, "exists"))?;
        sql.push(" LIMIT 1");
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "exists"))?;
        Ok(!rows.is_empty())
    }

    /// Stream the rows of `query` from `conn` (a pool or a transaction).
    pub(crate) fn stream_on<'a, S: StreamTrait>(
        &'a self,
        conn: &'a S,
        query: &Query,
    ) -> BoxStream<'a, Result<E>> {
        let meta = E::meta();
        let stmt = query
            .checked(meta)
            .and_then(|q| self.select_sql(&q))
            .map_err(|e| e.in_context(meta.name, "stream"));
        let stmt = match stmt {
            Ok(s) => s.into_statement(),
            Err(e) => return Box::pin(futures_util::stream::once(async move { Err(e) })),
        };
        let s = futures_util::stream::once(async move {
            match conn.stream_raw(stmt).await {
                Ok(rows) => rows
                    .map(move |r| match r {
                        Ok(row) => self
                            .decode_row(&row)
                            .map_err(|e| e.in_context(E::meta().name, "stream")),
                        Err(e) => Err(self.err(e, "stream")),
                    })
                    .left_stream(),
                Err(e) => futures_util::stream::once(async move { Err(self.err(e, "stream")) })
                    .right_stream(),
            }
        })
        .flatten();
        Box::pin(s)
    }
}
