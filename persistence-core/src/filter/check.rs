//! Checking a filter before a backend sees it: the size limits
//! ([`FilterLimits`], walked iteratively) and validation against the
//! entity's metadata, which normalizes every value to its field's type.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use crate::entity::{EntityMeta, FieldType, ScalarType};
use crate::error::{Error, Result};
use crate::value::Value;

use super::ast::{CompareOp, Filter};

/// Size limits every filter is checked against (see the [module docs](crate::filter)).
///
/// The process-wide limits ([`FilterLimits::global`]) apply to every
/// repository; change them once at start-up with [`FilterLimits::set_global`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterLimits {
    /// Deepest nesting of `and`/`or`/`not` (a single condition is depth 1;
    /// values nested inside a condition count as levels too). Default 32.
    pub max_depth: usize,
    /// Most nodes (`and`, `or`, `not`, conditions, and the parts of each
    /// `like` pattern) in one filter. Default 1,000.
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

impl Filter {
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
                Filter::Like { pattern, .. } => {
                    // Each wildcard and literal run counts as a node: matching
                    // costs grow with them.
                    nodes = nodes.saturating_add(pattern.parts().len());
                    if nodes + stack.len() > limits.max_nodes {
                        return Err(Error::invalid_input(format!(
                            "filter has more nodes (pattern parts count) than the limit max_nodes = {} (FilterLimits)",
                            limits.max_nodes
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(())
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
        let scoped = super::scope::apply(self.checked_inner(meta)?, meta)?;
        super::tenant::apply(scoped, meta)
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
            Filter::Like { field, pattern } => {
                string_path(meta, field)?;
                Filter::Like {
                    field: field.clone(),
                    pattern: pattern.clone(),
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
            Filter::Scope(s) => Filter::Scope(*s),
            Filter::MatchesText(q) => {
                let fields = meta.text.as_ref().ok_or_else(|| {
                    Error::invalid_input(format!(
                        "matches_text: {} has no #[entity(text_search)] field",
                        meta.name
                    ))
                })?;
                crate::text::ParsedQuery::parse(fields.language, q)?;
                Filter::MatchesText(q.clone())
            }
        })
    }
}

/// Values nested inside a condition count towards the depth limit.
fn value_depth(v: &Value, depth: usize, limits: &FilterLimits) -> Result<()> {
    if !matches!(v, Value::Array(_) | Value::Object(_)) {
        // A scalar: no stack (an `is_in` list checks one per value).
        return Ok(());
    }
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
            "starts_with/contains/like need a string field; `{path}` is {other:?}"
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
        let long = Filter::field("s").like(
            super::super::Pattern::new()
                .literal("a")
                .any()
                .literal("b")
                .one(),
        );
        assert!(
            long.check_limits(&l)
                .unwrap_err()
                .to_string()
                .contains("max_nodes")
        );
        assert!(
            Filter::field("s")
                .like(super::super::Pattern::new().literal("a").any().one())
                .check_limits(&l)
                .is_ok()
        );
        assert!(FilterLimits { max_depth: 0, ..l }.validate().is_err());
        assert!(FilterLimits { max_depth: 65, ..l }.validate().is_err());
    }
}
