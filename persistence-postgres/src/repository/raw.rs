//! The typed raw escape hatch of [`RelationalRepository`]: your own SQL
//! with bound parameters ([`Params`]), rows decoded into entities by the
//! codec `get` uses ([`query_as`](RelationalRepository::query_as)), or a
//! count of affected rows ([`execute`](RelationalRepository::execute)).
//!
//! Nothing is ever spliced into the SQL text: every [`Value`] of the
//! [`Params`] travels as a bound parameter (`$1`, `$2`, ... on PostgreSQL,
//! `?` on SQLite). Errors go through the crate's error map (a syntax error
//! is `InvalidInput`, a unique violation `Conflict(Unique)`, ...). With a
//! [`Metrics`](persistence_core::layer::Metrics) set on the store
//! ([`RelationalStore::set_metrics`](crate::RelationalStore::set_metrics)),
//! each call is counted and timed as operation `query_as` / `execute`, and a
//! slow call lands in the slow log with its SQL text (placeholders only).

use persistence_core::{Entity, Error, Record, Result, Value};
use sea_orm::{DbErr, QueryResult, Statement, Value as SV};

use super::RelationalRepository;
use crate::codec::{decode, entity};
use crate::query::Dialect;
use crate::store::conn::Conn;

/// The bound parameters of a raw statement, in placeholder order.
///
/// ```
/// use persistence_postgres::{Params, params};
/// let p = Params::new().bind("o'brien").bind(42_i64).bind(None::<String>);
/// assert_eq!(p.len(), 3);
/// assert_eq!(params!["o'brien", 42_i64, None::<String>], p);
/// ```
///
/// How each [`Value`] is bound: integers as `bigint`, floats as `double
/// precision`, strings as `text`, booleans, bytes, and on PostgreSQL
/// UUIDs, timestamps (`timestamptz`), dates and decimals with their own
/// types; on SQLite those four are bound as the text the tables keep
/// (hyphenated UUID, RFC 3339 with microseconds and `Z`, `YYYY-MM-DD`,
/// decimal digits). Arrays and objects are bound as JSON (`jsonb` on
/// PostgreSQL, JSON text on SQLite). `Null` is bound as a text NULL: on
/// PostgreSQL cast its placeholder where the type matters (`$1::bigint`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(Vec<Value>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// Add the next parameter.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.0.push(value.into());
        self
    }

    /// Add the next parameter (in place).
    pub fn push(&mut self, value: impl Into<Value>) {
        self.0.push(value.into());
    }

    /// The parameters, in placeholder order.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Value>> for Params {
    fn from(values: Vec<Value>) -> Self {
        Params(values)
    }
}

impl From<&[Value]> for Params {
    fn from(values: &[Value]) -> Self {
        Params(values.to_vec())
    }
}

impl From<()> for Params {
    fn from((): ()) -> Self {
        Params::new()
    }
}

impl<V: Into<Value>, const N: usize> From<[V; N]> for Params {
    fn from(values: [V; N]) -> Self {
        values.into_iter().collect()
    }
}

impl<V: Into<Value>> FromIterator<V> for Params {
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        Params(iter.into_iter().map(Into::into).collect())
    }
}

/// [`Params`] from a list of values of any types with `Into<Value>`:
/// `params![name, 42_i64, true]`.
#[macro_export]
macro_rules! params {
    () => { $crate::Params::new() };
    ($($v:expr),+ $(,)?) => { $crate::Params::new()$(.bind($v))+ };
}

/// The bound form of one raw parameter (see [`Params`]).
fn raw_bind(dialect: Dialect, v: &Value) -> SV {
    let pg = dialect == Dialect::Postgres;
    match v {
        Value::Null => SV::String(None),
        Value::Bool(b) => SV::Bool(Some(*b)),
        Value::I64(i) => SV::BigInt(Some(*i)),
        Value::F64(x) => SV::Double(Some(*x)),
        Value::String(s) => SV::String(Some(s.clone())),
        Value::Bytes(b) => SV::Bytes(Some(b.clone())),
        Value::Uuid(u) if pg => SV::Uuid(Some(*u)),
        Value::Uuid(u) => SV::String(Some(u.hyphenated().to_string())),
        Value::DateTime(d) if pg => SV::ChronoDateTimeUtc(Some(*d)),
        Value::DateTime(d) => {
            SV::String(Some(d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        }
        Value::Date(d) if pg => SV::ChronoDate(Some(*d)),
        Value::Date(d) => SV::String(Some(d.to_string())),
        Value::Decimal(d) if pg => SV::Decimal(Some(*d)),
        Value::Decimal(d) => SV::String(Some(d.to_string())),
        Value::Array(_) | Value::Object(_) if pg => SV::Json(Some(Box::new(v.to_json()))),
        Value::Array(_) | Value::Object(_) => SV::String(Some(v.to_json().to_string())),
    }
}

/// Decode the rows of a raw query into `T`s: the columns are found by
/// field name (in any order; other columns are ignored), each read and
/// checked as `get` reads it. A missing column or a value that does not fit
/// its field is a `Decode` error naming the field.
fn decode_rows<T: Entity>(dialect: Dialect, rows: &[QueryResult]) -> Result<Vec<T>> {
    let meta = T::meta();
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names = first.column_names();
    let columns = meta
        .fields
        .iter()
        .map(|f| {
            names.iter().position(|n| n == f.name).ok_or_else(|| {
                Error::decode(format!(
                    "field `{}`: the query returned no column `{}` (columns: {})",
                    f.name,
                    f.name,
                    names.join(", ")
                ))
                .with_entity(meta.name)
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    rows.iter()
        .map(|row| {
            let values = meta
                .fields
                .iter()
                .zip(&columns)
                .map(|(f, &i)| {
                    decode(dialect, f.ty, row, i).map_err(|e| {
                        Error::decode(format!("field `{}`: {}", f.name, e.message()))
                            .with_entity(meta.name)
                            .with_source(e)
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            entity(meta, Record::from_values(meta, values)?.values)
        })
        .collect()
}

/// Whether the server refused the statement text itself (a syntax error,
/// an unknown table, column or function, a parameter whose type cannot be
/// determined): the caller's SQL is at fault.
fn statement_refused(e: &DbErr) -> bool {
    let Some(sea_orm::sqlx::Error::Database(db)) = crate::error::context::sqlx_of(e) else {
        return false;
    };
    match db.code().as_deref() {
        Some("42601" | "42703" | "42P01" | "42883" | "42P18" | "42P02" | "42702") => true,
        // SQLITE_ERROR: what `prepare` reports for the statement text.
        Some("1") => {
            let m = db.message();
            m.contains("syntax error")
                || m.starts_with("no such ")
                || m.contains("ambiguous column name")
                || m.starts_with("incomplete input")
        }
        _ => false,
    }
}

impl<E: Entity> RelationalRepository<E> {
    /// The crate's mapping, with a statement the server could not even
    /// prepare reported as `InvalidInput` (it is the caller's SQL).
    fn raw_err(&self, e: DbErr, op: &'static str) -> Error {
        let refused = statement_refused(&e);
        let mapped = self.err(e, op);
        if !refused {
            return mapped;
        }
        let message = format!("sql: the statement was refused: {}", mapped.message());
        Error::invalid_input(message)
            .with_outcome(mapped.outcome())
            .in_context(E::meta().name, op)
            .with_source(mapped)
    }

    fn raw_statement(&self, sql: &str, params: &Params) -> Result<Statement> {
        if sql.trim().is_empty() {
            return Err(Error::invalid_input("sql: the statement is empty"));
        }
        let binds: Vec<SV> = params
            .values()
            .iter()
            .map(|v| raw_bind(self.dialect(), v))
            .collect();
        Ok(Statement::from_sql_and_values(
            self.dialect().backend(),
            sql,
            binds,
        ))
    }

    /// Run `fut` as operation `op` through the store's metrics, if any.
    async fn observed<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.store.metrics() {
            Some(m) => m.observe(E::meta().name, op, fut).await,
            None => fut.await,
        }
    }

    pub(crate) async fn query_as_on<C: Conn, T: Entity>(
        &self,
        c: &C,
        sql: &str,
        params: Params,
    ) -> Result<Vec<T>> {
        let op = "query_as";
        self.observed(op, async {
            let stmt = self
                .raw_statement(sql, &params)
                .map_err(|e| e.in_context(E::meta().name, op))?;
            let rows = c.rows(stmt).await.map_err(|e| self.raw_err(e, op))?;
            decode_rows::<T>(self.dialect(), &rows).map_err(|e| e.in_context(T::meta().name, op))
        })
        .await
    }

    pub(crate) async fn execute_on<C: Conn>(
        &self,
        c: &C,
        sql: &str,
        params: Params,
    ) -> Result<u64> {
        let op = "execute";
        self.observed(op, async {
            let stmt = self
                .raw_statement(sql, &params)
                .map_err(|e| e.in_context(E::meta().name, op))?;
            let done = c.exec(stmt).await.map_err(|e| self.raw_err(e, op))?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Run a query of your own and decode its rows into `T` (often `E`
    /// itself) with the codec `get` uses: columns are matched by field name
    /// (any order; extra columns are ignored), values checked as `get` checks
    /// them. Every parameter is bound (see [`Params`]); the SQL text is sent
    /// as written, in the dialect of the store (`$1` placeholders on
    /// PostgreSQL, `?` on SQLite).
    ///
    /// A missing column or a value that does not fit its field is `Decode`
    /// naming the field. A statement the server cannot prepare (a syntax
    /// error, an unknown table, column or function, a parameter of unknown
    /// type) is `InvalidInput` ("sql: the statement was refused: ...", the
    /// crate's mapped error as its source); every other failure is mapped
    /// like the repository's own statements (`Conflict(Unique)`, ...).
    pub async fn query_as<T: Entity>(
        &self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<T>> {
        self.query_as_on(&*self.store.routed(), sql, params.into())
            .await
    }

    /// Execute a statement of your own with bound parameters (see
    /// [`Params`]); returns the number of rows it affected.
    pub async fn execute(&self, sql: &str, params: impl Into<Params>) -> Result<u64> {
        self.execute_on(&*self.store.routed(), sql, params.into())
            .await
    }
}
