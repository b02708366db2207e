//! The backend-neutral filter AST and typed field handles.
//!
//! # Semantics (every backend answers the same way; the conformance suite checks it)
//!
//! * **Null.** A field that is `None` (or a nested path that is absent) is *null*.
//!   `eq`, `lt`, `lte`, `gt`, `gte`, `in`, `starts_with`, `contains` never
//!   match null. `ne` and `not_in` are the exact negations of `eq` and `in`,
//!   so they *do* match null. `eq(None)` means `is_null`, `ne(None)` means
//!   `is_not_null`; ordering comparisons against null are invalid input.
//! * **Not.** `not(f)` matches exactly the rows `f` does not match (two-valued
//!   logic, unlike SQL's three-valued `NOT`).
//! * **Empty lists.** `in([])` matches nothing, `not_in([])` matches
//!   everything, `and([])` matches everything, `or([])` matches nothing.
//! * **Strings** compare by Unicode code point (= UTF-8 byte order), case
//!   sensitive, no locale collation. `starts_with` and `contains` are literal,
//!   case-sensitive substring tests: `%`, `_`, `*`, regex characters have no
//!   special meaning.
//! * **Sort order:** null is lowest (first ascending, last descending);
//!   otherwise the same order as comparisons. Ties are broken by the id, ascending,
//!   so every query has a total, repeatable order.
//! * **Floats:** IEEE equality: `-0.0` equals `0.0` (for `eq`, `in`, `ne`,
//!   ordering comparisons and sorting: they are one value, ties broken by the
//!   id), as SQL and BSON compare. `NaN` compares unspecified (backends
//!   disagree); do not filter on it.
//! * **Arrays:** `contains` on a `Vec<T>` field matches rows whose array holds
//!   an element equal to the value.
//! * **Nested paths** (`profile.address.city`) address values inside JSON
//!   fields; they compare as JSON scalars (strings, numbers, booleans).
//!
//! # Limits
//!
//! Every filter is checked against [`FilterLimits`] once, in
//! [`Filter::checked`], before any backend sees it: nesting depth (default
//! 32), node count (default 1,000) and the total number of `in`/`not_in`
//! values (default 100,000). A filter beyond a limit is
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the
//! limit. The check walks the filter iteratively, so even a filter nested
//! 100,000 deep is refused without deep recursion; dropping such a filter
//! is iterative too. `Filter` has no serde `Deserialize`: build filters
//! from untrusted input with the builders (parse with a depth-limited
//! parser such as `serde_json`, which stops at 128 levels).

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use serde::Serialize;

use crate::entity::{EntityMeta, FieldType, ScalarType};
use crate::error::{Error, Result};
use crate::query::{Direction, SortKey};
use crate::value::Value;

/// A dotted field path (`email`, `profile.address.city`).
pub type FieldPath = Cow<'static, str>;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=` (matches null)
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// Size limits every filter is checked against (see the [module docs](self)).
///
/// The process-wide limits ([`FilterLimits::global`]) apply to every
/// repository; change them once at start-up with [`FilterLimits::set_global`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterLimits {
    /// Deepest nesting of `and`/`or`/`not` (a single condition is depth 1;
    /// values nested inside a condition count as levels too). Default 32.
    pub max_depth: usize,
    /// Most nodes (`and`, `or`, `not` and conditions) in one filter. Default 1,000.
    pub max_nodes: usize,
    /// Most values in all `in`/`not_in` lists of one filter together. Default 100,000.
    pub max_values: usize,
}

impl FilterLimits {
    /// The defaults: depth 32, 1,000 nodes, 100,000 list values.
    pub const DEFAULT: FilterLimits = FilterLimits {
        max_depth: 32,
        max_nodes: 1_000,
        max_values: 100_000,
    };

    /// The process-wide limits applied by [`Filter::checked`].
    pub fn global() -> FilterLimits {
        FilterLimits {
            max_depth: GLOBAL_DEPTH.load(AtomicOrdering::Relaxed),
            max_nodes: GLOBAL_NODES.load(AtomicOrdering::Relaxed),
            max_values: GLOBAL_VALUES.load(AtomicOrdering::Relaxed),
        }
    }

    /// Replace the process-wide limits. Every limit must be at least 1;
    /// `max_depth` at most 64 (backends translate filters recursively, and
    /// keyset paging adds a few levels), otherwise `InvalidInput`.
    pub fn set_global(self) -> Result<()> {
        self.validate()?;
        GLOBAL_DEPTH.store(self.max_depth, AtomicOrdering::Relaxed);
        GLOBAL_NODES.store(self.max_nodes, AtomicOrdering::Relaxed);
        GLOBAL_VALUES.store(self.max_values, AtomicOrdering::Relaxed);
        Ok(())
    }

    /// Check that the limits themselves are usable.
    pub fn validate(&self) -> Result<()> {
        if self.max_depth == 0 || self.max_nodes == 0 || self.max_values == 0 {
            return Err(Error::invalid_input(
                "filter limits max_depth, max_nodes and max_values must be at least 1",
            ));
        }
        if self.max_depth > MAX_DEPTH_CEILING {
            return Err(Error::invalid_input(format!(
                "filter limit max_depth {} is above the ceiling {MAX_DEPTH_CEILING}",
                self.max_depth
            )));
        }
        Ok(())
    }
}

impl Default for FilterLimits {
    fn default() -> Self {
        FilterLimits::DEFAULT
    }
}

/// The largest accepted `max_depth`: backends translate recursively.
const MAX_DEPTH_CEILING: usize = 64;
static GLOBAL_DEPTH: AtomicUsize = AtomicUsize::new(FilterLimits::DEFAULT.max_depth);
static GLOBAL_NODES: AtomicUsize = AtomicUsize::new(FilterLimits::DEFAULT.max_nodes);
static GLOBAL_VALUES: AtomicUsize = AtomicUsize::new(FilterLimits::DEFAULT.max_values);

/// A filter over an entity's fields.
///
/// Cloning and dropping a filter are iterative (no recursion however deep
/// it is), so a filter refused for its depth can be handled on any thread.
#[derive(Debug, PartialEq)]
pub enum Filter {
    /// All must match (`And(vec![])` matches everything).
    And(Vec<Filter>),
    /// Any must match (`Or(vec![])` matches nothing).
    Or(Vec<Filter>),
    /// Exactly the rows the inner filter does not match.
    Not(Box<Filter>),
    /// Compare a field with a value.
    Compare {
        /// Field path.
        field: FieldPath,
        /// Operator.
        op: CompareOp,
        /// Value (normalized to the field's type by [`Filter::checked`]).
        value: Value,
    },
    /// Field equals one of the values.
    In {
        /// Field path.
        field: FieldPath,
        /// Candidates.
        values: Vec<Value>,
    },
    /// Field equals none of the values (null matches).
    NotIn {
        /// Field path.
        field: FieldPath,
        /// Excluded values.
        values: Vec<Value>,
    },
    /// Field is null / absent.
    IsNull(FieldPath),
    /// Field is not null.
    IsNotNull(FieldPath),
    /// String field starts with a literal prefix.
    StartsWith {
        /// Field path.
        field: FieldPath,
        /// Prefix (literal).
        prefix: String,
    },
    /// String field contains a literal substring.
    Contains {
        /// Field path.
        field: FieldPath,
        /// Substring (literal).
        substring: String,
    },
    /// Array field holds an element equal to the value.
    ArrayContains {
        /// Field path.
        field: FieldPath,
        /// Element.
        value: Value,
    },
    /// A filter that could not be built (e.g. a value failed to serialize);
    /// checking it yields `InvalidInput` with this message.
    Invalid(String),
}

impl Default for Filter {
    fn default() -> Self {
        Filter::all()
    }
}

impl Filter {
    /// Move the boxed/listed children out (leaving this node childless).
    fn take_children(&mut self, into: &mut Vec<Filter>) {
        match self {
            Filter::And(fs) | Filter::Or(fs) => into.append(fs),
            Filter::Not(f) if f.has_children() => into.push(std::mem::take(&mut **f)),
            _ => {}
        }
    }

    /// True when dropping this node would recurse (it holds other nodes).
    fn has_children(&self) -> bool {
        match self {
            Filter::And(fs) | Filter::Or(fs) => !fs.is_empty(),
            Filter::Not(_) => true,
            _ => false,
        }
    }
}

impl Clone for Filter {
    fn clone(&self) -> Self {
        enum Step<'a> {
            Visit(&'a Filter),
            And(usize),
            Or(usize),
            Not,
        }
        let mut work = vec![Step::Visit(self)];
        let mut out: Vec<Filter> = Vec::new();
        while let Some(step) = work.pop() {
            match step {
                Step::Visit(f) => match f {
                    Filter::And(fs) | Filter::Or(fs) => {
                        work.push(if matches!(f, Filter::And(_)) {
                            Step::And(fs.len())
                        } else {
                            Step::Or(fs.len())
                        });
                        work.extend(fs.iter().rev().map(Step::Visit));
                    }
                    Filter::Not(g) => {
                        work.push(Step::Not);
                        work.push(Step::Visit(g));
                    }
                    leaf => out.push(leaf.clone_leaf()),
                },
                Step::And(n) | Step::Or(n) => {
                    let items = out.split_off(out.len().saturating_sub(n));
                    out.push(if matches!(step, Step::And(_)) {
                        Filter::And(items)
                    } else {
                        Filter::Or(items)
                    });
                }
                Step::Not => {
                    let inner = out.pop().unwrap_or_default();
                    out.push(Filter::Not(Box::new(inner)));
                }
            }
        }
        out.pop().unwrap_or_default()
    }
}

impl Filter {
    /// Clone a node without children (`and`/`or`/`not` become empty `and`).
    fn clone_leaf(&self) -> Filter {
        match self {
            Filter::And(_) | Filter::Or(_) | Filter::Not(_) => Filter::all(),
            Filter::Compare { field, op, value } => Filter::Compare {
                field: field.clone(),
                op: *op,
                value: value.clone(),
            },
            Filter::In { field, values } => Filter::In {
                field: field.clone(),
                values: values.clone(),
            },
            Filter::NotIn { field, values } => Filter::NotIn {
                field: field.clone(),
                values: values.clone(),
            },
            Filter::IsNull(f) => Filter::IsNull(f.clone()),
            Filter::IsNotNull(f) => Filter::IsNotNull(f.clone()),
            Filter::StartsWith { field, prefix } => Filter::StartsWith {
                field: field.clone(),
                prefix: prefix.clone(),
            },
            Filter::Contains { field, substring } => Filter::Contains {
                field: field.clone(),
                substring: substring.clone(),
            },
            Filter::ArrayContains { field, value } => Filter::ArrayContains {
                field: field.clone(),
                value: value.clone(),
            },
            Filter::Invalid(m) => Filter::Invalid(m.clone()),
        }
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        // Flat filters (the common case) drop without allocating.
        let deep = match self {
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(Filter::has_children),
            Filter::Not(f) => f.has_children(),
            _ => false,
        };
        if !deep {
            return;
        }
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut f) = stack.pop() {
            f.take_children(&mut stack);
            // `f` is now childless (or holds only leaves): dropping it does not recurse deeply.
        }
    }
}

impl Filter {
    /// Matches everything.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }
    /// Matches nothing.
    pub fn none() -> Filter {
        Filter::Or(Vec::new())
    }
    /// True for `And([])`.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::And(v) if v.is_empty())
    }

    /// Start an untyped condition on a field path (checked against the
    /// entity's metadata when the query runs).
    pub fn field(path: impl Into<FieldPath>) -> UntypedField {
        UntypedField { path: path.into() }
    }

    /// Both.
    pub fn and(mut self, mut other: Filter) -> Filter {
        match (&mut self, &mut other) {
            (Filter::And(a), Filter::And(b)) => {
                a.append(b);
                self
            }
            (Filter::And(a), _) => {
                a.push(other);
                self
            }
            (_, Filter::And(b)) => {
                b.insert(0, self);
                other
            }
            _ => Filter::And(vec![self, other]),
        }
    }
    /// Either.
    pub fn or(mut self, mut other: Filter) -> Filter {
        match (&mut self, &mut other) {
            (Filter::Or(a), Filter::Or(b)) => {
                a.append(b);
                self
            }
            (Filter::Or(a), _) => {
                a.push(other);
                self
            }
            _ => Filter::Or(vec![self, other]),
        }
    }

    /// Check the filter against `limits` without recursion: depth, node
    /// count and total list values. Errors are `InvalidInput` naming the limit.
    pub fn check_limits(&self, limits: &FilterLimits) -> Result<()> {
        let mut stack: Vec<(&Filter, usize)> = vec![(self, 1)];
        let mut nodes = 0usize;
        let mut values = 0usize;
        while let Some((f, depth)) = stack.pop() {
            nodes += 1;
            if depth > limits.max_depth {
                return Err(Error::invalid_input(format!(
                    "filter is nested deeper than the limit max_depth = {} (FilterLimits)",
                    limits.max_depth
                )));
            }
            let children = match f {
                Filter::And(fs) | Filter::Or(fs) => fs.len(),
                Filter::Not(_) => 1,
                _ => 0,
            };
            if nodes + stack.len() + children > limits.max_nodes {
                return Err(Error::invalid_input(format!(
                    "filter has more nodes than the limit max_nodes = {} (FilterLimits)",
                    limits.max_nodes
                )));
            }
            match f {
                Filter::And(fs) | Filter::Or(fs) => stack.extend(fs.iter().map(|g| (g, depth + 1))),
                Filter::Not(g) => stack.push((g, depth + 1)),
                Filter::In { values: vs, .. } | Filter::NotIn { values: vs, .. } => {
                    values = values.saturating_add(vs.len());
                    if values > limits.max_values {
                        return Err(Error::invalid_input(format!(
                            "filter lists more in/not_in values than the limit max_values = {} (FilterLimits)",
                            limits.max_values
                        )));
                    }
                    for v in vs {
                        value_depth(v, depth, limits)?;
                    }
                }
                Filter::Compare { value, .. } | Filter::ArrayContains { value, .. } => {
                    value_depth(value, depth, limits)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Validate against `meta` and normalize every value to its field's type.
    ///
    /// Unknown fields, malformed nested paths, values of the wrong type,
    /// string operators on non-strings and ordering against null are
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
    /// Backends translate only checked filters.
    ///
    /// First the filter is checked against the process-wide
    /// [`FilterLimits::global`] (see [`Filter::checked_with`]).
    pub fn checked(&self, meta: &EntityMeta) -> Result<Filter> {
        self.checked_with(meta, &FilterLimits::global())
    }

    /// [`Filter::checked`] with explicit limits. The result is within the
    /// limits, `in`/`not_in` lists are sorted by [`Value::total_cmp`] and
    /// free of duplicates.
    pub fn checked_with(&self, meta: &EntityMeta, limits: &FilterLimits) -> Result<Filter> {
        self.check_limits(limits)?;
        self.checked_inner(meta)
    }

    fn checked_inner(&self, meta: &EntityMeta) -> Result<Filter> {
        Ok(match self {
            Filter::And(fs) => Filter::And(
                fs.iter()
                    .map(|f| f.checked_inner(meta))
                    .collect::<Result<_>>()?,
            ),
            Filter::Or(fs) => Filter::Or(
                fs.iter()
                    .map(|f| f.checked_inner(meta))
                    .collect::<Result<_>>()?,
            ),
            Filter::Not(f) => Filter::Not(Box::new(f.checked_inner(meta)?)),
            Filter::Compare { field, op, value } => {
                let ty = path_type(meta, field)?;
                if value.is_null() {
                    return match op {
                        CompareOp::Eq => Ok(Filter::IsNull(field.clone())),
                        CompareOp::Ne => Ok(Filter::IsNotNull(field.clone())),
                        _ => Err(Error::invalid_input(format!(
                            "cannot compare `{field}` with null using {op:?}; use is_null"
                        ))),
                    };
                }
                if matches!(ty, FieldType::Array(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne)
                {
                    return Err(Error::invalid_input(format!(
                        "ordering comparison on array field `{field}`"
                    )));
                }
                Filter::Compare {
                    field: field.clone(),
                    op: *op,
                    value: norm(value, ty, field)?,
                }
            }
            Filter::In { field, values } | Filter::NotIn { field, values } => {
                let ty = path_type(meta, field)?;
                let mut values = values
                    .iter()
                    .map(|v| {
                        if v.is_null() {
                            Err(Error::invalid_input(format!(
                                "null in the value list of `{field}`; use is_null"
                            )))
                        } else {
                            norm(v, ty, field)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                // Sorted and distinct: backends may search the list.
                values.sort_by(Value::total_cmp);
                values.dedup_by(|a, b| a.total_cmp(b) == std::cmp::Ordering::Equal);
                if matches!(self, Filter::In { .. }) {
                    Filter::In {
                        field: field.clone(),
                        values,
                    }
                } else {
                    Filter::NotIn {
                        field: field.clone(),
                        values,
                    }
                }
            }
            Filter::IsNull(field) => {
                path_type(meta, field)?;
                Filter::IsNull(field.clone())
            }
            Filter::IsNotNull(field) => {
                path_type(meta, field)?;
                Filter::IsNotNull(field.clone())
            }
            Filter::StartsWith { field, prefix } => {
                string_path(meta, field)?;
                Filter::StartsWith {
                    field: field.clone(),
                    prefix: prefix.clone(),
                }
            }
            Filter::Contains { field, substring } => {
                string_path(meta, field)?;
                Filter::Contains {
                    field: field.clone(),
                    substring: substring.clone(),
                }
            }
            Filter::ArrayContains { field, value } => {
                let ty = path_type(meta, field)?;
                let elem = match ty {
                    FieldType::Array(s) => FieldType::Scalar(s),
                    FieldType::Json => FieldType::Json,
                    FieldType::Scalar(_) => {
                        return Err(Error::invalid_input(format!(
                            "`{field}` is not an array field"
                        )));
                    }
                };
                if value.is_null() {
                    return Err(Error::invalid_input("array contains null is not supported"));
                }
                Filter::ArrayContains {
                    field: field.clone(),
                    value: norm(value, elem, field)?,
                }
            }
            Filter::Invalid(msg) => return Err(Error::invalid_input(msg.clone())),
        })
    }
}

/// Values nested inside a condition count towards the depth limit.
fn value_depth(v: &Value, depth: usize, limits: &FilterLimits) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, depth)];
    while let Some((v, d)) = stack.pop() {
        let items: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        if d + 1 > limits.max_depth {
            return Err(Error::invalid_input(format!(
                "filter value is nested deeper than the limit max_depth = {} (FilterLimits)",
                limits.max_depth
            )));
        }
        stack.extend(items.map(|x| (x, d + 1)));
    }
    Ok(())
}

fn path_type(meta: &EntityMeta, path: &str) -> Result<FieldType> {
    let r = meta.resolve_path(path)?;
    Ok(r.ty(meta))
}

fn string_path(meta: &EntityMeta, path: &str) -> Result<()> {
    match path_type(meta, path)? {
        FieldType::Scalar(ScalarType::String | ScalarType::Enum) | FieldType::Json => Ok(()),
        other => Err(Error::invalid_input(format!(
            "starts_with/contains need a string field; `{path}` is {other:?}"
        ))),
    }
}

fn norm(v: &Value, ty: FieldType, field: &str) -> Result<Value> {
    match ty {
        FieldType::Json => match v {
            // Inside JSON only JSON scalars can be compared.
            Value::Object(_) | Value::Array(_) => Err(Error::invalid_input(format!(
                "nested path `{field}` can only be compared with scalars"
            ))),
            other => Ok(Value::from_json(other.to_json())),
        },
        _ => v
            .clone()
            .normalize(ty)
            .map_err(|e| Error::invalid_input(format!("value for `{field}`: {}", e.message()))),
    }
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> std::result::Result<Value, String> {
    Value::from_serialize(v).map_err(|e| e.message().to_string())
}

fn cmp_filter(field: FieldPath, op: CompareOp, v: std::result::Result<Value, String>) -> Filter {
    match v {
        Ok(value) => Filter::Compare { field, op, value },
        Err(e) => Filter::Invalid(e),
    }
}

fn list(
    vs: impl IntoIterator<Item = std::result::Result<Value, String>>,
) -> std::result::Result<Vec<Value>, String> {
    vs.into_iter().collect()
}

/// Values accepted where a field of type `T` is compared: `T` itself, `&T`,
/// `&str` for strings, a bare `T` for `Option<T>`. Anything else does not
/// compile, so `User::EMAIL.eq(5)` is a type error.
pub trait Compatible<T: ?Sized> {
    /// The value, serialized.
    fn to_filter_value(&self) -> std::result::Result<Value, String>;
}
impl<T: Serialize> Compatible<T> for T {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        to_value(self)
    }
}
impl<T: Serialize> Compatible<T> for &T {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        to_value(*self)
    }
}
impl<T: Serialize> Compatible<Option<T>> for T {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        to_value(self)
    }
}
impl Compatible<String> for &str {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        Ok(Value::String((*self).to_string()))
    }
}
impl Compatible<Option<String>> for &str {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        Ok(Value::String((*self).to_string()))
    }
}

/// A typed handle to a field of entity `E` with Rust type `T`, generated by
/// `#[derive(Entity)]` as an associated constant (`User::EMAIL`).
pub struct Field<E, T> {
    path: FieldPath,
    _marker: PhantomData<fn() -> (E, T)>,
}

impl<E, T> Clone for Field<E, T> {
    fn clone(&self) -> Self {
        Field {
            path: self.path.clone(),
            _marker: PhantomData,
        }
    }
}

impl<E, T> std::fmt::Debug for Field<E, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Field({})", self.path)
    }
}

impl<E, T> Field<E, T> {
    /// A handle for a stored field name (used by the derive macro).
    pub const fn new(path: &'static str) -> Self {
        Field {
            path: Cow::Borrowed(path),
            _marker: PhantomData,
        }
    }
    /// The dotted path.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// A value nested inside this (JSON) field, with a type of your choosing:
    /// `User::PROFILE.nested::<String>("address.city")`.
    pub fn nested<U>(&self, sub_path: &str) -> Field<E, U> {
        Field {
            path: Cow::Owned(format!("{}.{}", self.path, sub_path)),
            _marker: PhantomData,
        }
    }
    /// `field == value`
    pub fn eq(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Eq, value.to_filter_value())
    }
    /// `field != value` (matches null)
    pub fn ne(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Ne, value.to_filter_value())
    }
    /// `field < value`
    pub fn lt(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Lt, value.to_filter_value())
    }
    /// `field <= value`
    pub fn lte(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Lte, value.to_filter_value())
    }
    /// `field > value`
    pub fn gt(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Gt, value.to_filter_value())
    }
    /// `field >= value`
    pub fn gte(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Gte, value.to_filter_value())
    }
    /// `field IN (values)`
    pub fn is_in<V: Compatible<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        match list(values.into_iter().map(|v| v.to_filter_value())) {
            Ok(values) => Filter::In {
                field: self.path.clone(),
                values,
            },
            Err(e) => Filter::Invalid(e),
        }
    }
    /// `field NOT IN (values)` (matches null)
    pub fn not_in<V: Compatible<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        match list(values.into_iter().map(|v| v.to_filter_value())) {
            Ok(values) => Filter::NotIn {
                field: self.path.clone(),
                values,
            },
            Err(e) => Filter::Invalid(e),
        }
    }
    /// `field IS NULL`
    pub fn is_null(&self) -> Filter {
        Filter::IsNull(self.path.clone())
    }
    /// `field IS NOT NULL`
    pub fn is_not_null(&self) -> Filter {
        Filter::IsNotNull(self.path.clone())
    }
    /// Ascending sort key.
    pub fn asc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Asc,
        }
    }
    /// Descending sort key.
    pub fn desc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Desc,
        }
    }
}

/// String operations, for `String` and `Option<String>` fields.
pub trait StringField {
    /// Literal, case-sensitive prefix test.
    fn starts_with(&self, prefix: &str) -> Filter;
    /// Literal, case-sensitive substring test.
    fn contains(&self, substring: &str) -> Filter;
}
macro_rules! string_field {
    ($($t:ty),*) => {$(
        impl<E> StringField for Field<E, $t> {
            fn starts_with(&self, prefix: &str) -> Filter {
                Filter::StartsWith { field: self.path.clone(), prefix: prefix.to_string() }
            }
            fn contains(&self, substring: &str) -> Filter {
                Filter::Contains { field: self.path.clone(), substring: substring.to_string() }
            }
        }
    )*};
}
string_field!(String, Option<String>);

fn array_contains<T>(path: &FieldPath, item: impl Compatible<T>) -> Filter {
    match item.to_filter_value() {
        Ok(value) => Filter::ArrayContains {
            field: path.clone(),
            value,
        },
        Err(e) => Filter::Invalid(e),
    }
}

impl<E, T> Field<E, Vec<T>> {
    /// The array holds an element equal to `item`.
    pub fn has(&self, item: impl Compatible<T>) -> Filter {
        array_contains(&self.path, item)
    }
}

impl<E, T> Field<E, Option<Vec<T>>> {
    /// The array is present and holds an element equal to `item` (`None`
    /// holds nothing: `has` is false, `has(..).not()` true).
    pub fn has(&self, item: impl Compatible<T>) -> Filter {
        array_contains(&self.path, item)
    }
}

/// An untyped condition builder for paths known only at run time (HTTP query
/// strings, config). Checked against metadata when the query runs.
#[derive(Debug, Clone)]
pub struct UntypedField {
    path: FieldPath,
}

impl UntypedField {
    fn cmp(&self, op: CompareOp, value: impl Into<Value>) -> Filter {
        Filter::Compare {
            field: self.path.clone(),
            op,
            value: value.into(),
        }
    }
    /// `=`
    pub fn eq(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Eq, value)
    }
    /// `!=`
    pub fn ne(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Ne, value)
    }
    /// `<`
    pub fn lt(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Lt, value)
    }
    /// `<=`
    pub fn lte(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Lte, value)
    }
    /// `>`
    pub fn gt(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Gt, value)
    }
    /// `>=`
    pub fn gte(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Gte, value)
    }
    /// `IN`
    pub fn is_in(&self, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::In {
            field: self.path.clone(),
            values: values.into_iter().collect(),
        }
    }
    /// `NOT IN`
    pub fn not_in(&self, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::NotIn {
            field: self.path.clone(),
            values: values.into_iter().collect(),
        }
    }
    /// `IS NULL`
    pub fn is_null(&self) -> Filter {
        Filter::IsNull(self.path.clone())
    }
    /// `IS NOT NULL`
    pub fn is_not_null(&self) -> Filter {
        Filter::IsNotNull(self.path.clone())
    }
    /// Literal prefix.
    pub fn starts_with(&self, prefix: &str) -> Filter {
        Filter::StartsWith {
            field: self.path.clone(),
            prefix: prefix.to_string(),
        }
    }
    /// Literal substring.
    pub fn contains(&self, substring: &str) -> Filter {
        Filter::Contains {
            field: self.path.clone(),
            substring: substring.to_string(),
        }
    }
    /// Array element.
    pub fn has(&self, value: impl Into<Value>) -> Filter {
        Filter::ArrayContains {
            field: self.path.clone(),
            value: value.into(),
        }
    }
    /// Ascending sort key.
    pub fn asc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Asc,
        }
    }
    /// Descending sort key.
    pub fn desc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Desc,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn not_chain(depth: usize) -> Filter {
        let mut f = Filter::field("x").eq(1);
        for _ in 0..depth {
            f = f.not();
        }
        f
    }

    /// On a thread with a small stack: limits are checked and deep filters
    /// dropped without recursion.
    #[test]
    fn deep_filters_are_checked_and_dropped_iteratively() {
        let t = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let deep = not_chain(100_000);
                let e = deep
                    .check_limits(&FilterLimits::DEFAULT)
                    .expect_err("too deep");
                assert!(e.to_string().contains("max_depth"), "{e}");
                let copy = deep.clone();
                drop(deep);
                assert!(copy.check_limits(&FilterLimits::DEFAULT).is_err());
                drop(copy);
                let small = Filter::field("a")
                    .eq(1)
                    .and(Filter::field("b").is_in([Value::I64(2)]).not())
                    .or(Filter::none());
                assert_eq!(small.clone(), small);
                let wide = Filter::And(vec![not_chain(50_000), not_chain(50_000)]);
                drop(wide);
                let mut f = Filter::all();
                for i in 0..50_000 {
                    f = Filter::Or(vec![f, Filter::field("x").eq(i)]);
                }
                assert!(f.check_limits(&FilterLimits::DEFAULT).is_err());
            })
            .expect("spawn");
        t.join().expect("no stack overflow");
    }

    #[test]
    fn limits_are_inclusive_and_configurable() {
        let l = FilterLimits {
            max_depth: 3,
            max_nodes: 4,
            max_values: 2,
        };
        assert!(not_chain(2).check_limits(&l).is_ok());
        assert!(not_chain(3).check_limits(&l).is_err());
        let four = Filter::And(vec![Filter::all(), Filter::all(), Filter::all()]);
        assert!(four.check_limits(&l).is_ok());
        let five = Filter::And(vec![
            Filter::all(),
            Filter::all(),
            Filter::all(),
            Filter::all(),
        ]);
        assert!(
            five.check_limits(&l)
                .unwrap_err()
                .to_string()
                .contains("max_nodes")
        );
        assert!(
            Filter::field("x")
                .is_in([Value::I64(1), Value::I64(2)])
                .check_limits(&l)
                .is_ok()
        );
        let three = Filter::field("x").is_in([Value::I64(1), Value::I64(2), Value::I64(3)]);
        assert!(
            three
                .check_limits(&l)
                .unwrap_err()
                .to_string()
                .contains("max_values")
        );
        assert!(FilterLimits { max_depth: 0, ..l }.validate().is_err());
        assert!(FilterLimits { max_depth: 65, ..l }.validate().is_err());
    }
}
