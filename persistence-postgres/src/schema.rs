//! Tables from entity metadata.
//!
//! One table per entity, named after `EntityMeta::name`, one column per
//! field (named as the stored field name, typed per the mapping in the crate
//! docs), `NOT NULL` unless the field is an `Option`:
//!
//! * primary key constraint `pk_<entity>` on the id field;
//! * one `UNIQUE` constraint per unique field / composite unique, named as in
//!   `IndexMeta::name` (so violations map back to metadata);
//! * one index per indexed field / composite index, named as in `IndexMeta::name`;
//! * the version field is an ordinary `bigint NOT NULL` column.
//!
//! Every statement is `IF NOT EXISTS`, so `ensure_schema` is idempotent.

use persistence_core::{EntityMeta, Result};

use crate::error::ConstraintNames;
use crate::sql::{Dialect, column_type, quote};

/// A table derived from metadata: its qualified name and constraint names.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// Schema (PostgreSQL), already validated.
    pub(crate) schema: Option<String>,
    /// `"schema"."table"` or `"table"`.
    pub(crate) qualified: String,
    /// Constraint names.
    pub(crate) names: ConstraintNames,
    /// `"a", "b", ...` in field order.
    pub(crate) column_list: String,
    /// `SELECT <columns> FROM <table> WHERE <id> = $1` (filled in by the repository).
    pub(crate) select_by_id: String,
}

impl TableInfo {
    pub(crate) fn new(meta: &EntityMeta, schema: Option<&str>) -> TableInfo {
        let qualified = match schema {
            Some(s) => format!("{}.{}", quote(s), quote(meta.name)),
            None => quote(meta.name),
        };
        let column_list = meta
            .fields
            .iter()
            .map(|f| quote(f.name))
            .collect::<Vec<_>>()
            .join(", ");
        TableInfo {
            schema: schema.map(str::to_string),
            qualified,
            names: ConstraintNames::of(meta),
            column_list,
            select_by_id: String::new(),
        }
    }

    /// The DDL statements creating the schema (PostgreSQL), table and indexes.
    pub(crate) fn ddl(&self, meta: &EntityMeta, dialect: Dialect) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let (Some(s), Dialect::Postgres) = (&self.schema, dialect) {
            out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s)));
        }
        let mut cols = Vec::new();
        for f in &meta.fields {
            let ty = column_type(dialect, f.ty)?;
            let null = if f.nullable { "" } else { " NOT NULL" };
            cols.push(format!("{} {ty}{null}", quote(f.name)));
        }
        cols.push(format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            quote(&self.names.primary_key),
            quote(meta.id_field().name)
        ));
        for ix in meta.uniques() {
            cols.push(format!(
                "CONSTRAINT {} UNIQUE ({})",
                quote(&ix.name),
                ix.fields
                    .iter()
                    .map(|f| quote(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.qualified,
            cols.join(", ")
        ));
        for ix in meta.indexes.iter().filter(|i| !i.unique) {
            let cols = ix
                .fields
                .iter()
                .map(|f| quote(f))
                .collect::<Vec<_>>()
                .join(", ");
            // Index names are schema-scoped on PostgreSQL: the index lands in the table's schema.
            let name = quote(&ix.name);
            out.push(format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {} ({cols})",
                self.qualified
            ));
        }
        Ok(out)
    }
}
