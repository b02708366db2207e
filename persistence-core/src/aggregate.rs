//! Aggregations: [`GroupBy`] (group keys, aggregate functions, `having`,
//! sort and limit over the result) for
//! [`Repository::aggregate`](crate::Repository::aggregate).
//!
//! Each result row is a [`Value::Object`](crate::Value::Object) holding the
//! group keys under their field names and each aggregate under its alias.

use std::marker::PhantomData;

use crate::filter::{FieldPath, Filter};
use crate::query::SortKey;
use crate::update::{FieldRef, Numeric};

/// An aggregate function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AggFn {
    /// Number of rows in the group.
    Count,
    /// Sum of a numeric field's non-null values.
    Sum(FieldPath),
    /// Mean of a numeric field's non-null values (a float).
    Avg(FieldPath),
    /// Smallest non-null value.
    Min(FieldPath),
    /// Largest non-null value.
    Max(FieldPath),
}

/// One aggregate and the name its value has in the result rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aggregate {
    /// The name in the result (`count`, `sum_total`, ... unless given).
    pub alias: String,
    /// The function.
    pub func: AggFn,
}

/// A grouping of entities `E`: keys, aggregates, and conditions on the groups.
pub struct GroupBy<E> {
    /// Group keys (stored field paths); none: one group of every matching row.
    pub keys: Vec<FieldPath>,
    /// Aggregates, in result order.
    pub aggregates: Vec<Aggregate>,
    /// Keep only groups matching this filter over keys and aliases.
    pub having: Option<Filter>,
    /// Sort the groups by keys and aliases.
    pub sort: Vec<SortKey>,
    /// At most this many groups.
    pub limit: Option<u64>,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Clone for GroupBy<E> {
    fn clone(&self) -> Self {
        GroupBy {
            keys: self.keys.clone(),
            aggregates: self.aggregates.clone(),
            having: self.having.clone(),
            sort: self.sort.clone(),
            limit: self.limit,
            _entity: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for GroupBy<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupBy")
            .field("keys", &self.keys)
            .field("aggregates", &self.aggregates)
            .field("having", &self.having)
            .field("sort", &self.sort)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<E> Default for GroupBy<E> {
    fn default() -> Self {
        GroupBy::new()
    }
}

impl<E> GroupBy<E> {
    /// No keys, no aggregates.
    pub fn new() -> Self {
        GroupBy {
            keys: Vec::new(),
            aggregates: Vec::new(),
            having: None,
            sort: Vec::new(),
            limit: None,
            _entity: PhantomData,
        }
    }

    /// Group by this field too.
    pub fn key<F: FieldRef<Entity = E>>(mut self, field: F) -> Self {
        self.keys.push(field.field_path());
        self
    }

    fn agg(mut self, alias: String, func: AggFn) -> Self {
        self.aggregates.push(Aggregate { alias, func });
        self
    }

    /// The number of rows, as `count`.
    pub fn count(self) -> Self {
        self.agg("count".into(), AggFn::Count)
    }

    /// The sum of a numeric field, as `sum_<field>`.
    pub fn sum<F>(self, field: F) -> Self
    where
        F: FieldRef<Entity = E>,
        F::Ty: Numeric,
    {
        let p = field.field_path();
        self.agg(format!("sum_{}", alias_part(&p)), AggFn::Sum(p))
    }

    /// The mean of a numeric field, as `avg_<field>`.
    pub fn avg<F>(self, field: F) -> Self
    where
        F: FieldRef<Entity = E>,
        F::Ty: Numeric,
    {
        let p = field.field_path();
        self.agg(format!("avg_{}", alias_part(&p)), AggFn::Avg(p))
    }

    /// The smallest value of a field, as `min_<field>`.
    pub fn min<F: FieldRef<Entity = E>>(self, field: F) -> Self {
        let p = field.field_path();
        self.agg(format!("min_{}", alias_part(&p)), AggFn::Min(p))
    }

    /// The largest value of a field, as `max_<field>`.
    pub fn max<F: FieldRef<Entity = E>>(self, field: F) -> Self {
        let p = field.field_path();
        self.agg(format!("max_{}", alias_part(&p)), AggFn::Max(p))
    }

    /// Rename the last aggregate added.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        if let Some(last) = self.aggregates.last_mut() {
            last.alias = alias.into();
        }
        self
    }

    /// Keep only groups matching `filter` (over keys and aggregate aliases:
    /// `Filter::field("count").gt(1)`).
    pub fn having(mut self, filter: Filter) -> Self {
        self.having = Some(filter);
        self
    }

    /// Sort the groups (by keys and aliases; ties by the keys).
    pub fn sort(mut self, key: SortKey) -> Self {
        self.sort.push(key);
        self
    }

    /// At most `n` groups.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
}

fn alias_part(path: &str) -> String {
    path.replace('.', "_")
}
