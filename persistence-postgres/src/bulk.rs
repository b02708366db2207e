//! Adaptive bulk insert.
//!
//! [`RelationalRepository::bulk_insert`] (a slice) and
//! [`RelationalRepository::bulk_insert_stream`] (a `Stream` of entities)
//! insert everything in **one transaction**, all or nothing:
//!
//! * below [`BulkOptions::copy_threshold`] rows (default 1,000), or on SQLite:
//!   multi-row `INSERT` statements, chunked so one statement stays under
//!   PostgreSQL's 65,535 bind parameters (SQLite: row by row, in-process);
//! * at or above it on PostgreSQL: `COPY "schema"."table" (...) FROM STDIN`
//!   in text format over the sqlx connection under sea-orm
//!   (`get_postgres_connection_pool()` → `copy_in_raw`), sent in ~1 MiB
//!   pieces as the input stream is read: a stream is never buffered whole
//!   (at most `copy_threshold` rows are held while deciding the path).
//!
//! Every row is converted and checked on the client first (serialization,
//! required fields, NUL characters PostgreSQL text cannot hold): a bad row
//! anywhere fails the whole call with `InvalidInput` naming its index
//! (`row 1234: ...`), and nothing is committed. A constraint violation
//! reported by the server (duplicate id, unique) is a `Conflict` and also
//! rolls everything back.
//!
//! `RelationalRepository::insert_many` takes the same path.

use std::sync::Arc;

use chrono::{Datelike as _, Timelike as _};
use futures_util::{Stream, StreamExt as _};
use persistence_core::{Entity, EntityMeta, Error, FieldType, Record, Result, ScalarType, Value};
use sea_orm::{DbErr, RuntimeErr, TransactionTrait, sqlx};

use crate::repository::RelationalRepository;
use crate::sql::Dialect;

/// Tuning of [`RelationalRepository::bulk_insert_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOptions {
    /// From this many rows on, PostgreSQL loads with `COPY` (default 1,000).
    pub copy_threshold: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            copy_threshold: 1_000,
        }
    }
}

/// Bytes of COPY data sent at once.
const COPY_CHUNK: usize = 1 << 20;

fn sqlx_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Convert entity `i` to a checked record (version 1 for versioned entities).
pub(crate) fn checked_record<E: Entity>(
    dialect: Dialect,
    i: usize,
    mut entity: E,
) -> Result<Record> {
    let meta = E::meta();
    let row_err = |m: &str| {
        Error::invalid_input(format!("row {i}: {m}")).in_context(meta.name, "bulk_insert")
    };
    if meta.version_index.is_some() {
        entity.set_version(1);
    }
    let record = Record::from_entity(&entity).map_err(|e| row_err(e.message()))?;
    for (f, v) in meta.fields.iter().zip(&record.values) {
        if v.is_null() && !f.nullable {
            return Err(row_err(&format!("field `{}` is required", f.name)));
        }
        if dialect == Dialect::Postgres && has_nul(v) {
            return Err(row_err(&format!(
                "field `{}` contains a NUL character",
                f.name
            )));
        }
    }
    Ok(record)
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

impl<E: Entity> RelationalRepository<E> {
    /// Insert all `entities` in one transaction, adaptively (see [`crate::bulk`]).
    pub async fn bulk_insert(&self, entities: &[E]) -> Result<u64> {
        self.bulk_insert_with(entities, &BulkOptions::default())
            .await
    }

    /// [`bulk_insert`](Self::bulk_insert) with explicit options.
    pub async fn bulk_insert_with(&self, entities: &[E], options: &BulkOptions) -> Result<u64> {
        self.bulk_insert_stream(
            futures_util::stream::iter(entities.iter().cloned()),
            options,
        )
        .await
    }

    /// Insert a stream of entities in one transaction, never holding more
    /// than `copy_threshold` of them at once.
    pub async fn bulk_insert_stream<S>(&self, input: S, options: &BulkOptions) -> Result<u64>
    where
        S: Stream<Item = E> + Send,
    {
        let dialect = self.store().dialect();
        let threshold = options.copy_threshold.max(1);
        let mut input = std::pin::pin!(input.enumerate());
        // Rows per INSERT round after the first (SQLite, or a stream that ended early).
        let step = threshold.min(1_000);
        let mut head = Vec::new();
        while head.len() < threshold {
            match input.next().await {
                Some((i, e)) => head.push(checked_record(dialect, i, e)?),
                None => break,
            }
        }
        if dialect == Dialect::Postgres && head.len() >= threshold {
            return self.copy_in(head, input).await;
        }
        // Multi-row INSERTs in one transaction, chunk by chunk.
        let db = self.store().connection();
        let tx = db.begin().await.map_err(|e| self.bulk_err(e))?;
        let mut total = 0u64;
        let mut chunk = head;
        loop {
            if chunk.is_empty() {
                break;
            }
            let start = total as usize;
            if let Err(e) = self.insert_records_on(&tx, &chunk, start).await {
                let _ = tx.rollback().await;
                return Err(e);
            }
            total += chunk.len() as u64;
            chunk = Vec::with_capacity(step);
            while chunk.len() < step {
                match input.next().await {
                    Some((i, e)) => match checked_record(dialect, i, e) {
                        Ok(r) => chunk.push(r),
                        Err(err) => {
                            let _ = tx.rollback().await;
                            return Err(err);
                        }
                    },
                    None => break,
                }
            }
        }
        tx.commit().await.map_err(|e| self.bulk_err(e))?;
        Ok(total)
    }

    fn bulk_err(&self, e: DbErr) -> Error {
        self.map_err_for(e, "bulk_insert")
    }

    /// Map an error of the COPY: when the server names the input line that
    /// failed, the error names that row (line `n` is row `n - 1`).
    fn copy_err(&self, e: sqlx::Error) -> Error {
        let e = sqlx_err(e);
        match crate::error::copy_line(&e) {
            Some(line) => self
                .map_err_at_row(e, line - 1)
                .in_context(E::meta().name, "bulk_insert"),
            None => self.bulk_err(e),
        }
    }

    /// `COPY ... FROM STDIN` of `head` then the rest of `input`, in one transaction.
    async fn copy_in<S>(&self, head: Vec<Record>, mut input: std::pin::Pin<&mut S>) -> Result<u64>
    where
        S: Stream<Item = (usize, E)> + Send,
    {
        let meta = E::meta();
        let pool = self.store().connection().get_postgres_connection_pool();
        let mut tx = pool.begin().await.map_err(|e| self.bulk_err(sqlx_err(e)))?;
        let stmt = format!(
            "COPY {} ({}) FROM STDIN",
            self.table_name(),
            self.column_list()
        );
        let mut copy = tx
            .copy_in_raw(&stmt)
            .await
            .map_err(|e| self.bulk_err(sqlx_err(e)))?;
        let mut buf = Vec::with_capacity(COPY_CHUNK + 4096);
        for r in &head {
            copy_row(&mut buf, meta, r);
        }
        drop(head);
        loop {
            if buf.len() >= COPY_CHUNK {
                if let Err(e) = copy.send(std::mem::take(&mut buf)).await {
                    return Err(self.copy_err(e));
                }
                buf.reserve(COPY_CHUNK + 4096);
            }
            match input.next().await {
                Some((i, e)) => match checked_record(Dialect::Postgres, i, e) {
                    Ok(r) => copy_row(&mut buf, meta, &r),
                    Err(err) => {
                        // Abort the COPY; the transaction is rolled back when dropped.
                        let _ = copy.abort(format!("row {i} rejected")).await;
                        return Err(err);
                    }
                },
                None => break,
            }
        }
        if !buf.is_empty() {
            copy.send(buf).await.map_err(|e| self.copy_err(e))?;
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
