//! Introspection of a PostgreSQL schema: tables, columns (with their
//! native types, nullability, defaults, identity), indexes, unique
//! constraints, foreign keys and the native enums the columns use, read
//! from `pg_catalog` with read-only queries (a read-only role is enough).
//!
//! Type rules (the field type that reads and writes the column, see
//! [`ColumnType`]): `smallint` `i16`, `integer` `i32`, `bigint` `i64`,
//! `real` `f32`, `double precision` `f64`, `numeric` `Decimal`, `boolean`
//! `bool`, `text` / `varchar` / `char` / `citext` `String`, `uuid` `Uuid`,
//! `timestamptz` / `timestamp` `DateTime<Utc>`, `date` `NaiveDate`,
//! `bytea` `Vec<u8>`, `json` / `jsonb` `serde_json::Value`, arrays of those
//! scalars `Vec<_>`, a native enum a generated `EntityEnum`; a domain is
//! read as its base type. Anything else is left out with a note.
//!
//! A column is `generated` when the database fills it: an identity or
//! `serial` column, a stored generated column, or a default calling a
//! clock or id function (`now()`, `CURRENT_TIMESTAMP`, `gen_random_uuid()`,
//! `nextval(..)`, ...). Constant defaults (`0`, `'{}'`) are not: the
//! entity always writes those columns.

use persistence_core::{Error, Result};
use persistence_postgres::RelationalStore;
use persistence_postgres::error::map_error;
use persistence_postgres::sea_orm::{ConnectionTrait, QueryResult, Statement, Value};

use crate::model::{Column, ColumnType, EnumType, ForeignKey, Index, OnDelete, Schema, Table};

const TABLES: &str = "SELECT c.relname::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1";

const COLUMNS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
       b.typname::text, b.typtype::text, COALESCE(e.typname::text, ''), \
       COALESCE(e.typtype::text, ''), a.attnotnull, a.attidentity::text, a.attgenerated::text, \
       COALESCE(pg_get_expr(d.adbin, d.adrelid), ''), \
       COALESCE(CASE WHEN b.typtype = 'e' THEN b.oid::text WHEN e.typtype = 'e' THEN e.oid::text END, '') \
     FROM pg_attribute a \
     JOIN pg_type t ON t.oid = a.atttypid \
     JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
     LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A' \
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

const ENUM_LABELS: &str = "SELECT t.typname::text, e.enumlabel::text FROM pg_enum e \
     JOIN pg_type t ON t.oid = e.enumtypid WHERE e.enumtypid::text = $1 ORDER BY e.enumsortorder";

const INDEXES: &str = "SELECT c.relname::text, i.indisprimary, i.indisunique, \
       array_to_string(ARRAY(\
         SELECT COALESCE(a.attname::text, '(expression)') \
         FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o) \
         LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n AND k.n > 0 \
         WHERE k.o <= i.indnkeyatts ORDER BY k.o), ','), \
       COALESCE(pg_get_expr(i.indpred, i.indrelid), ''), \
       (SELECT am.amname::text FROM pg_am am WHERE am.oid = c.relam), \
       pg_get_indexdef(i.indexrelid) \
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE i.indrelid = to_regclass($1) ORDER BY c.relname";

const FOREIGN_KEYS: &str = "SELECT c.conname::text, \
       array_to_string(ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o) \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), ','), \
       r.relname::text, rn.nspname::text, \
       array_to_string(ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o) \
         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o), ','), \
       c.confdeltype::text, pg_get_constraintdef(c.oid) \
     FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid \
     JOIN pg_namespace rn ON rn.oid = r.relnamespace \
     WHERE c.conrelid = to_regclass($1) AND c.contype = 'f' ORDER BY c.conname";

/// Functions whose default means "the database assigns the value".
const SERVER_FUNCTIONS: &[&str] = &[
    "nextval(",
    "now()",
    "current_timestamp",
    "localtimestamp",
    "current_date",
    "clock_timestamp()",
    "statement_timestamp()",
    "transaction_timestamp()",
    "gen_random_uuid()",
    "uuid_generate_v4()",
    "uuidv4()",
    "uuidv7()",
];

/// Quote an identifier for `to_regclass` (double quotes doubled).
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

async fn rows(store: &RelationalStore, sql: &str, arg: &str) -> Result<Vec<QueryResult>> {
    let c = store.connection();
    c.query_all_raw(Statement::from_sql_and_values(
        c.get_database_backend(),
        sql,
        vec![Value::String(Some(arg.to_string()))],
    ))
    .await
    .map_err(map_error)
}

/// `text` without the schema's own qualifier (`shop.order_status` →
/// `order_status`), so the output does not depend on the schema's name.
fn unqualified(text: &str, schema: &str) -> String {
    let plain = schema
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let prefix = if plain {
        format!("{schema}.")
    } else {
        format!("{}.", quote(schema))
    };
    text.replace(&prefix, "")
}

fn text(r: &QueryResult, i: usize) -> Result<String> {
    r.try_get_by_index::<Option<String>>(i)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::decode(format!("catalog query, column {i}: {e}")))
}

fn flag(r: &QueryResult, i: usize) -> Result<bool> {
    r.try_get_by_index::<bool>(i)
        .map_err(|e| Error::decode(format!("catalog query, column {i}: {e}")))
}

/// The tables of the store's schema (`public` without one), all of them or
/// the ones named in `only` (a name that is not a table is an
/// `InvalidInput` error naming it).
pub async fn introspect(store: &RelationalStore, only: &[String]) -> Result<Schema> {
    let schema = store.schema().unwrap_or("public").to_string();
    let mut names = Vec::new();
    for r in rows(store, TABLES, &schema).await? {
        names.push(text(&r, 0)?);
    }
    for t in only {
        if !names.contains(t) {
            return Err(Error::invalid_input(format!(
                "no table `{t}` in schema `{schema}`"
            )));
        }
    }
    if !only.is_empty() {
        names.retain(|n| only.contains(n));
    }
    let mut out = Schema::default();
    let mut enum_oids: Vec<String> = Vec::new();
    for name in names {
        let qualified = format!("{}.{}", quote(&schema), quote(&name));
        let table = table(store, &qualified, &schema, name, &mut enum_oids).await?;
        out.tables.push(table);
    }
    for oid in enum_oids {
        let mut e = EnumType {
            name: String::new(),
            labels: Vec::new(),
        };
        for r in rows(store, ENUM_LABELS, &oid).await? {
            e.name = text(&r, 0)?;
            e.labels.push(text(&r, 1)?);
        }
        out.enums.push(e);
    }
    out.enums.sort_by(|a, b| a.name.cmp(&b.name));
    out.enums.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

async fn table(
    store: &RelationalStore,
    qualified: &str,
    schema: &str,
    name: String,
    enum_oids: &mut Vec<String>,
) -> Result<Table> {
    let mut t = Table {
        name,
        columns: Vec::new(),
        primary_key: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        notes: Vec::new(),
    };
    for r in rows(store, COLUMNS, qualified).await? {
        let (base, kind, elem, elem_kind) =
            (text(&r, 2)?, text(&r, 3)?, text(&r, 4)?, text(&r, 5)?);
        let ty = if elem.is_empty() {
            scalar(&base, &kind)
        } else {
            match scalar(&elem, &elem_kind) {
                ColumnType::Unsupported(_) | ColumnType::Bytes | ColumnType::Json => {
                    ColumnType::Unsupported(unqualified(&text(&r, 1)?, schema))
                }
                inner => ColumnType::Array(Box::new(inner)),
            }
        };
        let ty = match ty {
            ColumnType::Unsupported(_) => {
                ColumnType::Unsupported(unqualified(&text(&r, 1)?, schema))
            }
            other => other,
        };
        let enum_oid = text(&r, 10)?;
        if !enum_oid.is_empty() && !enum_oids.contains(&enum_oid) {
            enum_oids.push(enum_oid);
        }
        let (not_null, identity, stored) = (flag(&r, 6)?, text(&r, 7)?, text(&r, 8)?);
        let default = text(&r, 9)?;
        let lower = default.to_ascii_lowercase();
        let generated = !identity.is_empty()
            || !stored.is_empty()
            || SERVER_FUNCTIONS.iter().any(|f| lower.starts_with(f));
        let has_default = generated || !default.is_empty();
        t.columns.push(Column {
            name: text(&r, 0)?,
            blocks_inserts: not_null && !has_default,
            ty,
            nullable: !not_null,
            generated,
            object_id: false,
            native: unqualified(&text(&r, 1)?, schema),
        });
    }
    for r in rows(store, INDEXES, qualified).await? {
        let (index_name, primary, unique) = (text(&r, 0)?, flag(&r, 1)?, flag(&r, 2)?);
        let columns: Vec<String> = text(&r, 3)?.split(',').map(str::to_string).collect();
        let (predicate, method) = (text(&r, 4)?, text(&r, 5)?);
        let def = unqualified(&text(&r, 6)?, schema);
        if primary {
            t.primary_key = columns;
            continue;
        }
        let plain = predicate.is_empty()
            && method == "btree"
            && columns.iter().all(|c| t.column(c).is_some());
        if plain {
            t.indexes.push(Index {
                name: index_name,
                columns,
                unique,
            });
        } else {
            t.notes.push(format!(
                "index not declared (the entity has no way to say it): {def}"
            ));
        }
    }
    for r in rows(store, FOREIGN_KEYS, qualified).await? {
        let (fk_name, cols, parent, parent_schema) =
            (text(&r, 0)?, text(&r, 1)?, text(&r, 2)?, text(&r, 3)?);
        let (refs, action) = (text(&r, 4)?, text(&r, 5)?);
        let def = unqualified(&text(&r, 6)?, schema);
        let on_delete = match action.as_str() {
            "c" => OnDelete::Cascade,
            "n" => OnDelete::SetNull,
            "d" => OnDelete::SetDefault,
            _ => OnDelete::Restrict,
        };
        if cols.contains(',') || parent_schema != schema || on_delete == OnDelete::SetDefault {
            t.notes.push(format!(
                "foreign key {fk_name} not declared (only single-column keys to a table of this schema, \
                 ON DELETE restrict | no action | cascade | set null): {def}"
            ));
            continue;
        }
        t.foreign_keys.push(ForeignKey {
            name: fk_name,
            column: cols,
            table: parent,
            ref_column: refs,
            on_delete,
        });
    }
    Ok(t)
}

/// The field type of a scalar catalog type (`typname`, `typtype`).
fn scalar(name: &str, kind: &str) -> ColumnType {
    if kind == "e" {
        return ColumnType::Enum(name.to_string());
    }
    match name {
        "int2" => ColumnType::I16,
        "int4" => ColumnType::I32,
        "int8" => ColumnType::I64,
        "float4" => ColumnType::F32,
        "float8" => ColumnType::F64,
        "numeric" => ColumnType::Decimal,
        "bool" => ColumnType::Bool,
        "text" | "varchar" | "bpchar" | "citext" => ColumnType::String,
        "uuid" => ColumnType::Uuid,
        "timestamptz" | "timestamp" => ColumnType::DateTime,
        "date" => ColumnType::Date,
        "bytea" => ColumnType::Bytes,
        "json" | "jsonb" => ColumnType::Json,
        other => ColumnType::Unsupported(other.to_string()),
    }
}
