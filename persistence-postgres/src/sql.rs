//! SQL text with bound parameters, the type mapping, filter and sort translation.
//!
//! Everything here writes identifiers only from entity metadata (validated by
//! `persistence_core::entity::validate_identifier`) or validated schema names,
//! always double-quoted; every value goes through [`Sql::bind`].

use std::fmt::Write as _;

use chrono::SecondsFormat;
use persistence_core::entity::{EntityMeta, FieldMeta, ResolvedPath};
use persistence_core::query::{Direction, SortKey};
use persistence_core::{CompareOp, Error, FieldType, Filter, Result, ScalarType, Value};
use sea_orm::sea_query::ArrayType;
use sea_orm::{DbBackend, QueryResult, Statement, Value as SV};

/// The SQL dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL (12 or newer).
    Postgres,
    /// SQLite (3.38 or newer; the bundled library is used).
    Sqlite,
}

impl Dialect {
    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Dialect::Postgres => DbBackend::Postgres,
            Dialect::Sqlite => DbBackend::Sqlite,
        }
    }
    fn t(self) -> &'static str {
        match self {
            Dialect::Postgres => "TRUE",
            Dialect::Sqlite => "1",
        }
    }
    fn f(self) -> &'static str {
        match self {
            Dialect::Postgres => "FALSE",
            Dialect::Sqlite => "0",
        }
    }
    /// The largest number of bind parameters one statement may carry (with margin).
    pub(crate) fn max_binds(self) -> usize {
        match self {
            // The wire protocol counts parameters in an i16/u16: 65,535.
            Dialect::Postgres => 65_000,
            // SQLITE_MAX_VARIABLE_NUMBER defaults to 32,766 since 3.32.
            Dialect::Sqlite => 32_000,
        }
    }
}

/// Double-quote an identifier (identifiers are validated before they get here;
/// quotes are doubled anyway).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SQL text plus its bound values.
pub(crate) struct Sql {
    pub(crate) text: String,
    binds: Vec<SV>,
    pub(crate) dialect: Dialect,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Sql {
            text: String::with_capacity(256),
            binds: Vec::new(),
            dialect,
        }
    }
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    pub(crate) fn ident(&mut self, name: &str) -> &mut Self {
        self.text.push_str(&quote(name));
        self
    }
    pub(crate) fn bind(&mut self, v: SV) -> &mut Self {
        self.binds.push(v);
        match self.dialect {
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.binds.len());
            }
            Dialect::Sqlite => self.text.push('?'),
        }
        self
    }
    pub(crate) fn into_statement(self) -> Statement {
        Statement::from_sql_and_values(self.dialect.backend(), self.text, self.binds)
    }
}

/// The column type of a field.
pub(crate) fn column_type(dialect: Dialect, ty: FieldType) -> Result<&'static str> {
    use ScalarType as S;
    Ok(match (dialect, ty) {
        (Dialect::Postgres, FieldType::Json | FieldType::Array(_)) => "jsonb",
        (Dialect::Sqlite, FieldType::Json | FieldType::Array(_)) => "TEXT",
        (Dialect::Postgres, FieldType::Scalar(s)) => match s {
            S::String | S::Enum => "text",
            S::Bool => "boolean",
            S::I16 => "smallint",
            S::I32 => "integer",
            S::I64 => "bigint",
            S::F32 => "real",
            S::F64 => "double precision",
            S::Uuid => "uuid",
            S::DateTime => "timestamptz",
            S::Date => "date",
            S::Decimal => "numeric",
            S::Bytes => "bytea",
            other => return Err(unsupported(other)),
        },
        (Dialect::Sqlite, FieldType::Scalar(s)) => match s {
            S::String | S::Enum | S::Uuid | S::DateTime | S::Date | S::Decimal => "TEXT",
            S::Bool | S::I16 | S::I32 | S::I64 => "INTEGER",
            S::F32 | S::F64 => "REAL",
            S::Bytes => "BLOB",
            other => return Err(unsupported(other)),
        },
    })
}

fn unsupported(s: ScalarType) -> Error {
    Error::unsupported(format!("no column type for {s:?}"))
}

/// SQLite keeps timestamps as fixed-width RFC 3339 text (microseconds, `Z`), so
/// text order is time order.
fn sqlite_timestamp(d: &chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn typed_null(dialect: Dialect, ty: FieldType) -> SV {
    use ScalarType as S;
    match (dialect, ty) {
        (Dialect::Postgres, FieldType::Json | FieldType::Array(_)) => SV::Json(None),
        (Dialect::Sqlite, FieldType::Json | FieldType::Array(_)) => SV::String(None),
        (Dialect::Postgres, FieldType::Scalar(s)) => match s {
            S::Bool => SV::Bool(None),
            S::I16 => SV::SmallInt(None),
            S::I32 => SV::Int(None),
            S::I64 => SV::BigInt(None),
            S::F32 => SV::Float(None),
            S::F64 => SV::Double(None),
            S::Uuid => SV::Uuid(None),
            S::DateTime => SV::ChronoDateTimeUtc(None),
            S::Date => SV::ChronoDate(None),
            S::Decimal => SV::Decimal(None),
            S::Bytes => SV::Bytes(None),
            _ => SV::String(None),
        },
        (Dialect::Sqlite, FieldType::Scalar(s)) => match s {
            S::Bool | S::I16 | S::I32 | S::I64 => SV::BigInt(None),
            S::F32 | S::F64 => SV::Double(None),
            S::Bytes => SV::Bytes(None),
            _ => SV::String(None),
        },
    }
}

fn json_bind(dialect: Dialect, json: serde_json::Value) -> SV {
    match dialect {
        Dialect::Postgres => SV::Json(Some(Box::new(json))),
        Dialect::Sqlite => SV::String(Some(json.to_string())),
    }
}

/// The bound value of a (normalized) field value.
pub(crate) fn to_bind(dialect: Dialect, ty: FieldType, v: &Value) -> Result<SV> {
    use ScalarType as S;
    if v.is_null() {
        return Ok(typed_null(dialect, ty));
    }
    let s = match ty {
        FieldType::Json | FieldType::Array(_) => return Ok(json_bind(dialect, v.to_json())),
        FieldType::Scalar(s) => s,
    };
    let pg = dialect == Dialect::Postgres;
    let range = |i: &i64| Error::invalid_input(format!("integer {i} out of range for {s:?}"));
    Ok(match (s, v) {
        (S::String | S::Enum, Value::String(x)) => SV::String(Some(x.clone())),
        (S::Bool, Value::Bool(b)) => SV::Bool(Some(*b)),
        (S::I16, Value::I64(i)) if pg => {
            SV::SmallInt(Some(i16::try_from(*i).map_err(|_| range(i))?))
        }
        (S::I32, Value::I64(i)) if pg => SV::Int(Some(i32::try_from(*i).map_err(|_| range(i))?)),
        (S::I16 | S::I32 | S::I64, Value::I64(i)) => SV::BigInt(Some(*i)),
        // f32 values travel as double precision: stored into `real` they are
        // exact (they came from an f32), and in filters `real` is widened to
        // double for the comparison, exactly as the reference compares.
        (S::F32 | S::F64, Value::F64(x)) => SV::Double(Some(*x)),
        (S::F32 | S::F64, Value::I64(i)) => SV::Double(Some(*i as f64)),
        (S::Uuid, Value::Uuid(u)) if pg => SV::Uuid(Some(*u)),
        (S::Uuid, Value::Uuid(u)) => SV::String(Some(u.hyphenated().to_string())),
        (S::DateTime, Value::DateTime(d)) if pg => SV::ChronoDateTimeUtc(Some(*d)),
        (S::DateTime, Value::DateTime(d)) => SV::String(Some(sqlite_timestamp(d))),
        (S::Date, Value::Date(d)) if pg => SV::ChronoDate(Some(*d)),
        (S::Date, Value::Date(d)) => SV::String(Some(d.to_string())),
        (S::Decimal, Value::Decimal(d)) if pg => SV::Decimal(Some(*d)),
        (S::Decimal, Value::Decimal(d)) => SV::String(Some(d.to_string())),
        (S::Bytes, Value::Bytes(b)) => SV::Bytes(Some(b.clone())),
        (s, v) => {
            return Err(Error::invalid_input(format!(
                "value {v:?} does not fit a {s:?} column"
            )));
        }
    })
}

fn get<T>(row: &QueryResult, i: usize) -> Result<Option<T>>
where
    Option<T>: sea_orm::TryGetable,
{
    row.try_get_by_index::<Option<T>>(i)
        .map_err(|e| Error::decode(crate::error::decode_reason(&e)).with_source(e))
}

fn json_text(s: Option<String>) -> Result<Value> {
    match s {
        None => Ok(Value::Null),
        Some(s) => serde_json::from_str::<serde_json::Value>(&s)
            .map(Value::from_json)
            .map_err(|e| Error::decode(format!("invalid JSON in column: {e}")).with_source(e)),
    }
}

/// Read column `i` of a row as the value of a field of type `ty` (not yet normalized).
pub(crate) fn decode(
    dialect: Dialect,
    ty: FieldType,
    row: &QueryResult,
    i: usize,
) -> Result<Value> {
    use ScalarType as S;
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map_or(Value::Null, f)
    }
    let s = match (dialect, ty) {
        (Dialect::Postgres, FieldType::Json | FieldType::Array(_)) => {
            return Ok(opt(get::<serde_json::Value>(row, i)?, Value::from_json));
        }
        (Dialect::Sqlite, FieldType::Json | FieldType::Array(_)) => {
            return json_text(get::<String>(row, i)?);
        }
        (_, FieldType::Scalar(s)) => s,
    };
    Ok(match (dialect, s) {
        (_, S::String | S::Enum) => opt(get::<String>(row, i)?, Value::String),
        (_, S::Bool) => opt(get::<bool>(row, i)?, Value::Bool),
        (Dialect::Postgres, S::I16) => opt(get::<i16>(row, i)?, |x| Value::I64(x.into())),
        (Dialect::Postgres, S::I32) => opt(get::<i32>(row, i)?, |x| Value::I64(x.into())),
        (_, S::I16 | S::I32 | S::I64) => opt(get::<i64>(row, i)?, Value::I64),
        (Dialect::Postgres, S::F32) => opt(get::<f32>(row, i)?, |x| Value::F64(x.into())),
        (_, S::F32 | S::F64) => opt(get::<f64>(row, i)?, Value::F64),
        (Dialect::Postgres, S::Uuid) => opt(get::<uuid::Uuid>(row, i)?, Value::Uuid),
        (Dialect::Postgres, S::DateTime) => opt(
            get::<chrono::DateTime<chrono::Utc>>(row, i)?,
            Value::DateTime,
        ),
        (Dialect::Postgres, S::Date) => opt(get::<chrono::NaiveDate>(row, i)?, Value::Date),
        (Dialect::Postgres, S::Decimal) => {
            opt(get::<rust_decimal::Decimal>(row, i)?, Value::Decimal)
        }
        // SQLite keeps these as text; `Record::from_values` parses them.
        (Dialect::Sqlite, S::Uuid | S::DateTime | S::Date | S::Decimal) => {
            opt(get::<String>(row, i)?, Value::String)
        }
        (_, S::Bytes) => opt(get::<Vec<u8>>(row, i)?, Value::Bytes),
        (_, other) => return Err(unsupported(other)),
    })
}

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

/// Append a JSON scalar. Non-finite floats (which JSON lacks) become numbers
/// SQLite reads as infinities, or `null` for NaN (NaN matches unspecified).
/// Up to this many values, a SQLite `IN` on a float column binds one
/// parameter per value, so each compares exactly; a longer list is one JSON
/// parameter, whose numbers SQLite's JSON reader parses (for extreme
/// magnitudes, possibly one ulp off the value a parameter would carry).
const SQLITE_EXACT_FLOAT_LIST: usize = 1_000;

fn push_json_scalar(out: &mut String, v: &Value) {
    match v {
        Value::F64(x) if x.is_nan() => out.push_str("null"),
        Value::F64(x) if x.is_infinite() => out.push_str(if *x > 0.0 { "9e999" } else { "-9e999" }),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        other => out.push_str(&other.to_json().to_string()),
    }
}

/// One PostgreSQL array parameter holding `values` (normalized for a column
/// of type `ty`), typed like the column's own parameters.
fn pg_array(ty: FieldType, values: &[Value]) -> Result<SV> {
    use ScalarType as S;
    let FieldType::Scalar(s) = ty else {
        return Err(Error::invalid_input(
            "in/not_in on an array or JSON field needs a nested path",
        ));
    };
    let at = match s {
        S::String | S::Enum => ArrayType::String,
        S::Bool => ArrayType::Bool,
        S::I16 => ArrayType::SmallInt,
        S::I32 => ArrayType::Int,
        S::I64 => ArrayType::BigInt,
        S::F32 | S::F64 => ArrayType::Double,
        S::Uuid => ArrayType::Uuid,
        S::DateTime => ArrayType::ChronoDateTimeUtc,
        S::Date => ArrayType::ChronoDate,
        S::Decimal => ArrayType::Decimal,
        S::Bytes => ArrayType::Bytes,
        other => return Err(unsupported(other)),
    };
    let items = values
        .iter()
        .map(|v| {
            let b = to_bind(Dialect::Postgres, ty, v)?;
            // The driver requires every element to be of the array's type.
            let fits = matches!(
                (&at, &b),
                (ArrayType::String, SV::String(Some(_)))
                    | (ArrayType::Bool, SV::Bool(Some(_)))
                    | (ArrayType::SmallInt, SV::SmallInt(Some(_)))
                    | (ArrayType::Int, SV::Int(Some(_)))
                    | (ArrayType::BigInt, SV::BigInt(Some(_)))
                    | (ArrayType::Double, SV::Double(Some(_)))
                    | (ArrayType::Uuid, SV::Uuid(Some(_)))
                    | (ArrayType::ChronoDateTimeUtc, SV::ChronoDateTimeUtc(Some(_)))
                    | (ArrayType::ChronoDate, SV::ChronoDate(Some(_)))
                    | (ArrayType::Decimal, SV::Decimal(Some(_)))
                    | (ArrayType::Bytes, SV::Bytes(Some(_)))
            );
            if fits {
                Ok(b)
            } else {
                Err(Error::invalid_input(format!(
                    "value {v:?} does not fit a {s:?} column"
                )))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SV::Array(at, Some(Box::new(items))))
}

/// Translates checked filters and sort keys of one entity into SQL.
pub(crate) struct Translator<'m> {
    pub(crate) meta: &'m EntityMeta,
    pub(crate) dialect: Dialect,
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

    /// `value IN values` with the whole list as ONE bound parameter, so any
    /// number of values fits: PostgreSQL `= ANY($1)` with a typed array,
    /// SQLite `IN (SELECT value FROM json_each(?))`. A nested path is
    /// extracted once per row, not once per value.
    fn in_list(&self, sql: &mut Sql, path: &ResolvedPath<'_>, values: &[Value]) -> Result<()> {
        let nested = path.ty(self.meta) == FieldType::Json;
        if self.pg() {
            sql.push("(");
            let array = if nested {
                // jsonb equality: strings by text, numbers by numeric value,
                // booleans; never across kinds (as the reference).
                self.json_expr(sql, path)?;
                let items = values
                    .iter()
                    .map(|v| {
                        json_kind(v)?;
                        Ok(SV::Json(Some(Box::new(v.to_json()))))
                    })
                    .collect::<Result<Vec<_>>>()?;
                SV::Array(ArrayType::Json, Some(Box::new(items)))
            } else {
                let f = self.field(path);
                self.column_operand(sql, f);
                pg_array(f.ty, values)?
            };
            sql.push(" = ANY(").bind(array).push("))");
            return Ok(());
        }
        if nested {
            let p = self.sqlite_path(&path.rest)?;
            let col = self.field(path).name;
            let mut list = String::from("[");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                json_kind(v)?;
                push_json_scalar(&mut list, v);
            }
            list.push(']');
            // (kind, value) pairs, so `true` (1 in SQL) never equals the number 1.
            sql.push("((CASE json_type(")
                .ident(col)
                .push(", ")
                .bind(SV::String(Some(p.clone())))
                .push(") ")
                .push(SQLITE_KIND_CASE)
                .push(", json_extract(")
                .ident(col)
                .push(", ")
                .bind(SV::String(Some(p)))
                .push(")) IN (SELECT CASE je.type ")
                .push(SQLITE_KIND_CASE)
                .push(", je.value FROM json_each(")
                .bind(SV::String(Some(list)))
                .push(") AS je))");
            return Ok(());
        }
        let f = self.field(path);
        let float = matches!(f.ty, FieldType::Scalar(ScalarType::F32 | ScalarType::F64));
        if f.ty == FieldType::Scalar(ScalarType::Bytes)
            || (float && values.len() <= SQLITE_EXACT_FLOAT_LIST)
        {
            // JSON cannot carry blobs, and SQLite's JSON reader may round a
            // float of extreme magnitude (1e-300) one ulp off the exactly
            // bound column value: one parameter per value. Longer float
            // lists go through json_each (see SQLITE_EXACT_FLOAT_LIST).
            sql.push("(").ident(f.name).push(" IN (");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                self.value_operand(sql, f, v)?;
            }
            sql.push("))");
            return Ok(());
        }
        let mut list = String::from("[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            match to_bind(self.dialect, f.ty, v)? {
                SV::String(Some(s)) => push_json_scalar(&mut list, &Value::String(s)),
                SV::BigInt(Some(i)) => push_json_scalar(&mut list, &Value::I64(i)),
                SV::Double(Some(x)) => push_json_scalar(&mut list, &Value::F64(x)),
                SV::Bool(Some(b)) => list.push(if b { '1' } else { '0' }),
                other => {
                    return Err(Error::invalid_input(format!(
                        "cannot list {other:?} for an IN on SQLite"
                    )));
                }
            }
        }
        list.push(']');
        let decimal = f.ty == FieldType::Scalar(ScalarType::Decimal);
        sql.push("(");
        self.column_operand(sql, f);
        sql.push(if decimal {
            " IN (SELECT CAST(value AS REAL) FROM json_each("
        } else {
            " IN (SELECT value FROM json_each("
        })
        .bind(SV::String(Some(list)))
        .push(")))");
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
            Filter::Invalid(msg) => return Err(Error::invalid_input(msg.clone())),
        }
        Ok(())
    }

    /// Write ` ORDER BY ...` for checked sort keys: nulls lowest, strings by code point.
    pub(crate) fn order_by(&self, sql: &mut Sql, sort: &[SortKey]) -> Result<()> {
        let mut first = true;
        for key in sort {
            let path = self.meta.resolve_path(&key.field)?;
            let (dir, nulls) = match key.direction {
                Direction::Asc => (" ASC", " NULLS FIRST"),
                Direction::Desc => (" DESC", " NULLS LAST"),
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
