//! `aggregate` of [`RelationalRepository`]: one statement per call,
//!
//! ```sql
//! SELECT "c0", "c1", ... FROM (
//!     SELECT "region" AS "c0", COUNT(*) AS "c1", CAST(SUM("qty") AS bigint) AS "c2"
//!     FROM "t" WHERE <filter> GROUP BY "region"
//! ) AS "g" WHERE <having> ORDER BY <sort, then the keys> LIMIT n
//! ```
//!
//! The derived table names the result columns positionally (as
//! [`AggregatePlan`] does), so `having` and the sort are translated by the
//! same [`Translator`](crate::query::translate::Translator) as every filter
//! (code-point string order, two-valued `not`, nulls lowest), over the
//! plan's column metadata; PostgreSQL and SQLite evaluate it like a
//! `HAVING` on the grouped rows. Every value is bound.
//!
//! Casts make the result types the core rules (`persistence_core::aggregate`):
//! on PostgreSQL `sum` of an integer column is `numeric` (of `bigint`)
//! and is cast back to `bigint` (an overflow is SQLSTATE 22003, reported as
//! `InvalidInput`), `sum` of a float column is summed in `double precision`,
//! `avg` is cast to `double precision`, and text `min`/`max` use
//! `COLLATE "C"`. SQLite's `SUM` of integers is an integer and fails with
//! "integer overflow" (also on an intermediate sum outside the range);
//! SQLite keeps decimals as text, so decimal `sum`/`avg`/`min`/`max` are
//! `Unsupported` there.

use persistence_core::aggregate::{AggColumn, AggregatePlan};
use persistence_core::{
    AggFn, Entity, Error, ErrorKind, Filter, GroupBy, Result, ScalarType, Value,
};

use sea_orm::Value as SV;

use super::RelationalRepository;
use crate::codec::decode;
use crate::query::translate::Translator;
use crate::query::{Dialect, Sql};
use crate::store::conn::Conn;

fn is_integer(s: ScalarType) -> bool {
    matches!(s, ScalarType::I16 | ScalarType::I32 | ScalarType::I64)
}

impl<E: Entity> RelationalRepository<E> {
    /// The aggregate expression of `a`.
    fn aggregate_expr(&self, sql: &mut Sql, a: &AggColumn) -> Result<()> {
        let pg = self.dialect() == Dialect::Postgres;
        let Some((name, _, src)) = a.field else {
            sql.push("COUNT(*)");
            return Ok(());
        };
        if !pg && src == ScalarType::Decimal {
            return Err(Error::unsupported(format!(
                "aggregate `{}`: SQLite stores decimals as text and cannot sum, average or \
                 order them exactly",
                a.alias
            )));
        }
        match (&a.func, pg) {
            (AggFn::Sum(_), true) if is_integer(src) => {
                sql.push("CAST(SUM(").ident(name).push(") AS bigint)");
            }
            (AggFn::Sum(_), true) if src == ScalarType::Decimal => {
                sql.push("SUM(").ident(name).push(")");
            }
            (AggFn::Sum(_), true) => {
                sql.push("SUM(CAST(")
                    .ident(name)
                    .push(" AS double precision))");
            }
            (AggFn::Sum(_), false) if is_integer(src) => {
                sql.push("SUM(").ident(name).push(")");
            }
            (AggFn::Sum(_), false) => {
                sql.push("SUM(CAST(").ident(name).push(" AS REAL))");
            }
            (AggFn::Avg(_), true) => {
                sql.push("CAST(AVG(")
                    .ident(name)
                    .push(") AS double precision)");
            }
            (AggFn::Avg(_), false) => {
                sql.push("AVG(").ident(name).push(")");
            }
            (AggFn::Min(_) | AggFn::Max(_), _) => {
                sql.push(if matches!(a.func, AggFn::Min(_)) {
                    "MIN("
                } else {
                    "MAX("
                });
                sql.ident(name);
                if pg && matches!(src, ScalarType::String | ScalarType::Enum) {
                    sql.push(" COLLATE \"C\"");
                }
                sql.push(")");
            }
            (other, _) => {
                return Err(Error::unsupported(format!(
                    "aggregate function {other:?} is not supported"
                )));
            }
        }
        Ok(())
    }

    /// The statement of a checked plan over the rows matching a checked filter.
    fn aggregate_sql(&self, plan: &AggregatePlan, filter: &Filter) -> Result<Sql> {
        let mut sql = self.sql();
        sql.push("SELECT ");
        for i in 0..plan.width() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(AggregatePlan::column(i));
        }
        sql.push(" FROM (SELECT ");
        for (i, k) in plan.keys.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.ident(k.name)
                .push(" AS ")
                .ident(AggregatePlan::column(i));
        }
        for (j, a) in plan.aggregates.iter().enumerate() {
            if j > 0 || !plan.keys.is_empty() {
                sql.push(", ");
            }
            self.aggregate_expr(&mut sql, a)?;
            sql.push(" AS ")
                .ident(AggregatePlan::column(plan.keys.len() + j));
        }
        sql.push(" FROM ").push(&self.table.target);
        self.where_filter(&mut sql, filter)?;
        for (i, k) in plan.keys.iter().enumerate() {
            sql.push(if i == 0 { " GROUP BY " } else { ", " });
            sql.ident(k.name);
        }
        sql.push(") AS \"g\"");
        let tr = Translator {
            meta: plan.columns(),
            dialect: self.dialect(),
        };
        if let Some(h) = &plan.having {
            sql.push(" WHERE ");
            tr.filter(&mut sql, h)?;
        }
        tr.order_by(&mut sql, &plan.sort)?;
        if let Some(l) = plan.limit {
            // Bound, so the statement text is the same for every limit.
            sql.push(" LIMIT ")
                .bind(SV::BigInt(Some(i64::try_from(l).unwrap_or(i64::MAX))));
        }
        Ok(sql)
    }

    pub(crate) async fn aggregate_on<C: Conn>(
        &self,
        c: &C,
        filter: &Filter,
        group: &GroupBy<E>,
    ) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "aggregate");
        let plan = group.checked(meta).map_err(ctx)?;
        let f = filter.checked(meta).map_err(ctx)?;
        let sql = self.aggregate_sql(&plan, &f).map_err(ctx)?;
        let rows = self.rows(c, sql).await.map_err(|e| {
            let overflow = e.to_string().contains("integer overflow");
            let mapped = self.err(e, "aggregate");
            let sums = plan
                .aggregates
                .iter()
                .any(|a| matches!(a.func, AggFn::Sum(_)) && a.ty == ScalarType::I64);
            if sums && (overflow || mapped.kind() == &ErrorKind::InvalidInput) {
                ctx(Error::invalid_input(
                    "aggregate: an integer sum is outside the i64 range",
                ))
            } else {
                mapped
            }
        })?;
        rows.iter()
            .map(|row| {
                let values = (0..plan.width())
                    .map(|i| decode(self.dialect(), plan.column_type(i), row, i))
                    .collect::<Result<Vec<_>>>()?;
                plan.row(values)
            })
            .collect::<Result<_>>()
            .map_err(ctx)
    }
}
