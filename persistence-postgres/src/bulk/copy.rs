//! PostgreSQL `COPY ... FROM STDIN` for [`bulk`](crate::bulk): the binary
//! and text row encoders and the streaming load itself (the design and the
//! measurements are in the [`bulk`](crate::bulk) docs).

use std::sync::Arc;

use chrono::{Datelike as _, Timelike as _};
use futures_util::{Stream, StreamExt as _};
use persistence_core::{Entity, EntityMeta, Error, FieldType, Record, Result, ScalarType, Value};
use sea_orm::sqlx::postgres::PgArgumentBuffer;
use sea_orm::{DbErr, RuntimeErr, sqlx};

use super::CopyFormat;
use crate::codec::checked_record;
use crate::query::Dialect;
use crate::repository::RelationalRepository;

/// Bytes of COPY data sent at once.
const COPY_CHUNK: usize = 1 << 20;

fn sqlx_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

/// `YYYY-MM-DD` as PostgreSQL reads it: no sign, years before 1 as `BC`.
fn ymd(d: chrono::NaiveDate) -> String {
    let y = d.year();
    let y = if y <= 0 { 1 - y } else { y };
    format!("{y:04}-{:02}-{:02}", d.month(), d.day())
}

fn era(d: chrono::NaiveDate) -> &'static str {
    if d.year() <= 0 { " BC" } else { "" }
}

fn copy_escape(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

fn float_text(x: f64, single: bool) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if single {
        format!("{:?}", x as f32)
    } else {
        format!("{x:?}")
    }
}

/// One field in PostgreSQL COPY text format. Only text, JSON and bytea can
/// contain characters COPY escapes; the other types are written directly.
fn copy_value(out: &mut Vec<u8>, ty: FieldType, v: &Value) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    let _ = match (ty, v) {
        (_, Value::Null) => out.write_all(b"\\N"),
        (FieldType::Json | FieldType::Array(_), v) => {
            copy_escape(out, &v.to_json().to_string());
            Ok(())
        }
        (_, Value::String(s)) => {
            copy_escape(out, s);
            Ok(())
        }
        (_, Value::Bool(b)) => out.write_all(if *b { b"t" } else { b"f" }),
        (_, Value::I64(i)) => write!(out, "{i}"),
        (FieldType::Scalar(ScalarType::F32), Value::F64(x)) => {
            out.write_all(float_text(*x, true).as_bytes())
        }
        (_, Value::F64(x)) => out.write_all(float_text(*x, false).as_bytes()),
        (_, Value::Uuid(u)) => write!(out, "{}", u.hyphenated()),
        (_, Value::DateTime(d)) => {
            let t = d.time();
            let micros = t.nanosecond() / 1_000;
            write!(
                out,
                "{} {:02}:{:02}:{:02}.{micros:06}+00{}",
                ymd(d.date_naive()),
                t.hour(),
                t.minute(),
                t.second(),
                era(d.date_naive())
            )
        }
        (_, Value::Date(d)) => write!(out, "{}{}", ymd(*d), era(*d)),
        (_, Value::Decimal(d)) => write!(out, "{d}"),
        (_, Value::Bytes(b)) => {
            // `\x` + hex, with the backslash escaped for COPY.
            out.extend_from_slice(b"\\\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for x in b {
                out.push(HEX[usize::from(x >> 4)]);
                out.push(HEX[usize::from(x & 15)]);
            }
            Ok(())
        }
        (_, other) => {
            copy_escape(out, &other.to_json().to_string());
            Ok(())
        }
    };
}

fn copy_row(out: &mut Vec<u8>, meta: &EntityMeta, record: &Record) {
    for (i, f) in meta.fields.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        copy_value(out, f.ty, record.get(i));
    }
    out.push(b'\n');
}

/// The binary COPY header: signature, flags, header-extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

fn enc<'q, T: sqlx::Encode<'q, sqlx::Postgres>>(
    v: &T,
    out: &mut PgArgumentBuffer,
) -> std::result::Result<(), sqlx::error::BoxDynError> {
    v.encode_by_ref(out).map(|_| ())
}

/// One field in PostgreSQL binary COPY format: length, then the value in
/// the same wire encoding sqlx uses for bound parameters.
fn binary_value(
    out: &mut PgArgumentBuffer,
    ty: FieldType,
    v: &Value,
) -> std::result::Result<(), sqlx::error::BoxDynError> {
    use ScalarType as S;
    if v.is_null() {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    match (ty, v) {
        (FieldType::Json | FieldType::Array(_), v) => {
            // jsonb: version 1, then the JSON text.
            out.push(1);
            serde_json::to_writer(&mut **out, &v.to_json())?;
        }
        (FieldType::Scalar(S::I16), Value::I64(i)) => enc(&i16::try_from(*i)?, out)?,
        (FieldType::Scalar(S::I32), Value::I64(i)) => enc(&i32::try_from(*i)?, out)?,
        (FieldType::Scalar(S::I64), Value::I64(i)) => enc(i, out)?,
        (FieldType::Scalar(S::F32), Value::F64(x)) => enc(&(*x as f32), out)?,
        (FieldType::Scalar(S::F64), Value::F64(x)) => enc(x, out)?,
        (FieldType::Scalar(S::Bool), Value::Bool(b)) => enc(b, out)?,
        (FieldType::Scalar(S::String | S::Enum), Value::String(s)) => enc(s, out)?,
        (FieldType::Scalar(S::Uuid), Value::Uuid(u)) => enc(u, out)?,
        (FieldType::Scalar(S::DateTime), Value::DateTime(d)) => enc(d, out)?,
        (FieldType::Scalar(S::Date), Value::Date(d)) => enc(d, out)?,
        (FieldType::Scalar(S::Decimal), Value::Decimal(d)) => enc(d, out)?,
        (FieldType::Scalar(S::Bytes), Value::Bytes(b)) => enc(b, out)?,
        (ty, v) => return Err(format!("value {v:?} does not fit a {ty:?} column").into()),
    }
    let len = i32::try_from(out.len() - at - 4)?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Append row `i` to the COPY data.
fn encode_row(
    format: CopyFormat,
    out: &mut PgArgumentBuffer,
    meta: &EntityMeta,
    i: usize,
    record: &Record,
) -> Result<()> {
    match format {
        CopyFormat::Text => copy_row(out, meta, record),
        CopyFormat::Binary => {
            let n = i16::try_from(meta.fields.len())
                .map_err(|_| Error::invalid_input("too many columns for COPY"))?;
            out.extend_from_slice(&n.to_be_bytes());
            for (k, f) in meta.fields.iter().enumerate() {
                binary_value(out, f.ty, record.get(k)).map_err(|e| {
                    Error::invalid_input(format!("row {i}: field `{}`: {e}", f.name))
                        .in_context(meta.name, "bulk_insert")
                })?;
            }
        }
    }
    Ok(())
}

impl<E: Entity> RelationalRepository<E> {
    /// Map an error of the COPY: when the server names the input line that
    /// failed, the error names that row (line `n` is row `n - 1`).
    fn copy_err(&self, e: sqlx::Error) -> Error {
        let e = sqlx_err(e);
        match crate::error::postgres::copy_line(&e) {
            Some(line) => self
                .map_err_at_row(e, line - 1)
                .in_context(E::meta().name, "bulk_insert"),
            None => self.bulk_err(e),
        }
    }

    /// `COPY ... FROM STDIN` of `head` then the rest of `input`, in one transaction.
    pub(super) async fn copy_in<S>(
        &self,
        format: CopyFormat,
        head: Vec<Record>,
        mut input: std::pin::Pin<&mut S>,
    ) -> Result<u64>
    where
        S: Stream<Item = (usize, E)> + Send,
    {
        let meta = E::meta();
        let pool = self.store().connection().get_postgres_connection_pool();
        let mut tx = pool.begin().await.map_err(|e| self.bulk_err(sqlx_err(e)))?;
        let stmt = format!(
            "COPY {} ({}) FROM STDIN{}",
            self.table_name(),
            self.column_list(),
            match format {
                CopyFormat::Binary => " (FORMAT binary)",
                CopyFormat::Text => "",
            }
        );
        let mut copy = tx
            .copy_in_raw(&stmt)
            .await
            .map_err(|e| self.bulk_err(sqlx_err(e)))?;
        let new_buf = || {
            let mut b = PgArgumentBuffer::default();
            b.reserve(COPY_CHUNK + 4096);
            b
        };
        let mut buf = new_buf();
        if format == CopyFormat::Binary {
            buf.extend_from_slice(BINARY_HEADER);
        }
        for (i, r) in head.iter().enumerate() {
            if let Err(err) = encode_row(format, &mut buf, meta, i, r) {
                let _ = copy.abort(format!("row {i} rejected")).await;
                return Err(err);
            }
        }
        drop(head);
        loop {
            if buf.len() >= COPY_CHUNK {
                let full = std::mem::replace(&mut buf, new_buf());
                if let Err(e) = copy.send(full.as_slice()).await {
                    return Err(self.copy_err(e));
                }
            }
            let row = match input.next().await {
                Some((i, e)) => checked_record(Dialect::Postgres, i, e)
                    .and_then(|r| encode_row(format, &mut buf, meta, i, &r)),
                None => break,
            };
            if let Err(err) = row {
                // Abort the COPY; the transaction is rolled back when dropped.
                let _ = copy.abort("a row was rejected").await;
                return Err(err);
            }
        }
        if format == CopyFormat::Binary {
            buf.extend_from_slice(&(-1i16).to_be_bytes());
        }
        if !buf.is_empty() {
            copy.send(buf.as_slice())
                .await
                .map_err(|e| self.copy_err(e))?;
        }
        let n = copy.finish().await.map_err(|e| self.copy_err(e))?;
        tx.commit().await.map_err(|e| self.bulk_err(sqlx_err(e)))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes() {
        let mut out = Vec::new();
        copy_value(
            &mut out,
            FieldType::Scalar(ScalarType::String),
            &Value::String("a\tb\\c\nd".into()),
        );
        assert_eq!(out, b"a\\tb\\\\c\\nd");
        let mut out = Vec::new();
        copy_value(
            &mut out,
            FieldType::Scalar(ScalarType::Bytes),
            &Value::Bytes(vec![0, 255]),
        );
        assert_eq!(out, b"\\\\x00ff");
        assert_eq!(float_text(-0.0, false), "-0.0");
        assert_eq!(float_text(f64::NEG_INFINITY, false), "-Infinity");
    }
}
