//! Checked filters and sort keys of one entity into SQL ([`Translator`]):
//! code-point string order, literal `starts_with` / `contains`, `like`
//! patterns and ignore-case tests (in `text.rs`), two-valued
//! negation, nested JSON paths and `IN` lists, per dialect (the semantics
//! are listed in the crate docs).

use std::fmt::Write as _;

use persistence_core::entity::{EntityMeta, FieldMeta, ResolvedPath};
use persistence_core::query::{Direction, SortKey};
use persistence_core::{CompareOp, Error, FieldType, Filter, Result, ScalarType, Value};
use sea_orm::Value as SV;

use crate::codec::to_bind;
use crate::query::{Dialect, Sql};

mod fulltext;
mod list;
mod text;
pub(crate) mod update;

fn is_text(ty: FieldType) -> bool {
    matches!(ty, FieldType::Scalar(ScalarType::String | ScalarType::Enum))
}

fn op_sql(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => " = ",
        CompareOp::Ne => " <> ",
        CompareOp::Lt => " < ",
        CompareOp::Lte => " <= ",
        CompareOp::Gt => " > ",
        CompareOp::Gte => " >= ",
    }
}

/// Kinds of JSON scalars a nested comparison can target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    String,
    Number,
    Bool,
}

fn json_kind(v: &Value) -> Result<JsonKind> {
    match v {
        Value::String(_) => Ok(JsonKind::String),
        Value::I64(_) | Value::F64(_) => Ok(JsonKind::Number),
        Value::Bool(_) => Ok(JsonKind::Bool),
        other => Err(Error::invalid_input(format!(
            "nested paths compare with JSON scalars only, not {other:?}"
        ))),
    }
}

/// Maps a SQLite JSON type to a kind class (numbers 1, text 2, booleans 3).
const SQLITE_KIND_CASE: &str = "WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 \
     WHEN 'true' THEN 3 WHEN 'false' THEN 3 END";

fn push_json_scalar(out: &mut String, v: &Value) {
    match v {
        Value::F64(x) if x.is_nan() => out.push_str("null"),
        Value::F64(x) if x.is_infinite() => out.push_str(if *x > 0.0 { "9e999" } else { "-9e999" }),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        other => out.push_str(&other.to_json().to_string()),
    }
}

/// Translates checked filters and sort keys of one entity into SQL.
pub(crate) struct Translator<'m> {
    pub(crate) meta: &'m EntityMeta,
    pub(crate) dialect: Dialect,
    /// The library's text index exists on the table (see [`crate::fulltext`]).
    pub(crate) text_index: bool,
}

impl Translator<'_> {
    fn field(&self, path: &ResolvedPath<'_>) -> &FieldMeta {
        &self.meta.fields[path.index]
    }

    fn pg(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// The SQLite JSON path for nested segments (`$."a"."b"`).
    fn sqlite_path(&self, rest: &[&str]) -> Result<String> {
        let mut p = String::from("$");
        for seg in rest {
            if seg.contains('"') || seg.contains('\\') {
                return Err(Error::invalid_input(
                    "nested path segments with `\"` or `\\` are not supported on SQLite",
                ));
            }
            let _ = write!(p, ".\"{seg}\"");
        }
        Ok(p)
    }

    /// Write the JSON value at `path` (PostgreSQL: a jsonb expression; SQLite:
    /// `json_extract`, an SQL value).
    fn json_expr(&self, sql: &mut Sql, path: &ResolvedPath<'_>) -> Result<()> {
        let col = self.field(path).name;
        if self.pg() {
            sql.push("(").ident(col);
            for seg in &path.rest {
                sql.push(" -> ").bind(SV::String(Some((*seg).to_string())));
            }
            sql.push(")");
        } else {
            let p = self.sqlite_path(&path.rest)?;
            sql.push("json_extract(")
                .ident(col)
                .push(", ")
                .bind(SV::String(Some(p)))
                .push(")");
        }
        Ok(())
    }

    /// Write the JSON type name of the value at `path`.
    fn json_type(&self, sql: &mut Sql, path: &ResolvedPath<'_>) -> Result<()> {
        if self.pg() {
            sql.push("jsonb_typeof(");
            self.json_expr(sql, path)?;
            sql.push(")");
        } else {
            let p = self.sqlite_path(&path.rest)?;
            sql.push("json_type(")
                .ident(self.field(path).name)
                .push(", ")
                .bind(SV::String(Some(p)))
                .push(")");
        }
        Ok(())
    }

    fn kind_check(&self, sql: &mut Sql, path: &ResolvedPath<'_>, kind: JsonKind) -> Result<()> {
        self.json_type(sql, path)?;
        sql.push(match (self.pg(), kind) {
            (true, JsonKind::String) => " = 'string'",
            (true, JsonKind::Number) => " = 'number'",
            (true, JsonKind::Bool) => " = 'boolean'",
            (false, JsonKind::String) => " = 'text'",
            (false, JsonKind::Number) => " IN ('integer', 'real')",
            (false, JsonKind::Bool) => " IN ('true', 'false')",
        });
        Ok(())
    }

    /// The text of a JSON string at `path` (only meaningful after a kind check).
    fn json_text(&self, sql: &mut Sql, path: &ResolvedPath<'_>) -> Result<()> {
        if self.pg() {
            sql.push("(");
            self.json_expr(sql, path)?;
            sql.push(" #>> '{}')");
            Ok(())
        } else {
            self.json_expr(sql, path)
        }
    }

    fn json_scalar_bind(&self, v: &Value) -> SV {
        match (self.pg(), v) {
            (true, v) => SV::Json(Some(Box::new(v.to_json()))),
            (false, Value::String(s)) => SV::String(Some(s.clone())),
            (false, Value::I64(i)) => SV::BigInt(Some(*i)),
            (false, Value::F64(x)) => SV::Double(Some(*x)),
            (false, Value::Bool(b)) => SV::BigInt(Some(i64::from(*b))),
            (false, other) => SV::String(Some(other.to_json().to_string())),
        }
    }

    /// `(kind check AND value op v)` for a nested path (may be NULL when absent).
    fn nested_compare(
        &self,
        sql: &mut Sql,
        path: &ResolvedPath<'_>,
        op: CompareOp,
        v: &Value,
    ) -> Result<()> {
        if op == CompareOp::Ne {
            return self.negate(sql, |t, sql| t.nested_compare(sql, path, CompareOp::Eq, v));
        }
        let kind = json_kind(v)?;
        sql.push("(");
        self.kind_check(sql, path, kind)?;
        sql.push(" AND ");
        if kind == JsonKind::String {
            self.json_text(sql, path)?;
            if self.pg() && op != CompareOp::Eq {
                sql.push(" COLLATE \"C\"");
            }
            sql.push(op_sql(op)).bind(SV::String(Some(match v {
                Value::String(s) => s.clone(),
                _ => String::new(),
            })));
        } else {
            self.json_expr(sql, path)?;
            sql.push(op_sql(op));
            self.json_scalar_operand(sql, v);
        }
        sql.push(")");
        Ok(())
    }

    /// A JSON scalar to compare with an extracted JSON value. On SQLite a
    /// number is parsed from its JSON text by SQLite's own JSON parser, as
    /// the stored value was: that parser is not correctly rounded for every
    /// double (`1e-300` reads back slightly below the bound double), so a
    /// bound double would not equal the stored number.
    fn json_scalar_operand(&self, sql: &mut Sql, v: &Value) {
        if !self.pg() && matches!(v, Value::F64(_)) {
            let mut text = String::new();
            push_json_scalar(&mut text, v);
            sql.push("json_extract(")
                .bind(SV::String(Some(format!("[{text}]"))))
                .push(", '$[0]')");
        } else {
            sql.bind(self.json_scalar_bind(v));
        }
    }

    /// `NOT COALESCE(inner, FALSE)`: two-valued negation.
    fn negate(
        &self,
        sql: &mut Sql,
        inner: impl FnOnce(&Self, &mut Sql) -> Result<()>,
    ) -> Result<()> {
        sql.push("(NOT COALESCE(");
        inner(self, sql)?;
        sql.push(", ").push(self.dialect.f()).push("))");
        Ok(())
    }

    fn column_operand(&self, sql: &mut Sql, f: &FieldMeta) {
        if !self.pg() && f.ty == FieldType::Scalar(ScalarType::Decimal) {
            sql.push("CAST(").ident(f.name).push(" AS REAL)");
        } else {
            sql.ident(f.name);
        }
    }

    fn value_operand(&self, sql: &mut Sql, f: &FieldMeta, v: &Value) -> Result<()> {
        let b = to_bind(self.dialect, f.ty, v)?;
        if !self.pg() && f.ty == FieldType::Scalar(ScalarType::Decimal) {
            sql.push("CAST(").bind(b).push(" AS REAL)");
        } else {
            sql.bind(b);
        }
        Ok(())
    }

    fn column_compare(&self, sql: &mut Sql, f: &FieldMeta, op: CompareOp, v: &Value) -> Result<()> {
        sql.push("(");
        self.column_operand(sql, f);
        match op {
            CompareOp::Ne if self.pg() => {
                sql.push(" IS DISTINCT FROM ");
            }
            CompareOp::Ne => {
                sql.push(" IS NOT ");
            }
            CompareOp::Eq => {
                sql.push(" = ");
            }
            _ => {
                if self.pg() && is_text(f.ty) {
                    sql.push(" COLLATE \"C\"");
                }
                sql.push(op_sql(op));
            }
        }
        self.value_operand(sql, f, v)?;
        sql.push(")");
        Ok(())
    }

    fn is_null(&self, sql: &mut Sql, path: &ResolvedPath<'_>) -> Result<()> {
        let f = self.field(path);
        if path.rest.is_empty() {
            sql.push("(").ident(f.name).push(" IS NULL)");
        } else if self.pg() {
            sql.push("(");
            self.json_expr(sql, path)?;
            sql.push(" IS NULL OR ");
            self.json_type(sql, path)?;
            sql.push(" = 'null')");
        } else {
            sql.push("(COALESCE(");
            self.json_type(sql, path)?;
            sql.push(", 'null') = 'null')");
        }
        Ok(())
    }

    fn string_test(
        &self,
        sql: &mut Sql,
        path: &ResolvedPath<'_>,
        needle: &str,
        prefix: bool,
    ) -> Result<()> {
        let nested = path.ty(self.meta) == FieldType::Json;
        sql.push("(");
        if nested {
            self.kind_check(sql, path, JsonKind::String)?;
            sql.push(" AND ");
        }
        let needle = SV::String(Some(needle.to_string()));
        let target = |t: &Self, sql: &mut Sql| -> Result<()> {
            if nested {
                t.json_text(sql, path)
            } else {
                sql.ident(t.field(path).name);
                Ok(())
            }
        };
        match (self.pg(), prefix) {
            (true, true) => {
                sql.push("starts_with(");
                target(self, sql)?;
                sql.push(", ").bind(needle).push(")");
            }
            (true, false) => {
                sql.push("strpos(");
                target(self, sql)?;
                sql.push(", ").bind(needle).push(") > 0");
            }
            (false, _) => {
                // instr is a case-sensitive, literal search (LIKE would not be).
                sql.push("instr(");
                target(self, sql)?;
                sql.push(", ")
                    .bind(needle)
                    .push(if prefix { ") = 1" } else { ") > 0" });
            }
        }
        sql.push(")");
        Ok(())
    }

    fn array_contains(&self, sql: &mut Sql, path: &ResolvedPath<'_>, v: &Value) -> Result<()> {
        let nested = path.ty(self.meta) == FieldType::Json;
        let col = self.field(path).name;
        sql.push("(");
        if self.pg() {
            if nested {
                self.json_type(sql, path)?;
                sql.push(" = 'array' AND ");
            }
            if nested {
                self.json_expr(sql, path)?;
            } else {
                sql.ident(col);
            }
            let probe = serde_json::Value::Array(vec![v.to_json()]);
            sql.push(" @> ").bind(SV::Json(Some(Box::new(probe))));
        } else {
            let p = self.sqlite_path(&path.rest)?;
            self.json_type(sql, path)?;
            sql.push(" = 'array' AND EXISTS (SELECT 1 FROM json_each(")
                .ident(col)
                .push(", ")
                .bind(SV::String(Some(p)))
                .push(") AS je WHERE ");
            let elem = match v {
                Value::Bool(_) => Value::Bool(matches!(v, Value::Bool(true))),
                Value::I64(_) | Value::F64(_) | Value::String(_) => v.clone(),
                // Typed scalars (uuid, timestamps, decimals...) are stored as their JSON strings.
                other => match other.to_json() {
                    serde_json::Value::String(s) => Value::String(s),
                    j => Value::from_json(j),
                },
            };
            match json_kind(&elem)? {
                JsonKind::String => sql.push("je.type = 'text'"),
                JsonKind::Number => sql.push("je.type IN ('integer', 'real')"),
                JsonKind::Bool => sql.push("je.type IN ('true', 'false')"),
            };
            sql.push(" AND je.value = ");
            self.json_scalar_operand(sql, &elem);
            sql.push(")");
        }
        sql.push(")");
        Ok(())
    }

    /// Write a checked filter as a boolean expression. The expression may be
    /// NULL only where NULL means "no match"; negations are two-valued.
    pub(crate) fn filter(&self, sql: &mut Sql, f: &Filter) -> Result<()> {
        match f {
            Filter::And(fs) | Filter::Or(fs) if fs.is_empty() => {
                sql.push(if matches!(f, Filter::And(_)) {
                    self.dialect.t()
                } else {
                    self.dialect.f()
                });
            }
            Filter::And(fs) | Filter::Or(fs) => {
                let sep = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(");
                for (i, g) in fs.iter().enumerate() {
                    if i > 0 {
                        sql.push(sep);
                    }
                    self.filter(sql, g)?;
                }
                sql.push(")");
            }
            Filter::Not(inner) => self.negate(sql, |t, sql| t.filter(sql, inner))?,
            Filter::Compare { field, op, value } => {
                let path = self.meta.resolve_path(field)?;
                if path.ty(self.meta) == FieldType::Json {
                    self.nested_compare(sql, &path, *op, value)?;
                } else {
                    self.column_compare(sql, self.field(&path), *op, value)?;
                }
            }
            Filter::In { field, values } => {
                if values.is_empty() {
                    sql.push(self.dialect.f());
                    return Ok(());
                }
                let path = self.meta.resolve_path(field)?;
                self.in_list(sql, &path, values)?;
            }
            Filter::NotIn { field, values } => {
                let inner = Filter::In {
                    field: field.clone(),
                    values: values.clone(),
                };
                self.negate(sql, |t, sql| t.filter(sql, &inner))?;
            }
            Filter::IsNull(field) => {
                let path = self.meta.resolve_path(field)?;
                self.is_null(sql, &path)?;
            }
            Filter::IsNotNull(field) => {
                let path = self.meta.resolve_path(field)?;
                sql.push("(NOT ");
                self.is_null(sql, &path)?;
                sql.push(")");
            }
            Filter::StartsWith { field, prefix } => {
                let path = self.meta.resolve_path(field)?;
                self.string_test(sql, &path, prefix, true)?;
            }
            Filter::Contains { field, substring } => {
                let path = self.meta.resolve_path(field)?;
                self.string_test(sql, &path, substring, false)?;
            }
            Filter::ArrayContains { field, value } => {
                let path = self.meta.resolve_path(field)?;
                self.array_contains(sql, &path, value)?;
            }
            Filter::Like { field, pattern } => {
                let path = self.meta.resolve_path(field)?;
                self.like(sql, &path, pattern)?;
            }
            Filter::MatchesText(q) => self.matches_text(sql, q)?,
            Filter::Invalid(msg) => return Err(Error::invalid_input(msg.clone())),
            // The condition it stands for is next to it in a checked filter.
            Filter::Scope(_) => {
                sql.push(self.dialect.t());
            }
        }
        Ok(())
    }

    /// Write ` ORDER BY ...` for checked sort keys: nulls lowest, strings by
    /// code point, nothing known about the columns (see [`Self::order_by_known`]).
    pub(crate) fn order_by(&self, sql: &mut Sql, sort: &[SortKey]) -> Result<()> {
        self.order_by_known(sql, sort, &|_| false)
    }

    /// Write ` ORDER BY ...` for checked sort keys: nulls lowest, strings by
    /// code point. `not_null(column)` tells whether the catalog reported the
    /// column `NOT NULL` (see [`crate::query::facts`]).
    ///
    /// The null order is written only where it can matter: on PostgreSQL
    /// (whose default puts nulls highest) `ASC NULLS FIRST` / `DESC NULLS
    /// LAST`, except on a column of a non-`Option` field that the catalog
    /// reported `NOT NULL`, where a plain `ASC` / `DESC` lets a btree index
    /// provide the order. SQLite's default already puts nulls lowest: no
    /// clause there (an explicit one would only keep its planner from
    /// using an index).
    pub(crate) fn order_by_known(
        &self,
        sql: &mut Sql,
        sort: &[SortKey],
        not_null: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        let mut first = true;
        for key in sort {
            let path = self.meta.resolve_path(&key.field)?;
            let no_nulls = path.rest.is_empty() && {
                let f = self.field(&path);
                !f.nullable && not_null(f.name)
            };
            let dir = match key.direction {
                Direction::Asc => " ASC",
                Direction::Desc => " DESC",
            };
            let nulls = match (self.dialect, key.direction) {
                (Dialect::Sqlite, _) => "",
                (Dialect::Postgres, _) if no_nulls => "",
                (Dialect::Postgres, Direction::Asc) => " NULLS FIRST",
                (Dialect::Postgres, Direction::Desc) => " NULLS LAST",
            };
            let mut item = |sql: &mut Sql, write: &dyn Fn(&mut Sql) -> Result<()>| -> Result<()> {
                sql.push(if first { " ORDER BY " } else { ", " });
                first = false;
                write(sql)?;
                sql.push(dir).push(nulls);
                Ok(())
            };
            if path.ty(self.meta) == FieldType::Json {
                // Same order as the reference: null < numbers < strings < objects < arrays < booleans.
                item(sql, &|sql: &mut Sql| {
                    sql.push("CASE ");
                    self.json_type(sql, &path)?;
                    if self.pg() {
                        sql.push(
                            " WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 3 \
                             WHEN 'array' THEN 4 WHEN 'boolean' THEN 7 ELSE 0 END",
                        );
                    } else {
                        sql.push(
                            " WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 \
                             WHEN 'object' THEN 3 WHEN 'array' THEN 4 WHEN 'true' THEN 7 \
                             WHEN 'false' THEN 7 ELSE 0 END",
                        );
                    }
                    Ok(())
                })?;
                if self.pg() {
                    item(sql, &|sql: &mut Sql| {
                        sql.push("CASE WHEN ");
                        self.kind_check(sql, &path, JsonKind::Number)?;
                        sql.push(" THEN (");
                        self.json_text(sql, &path)?;
                        sql.push(")::numeric END");
                        Ok(())
                    })?;
                    item(sql, &|sql: &mut Sql| {
                        sql.push("(CASE WHEN ");
                        self.kind_check(sql, &path, JsonKind::String)?;
                        sql.push(" THEN ");
                        self.json_text(sql, &path)?;
                        sql.push(" END) COLLATE \"C\"");
                        Ok(())
                    })?;
                }
                if self.pg() {
                    // Objects, arrays and booleans by jsonb order; JSON null and absent alike.
                    item(sql, &|sql: &mut Sql| {
                        sql.push("CASE WHEN ");
                        self.json_type(sql, &path)?;
                        sql.push(" IN ('object', 'array', 'boolean') THEN ");
                        self.json_expr(sql, &path)?;
                        sql.push(" END");
                        Ok(())
                    })?;
                } else {
                    item(sql, &|sql: &mut Sql| self.json_expr(sql, &path))?;
                }
            } else {
                let f = self.field(&path);
                item(sql, &|sql: &mut Sql| {
                    self.column_operand(sql, f);
                    if self.pg() && is_text(f.ty) {
                        sql.push(" COLLATE \"C\"");
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}
