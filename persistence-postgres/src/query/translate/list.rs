//! `value IN (...)` lists: the whole list bound as one parameter (a typed
//! PostgreSQL array, a SQLite JSON array), so any number of values fits.

use persistence_core::entity::ResolvedPath;
use persistence_core::{Error, FieldType, Result, ScalarType, Value};
use sea_orm::Value as SV;
use sea_orm::sea_query::ArrayType;

use super::{SQLITE_KIND_CASE, Translator, json_kind, push_json_scalar};
use crate::codec::to_bind;
use crate::query::{Dialect, Sql, unsupported};

/// Append a JSON scalar. Non-finite floats (which JSON lacks) become numbers
/// SQLite reads as infinities, or `null` for NaN (NaN matches unspecified).
/// Up to this many values, a SQLite `IN` on a float column binds one
/// parameter per value, so each compares exactly; a longer list is one JSON
/// parameter, whose numbers SQLite's JSON reader parses (for extreme
/// magnitudes, possibly one ulp off the value a parameter would carry).
const SQLITE_EXACT_FLOAT_LIST: usize = 1_000;

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

/// From this many values on, a PostgreSQL `IN` list is
/// `IN (SELECT unnest($1))` rather than `= ANY($1)`. After five runs of a
/// prepared statement PostgreSQL may keep its generic plan, where
/// `= ANY($param)` is a linear search per row (only a constant array is
/// hashed) or one index probe per value, while the semi-join on `unnest`
/// hashes the list; as long as it stays on custom plans, `= ANY` of a
/// constant list is planned anew on each run, per value (about 0.5 ms for
/// 1,000 keys). Measured on eager loading's 1,000-key reads: 0.18 ms less a
/// statement. Short lists keep `= ANY`, which an index serves directly.
const UNNEST_FROM: usize = 64;

impl Translator<'_> {
    /// `value IN values` with the whole list as ONE bound parameter, so any
    /// number of values fits: PostgreSQL `= ANY($1)` with a typed array
    /// (`IN (SELECT unnest($1))` from `UNNEST_FROM` values on),
    /// SQLite `IN (SELECT value FROM json_each(?))`. A nested path is
    /// extracted once per row, not once per value.
    pub(super) fn in_list(
        &self,
        sql: &mut Sql,
        path: &ResolvedPath<'_>,
        values: &[Value],
    ) -> Result<()> {
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
            if values.len() >= UNNEST_FROM {
                sql.push(" IN (SELECT unnest(").bind(array).push(")))");
            } else {
                sql.push(" = ANY(").bind(array).push("))");
            }
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
}
