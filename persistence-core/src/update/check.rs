//! Checking an [`Update`] against the entity's metadata (the rules are in
//! the [module docs](super)), and the range condition that keeps integer
//! arithmetic inside its field's type ([`Update::range_filter`]).

use crate::entity::{EntityMeta, FieldType, ScalarType};
use crate::error::{Error, Result};
use crate::filter::{FieldPath, Filter};
use crate::value::Value;

use super::{Assignment, Update, UpdateOp};

fn bad(meta: &EntityMeta, field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_input(format!("update of {}: field `{field}`: {why}", meta.name))
}

fn is_numeric(s: ScalarType) -> bool {
    matches!(
        s,
        ScalarType::I16
            | ScalarType::I32
            | ScalarType::I64
            | ScalarType::F32
            | ScalarType::F64
            | ScalarType::Decimal
    )
}

fn is_ordered(s: ScalarType) -> bool {
    is_numeric(s)
        || matches!(
            s,
            ScalarType::String | ScalarType::DateTime | ScalarType::Date
        )
}

/// The inclusive range of an integer scalar type.
pub(crate) fn int_range(s: ScalarType) -> Option<(i64, i64)> {
    match s {
        ScalarType::I16 => Some((i16::MIN.into(), i16::MAX.into())),
        ScalarType::I32 => Some((i32::MIN.into(), i32::MAX.into())),
        ScalarType::I64 => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// Whether two dotted paths are the same or one lies inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) if p == q => continue,
            (Some(_), Some(_)) => return false,
            _ => return true,
        }
    }
}

fn json_number(v: &Value) -> bool {
    matches!(v, Value::I64(_) | Value::F64(_))
}

impl<E> Update<E> {
    /// Validate against `meta` and normalize every value to its field's
    /// type (see the [module docs](super) for what is refused). Backends
    /// apply only checked updates; `set` to null becomes `unset`.
    pub fn checked(&self, meta: &EntityMeta) -> Result<Update<E>> {
        if let Some(why) = &self.invalid {
            return Err(Error::invalid_input(format!(
                "update of {}: {why}",
                meta.name
            )));
        }
        if self.assignments.is_empty() {
            return Err(Error::invalid_input(format!(
                "update of {} changes nothing: add at least one assignment",
                meta.name
            )));
        }
        let mut out: Vec<Assignment> = Vec::with_capacity(self.assignments.len());
        for a in &self.assignments {
            let path = &*a.field;
            let resolved = meta.resolve_path(path).map_err(|e| {
                Error::invalid_input(format!("update of {}: {}", meta.name, e.message()))
            })?;
            let f = &meta.fields[resolved.index];
            if f.id {
                return Err(bad(meta, path, "the id cannot be updated"));
            }
            if f.version {
                return Err(bad(meta, path, "the version is managed by the repository"));
            }
            if meta.tenant == Some(resolved.index) {
                return Err(bad(meta, path, "the tenant field cannot be updated"));
            }
            if let Some(other) = out.iter().find(|b| overlaps(&b.field, path)) {
                return Err(bad(
                    meta,
                    path,
                    format_args!("assigned twice (overlaps `{}`)", other.field),
                ));
            }
            let nested = !resolved.rest.is_empty();
            let ty = resolved.ty(meta);
            let norm = |v: &Value, ty: FieldType| -> Result<Value> {
                v.clone()
                    .normalize(ty)
                    .map_err(|e| bad(meta, path, format_args!("value: {}", e.message())))
            };
            let op = match &a.op {
                UpdateOp::Set(v) if v.is_null() => {
                    if !resolved.nullable(meta) {
                        return Err(bad(meta, path, "is not nullable: it cannot be set to null"));
                    }
                    UpdateOp::Unset
                }
                UpdateOp::Set(v) => UpdateOp::Set(norm(v, ty)?),
                UpdateOp::Unset => {
                    if !resolved.nullable(meta) {
                        return Err(bad(meta, path, "is not nullable: it cannot be unset"));
                    }
                    UpdateOp::Unset
                }
                UpdateOp::Inc(v) | UpdateOp::Mul(v) => {
                    let v = match ty {
                        FieldType::Scalar(s) if is_numeric(s) => norm(v, ty)?,
                        FieldType::Json if nested && json_number(v) => v.clone(),
                        other => {
                            return Err(bad(
                                meta,
                                path,
                                format_args!("inc/mul need a number field, this is {other:?}"),
                            ));
                        }
                    };
                    if v.is_null() {
                        return Err(bad(meta, path, "inc/mul need a number, not null"));
                    }
                    if matches!(a.op, UpdateOp::Inc(_)) {
                        UpdateOp::Inc(v)
                    } else {
                        UpdateOp::Mul(v)
                    }
                }
                UpdateOp::Min(v) | UpdateOp::Max(v) => {
                    let v = match ty {
                        FieldType::Scalar(s) if is_ordered(s) => norm(v, ty)?,
                        FieldType::Json if nested && json_number(v) => v.clone(),
                        other => {
                            return Err(bad(
                                meta,
                                path,
                                format_args!(
                                    "min/max need a number, string or date field, this is {other:?}"
                                ),
                            ));
                        }
                    };
                    if v.is_null() {
                        return Err(bad(meta, path, "min/max need a value, not null"));
                    }
                    if matches!(a.op, UpdateOp::Min(_)) {
                        UpdateOp::Min(v)
                    } else {
                        UpdateOp::Max(v)
                    }
                }
                UpdateOp::Push(v) | UpdateOp::Pull(v) => {
                    let v = match ty {
                        _ if nested => {
                            return Err(bad(
                                meta,
                                path,
                                "push/pull on nested paths are not supported",
                            ));
                        }
                        FieldType::Array(s) => norm(v, FieldType::Scalar(s))?,
                        FieldType::Json => v.clone(),
                        FieldType::Scalar(s) => {
                            return Err(bad(
                                meta,
                                path,
                                format_args!("push/pull need an array field, this is {s:?}"),
                            ));
                        }
                    };
                    if v.is_null() {
                        return Err(bad(meta, path, "push/pull need an element, not null"));
                    }
                    if matches!(a.op, UpdateOp::Push(_)) {
                        UpdateOp::Push(v)
                    } else {
                        UpdateOp::Pull(v)
                    }
                }
            };
            out.push(Assignment {
                field: a.field.clone(),
                op,
            });
        }
        // `updated_at` moves with every write (unless the update sets it).
        if let Some(i) = meta.updated_at {
            let name = meta.fields[i].name;
            if !out.iter().any(|a| a.field == name) {
                out.push(Assignment {
                    field: FieldPath::Borrowed(name),
                    op: UpdateOp::Set(Value::DateTime(crate::lifecycle::now())),
                });
            }
        }
        Ok(Update {
            assignments: out,
            invalid: None,
            _entity: std::marker::PhantomData,
        })
    }

    /// For a checked update: the condition a row must meet for every
    /// `inc`/`mul` of an integer field to stay inside the field's type
    /// (`age <= i32::MAX - n` for `inc(age, n)`), or `None` when the update
    /// has no integer arithmetic. Backends whose server does not refuse
    /// the overflow itself put it into the statement's filter, so an
    /// overflowing row is never written (nested JSON paths are not covered).
    pub fn range_filter(&self, meta: &EntityMeta) -> Option<Filter> {
        let mut parts = Vec::new();
        for a in &self.assignments {
            let Some((_, f)) = meta.field(&a.field) else {
                continue;
            };
            let Some((lo, hi)) = f.ty.scalar().and_then(int_range) else {
                continue;
            };
            let (lo, hi) = (i128::from(lo), i128::from(hi));
            let (min, max) = match &a.op {
                UpdateOp::Inc(Value::I64(n)) => {
                    let n = i128::from(*n);
                    (lo - n.min(0), hi - n.max(0))
                }
                UpdateOp::Mul(Value::I64(m)) if *m > 1 || *m < 0 => {
                    let m = i128::from(*m);
                    if m > 0 {
                        (ceil_div(lo, m), hi.div_euclid(m))
                    } else {
                        (ceil_div(hi, m), floor_div(lo, m))
                    }
                }
                _ => continue,
            };
            let (min, max) = (min.max(lo), max.min(hi));
            let (Ok(min), Ok(max)) = (i64::try_from(min), i64::try_from(max)) else {
                continue;
            };
            let field = Filter::field(a.field.clone());
            let mut bounds = Vec::new();
            if i128::from(min) > lo {
                bounds.push(field.gte(min));
            }
            if i128::from(max) < hi {
                bounds.push(field.lte(max));
            }
            if bounds.is_empty() {
                continue;
            }
            let within = Filter::And(bounds);
            parts.push(if f.nullable {
                Filter::Or(vec![field.is_null(), within])
            } else {
                within
            });
        }
        (!parts.is_empty()).then(|| Filter::And(parts))
    }
}

fn floor_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if (a % b != 0) && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_overlap_by_segment() {
        assert!(overlaps("a", "a"));
        assert!(overlaps("a", "a.b"));
        assert!(overlaps("a.b", "a"));
        assert!(!overlaps("a.b", "a.c"));
        assert!(!overlaps("ab", "a"));
    }

    #[test]
    fn division_rounds_as_named() {
        assert_eq!(floor_div(-7, 2), -4);
        assert_eq!(ceil_div(-7, 2), -3);
        assert_eq!(floor_div(7, -2), -4);
        assert_eq!(ceil_div(7, -2), -3);
        assert_eq!(ceil_div(6, 3), 2);
    }

    /// The range condition admits exactly the rows the reference
    /// application can update without overflow.
    #[cfg(feature = "conformance")]
    #[test]
    fn range_filter_agrees_with_the_reference() {
        use crate::conformance::entities::{Account, Person, person};
        use crate::entity::Entity;
        use crate::memory::matches;
        use crate::update::Update;
        use crate::value::Record;

        let operands = [0, 1, -1, 2, -2, 3, 7, -7, i64::MAX, i64::MIN + 1, i64::MIN];
        let balances = [
            0,
            1,
            -1,
            5,
            i64::MAX,
            i64::MAX - 1,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX / 2,
            i64::MAX / 2 + 1,
            i64::MIN / 2,
            i64::MIN / 2 - 1,
            i64::MAX / 7 + 1,
            i64::MIN / 7 - 1,
        ];
        let meta = Account::meta();
        for n in operands {
            for u in [
                Update::<Account>::new().inc(Account::BALANCE, n),
                Update::<Account>::new().mul(Account::BALANCE, n),
            ] {
                let u = u.checked(meta).unwrap();
                let f = u.range_filter(meta).map(|f| f.checked(meta).unwrap());
                for b in balances {
                    let a = Account {
                        id: "a".into(),
                        tenant: "t".into(),
                        handle: "h".into(),
                        balance: b,
                    };
                    let r = Record::from_entity(&a).unwrap();
                    let fits = u.apply_to(meta, &r).is_ok();
                    let admitted = f.as_ref().is_none_or(|f| matches(f, &r, meta));
                    assert_eq!(fits, admitted, "{u:?} on {b}");
                }
            }
        }
        let meta = Person::meta();
        let ages = [
            None,
            Some(0),
            Some(i32::MAX),
            Some(i32::MIN),
            Some(i32::MAX / 3 + 1),
            Some(-5),
        ];
        for n in [1, -1, 3, -3, i32::MAX, i32::MIN] {
            for u in [
                Update::<Person>::new().inc(Person::AGE, n),
                Update::<Person>::new().mul(Person::AGE, n),
            ] {
                let u = u.checked(meta).unwrap();
                let f = u.range_filter(meta).map(|f| f.checked(meta).unwrap());
                for age in ages {
                    let mut p = person(1);
                    p.age = age;
                    let r = Record::from_entity(&p).unwrap();
                    let fits = u.apply_to(meta, &r).is_ok();
                    let admitted = f.as_ref().is_none_or(|f| matches(f, &r, meta));
                    assert_eq!(fits, admitted, "{u:?} on {age:?}");
                }
            }
        }
    }
}
