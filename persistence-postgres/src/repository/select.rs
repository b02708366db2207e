//! Projections and distinct values of [`RelationalRepository`]: `SELECT`
//! of only the asked columns, `SELECT DISTINCT` of one column, on the pool
//! or in a transaction.

use persistence_core::select::{check_distinct, check_select, project_values, sort_distinct};
use persistence_core::{Entity, Error, Filter, Query, Result, Value};

use super::RelationalRepository;
use crate::codec::decode;
use crate::store::conn::Conn;

impl<E: Entity> RelationalRepository<E> {
    pub(crate) async fn select_on<C: Conn>(
        &self,
        c: &C,
        query: &Query,
        fields: &[&str],
    ) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "select");
        let cols = check_select(meta, fields).map_err(ctx)?;
        let q = query.checked(meta).map_err(ctx)?;
        let mut head = self.sql();
        head.push("SELECT ");
        for (n, (_, name)) in cols.iter().enumerate() {
            if n > 0 {
                head.push(", ");
            }
            head.ident(name);
        }
        head.push(" FROM ").push(&self.table.target);
        let sql = self.select_sql_from(head, &q).map_err(ctx)?;
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "select"))?;
        rows.iter()
            .map(|row| {
                let values = cols
                    .iter()
                    .enumerate()
                    .map(|(j, (i, name))| {
                        decode(self.dialect(), meta.fields[*i].ty, row, j).map_err(|e| {
                            Error::decode(format!("field `{name}`: {}", e.message()))
                                .with_entity(meta.name)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                project_values(meta, &cols, values)
            })
            .collect::<Result<_>>()
            .map_err(ctx)
    }

    pub(crate) async fn distinct_on<C: Conn>(
        &self,
        c: &C,
        field: &str,
        filter: &Filter,
    ) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "distinct");
        let (i, name) = check_distinct(meta, field).map_err(ctx)?;
        let f = filter.checked(meta).map_err(ctx)?;
        let mut sql = self.sql();
        sql.push("SELECT DISTINCT ")
            .ident(name)
            .push(" FROM ")
            .push(&self.table.target);
        self.where_filter(&mut sql, &f).map_err(ctx)?;
        let rows = self
            .rows(c, sql)
            .await
            .map_err(|e| self.err(e, "distinct"))?;
        let ty = meta.fields[i].ty;
        let mut values = rows
            .iter()
            .map(|row| {
                decode(self.dialect(), ty, row, 0)
                    .and_then(|v| v.normalize(ty))
                    .map_err(|e| {
                        Error::decode(format!("field `{name}`: {}", e.message()))
                            .with_entity(meta.name)
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map_err(ctx)?;
        // One order on every backend (code points, numbers by value, null
        // last), whatever the column's collation.
        sort_distinct(&mut values);
        Ok(values)
    }
}
