//! A checked `Update` into the `SET` list of one `UPDATE` statement: each
//! column assigned once, nested JSON paths of one column folded into one
//! `jsonb_set` chain (PostgreSQL) or one `json_set` call (SQLite), every
//! value bound.
//!
//! The null rules of `persistence_core::update` are written into the
//! expressions (`COALESCE(col, 0) + $1`, `LEAST` ignoring null, ...). Integer
//! overflow fails the statement, so nothing changes: PostgreSQL raises
//! 22003 on its own; SQLite turns an overflowing integer into a float
//! silently, so each integer result is checked in the expression and an
//! out-of-range one evaluates `abs(-9223372036854775808)`, which SQLite
//! documents to fail with "integer overflow" ([`SQLITE_OVERFLOW`]).

use persistence_core::entity::{FieldMeta, ResolvedPath};
use persistence_core::update::{Assignment, UpdateOp};
use persistence_core::{Error, FieldType, Result, ScalarType, Value};
use sea_orm::Value as SV;

use super::{Translator, is_text};
use crate::codec::to_bind;
use crate::query::Sql;

/// What SQLite says when an update's integer arithmetic overflowed.
pub(crate) const SQLITE_OVERFLOW: &str = "integer overflow";

/// An expression that fails with [`SQLITE_OVERFLOW`] when evaluated.
const SQLITE_RAISE: &str = "abs(-9223372036854775807 - 1)";

fn int_range(s: ScalarType) -> Option<(i64, i64)> {
    match s {
        ScalarType::I16 => Some((i16::MIN.into(), i16::MAX.into())),
        ScalarType::I32 => Some((i32::MIN.into(), i32::MAX.into())),
        ScalarType::I64 => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

impl Translator<'_> {
    /// Write `"a" = expr, "b" = expr` for a checked update's assignments.
    pub(crate) fn set_list(&self, sql: &mut Sql, assignments: &[Assignment]) -> Result<()> {
        // Group by column, in order of first appearance.
        let mut groups: Vec<(usize, Vec<(ResolvedPath<'_>, &UpdateOp)>)> = Vec::new();
        for a in assignments {
            let path = self.meta.resolve_path(&a.field)?;
            match groups.iter_mut().find(|(i, _)| *i == path.index) {
                Some((_, g)) => g.push((path, &a.op)),
                None => groups.push((path.index, vec![(path, &a.op)])),
            }
        }
        for (n, (index, group)) in groups.iter().enumerate() {
            let f = &self.meta.fields[*index];
            if n > 0 {
                sql.push(", ");
            }
            sql.ident(f.name).push(" = ");
            match group.as_slice() {
                [(path, op)] if path.rest.is_empty() => self.column_value(sql, f, op)?,
                _ if self.pg() => self.pg_nested(sql, f, group)?,
                _ => self.sqlite_nested(sql, f, group)?,
            }
        }
        Ok(())
    }

    fn bind_value(&self, sql: &mut Sql, ty: FieldType, v: &Value) -> Result<()> {
        sql.bind(to_bind(self.dialect, ty, v)?);
        Ok(())
    }

    /// The new value of a whole column.
    fn column_value(&self, sql: &mut Sql, f: &FieldMeta, op: &UpdateOp) -> Result<()> {
        let col = f.name;
        let scalar = f.ty.scalar();
        let decimal_on_sqlite = !self.pg() && scalar == Some(ScalarType::Decimal);
        match op {
            UpdateOp::Set(v) => self.bind_value(sql, f.ty, v)?,
            UpdateOp::Unset => {
                sql.push("NULL");
            }
            UpdateOp::Inc(v) | UpdateOp::Mul(v) => {
                if decimal_on_sqlite {
                    return Err(Error::unsupported(format!(
                        "inc/mul of decimal field `{col}`: SQLite stores decimals as text"
                    )));
                }
                let sign = if matches!(op, UpdateOp::Inc(_)) {
                    " + "
                } else {
                    " * "
                };
                let zero = if matches!(v, Value::F64(_)) {
                    "0.0"
                } else {
                    "0"
                };
                let write = |sql: &mut Sql| -> Result<()> {
                    sql.push("(COALESCE(")
                        .ident(col)
                        .push(", ")
                        .push(zero)
                        .push(")")
                        .push(sign);
                    self.bind_value(sql, f.ty, v)?;
                    sql.push(")");
                    Ok(())
                };
                match scalar.and_then(int_range) {
                    Some((lo, hi)) if !self.pg() => {
                        sql.push("(CASE WHEN typeof(");
                        write(sql)?;
                        sql.push(") = 'integer' AND ");
                        write(sql)?;
                        sql.push(&format!(" BETWEEN {lo} AND {hi} THEN "));
                        write(sql)?;
                        sql.push(" ELSE ").push(SQLITE_RAISE).push(" END)");
                    }
                    _ => write(sql)?,
                }
            }
            UpdateOp::Min(v) | UpdateOp::Max(v) => {
                if decimal_on_sqlite {
                    return Err(Error::unsupported(format!(
                        "min/max of decimal field `{col}`: SQLite stores decimals as text"
                    )));
                }
                let least = matches!(op, UpdateOp::Min(_));
                if self.pg() {
                    // LEAST/GREATEST ignore a null argument.
                    sql.push(if least { "LEAST(" } else { "GREATEST(" })
                        .ident(col);
                    if is_text(f.ty) {
                        sql.push(" COLLATE \"C\"");
                    }
                    sql.push(", ");
                    self.bind_value(sql, f.ty, v)?;
                    sql.push(")");
                } else {
                    sql.push("(CASE WHEN ").ident(col).push(" IS NULL THEN ");
                    self.bind_value(sql, f.ty, v)?;
                    sql.push(if least { " ELSE min(" } else { " ELSE max(" })
                        .ident(col)
                        .push(", ");
                    self.bind_value(sql, f.ty, v)?;
                    sql.push(") END)");
                }
            }
            UpdateOp::Push(v) => {
                let elem = v.to_json();
                if self.pg() {
                    sql.push("(COALESCE(")
                        .ident(col)
                        .push(", '[]'::jsonb) || ")
                        .bind(SV::Json(Some(Box::new(serde_json::Value::Array(vec![
                            elem,
                        ])))))
                        .push(")");
                } else {
                    sql.push("json_insert(COALESCE(")
                        .ident(col)
                        .push(", '[]'), '$[#]', json(")
                        .bind(SV::String(Some(elem.to_string())))
                        .push("))");
                }
            }
            UpdateOp::Pull(v) => {
                let elem = v.to_json();
                sql.push("(CASE WHEN ")
                    .ident(col)
                    .push(" IS NULL THEN NULL ELSE ");
                if self.pg() {
                    sql.push("(SELECT COALESCE(jsonb_agg(\"_e\" ORDER BY \"_o\"), '[]'::jsonb) FROM jsonb_array_elements(")
                        .ident(col)
                        .push(") WITH ORDINALITY AS \"_x\"(\"_e\", \"_o\") WHERE \"_e\" <> ")
                        .bind(SV::Json(Some(Box::new(elem))))
                        .push(")");
                } else {
                    sql.push("(SELECT COALESCE(json_group_array(json(")
                        .ident(col)
                        .push(" -> \"_je\".fullkey)), '[]') FROM json_each(")
                        .ident(col)
                        .push(") AS \"_je\" WHERE json(")
                        .ident(col)
                        .push(" -> \"_je\".fullkey) <> json(")
                        .bind(SV::String(Some(elem.to_string())))
                        .push("))");
                }
                sql.push(" END)");
            }
            other => {
                return Err(Error::unsupported(format!(
                    "update operator {other:?} on `{col}` is not supported by SQL backends yet"
                )));
            }
        }
        Ok(())
    }

    /// PostgreSQL: `jsonb_set(jsonb_set("col", path1, v1), path2, v2)`.
    fn pg_nested(
        &self,
        sql: &mut Sql,
        f: &FieldMeta,
        group: &[(ResolvedPath<'_>, &UpdateOp)],
    ) -> Result<()> {
        for _ in group {
            sql.push("jsonb_set(");
        }
        sql.ident(f.name);
        for (path, op) in group {
            sql.push(", ");
            self.pg_path_array(sql, path);
            sql.push(", ");
            // The current value as numeric (null when absent or JSON null).
            let current = |sql: &mut Sql| {
                sql.push("((").ident(f.name).push(" #> ");
                self.pg_path_array(sql, path);
                sql.push(") #>> '{}')::numeric");
            };
            let number = |sql: &mut Sql, v: &Value| {
                sql.push("(")
                    .bind(self.json_number_bind(v))
                    .push(")::numeric");
            };
            match op {
                UpdateOp::Set(v) => {
                    sql.bind(SV::Json(Some(Box::new(v.to_json()))));
                }
                UpdateOp::Unset => {
                    sql.push("'null'::jsonb");
                }
                UpdateOp::Inc(v) | UpdateOp::Mul(v) => {
                    sql.push("to_jsonb(COALESCE(");
                    current(sql);
                    sql.push(", 0)").push(if matches!(op, UpdateOp::Inc(_)) {
                        " + "
                    } else {
                        " * "
                    });
                    number(sql, v);
                    sql.push(")");
                }
                UpdateOp::Min(v) | UpdateOp::Max(v) => {
                    sql.push(if matches!(op, UpdateOp::Min(_)) {
                        "to_jsonb(LEAST("
                    } else {
                        "to_jsonb(GREATEST("
                    });
                    current(sql);
                    sql.push(", ");
                    number(sql, v);
                    sql.push("))");
                }
                _ => return Err(nested_unsupported(f, op)),
            }
            sql.push(", true)");
        }
        Ok(())
    }

    fn pg_path_array(&self, sql: &mut Sql, path: &ResolvedPath<'_>) {
        sql.push("ARRAY[");
        for (i, seg) in path.rest.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(SV::String(Some((*seg).to_string())));
        }
        sql.push("]::text[]");
    }

    fn json_number_bind(&self, v: &Value) -> SV {
        match v {
            Value::I64(i) => SV::BigInt(Some(*i)),
            Value::F64(x) => SV::Double(Some(*x)),
            other => SV::String(Some(other.to_json().to_string())),
        }
    }

    /// SQLite: `json_set("col", path1, v1, path2, v2)`.
    fn sqlite_nested(
        &self,
        sql: &mut Sql,
        f: &FieldMeta,
        group: &[(ResolvedPath<'_>, &UpdateOp)],
    ) -> Result<()> {
        sql.push("json_set(").ident(f.name);
        for (path, op) in group {
            let p = self.sqlite_path(&path.rest)?;
            let current = |sql: &mut Sql| {
                sql.push("json_extract(")
                    .ident(f.name)
                    .push(", ")
                    .bind(SV::String(Some(p.clone())))
                    .push(")");
            };
            sql.push(", ").bind(SV::String(Some(p.clone()))).push(", ");
            match op {
                UpdateOp::Set(v) => {
                    sql.push("json(")
                        .bind(SV::String(Some(v.to_json().to_string())))
                        .push(")");
                }
                UpdateOp::Unset => {
                    sql.push("json('null')");
                }
                UpdateOp::Inc(v) | UpdateOp::Mul(v) => {
                    sql.push("(COALESCE(");
                    current(sql);
                    sql.push(", 0)")
                        .push(if matches!(op, UpdateOp::Inc(_)) {
                            " + "
                        } else {
                            " * "
                        })
                        .bind(self.json_number_bind(v))
                        .push(")");
                }
                UpdateOp::Min(v) | UpdateOp::Max(v) => {
                    sql.push("(CASE WHEN ");
                    current(sql);
                    sql.push(" IS NULL THEN ").bind(self.json_number_bind(v));
                    sql.push(if matches!(op, UpdateOp::Min(_)) {
                        " ELSE min("
                    } else {
                        " ELSE max("
                    });
                    current(sql);
                    sql.push(", ").bind(self.json_number_bind(v)).push(") END)");
                }
                _ => return Err(nested_unsupported(f, op)),
            }
        }
        sql.push(")");
        Ok(())
    }
}

fn nested_unsupported(f: &FieldMeta, op: &UpdateOp) -> Error {
    Error::invalid_input(format!(
        "{op:?} on a nested path of `{}` is not supported",
        f.name
    ))
}
