//! Checking a [`GroupBy`] against the entity metadata: the
//! [`AggregatePlan`] every backend executes.
//!
//! The plan names the result columns positionally (`c0`, `c1`, ...: keys
//! first, then aggregates) and describes them with a small [`EntityMeta`] of
//! their own ([`AggregatePlan::columns`]), so `having` and `sort` are an
//! ordinary checked [`Filter`] and sort keys over that metadata: every
//! backend translates them with the filter translation it already has
//! (memory evaluates them with [`crate::memory::matches`]).

use crate::entity::{EntityMeta, FieldMeta, FieldType, ScalarType, validate_identifier};
use crate::error::{Error, Result};
use crate::filter::{FieldPath, Filter};
use crate::query::{Direction, SortKey};
use crate::value::Value;

use super::{AggFn, GroupBy};

/// The most result columns (keys and aggregates together) of one grouping.
pub const MAX_COLUMNS: usize = 64;

const COLUMN_NAMES: [&str; MAX_COLUMNS] = [
    "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "c12", "c13", "c14",
    "c15", "c16", "c17", "c18", "c19", "c20", "c21", "c22", "c23", "c24", "c25", "c26", "c27",
    "c28", "c29", "c30", "c31", "c32", "c33", "c34", "c35", "c36", "c37", "c38", "c39", "c40",
    "c41", "c42", "c43", "c44", "c45", "c46", "c47", "c48", "c49", "c50", "c51", "c52", "c53",
    "c54", "c55", "c56", "c57", "c58", "c59", "c60", "c61", "c62", "c63",
];

/// The placeholder id field of [`AggregatePlan::columns`] (never read).
const ROW_ID: &str = "_row";

/// A group key of a checked grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyColumn {
    /// The field's stored name (also its name in the result rows).
    pub name: &'static str,
    /// Index of the field in the entity's [`EntityMeta::fields`].
    pub index: usize,
    /// The field's type (a scalar).
    pub ty: FieldType,
}

/// An aggregate of a checked grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct AggColumn {
    /// The name in the result rows.
    pub alias: String,
    /// The function.
    pub func: AggFn,
    /// The aggregated field: stored name, index in the entity's fields and
    /// type (`None` for `count`).
    pub field: Option<(&'static str, usize, ScalarType)>,
    /// The type of the result (see the [module docs](crate::aggregate)).
    pub ty: ScalarType,
}

/// A [`GroupBy`] checked against an entity: what a backend executes.
#[derive(Debug, Clone)]
pub struct AggregatePlan {
    /// The group keys, in order (result columns `c0..`).
    pub keys: Vec<KeyColumn>,
    /// The aggregates, in order (result columns after the keys).
    pub aggregates: Vec<AggColumn>,
    /// `having`, checked against [`AggregatePlan::columns`] (over `c0..`).
    pub having: Option<Filter>,
    /// The complete sort over [`AggregatePlan::columns`]: the requested
    /// keys, then every group key ascending (ties are broken by the keys).
    pub sort: Vec<SortKey>,
    /// At most this many rows.
    pub limit: Option<u64>,
    columns: EntityMeta,
}

impl AggregatePlan {
    /// The positional name of result column `i` (`c0`, `c1`, ...).
    pub fn column(i: usize) -> &'static str {
        COLUMN_NAMES.get(i).copied().unwrap_or("c_")
    }

    /// Metadata describing the result columns (`c0..`, in order, with their
    /// types; plus a placeholder id field `_row` at the end that no
    /// filter or sort refers to), for translating `having` and `sort`.
    pub fn columns(&self) -> &EntityMeta {
        &self.columns
    }

    /// Number of result columns (keys and aggregates).
    pub fn width(&self) -> usize {
        self.keys.len() + self.aggregates.len()
    }

    /// The type of result column `i`.
    pub fn column_type(&self, i: usize) -> FieldType {
        self.columns.fields.get(i).map_or(FieldType::Json, |f| f.ty)
    }

    /// The name result column `i` has in the rows (a key's stored name or an alias).
    pub fn output_name(&self, i: usize) -> &str {
        match i.checked_sub(self.keys.len()) {
            None => self.keys[i].name,
            Some(j) => self.aggregates.get(j).map_or("", |a| a.alias.as_str()),
        }
    }

    /// A result row from the values of its columns (in column order):
    /// each value is normalized to its column's type, then named.
    pub fn row(&self, values: Vec<Value>) -> Result<Value> {
        if values.len() != self.width() {
            return Err(Error::decode(format!(
                "aggregate row: expected {} columns, got {}",
                self.width(),
                values.len()
            )));
        }
        let mut out = std::collections::BTreeMap::new();
        for (i, v) in values.into_iter().enumerate() {
            let name = self.output_name(i).to_string();
            let v = v.normalize(self.column_type(i)).map_err(|e| {
                Error::decode(format!("aggregate column `{name}`: {}", e.message()))
            })?;
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    }
}

fn numeric(s: ScalarType) -> bool {
    use ScalarType as S;
    matches!(s, S::I16 | S::I32 | S::I64 | S::F32 | S::F64 | S::Decimal)
}

fn ordered(s: ScalarType) -> bool {
    use ScalarType as S;
    numeric(s) || matches!(s, S::String | S::Enum | S::DateTime | S::Date)
}

fn is_integer(s: ScalarType) -> bool {
    matches!(s, ScalarType::I16 | ScalarType::I32 | ScalarType::I64)
}

/// A top-level scalar field by path, or `InvalidInput` saying why not.
fn scalar_field<'m>(
    meta: &'m EntityMeta,
    path: &str,
    what: &str,
) -> Result<(usize, &'m FieldMeta, ScalarType)> {
    let r = meta
        .resolve_path(path)
        .map_err(|e| Error::invalid_input(format!("{what}: {}", e.message())))?;
    let f = &meta.fields[r.index];
    match (r.rest.is_empty(), f.ty) {
        (true, FieldType::Scalar(s)) => Ok((r.index, f, s)),
        _ => Err(Error::invalid_input(format!(
            "{what}: `{path}` is not a scalar field of {} (group keys and aggregates need \
             top-level scalar fields)",
            meta.name
        ))),
    }
}

impl<E> GroupBy<E> {
    /// Check this grouping against `meta` (see the [module docs](crate::aggregate)
    /// for the rules); every problem is `InvalidInput` naming the field or alias.
    pub fn checked(&self, meta: &EntityMeta) -> Result<AggregatePlan> {
        if self.keys.is_empty() && self.aggregates.is_empty() {
            return Err(Error::invalid_input(
                "a grouping needs at least one key or aggregate",
            ));
        }
        let width = self.keys.len() + self.aggregates.len();
        if width > MAX_COLUMNS {
            return Err(Error::invalid_input(format!(
                "a grouping has at most {MAX_COLUMNS} keys and aggregates, this one {width}"
            )));
        }
        let mut names: Vec<String> = Vec::with_capacity(width);
        let mut keys = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let (index, f, _) = scalar_field(meta, k, "group key")?;
            if names.iter().any(|n| n == f.name) {
                return Err(Error::invalid_input(format!(
                    "group key `{}` is given twice",
                    f.name
                )));
            }
            names.push(f.name.to_string());
            keys.push(KeyColumn {
                name: f.name,
                index,
                ty: f.ty,
            });
        }
        let mut aggregates = Vec::with_capacity(self.aggregates.len());
        for a in &self.aggregates {
            validate_identifier(&a.alias)
                .map_err(|e| Error::invalid_input(format!("aggregate alias: {}", e.message())))?;
            if names.contains(&a.alias) {
                return Err(Error::invalid_input(format!(
                    "aggregate alias `{}` is already the name of a key or another aggregate",
                    a.alias
                )));
            }
            names.push(a.alias.clone());
            let (field, ty) = match &a.func {
                AggFn::Count => (None, ScalarType::I64),
                AggFn::Sum(p) | AggFn::Avg(p) => {
                    let (i, f, s) = scalar_field(meta, p, &format!("aggregate `{}`", a.alias))?;
                    if !numeric(s) {
                        return Err(Error::invalid_input(format!(
                            "aggregate `{}`: sum and avg need a numeric field; `{}` is {s:?}",
                            a.alias, f.name
                        )));
                    }
                    let ty = match (&a.func, s) {
                        (AggFn::Avg(_), _) => ScalarType::F64,
                        (_, s) if is_integer(s) => ScalarType::I64,
                        (_, ScalarType::Decimal) => ScalarType::Decimal,
                        _ => ScalarType::F64,
                    };
                    (Some((f.name, i, s)), ty)
                }
                AggFn::Min(p) | AggFn::Max(p) => {
                    let (i, f, s) = scalar_field(meta, p, &format!("aggregate `{}`", a.alias))?;
                    if !ordered(s) {
                        return Err(Error::invalid_input(format!(
                            "aggregate `{}`: min and max need an ordered field (numbers, \
                             strings, timestamps, dates); `{}` is {s:?}",
                            a.alias, f.name
                        )));
                    }
                    (Some((f.name, i, s)), s)
                }
            };
            aggregates.push(AggColumn {
                alias: a.alias.clone(),
                func: a.func.clone(),
                field,
                ty,
            });
        }
        let columns = columns_meta(&keys, &aggregates)?;
        let position = |name: &str| names.iter().position(|n| n == name);
        let having = match &self.having {
            None => None,
            Some(h) => {
                let renamed = rename(h, &|f: &FieldPath| {
                    position(f).map(AggregatePlan::column).ok_or_else(|| {
                        Error::invalid_input(format!(
                            "having: `{f}` is neither a group key nor an aggregate alias \
                             (known: {})",
                            names.join(", ")
                        ))
                    })
                })?;
                let checked = renamed.checked(&columns).map_err(|e| {
                    Error::invalid_input(format!("having: {}", named(e.message(), &names)))
                })?;
                Some(checked)
            }
        };
        let mut sort = Vec::with_capacity(self.sort.len() + keys.len());
        for s in &self.sort {
            let Some(i) = position(&s.field) else {
                return Err(Error::invalid_input(format!(
                    "sort: `{}` is neither a group key nor an aggregate alias (known: {})",
                    s.field,
                    names.join(", ")
                )));
            };
            sort.push(SortKey {
                field: AggregatePlan::column(i).into(),
                direction: s.direction,
            });
        }
        for i in 0..keys.len() {
            let c = AggregatePlan::column(i);
            if !sort.iter().any(|s| s.field == c) {
                sort.push(SortKey {
                    field: c.into(),
                    direction: Direction::Asc,
                });
            }
        }
        Ok(AggregatePlan {
            keys,
            aggregates,
            having,
            sort,
            limit: self.limit,
            columns,
        })
    }
}

/// The metadata of the result columns.
fn columns_meta(keys: &[KeyColumn], aggs: &[AggColumn]) -> Result<EntityMeta> {
    let col = |i: usize, ty: FieldType| FieldMeta {
        name: AggregatePlan::column(i),
        rust_name: AggregatePlan::column(i),
        ty,
        nullable: true,
        id: false,
        version: false,
        unique: false,
        index: false,
        ttl: None,
    };
    let mut b = EntityMeta::builder("aggregate");
    for (i, k) in keys.iter().enumerate() {
        b = b.field(col(i, k.ty));
    }
    for (j, a) in aggs.iter().enumerate() {
        b = b.field(col(keys.len() + j, FieldType::Scalar(a.ty)));
    }
    b.field(FieldMeta {
        name: ROW_ID,
        rust_name: ROW_ID,
        ty: FieldType::Scalar(ScalarType::I64),
        nullable: false,
        id: true,
        ..col(0, FieldType::Json)
    })
    .build()
    .map_err(|e| Error::invalid_input(format!("grouping: {}", e.message())))
}

/// Put the user's names back into a message about positional columns.
fn named(message: &str, names: &[String]) -> String {
    let mut out = message.to_string();
    // Longest positions first, so `c1` does not rewrite the start of `c12`.
    for (i, n) in names.iter().enumerate().rev() {
        out = out.replace(
            &format!("`{}`", AggregatePlan::column(i)),
            &format!("`{n}`"),
        );
    }
    out
}

/// `filter` with every field name mapped through `to` (an unknown name is its error).
fn rename(filter: &Filter, to: &dyn Fn(&FieldPath) -> Result<&'static str>) -> Result<Filter> {
    filter.check_limits(&crate::filter::FilterLimits::global())?;
    rename_inner(filter, to)
}

fn rename_inner(f: &Filter, to: &dyn Fn(&FieldPath) -> Result<&'static str>) -> Result<Filter> {
    let n = |p: &FieldPath| -> Result<FieldPath> { Ok(FieldPath::Borrowed(to(p)?)) };
    Ok(match f {
        Filter::And(fs) => Filter::And(
            fs.iter()
                .map(|g| rename_inner(g, to))
                .collect::<Result<_>>()?,
        ),
        Filter::Or(fs) => Filter::Or(
            fs.iter()
                .map(|g| rename_inner(g, to))
                .collect::<Result<_>>()?,
        ),
        Filter::Not(g) => Filter::Not(Box::new(rename_inner(g, to)?)),
        Filter::Compare { field, op, value } => Filter::Compare {
            field: n(field)?,
            op: *op,
            value: value.clone(),
        },
        Filter::In { field, values } => Filter::In {
            field: n(field)?,
            values: values.clone(),
        },
        Filter::NotIn { field, values } => Filter::NotIn {
            field: n(field)?,
            values: values.clone(),
        },
        Filter::IsNull(field) => Filter::IsNull(n(field)?),
        Filter::IsNotNull(field) => Filter::IsNotNull(n(field)?),
        Filter::StartsWith { field, prefix } => Filter::StartsWith {
            field: n(field)?,
            prefix: prefix.clone(),
        },
        Filter::Contains { field, substring } => Filter::Contains {
            field: n(field)?,
            substring: substring.clone(),
        },
        Filter::Like { field, pattern } => Filter::Like {
            field: n(field)?,
            pattern: pattern.clone(),
        },
        Filter::ArrayContains { field, .. } => {
            return Err(Error::invalid_input(format!(
                "having: `{field}` is not an array (contains on an array field)"
            )));
        }
        Filter::Invalid(m) => Filter::Invalid(m.clone()),
        Filter::Scope(s) => Filter::Scope(*s),
        Filter::MatchesText(_) => {
            return Err(Error::invalid_input(
                "having: matches_text applies to rows, not to groups",
            ));
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conformance::entities::Person;
    use crate::entity::Entity;
    use crate::error::ErrorKind;

    fn invalid(g: GroupBy<Person>, needle: &str) {
        let e = g.checked(Person::meta()).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(needle), "{e} should name {needle}");
    }

    #[test]
    fn bad_groupings_name_what_is_wrong() {
        invalid(GroupBy::new(), "at least one");
        let mut g = GroupBy::new().count();
        g.keys.push("nope".into());
        invalid(g, "nope");
        invalid(GroupBy::new().key(Person::PROFILE).count(), "profile");
        invalid(GroupBy::new().key(Person::TAGS).count(), "tags");
        invalid(GroupBy::new().key(Person::CITY).key(Person::CITY), "city");
        let mut g = GroupBy::new().count();
        g.aggregates.push(super::super::Aggregate {
            alias: "s".into(),
            func: AggFn::Sum("name".into()),
        });
        invalid(g, "name");
        invalid(GroupBy::new().count().count(), "count");
        invalid(
            GroupBy::new().key(Person::CITY).count().alias("city"),
            "city",
        );
        invalid(GroupBy::new().count().alias("bad name"), "bad name");
        invalid(
            GroupBy::new()
                .count()
                .having(Filter::field("missing").gt(1)),
            "missing",
        );
        invalid(
            GroupBy::new()
                .count()
                .having(Filter::field("count").eq("x")),
            "count",
        );
        invalid(GroupBy::new().count().sort(Filter::field("zz").asc()), "zz");
    }

    #[test]
    fn plan_names_columns_and_breaks_ties_by_keys() {
        let p = GroupBy::<Person>::new()
            .key(Person::CITY)
            .key(Person::NAME)
            .count()
            .avg(Person::AGE)
            .having(Filter::field("count").gt(1))
            .sort(Filter::field("avg_age").desc())
            .sort(Filter::field("name").asc())
            .checked(Person::meta())
            .unwrap();
        let sort: Vec<_> = p.sort.iter().map(|s| s.field.to_string()).collect();
        assert_eq!(sort, ["c3", "c1", "c0"]);
        assert_eq!(p.aggregates[1].ty, ScalarType::F64);
        assert_eq!(p.output_name(2), "count");
        assert_eq!(
            p.having,
            Some(Filter::Compare {
                field: "c2".into(),
                op: crate::filter::CompareOp::Gt,
                value: Value::I64(1)
            })
        );
    }
}
