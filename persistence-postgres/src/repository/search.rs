//! `find_text` of [`RelationalRepository`]: one `SELECT` ranked by
//! `ts_rank` (PostgreSQL) or `bm25()` (SQLite); see [`crate::fulltext`].

use persistence_core::query::{Direction, SortKey};
use persistence_core::text::CheckedText;
use persistence_core::{Entity, Error, Filter, Result, TextQuery};
use sea_orm::{QueryResult, Value as SV};

use super::RelationalRepository;
use crate::fulltext::{fts_phrase, fts_table, pg_document};
use crate::query::{Dialect, Sql, quote};
use crate::store::conn::Conn;

const OP: &str = "find_text";

impl<E: Entity> RelationalRepository<E> {
    /// The ranked `SELECT` (`None`: the search has no word, nothing matches).
    fn text_sql(&self, q: &CheckedText<'_>) -> Result<Option<Sql>> {
        if q.parsed.is_empty() {
            return Ok(None);
        }
        let meta = E::meta();
        let tr = self.tr();
        let mut sql = self.sql();
        sql.push("SELECT ").push(&self.table.column_list);
        match self.dialect() {
            Dialect::Postgres => {
                sql.push(", ts_rank(")
                    .push(&pg_document(q.fields, tr.text_index))
                    .push(", ");
                tr.pg_tsquery(&mut sql, &q.parsed)?;
                sql.push(")::float8 FROM ").push(&self.table.qualified);
            }
            Dialect::Sqlite => {
                let positive: Vec<String> =
                    q.parsed.positive().map(|a| fts_phrase(&a.words)).collect();
                if positive.is_empty() {
                    sql.push(", 0.0 FROM ").push(&self.table.qualified);
                } else {
                    let fts = quote(&fts_table(meta.name));
                    sql.push(", COALESCE(\"__r\".\"s\", 0.0) FROM ")
                        .push(&self.table.qualified)
                        .push(" LEFT JOIN (SELECT rowid AS \"rid\", -bm25(")
                        .push(&fts)
                        .push(") AS \"s\" FROM ")
                        .push(&fts)
                        .push(" WHERE ")
                        .push(&fts)
                        .push(" MATCH ")
                        .bind(SV::String(Some(positive.join(" OR "))))
                        .push(") AS \"__r\" ON \"__r\".\"rid\" = ")
                        .push(&self.table.qualified)
                        .push(".rowid");
                }
            }
        }
        sql.push(" WHERE ");
        tr.filter(&mut sql, &Filter::MatchesText(q.query.text.clone()))?;
        if !q.filter.is_all() {
            sql.push(" AND (");
            tr.filter(&mut sql, &q.filter)?;
            sql.push(")");
        }
        // Most relevant first, ties by id (in the library's id order).
        let mut by_id = self.sql();
        tr.order_by(
            &mut by_id,
            &[SortKey {
                field: meta.fields[meta.id_index].name.into(),
                direction: Direction::Asc,
            }],
        )?;
        let by_id = by_id.text.trim_start_matches(" ORDER BY ").to_string();
        sql.push(&format!(
            " ORDER BY {} DESC, {by_id} LIMIT {}",
            meta.fields.len() + 1,
            q.query.limit
        ));
        Ok(Some(sql))
    }

    fn text_rows(&self, rows: &[QueryResult]) -> Result<Vec<(E, f64)>> {
        let n = E::meta().fields.len();
        rows.iter()
            .map(|r| {
                let s = r
                    .try_get_by_index::<f64>(n)
                    .map_err(|e| Error::decode(format!("score: {e}")))?;
                Ok((self.decode_row(r)?, s))
            })
            .collect()
    }

    /// `find_text` on `c` (the pool, a tenant's or the caller's transaction).
    pub(crate) async fn text_on<C: Conn>(&self, c: &C, query: &TextQuery) -> Result<Vec<(E, f64)>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, OP);
        let q = query.checked(meta).map_err(ctx)?;
        let Some(sql) = self.text_sql(&q).map_err(ctx)? else {
            return Ok(Vec::new());
        };
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, OP))?;
        self.text_rows(&rows).map_err(ctx)
    }
}
