//! The reference application of a checked [`Update`] to a [`Record`]
//! ([`Update::apply_to`]): what every backend's statement must do to a row.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::entity::{EntityMeta, FieldType};
use crate::error::{Error, Result};
use crate::value::{Record, Value};

use super::{Update, UpdateOp};

fn bad(meta: &EntityMeta, field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_input(format!("update of {}: field `{field}`: {why}", meta.name))
}

/// Equality as filters see it: numbers across integer and float, other
/// values of the same kind.
fn same(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| matches!(v, Value::I64(_) | Value::F64(_));
    let comparable = (num(a) && num(b)) || std::mem::discriminant(a) == std::mem::discriminant(b);
    comparable && a.total_cmp(b) == Ordering::Equal
}

enum Arith {
    Add,
    Mul,
}

fn arith(cur: &Value, by: &Value, how: Arith) -> std::result::Result<Value, &'static str> {
    let zero;
    let cur = if cur.is_null() {
        zero = match by {
            Value::F64(_) => Value::F64(0.0),
            #[cfg(feature = "decimal")]
            Value::Decimal(_) => Value::Decimal(rust_decimal::Decimal::ZERO),
            _ => Value::I64(0),
        };
        &zero
    } else {
        cur
    };
    Ok(match (cur, by, how) {
        (Value::I64(a), Value::I64(b), Arith::Add) => {
            Value::I64(a.checked_add(*b).ok_or("overflows i64")?)
        }
        (Value::I64(a), Value::I64(b), Arith::Mul) => {
            Value::I64(a.checked_mul(*b).ok_or("overflows i64")?)
        }
        (Value::F64(a), Value::F64(b), Arith::Add) => Value::F64(a + b),
        (Value::F64(a), Value::F64(b), Arith::Mul) => Value::F64(a * b),
        (Value::I64(a), Value::F64(b), Arith::Add) => Value::F64(*a as f64 + b),
        (Value::I64(a), Value::F64(b), Arith::Mul) => Value::F64(*a as f64 * b),
        (Value::F64(a), Value::I64(b), Arith::Add) => Value::F64(a + *b as f64),
        (Value::F64(a), Value::I64(b), Arith::Mul) => Value::F64(a * *b as f64),
        #[cfg(feature = "decimal")]
        (Value::Decimal(a), Value::Decimal(b), Arith::Add) => {
            Value::Decimal(a.checked_add(*b).ok_or("overflows decimal")?)
        }
        #[cfg(feature = "decimal")]
        (Value::Decimal(a), Value::Decimal(b), Arith::Mul) => {
            Value::Decimal(a.checked_mul(*b).ok_or("overflows decimal")?)
        }
        _ => return Err("holds no number"),
    })
}

/// The value at `rest` inside `root`, creating missing objects on the way.
fn slot<'v>(
    root: &'v mut Value,
    rest: &[&str],
) -> std::result::Result<&'v mut Value, &'static str> {
    let mut v = root;
    for seg in rest {
        if v.is_null() {
            *v = Value::Object(BTreeMap::new());
        }
        let Value::Object(o) = v else {
            return Err("a parent of the nested path is not an object");
        };
        v = o.entry((*seg).to_string()).or_insert(Value::Null);
    }
    Ok(v)
}

impl<E> Update<E> {
    /// Apply this update (it must be [checked](Update::checked) against
    /// `meta`) to a copy of `record`: the reference semantics of the
    /// [module docs](super). The version is not touched (the repository
    /// bumps it). Overflow and values of the wrong kind are `InvalidInput`.
    pub fn apply_to(&self, meta: &EntityMeta, record: &Record) -> Result<Record> {
        let mut out = record.clone();
        for a in &self.assignments {
            let path = meta.resolve_path(&a.field)?;
            let ty = path.ty(meta);
            let field = &*a.field;
            let Some(root) = out.values.get_mut(path.index) else {
                return Err(bad(meta, field, "no such column in the record"));
            };
            let v = slot(root, &path.rest).map_err(|why| bad(meta, field, why))?;
            let next = match &a.op {
                UpdateOp::Set(x) => x.clone(),
                UpdateOp::Unset => Value::Null,
                UpdateOp::Inc(by) => {
                    arith(v, by, Arith::Add).map_err(|why| bad(meta, field, why))?
                }
                UpdateOp::Mul(by) => {
                    arith(v, by, Arith::Mul).map_err(|why| bad(meta, field, why))?
                }
                UpdateOp::Min(x) | UpdateOp::Max(x) => {
                    let want = if matches!(a.op, UpdateOp::Min(_)) {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    };
                    if v.is_null() || x.total_cmp(v) == want {
                        x.clone()
                    } else {
                        v.clone()
                    }
                }
                UpdateOp::Push(x) => match v {
                    Value::Null => Value::Array(vec![x.clone()]),
                    Value::Array(items) => {
                        let mut items = std::mem::take(items);
                        items.push(x.clone());
                        Value::Array(items)
                    }
                    _ => return Err(bad(meta, field, "holds no array")),
                },
                UpdateOp::Pull(x) => match v {
                    Value::Null => Value::Null,
                    Value::Array(items) => Value::Array(
                        std::mem::take(items)
                            .into_iter()
                            .filter(|e| !same(e, x))
                            .collect(),
                    ),
                    _ => return Err(bad(meta, field, "holds no array")),
                },
            };
            // The field's type decides what fits: an i32 column refuses an
            // inc past i32 (the value normalizes only when it fits).
            *v = match ty {
                FieldType::Json => next,
                _ => next.normalize(ty).map_err(|e| {
                    bad(
                        meta,
                        field,
                        format_args!("the result leaves the field's type: {}", e.message()),
                    )
                })?,
            };
        }
        Ok(out)
    }
}
