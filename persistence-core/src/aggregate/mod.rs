//! Aggregations: [`GroupBy`] (group keys, aggregate functions, `having`,
//! sort and limit over the result) for
//! [`Repository::aggregate`](crate::Repository::aggregate), and
//! [`AggregateExt::aggregate_as`], which decodes the rows into a struct.
//!
//! ```
//! use persistence_core::{AggregateExt as _, Filter, GroupBy, MemoryRepository, Repository};
//! # use persistence_core::conformance::entities::Person;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let people = MemoryRepository::<Person>::new();
//! let by_city = GroupBy::new()
//!     .key(Person::CITY)
//!     .count()
//!     .avg(Person::SCORE).alias("mean")
//!     .having(Filter::field("count").gte(2))
//!     .sort(Filter::field("mean").desc())
//!     .limit(10);
//! let rows = people.aggregate(&Filter::all(), &by_city).await?;
//! assert!(rows.is_empty());
//! # Ok::<(), persistence_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Result rows
//!
//! Each row is a [`Value::Object`](crate::Value::Object) holding every group
//! key under its stored field name and every aggregate under its alias.
//! Without [`GroupBy::sort`] rows come in ascending order of the keys (in
//! key order, null lowest); with it, ties are broken the same way. The
//! order of work is: filter the entities, group, compute the aggregates,
//! keep the groups matching `having`, sort, then limit.
//!
//! # Rules (every backend answers the same way; the conformance suite checks it)
//!
//! * **No keys:** exactly one row, even over no entities at all: `count`
//!   is 0 and `sum`, `avg`, `min`, `max` are null (then `having` may drop
//!   that row).
//! * **Keys and no entities:** no rows.
//! * **Null keys:** entities whose key is null form one group of their own,
//!   with a null key (it sorts first ascending, last descending).
//! * **Null values:** `sum`, `avg`, `min` and `max` ignore nulls; each is
//!   null when its group has no non-null value. `count` counts every
//!   entity of the group, nulls included.
//! * **Types:** a key has its field's type. `count` is an integer (`i64`).
//!   `sum` of an integer field is an integer (`i64`); a sum outside the `i64`
//!   range is `InvalidInput` (never a wrapped or float result). `sum` of a
//!   float field is a float (`f64`, summed in `f64`, so it may differ in the
//!   last bits between backends), of a decimal field a decimal. `avg` is
//!   always a float (`f64`). `min` and `max` have the field's type.
//! * **Strings** compare by Unicode code point for `min`/`max` and sorting,
//!   as in filters (no locale collation).
//!
//! # What is checked
//!
//! [`GroupBy::checked`] validates a grouping against the entity metadata
//! before a backend sees it; each problem is `InvalidInput` naming the field
//! or alias: keys must be top-level scalar fields (no JSON fields, arrays or
//! nested paths) and distinct; `sum`/`avg` need a numeric field, `min`/`max`
//! an ordered one (numbers, decimals, strings, enums, timestamps, dates);
//! aliases must be identifiers (ASCII letters, digits and `_`, at most 63
//! bytes), distinct and not a key's name; there must be at least one key or
//! aggregate (at most [`MAX_COLUMNS`] in all); `having` and `sort` may name
//! only keys and aliases, and `having` values must fit the column's type.
//!
//! Decimal `sum`, `avg`, `min` and `max` are `Unsupported` on SQLite (it
//! stores decimals as text); the other backends compute them exactly.

use std::marker::PhantomData;

use crate::filter::{FieldPath, Filter};
use crate::query::SortKey;
use crate::update::{FieldRef, Numeric};

mod check;
mod memory;
mod typed;

pub use check::{AggColumn, AggregatePlan, KeyColumn, MAX_COLUMNS};
pub use memory::{aggregate_records, sum_overflow};
pub use typed::{AggregateExt, decode_row};

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
