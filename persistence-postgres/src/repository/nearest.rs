//! `find_nearest` of [`RelationalRepository`]: one index-ordered `SELECT`
//! on pgvector, exact brute force elsewhere (see [`crate::vector`]).

use persistence_core::repository::support;
use persistence_core::vector::CheckedNearest;
use persistence_core::{Entity, Error, NearestQuery, Result, VectorIndex};
use sea_orm::{ConnectionTrait as _, DbErr, QueryResult, TransactionTrait as _};

use super::RelationalRepository;
use crate::query::{Sql, quote};
use crate::store::conn::Conn;
use crate::vector::{self, DEFAULT_EF_SEARCH};

const OP: &str = "find_nearest";

impl<E: Entity> RelationalRepository<E> {
    /// The `SELECT` ranking by the field's distance, and the `SET LOCAL`
    /// statements it needs first (empty: none).
    fn nearest_sql(&self, ext: &str, q: &CheckedNearest<'_>) -> Result<(Sql, String)> {
        let f = &q.field;
        let ty = vector::vector_type(ext);
        let text = sea_orm::Value::String(Some(vector::literal(&q.query.vector)));
        let col = quote(&vector::column(f.name));
        let op = vector::operator(ext, f.spec.metric);
        let mut sql = self.sql();
        sql.push("SELECT ")
            .push(&self.table.column_list)
            .push(", ")
            .push(&col)
            .push(" ")
            .push(&op)
            .push(" CAST(")
            .bind(text.clone())
            .push(&format!(" AS {ty}) FROM "))
            .push(&self.table.target);
        let filtered = !q.filter.is_all();
        let nullable = E::meta().fields[f.index].nullable;
        if filtered || nullable {
            sql.push(" WHERE ");
            if filtered {
                self.tr().filter(&mut sql, &q.filter)?;
            }
            if nullable {
                sql.push(if filtered { " AND " } else { "" })
                    .push(&col)
                    .push(" IS NOT NULL");
            }
        }
        sql.push(" ORDER BY ")
            .push(&col)
            .push(" ")
            .push(&op)
            .push(" CAST(")
            .bind(text)
            .push(&format!(" AS {ty}) LIMIT {}", q.query.k));
        let k = u32::try_from(q.query.k).unwrap_or(u32::MAX);
        let mut settings = String::new();
        match f.spec.index {
            VectorIndex::Hnsw { .. } => {
                if q.query.ef_search.is_some() || k > DEFAULT_EF_SEARCH || filtered {
                    let ef = q.query.ef_search.unwrap_or(DEFAULT_EF_SEARCH).max(k);
                    settings.push_str(&format!("SET LOCAL hnsw.ef_search = {ef};"));
                }
                if filtered {
                    settings.push_str("SET LOCAL hnsw.iterative_scan = strict_order;");
                }
            }
            VectorIndex::IvfFlat { .. } => {
                if let Some(probes) = q.query.ef_search {
                    settings.push_str(&format!("SET LOCAL ivfflat.probes = {probes};"));
                }
                if filtered {
                    settings.push_str("SET LOCAL ivfflat.iterative_scan = relaxed_order;");
                }
            }
            VectorIndex::None => {}
        }
        Ok((sql, settings))
    }

    fn nearest_rows(&self, rows: &[QueryResult]) -> Result<Vec<(E, f64)>> {
        let n = E::meta().fields.len();
        let mut out = rows
            .iter()
            .map(|r| {
                let d = r
                    .try_get_by_index::<f64>(n)
                    .map_err(|e| Error::decode(format!("distance: {e}")))?;
                Ok((self.decode_row(r)?, d))
            })
            .collect::<Result<Vec<_>>>()?;
        // IVFFlat's relaxed order may return rows slightly out of order.
        out.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(out)
    }

    /// `find_nearest` on the pool.
    pub(crate) async fn nearest_pool(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, OP);
        let Some(ext) = self.store.vector_extension().await.map_err(ctx)? else {
            return support::nearest_via_find(self, query).await.map_err(ctx);
        };
        let q = query.checked(meta).map_err(ctx)?;
        let (sql, settings) = self.nearest_sql(ext, &q).map_err(ctx)?;
        let run = async {
            if settings.is_empty() {
                return self.rows(self.db(), sql).await;
            }
            let tx = self.db().begin().await?;
            tx.execute_unprepared(&settings).await?;
            let rows = self.rows(&tx, sql).await?;
            tx.commit().await?;
            Ok::<_, DbErr>(rows)
        };
        let rows = run.await.map_err(|e| self.err(e, OP))?;
        self.nearest_rows(&rows).map_err(ctx)
    }

    /// `find_nearest` inside a caller's transaction `c`: the settings are
    /// set for the one statement and put back afterwards.
    pub(crate) async fn nearest_on<C: Conn>(
        &self,
        c: &C,
        query: &NearestQuery,
    ) -> Result<Option<Vec<(E, f64)>>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, OP);
        let Some(ext) = self.store.vector_extension().await.map_err(ctx)? else {
            return Ok(None);
        };
        let q = query.checked(meta).map_err(ctx)?;
        let (sql, settings) = self.nearest_sql(ext, &q).map_err(ctx)?;
        let run = async {
            if settings.is_empty() {
                return self.rows(c, sql).await;
            }
            let names = [
                "hnsw.ef_search",
                "hnsw.iterative_scan",
                "ivfflat.probes",
                "ivfflat.iterative_scan",
            ];
            let saved = c
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT {}",
                        names
                            .iter()
                            .map(|n| format!("current_setting('{n}')"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
                .await?;
            c.execute_unprepared(&settings).await?;
            let rows = self.rows(c, sql).await;
            if let Some(saved) = saved {
                let mut restore = String::new();
                for (i, n) in names.iter().enumerate() {
                    let v: String = saved.try_get_by_index(i)?;
                    restore.push_str(&format!("SET LOCAL {n} = '{}';", v.replace('\'', "''")));
                }
                c.execute_unprepared(&restore).await?;
            }
            rows
        };
        let rows = run.await.map_err(|e| self.err(e, OP))?;
        self.nearest_rows(&rows).map(Some).map_err(ctx)
    }
}
