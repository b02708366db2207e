//! `Repository::aggregate` of [`MongoRepository`]: one pipeline per call,
//!
//! ```text
//! { $match: <filter> }
//! { $group: { _id: { k0: "$region", ... }, a0: { $sum: 1 }, a1: { $sum: "$amount" }, m1: { $max: "$amount" }, ... } }
//! { $project: { _id: 0, c0: "$_id.k0", c1: "$a0", c2: { $cond: [{ $eq: ["$m1", null] }, null, "$a1"] }, ... } }
//! { $match: <having over c0..> }   { $sort: { <sort>, then the keys } }   { $limit: n }
//! ```
//!
//! The result columns are named positionally as in the core
//! [`AggregatePlan`], so `having` and the sort are translated by
//! [`to_query`] / [`to_sort`] over the plan's column metadata (values stay
//! BSON values under operators chosen here). How the core rules
//! (`persistence_core::aggregate`) are met:
//! * `$sum` of nothing is 0, so every `sum` of a nullable field also takes
//!   the `$max` of the field, which is null exactly when the group has no
//!   non-null value, and `$project` turns the sum into null then (a field
//!   that cannot be null needs neither: every group has a document).
//! * An integer sum outside the `i64` range: MongoDB switches to a double,
//!   which is read as the overflow (`InvalidInput`). A server that fails
//!   instead (SecantusDB answers `InternalError`) gets the same pipeline once
//!   more with integer sums as decimal128 (`$toDecimal`, exact past the `i64`
//!   range), whose result says whether the sum overflowed; if that fails
//!   too, the first error stands. (Always summing decimals would be exact
//!   everywhere but doubled the time of a 50,000-document grouping on the
//!   test server.) A group dropped by `having` or `limit` is not checked.
//! * The single key of a one-key grouping is the `_id` itself.
//! * `$group` over no documents yields no group, so a grouping without keys
//!   runs `$match`, `$group` and `$project` only and finishes in the client
//!   ([`AggregatePlan::finish`]): the empty group (count 0, the rest null)
//!   when nothing matched, then `having` on that single row.
//! * Strings compare by code point in `$min`/`$max`/`$sort` (MongoDB's
//!   binary comparison), nulls sort lowest; documents store `None` as an
//!   explicit null, so a null key is one group.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use persistence_core::aggregate::{AggregatePlan, sum_overflow};
use persistence_core::{
    AggFn, Entity, Error, ErrorKind, Filter, GroupBy, Result, ScalarType, Value,
};
use rust_decimal::prelude::ToPrimitive as _;

use super::MongoRepository;
use crate::codec::{from_bson, stored_name};
use crate::query::{to_query, to_sort};

fn is_integer(s: ScalarType) -> bool {
    matches!(s, ScalarType::I16 | ScalarType::I32 | ScalarType::I64)
}

/// The pipeline of a checked plan over a checked filter. Without keys the
/// stages after `$project` are left to the client (see the module docs).
/// `exact` sums integers as decimal128 (see the module docs).
fn pipeline(
    meta: &persistence_core::EntityMeta,
    plan: &AggregatePlan,
    filter: &Filter,
    exact: bool,
) -> Result<Vec<Document>> {
    let mut stages = Vec::with_capacity(6);
    if !filter.is_all() {
        stages.push(doc! { "$match": to_query(meta, filter)? });
    }
    let mut group = Document::new();
    let mut project = doc! { "_id": 0 };
    if plan.keys.is_empty() {
        group.insert("_id", Bson::Null);
    } else if let [k] = plan.keys.as_slice() {
        group.insert("_id", format!("${}", stored_name(meta, k.index)));
        project.insert(AggregatePlan::column(0), "$_id");
    } else {
        let mut id = Document::new();
        for (i, k) in plan.keys.iter().enumerate() {
            id.insert(format!("k{i}"), format!("${}", stored_name(meta, k.index)));
            project.insert(AggregatePlan::column(i), format!("$_id.k{i}"));
        }
        group.insert("_id", id);
    }
    for (j, a) in plan.aggregates.iter().enumerate() {
        let acc = format!("a{j}");
        let col = AggregatePlan::column(plan.keys.len() + j);
        let Some((_, index, src)) = a.field else {
            group.insert(&acc, doc! { "$sum": 1 });
            project.insert(col, format!("${acc}"));
            continue;
        };
        let field = format!("${}", stored_name(meta, index));
        match &a.func {
            AggFn::Sum(_) => {
                let operand = if exact && is_integer(src) {
                    Bson::Document(doc! { "$toDecimal": &field })
                } else {
                    Bson::String(field.clone())
                };
                group.insert(&acc, doc! { "$sum": operand });
                if meta.fields[index].nullable {
                    group.insert(format!("m{j}"), doc! { "$max": &field });
                    project.insert(
                        col,
                        doc! { "$cond": [{ "$eq": [format!("$m{j}"), Bson::Null] }, Bson::Null, format!("${acc}")] },
                    );
                } else {
                    // Every group has a document, so a sum of a non-null field is never null.
                    project.insert(col, format!("${acc}"));
                }
            }
            func => {
                let op = match func {
                    AggFn::Avg(_) => "$avg",
                    AggFn::Min(_) => "$min",
                    AggFn::Max(_) => "$max",
                    other => {
                        return Err(Error::unsupported(format!(
                            "aggregate function {other:?} is not supported"
                        )));
                    }
                };
                // The average of decimals is a decimal in MongoDB; the core rule is a float.
                let operand = if op == "$avg" && src == ScalarType::Decimal {
                    Bson::Document(doc! { "$toDouble": &field })
                } else {
                    Bson::String(field.clone())
                };
                group.insert(&acc, doc! { op: operand });
                project.insert(col, format!("${acc}"));
            }
        }
    }
    stages.push(doc! { "$group": group });
    stages.push(doc! { "$project": project });
    if plan.keys.is_empty() {
        return Ok(stages);
    }
    let columns = plan.columns();
    if let Some(h) = &plan.having {
        stages.push(doc! { "$match": to_query(columns, h)? });
    }
    stages.push(doc! { "$sort": to_sort(columns, &plan.sort)? });
    if let Some(l) = plan.limit {
        stages.push(doc! { "$limit": i64::try_from(l).unwrap_or(i64::MAX) });
    }
    Ok(stages)
}

/// The column values of one output document.
fn columns_of(plan: &AggregatePlan, d: &Document) -> Result<Vec<Value>> {
    (0..plan.width())
        .map(|i| {
            let b = d.get(AggregatePlan::column(i)).unwrap_or(&Bson::Null);
            let int_sum = i
                .checked_sub(plan.keys.len())
                .and_then(|j| plan.aggregates.get(j))
                .filter(|a| matches!(a.func, AggFn::Sum(_)) && a.ty == ScalarType::I64);
            match (int_sum, b) {
                (Some(a), Bson::Decimal128(x)) => x
                    .to_string()
                    .parse::<rust_decimal::Decimal>()
                    .ok()
                    .and_then(|d| d.to_i64())
                    .map(Value::I64)
                    .ok_or_else(|| sum_overflow(&a.alias)),
                (Some(a), Bson::Double(_)) => Err(sum_overflow(&a.alias)),
                _ => from_bson(b, plan.column_type(i)),
            }
        })
        .collect()
}

impl<E: Entity> MongoRepository<E> {
    /// `Repository::aggregate` (named apart from the inherent pipeline `aggregate`).
    pub(crate) async fn group_by(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "aggregate");
        let plan = group.checked(meta).map_err(ctx)?;
        let f = filter.checked(meta).map_err(ctx)?;
        let stages = pipeline(meta, &plan, &f, false).map_err(ctx)?;
        let int_sums = plan
            .aggregates
            .iter()
            .any(|a| matches!(a.func, AggFn::Sum(_)) && a.ty == ScalarType::I64);
        let docs = match self.run_pipeline(stages).await {
            // A server that cannot represent an int64 overflow fails the plain
            // sum (SecantusDB: InternalError); the exact form says whether that was it.
            Err(e) if int_sums && e.kind() == &ErrorKind::Backend && !e.is_retryable() => {
                let exact = pipeline(meta, &plan, &f, true).map_err(ctx)?;
                self.run_pipeline(exact).await.map_err(|_| e)?
            }
            other => other?,
        };
        if plan.keys.is_empty() {
            let values = match docs.first() {
                Some(d) => columns_of(&plan, d).map_err(ctx)?,
                None => plan.empty_group(),
            };
            return plan.finish(vec![values]).map_err(ctx);
        }
        docs.iter()
            .map(|d| plan.row(columns_of(&plan, d)?))
            .collect::<Result<_>>()
            .map_err(ctx)
    }

    /// Run `stages`, in the bound session if there is one, and read every document.
    async fn run_pipeline(&self, stages: Vec<Document>) -> Result<Vec<Document>> {
        let err = self.err("aggregate");
        let mut action = self.coll.aggregate(stages);
        if let Some(t) = self.max_time {
            action = action.max_time(t);
        }
        match &self.session {
            Some(s) => {
                let mut guard = s.lock().await;
                let mut cursor = action.session(&mut *guard).await.map_err(&err)?;
                cursor.stream(&mut guard).try_collect().await.map_err(err)
            }
            None => action.await.map_err(&err)?.try_collect().await.map_err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use persistence_core::conformance::cases::Sale;

    #[test]
    fn keyed_pipeline_has_every_stage_and_binds_values() {
        let g = GroupBy::<Sale>::new()
            .key(Sale::REGION)
            .count()
            .sum(Sale::QTY)
            .having(Filter::field("count").gt(1))
            .sort(Filter::field("sum_qty").desc())
            .limit(3);
        let plan = g.checked(Sale::meta()).expect("valid");
        let f = Sale::PRODUCT
            .eq("$where")
            .checked(Sale::meta())
            .expect("valid");
        let stages = pipeline(Sale::meta(), &plan, &f, false).expect("pipeline");
        let names: Vec<&str> = stages
            .iter()
            .filter_map(|s| s.keys().next().map(String::as_str))
            .collect();
        assert_eq!(
            names,
            ["$match", "$group", "$project", "$match", "$sort", "$limit"]
        );
        // A user value is only ever compared literally.
        assert_eq!(
            stages[0]
                .get_document("$match")
                .expect("match")
                .get("product"),
            to_query(Sale::meta(), &f).expect("query").get("product")
        );
        assert_eq!(stages[4], doc! { "$sort": { "c2": -1, "c0": 1 } });
        // qty is not nullable: no helper, no $cond; the exact form sums decimals.
        assert_eq!(stages[1].get_document("$group").expect("group").len(), 3);
        let exact = pipeline(Sale::meta(), &plan, &f, true).expect("pipeline");
        assert_eq!(
            exact[1].get_document("$group").expect("group").get("a1"),
            Some(&Bson::Document(doc! { "$sum": { "$toDecimal": "$qty" } }))
        );
        assert_eq!(stages[5], doc! { "$limit": 3i64 });
    }
}
