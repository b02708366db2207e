//! The reference implementation of an [`AggregatePlan`] over records: what
//! the memory backend runs, and what the other backends are checked against.

use std::collections::BTreeMap;

use crate::entity::ScalarType;
use crate::error::{Error, Result};
use crate::memory::{Key, matches};
use crate::query::Direction;
use crate::value::{Record, Value};

use super::AggFn;
use super::check::{AggColumn, AggregatePlan};

/// The running state of one aggregate in one group.
#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    /// Integer sum (exact; checked against the `i64` range at the end).
    IntSum(Option<i128>),
    FloatSum(Option<f64>),
    #[cfg(feature = "decimal")]
    DecimalSum(Option<rust_decimal::Decimal>),
    /// Sum as f64 (exact for integers below 2^53) and count of non-null values.
    Avg(f64, u64),
    #[cfg(feature = "decimal")]
    DecimalAvg(rust_decimal::Decimal, u64),
    Min(Option<Value>),
    Max(Option<Value>),
}

impl Acc {
    fn new(a: &AggColumn) -> Acc {
        let src = a.field.map(|f| f.2);
        match (&a.func, src) {
            (AggFn::Count, _) => Acc::Count(0),
            #[cfg(feature = "decimal")]
            (AggFn::Sum(_), Some(ScalarType::Decimal)) => Acc::DecimalSum(None),
            #[cfg(feature = "decimal")]
            (AggFn::Avg(_), Some(ScalarType::Decimal)) => {
                Acc::DecimalAvg(rust_decimal::Decimal::ZERO, 0)
            }
            (AggFn::Sum(_), _) if a.ty == ScalarType::I64 => Acc::IntSum(None),
            (AggFn::Sum(_), _) => Acc::FloatSum(None),
            (AggFn::Avg(_), _) => Acc::Avg(0.0, 0),
            (AggFn::Min(_), _) => Acc::Min(None),
            (AggFn::Max(_), _) => Acc::Max(None),
        }
    }

    fn add(&mut self, v: &Value) {
        if let Acc::Count(n) = self {
            *n += 1;
            return;
        }
        if v.is_null() {
            return;
        }
        match (self, v) {
            (Acc::IntSum(s), Value::I64(i)) => *s = Some(s.unwrap_or(0) + i128::from(*i)),
            (Acc::FloatSum(s), v) => *s = Some(s.unwrap_or(0.0) + as_f64(v)),
            #[cfg(feature = "decimal")]
            (Acc::DecimalSum(s), Value::Decimal(d)) => {
                *s = Some(s.unwrap_or_default().saturating_add(*d));
            }
            (Acc::Avg(s, n), v) => {
                *s += as_f64(v);
                *n += 1;
            }
            #[cfg(feature = "decimal")]
            (Acc::DecimalAvg(s, n), Value::Decimal(d)) => {
                *s = s.saturating_add(*d);
                *n += 1;
            }
            (Acc::Min(m), v) if m.as_ref().is_none_or(|x| v.total_cmp(x).is_lt()) => {
                *m = Some(v.clone());
            }
            (Acc::Max(m), v) if m.as_ref().is_none_or(|x| v.total_cmp(x).is_gt()) => {
                *m = Some(v.clone());
            }
            _ => {}
        }
    }

    fn finish(self, alias: &str) -> Result<Value> {
        Ok(match self {
            Acc::Count(n) => Value::I64(n),
            Acc::IntSum(None) | Acc::FloatSum(None) | Acc::Min(None) | Acc::Max(None) => {
                Value::Null
            }
            Acc::IntSum(Some(s)) => Value::I64(i64::try_from(s).map_err(|_| sum_overflow(alias))?),
            Acc::FloatSum(Some(s)) => Value::F64(s),
            #[cfg(feature = "decimal")]
            Acc::DecimalSum(s) => s.map_or(Value::Null, Value::Decimal),
            Acc::Avg(_, 0) => Value::Null,
            Acc::Avg(s, n) => Value::F64(s / n as f64),
            #[cfg(feature = "decimal")]
            Acc::DecimalAvg(_, 0) => Value::Null,
            #[cfg(feature = "decimal")]
            Acc::DecimalAvg(s, n) => {
                use rust_decimal::prelude::ToPrimitive as _;
                Value::F64(s.to_f64().unwrap_or(f64::NAN) / n as f64)
            }
            Acc::Min(Some(v)) | Acc::Max(Some(v)) => v,
        })
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::I64(i) => *i as f64,
        Value::F64(x) => *x,
        _ => f64::NAN,
    }
}

/// The error of an integer sum outside the `i64` range (every backend reports it so).
pub fn sum_overflow(alias: &str) -> Error {
    Error::invalid_input(format!(
        "aggregate `{alias}`: the sum is outside the i64 range"
    ))
}

/// Run `plan` over `records` of its entity (already filtered) and return the
/// result rows: grouping, the null and empty-group rules of the [module
/// docs](crate::aggregate), `having`, sort and limit.
pub fn aggregate_records<'a>(
    plan: &AggregatePlan,
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<Vec<Value>> {
    let fresh = || plan.aggregates.iter().map(Acc::new).collect::<Vec<_>>();
    let mut groups: BTreeMap<Vec<Key>, Vec<Acc>> = BTreeMap::new();
    if plan.keys.is_empty() {
        groups.insert(Vec::new(), fresh());
    }
    for r in records {
        let key: Vec<Key> = plan
            .keys
            .iter()
            .map(|k| Key(r.get(k.index).clone()))
            .collect();
        let accs = groups.entry(key).or_insert_with(fresh);
        for (acc, a) in accs.iter_mut().zip(&plan.aggregates) {
            let v = a.field.map_or(&Value::Null, |f| r.get(f.1));
            acc.add(v);
        }
    }
    let mut rows = Vec::with_capacity(groups.len());
    for (key, accs) in groups {
        let mut values: Vec<Value> = key.into_iter().map(|k| k.0).collect();
        for (acc, a) in accs.into_iter().zip(&plan.aggregates) {
            values.push(acc.finish(&a.alias)?);
        }
        rows.push(values);
    }
    plan.finish(rows)
}

impl AggregatePlan {
    /// The column values of the group of no entities (no keys): `count` 0,
    /// every other aggregate null.
    pub fn empty_group(&self) -> Vec<Value> {
        self.aggregates
            .iter()
            .map(|a| match a.func {
                AggFn::Count => Value::I64(0),
                _ => Value::Null,
            })
            .collect()
    }

    /// Finish grouped rows (column values in column order, one vector per
    /// group): keep those matching `having`, sort, limit, and name them
    /// ([`AggregatePlan::row`]). Backends that compute groups elsewhere may
    /// finish them here (MongoDB does for groupings without keys).
    pub fn finish(&self, groups: Vec<Vec<Value>>) -> Result<Vec<Value>> {
        // Each group as a record over the plan's columns (plus the placeholder id).
        let mut rows: Vec<Record> = groups
            .into_iter()
            .map(|mut values| {
                values.push(Value::I64(0));
                Record { values }
            })
            .collect();
        let columns = self.columns();
        if let Some(h) = &self.having {
            rows.retain(|r| matches(h, r, columns));
        }
        let order: Vec<(usize, Direction)> = self
            .sort
            .iter()
            .filter_map(|s| columns.field(&s.field).map(|(i, _)| (i, s.direction)))
            .collect();
        rows.sort_by(|a, b| {
            for (i, dir) in &order {
                let o = a.get(*i).total_cmp(b.get(*i));
                let o = if *dir == Direction::Desc {
                    o.reverse()
                } else {
                    o
                };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        if let Some(l) = self.limit {
            rows.truncate(usize::try_from(l).unwrap_or(usize::MAX));
        }
        rows.into_iter()
            .map(|mut r| {
                r.values.truncate(self.width());
                self.row(r.values)
            })
            .collect()
    }
}
