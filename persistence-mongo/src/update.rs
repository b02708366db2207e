//! A checked `Update` → an update pipeline (one `$set` stage), the form
//! MongoDB 4.2+ (and SecantusDB) applies atomically per document in
//! `findOneAndUpdate` / `updateMany`.
//!
//! The pipeline form, not the `$inc`/`$push` operators, because the
//! operators refuse a null field (`$inc` on null fails, `$push` on null
//! fails, `$min` keeps null) while the framework's rules count a null as 0
//! and give `push` on null `[value]`; the expressions write those rules
//! down: `$add: [{$ifNull: ["$f", 0]}, n]`, `$min` ignoring null,
//! `$concatArrays: [{$ifNull: ["$f", []]}, [v]]`, `$filter` for `pull`.
//! Every user value is wrapped in `$literal`, so a string such as `"$other"`
//! is stored as text, never read as a field reference; keys come from the
//! metadata and validated nested segments (no `$`, no `.`).

use bson::{Bson, Document, doc};
use persistence_core::update::{Assignment, UpdateOp};
use persistence_core::{EntityMeta, Error, FieldType, Result, Value};

use crate::codec::{stored_name, to_bson};

fn literal(b: Bson) -> Bson {
    Bson::Document(doc! { "$literal": b })
}

/// Zero of the operand's BSON type (so `$add` keeps an `int` field an `int`).
fn zero_like(b: &Bson) -> Bson {
    match b {
        Bson::Int32(_) => Bson::Int32(0),
        Bson::Double(_) => Bson::Double(0.0),
        _ => Bson::Int64(0),
    }
}

/// The `[{ $set: {...} }]` pipeline of a checked update; `version` (the
/// stored key of the version field) gets `+ 1`.
pub(crate) fn pipeline(
    meta: &EntityMeta,
    assignments: &[Assignment],
    version: Option<&str>,
) -> Result<Vec<Document>> {
    let mut set = Document::new();
    for a in assignments {
        let path = meta.resolve_path(&a.field)?;
        let mut key = stored_name(meta, path.index).to_string();
        for seg in &path.rest {
            key.push('.');
            key.push_str(seg);
        }
        let ty = path.ty(meta);
        let field = Bson::String(format!("${key}"));
        let object_id = path.rest.is_empty() && meta.object_ids.contains(&path.index);
        let value = |v: &Value, ty: FieldType| -> Result<Bson> {
            match ty {
                FieldType::Scalar(_) if object_id => {
                    crate::codec::field_to_bson(meta, path.index, v)
                }
                // Inside JSON: JSON-shaped values (typed scalars as their strings).
                FieldType::Json => to_bson(&Value::from_json(v.to_json()), ty),
                _ => to_bson(v, ty),
            }
        };
        let expr = match &a.op {
            UpdateOp::Set(v) => literal(value(v, ty)?),
            UpdateOp::Unset => literal(Bson::Null),
            UpdateOp::Inc(v) | UpdateOp::Mul(v) => {
                let n = value(v, ty)?;
                let op = if matches!(a.op, UpdateOp::Inc(_)) {
                    "$add"
                } else {
                    "$multiply"
                };
                let zero = zero_like(&n);
                Bson::Document(doc! { op: [{ "$ifNull": [field, zero] }, literal(n)] })
            }
            // The aggregation $min/$max ignore a null or missing operand.
            UpdateOp::Min(v) => Bson::Document(doc! { "$min": [field, literal(value(v, ty)?)] }),
            UpdateOp::Max(v) => Bson::Document(doc! { "$max": [field, literal(value(v, ty)?)] }),
            UpdateOp::Push(v) => {
                let elem = element(v, ty)?;
                Bson::Document(doc! {
                    "$concatArrays": [{ "$ifNull": [field, []] }, [literal(elem)]]
                })
            }
            UpdateOp::Pull(v) => {
                let elem = element(v, ty)?;
                Bson::Document(doc! {
                    "$cond": {
                        "if": { "$isArray": field.clone() },
                        "then": { "$filter": {
                            "input": field,
                            "as": "e",
                            "cond": { "$ne": ["$$e", literal(elem)] },
                        } },
                        "else": Bson::Null,
                    }
                })
            }
            other => {
                return Err(Error::unsupported(format!(
                    "update operator {other:?} on `{}` is not supported on MongoDB yet",
                    a.field
                )));
            }
        };
        set.insert(key, expr);
    }
    if let Some(v) = version {
        set.insert(v, doc! { "$add": [format!("${v}"), Bson::Int64(1)] });
    }
    Ok(vec![doc! { "$set": set }])
}

/// An array element as stored: a scalar of the array's type, or JSON.
fn element(v: &Value, ty: FieldType) -> Result<Bson> {
    match ty {
        FieldType::Array(s) => to_bson(v, FieldType::Scalar(s)),
        _ => to_bson(&Value::from_json(v.to_json()), FieldType::Json),
    }
}
