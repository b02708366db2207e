//! Tables from entity metadata.
//!
//! One table per entity, named after `EntityMeta::name`, one column per
//! field (named as the stored field name, typed per the mapping in the crate
//! docs), `NOT NULL` unless the field is an `Option`:
//!
//! * primary key constraint `pk_<entity>` on the id field;
//! * one `UNIQUE` constraint per unique field / composite unique, named as in
//!   `IndexMeta::name` (so violations map back to metadata); on a
//!   soft-deletable entity (`IndexMeta::live_only`) a partial unique index of
//!   that name instead, `CREATE UNIQUE INDEX .. ON t (..) WHERE "deleted_at"
//!   IS NULL`, so deleted rows do not hold their values (both dialects; a
//!   violation names the index as it would the constraint). Like the
//!   constraints, it is created with the table only;
//! * one index per indexed field / composite index, named as in `IndexMeta::name`;
//! * the version field is an ordinary `bigint NOT NULL` column.
//!
//! Every statement is `IF NOT EXISTS`, so `ensure_schema` is idempotent.
//!
//! ## Ownership: only what the library created is changed or dropped
//!
//! What `ensure_schema` creates is marked as the library's
//! ([`persistence_core::names::MANAGED_MARK`]):
//!
//! * on PostgreSQL, a schema it creates gets `COMMENT ON SCHEMA .. IS
//!   'persistence:managed'` and a table `COMMENT ON TABLE .. IS
//!   'persistence:managed entity=<name>'` (tenant schemas and the schema of
//!   `migrate::up` too; tables of [`CreateEntityTable`](crate::migrate::CreateEntityTable)
//!   as well);
//! * on SQLite (no comments), the table `persistence_managed` lists the
//!   tables the library created.
//!
//! `ensure_schema` then follows the repository's
//! [`SchemaPolicy`]:
//!
//! * **`Managed`** (the default): a missing table is created (with its
//!   constraints and indexes) and marked; a marked table gets missing
//!   indexes; an **existing table without the mark is never altered**: it is
//!   verified instead: columns the entity stores that the table lacks are a
//!   `Config` error naming them (the repository could not work), a missing
//!   primary key, unique constraint or index (matched by its columns, any
//!   name) is a `tracing` warning naming it (the repository works, slower or
//!   without the uniqueness guarantee), and nothing is added.
//! * **`Adopt`**: an existing table without the mark is taken over: marked,
//!   then treated as the library's (missing indexes are created).
//! * **`VerifyOnly`**: nothing is created or changed; a missing table is a
//!   `Config` error, an existing one is verified as above.
//!
//! `verify_schema` (module `drift`, catalog reads in `catalog`) is the full,
//! read-only comparison: types, nullability, extra columns, the primary key,
//! uniques and indexes with their partial conditions, one
//! [`Difference`](persistence_core::Difference) each, whoever made the table.
//!
//! [`RelationalStore::drop_schema`](crate::RelationalStore::drop_schema)
//! and tenant drops refuse a schema without the mark (and never touch a
//! reserved name such as `public`). Tables and schemas created before the
//! marks existed have none: mark them by hand (`COMMENT ON ...`) or adopt
//! them with `SchemaPolicy::Adopt`.

use persistence_core::names::{MANAGED_MARK, MARKER_COLLECTION, SchemaPolicy};
use persistence_core::relation::{CrossStore, RelationMeta};
use persistence_core::{EntityMeta, Error, Result};
use sea_orm::DbErr;

use std::sync::Arc;

use crate::error::{ConstraintNames, map_db_err};
use crate::query::facts::TableFacts;
use crate::query::{Dialect, column_type, quote};
use crate::store::conn::Conn;

mod catalog;
mod drift;
pub(crate) mod rls;
mod verify;

use verify::{differences, stmt, text};

/// A table derived from metadata: its qualified name and constraint names.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// Schema (PostgreSQL), already validated.
    pub(crate) schema: Option<String>,
    /// `"schema"."table"` or `"table"`: what DDL and catalog lookups use.
    pub(crate) qualified: String,
    /// The name the repository's statements use: `qualified`, or the bare
    /// `"table"` of a tenant store under `TenantStatements::SearchPath`
    /// (its calls run with `SET LOCAL search_path` to the tenant's schema).
    pub(crate) target: String,
    /// Constraint names.
    pub(crate) names: ConstraintNames,
    /// `"a", "b", ...` in field order.
    pub(crate) column_list: String,
    /// `SELECT <columns> FROM <table> WHERE <id> = $1` (filled in by the repository).
    pub(crate) select_by_id: String,
    /// What the catalog says about the columns, learned by `ensure_schema`
    /// (the repository shares it with the store's other repositories of
    /// the table; see [`crate::query::facts`]).
    pub(crate) facts: Arc<TableFacts>,
    /// The `belongs_to` relations whose parent lives in another store: no
    /// foreign key, no parent table created, none reported missing.
    pub(crate) cross: CrossStore,
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
            target: qualified.clone(),
            qualified,
            names: ConstraintNames::of(meta),
            column_list,
            select_by_id: String::new(),
            facts: Arc::default(),
            cross: CrossStore::none(),
        }
    }

    /// The DDL statements creating the schema (PostgreSQL), table and
    /// indexes, with a foreign key per `belongs_to`.
    pub(crate) fn ddl(&self, meta: &EntityMeta, dialect: Dialect) -> Result<Vec<String>> {
        let all: Vec<&RelationMeta> = self.cross.enforced(meta).collect();
        self.ddl_with(meta, dialect, &all)
    }

    /// `ddl` with the foreign keys of `fks` only.
    fn ddl_with(
        &self,
        meta: &EntityMeta,
        dialect: Dialect,
        fks: &[&RelationMeta],
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let (Some(s), Dialect::Postgres) = (&self.schema, dialect) {
            out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s)));
        }
        let mut cols = Vec::new();
        for (i, f) in meta.fields.iter().enumerate() {
            let ty = column_type(dialect, f.ty)?;
            let null = if f.nullable { "" } else { " NOT NULL" };
            let default = generated_default(meta, i, dialect);
            cols.push(format!("{} {ty}{null}{default}", quote(f.name)));
        }
        cols.push(format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            quote(&self.names.primary_key),
            quote(meta.id_field().name)
        ));
        for ix in meta.uniques().filter(|ix| ix.live_only.is_none()) {
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
        for r in fks {
            cols.push(self.foreign_key(r, dialect));
        }
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.qualified,
            cols.join(", ")
        ));
        if dialect == Dialect::Postgres {
            out.push(self.mark_table(meta));
        }
        out.extend(self.partial_unique_ddl(meta));
        out.extend(self.index_ddl(meta));
        out.extend(self.rls_ddl(meta, dialect)?);
        Ok(out)
    }

    /// The `CREATE UNIQUE INDEX IF NOT EXISTS .. WHERE "f" IS NULL`
    /// statements of the unique indexes over live rows only.
    fn partial_unique_ddl(&self, meta: &EntityMeta) -> Vec<String> {
        meta.uniques()
            .filter_map(|ix| {
                let live = ix.live_only?;
                Some(format!(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {} IS NULL",
                    quote(&ix.name),
                    self.qualified,
                    ix.fields
                        .iter()
                        .map(|f| quote(f))
                        .collect::<Vec<_>>()
                        .join(", "),
                    quote(live)
                ))
            })
            .collect()
    }

    /// The `CONSTRAINT fk_.. FOREIGN KEY .. REFERENCES .. ON DELETE ..`
    /// clause of a `belongs_to` (the parent's table in the same schema; its
    /// key column is indexed through the metadata's indexes).
    fn foreign_key(&self, r: &RelationMeta, dialect: Dialect) -> String {
        let target = (r.target)();
        let parent = match (&self.schema, dialect) {
            (Some(s), Dialect::Postgres) => format!("{}.{}", quote(s), quote(target.name)),
            _ => quote(target.name),
        };
        format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {parent} ({}) ON DELETE {}",
            quote(&r.constraint),
            quote(r.key),
            quote(target.id_field().name),
            r.on_delete.sql()
        )
    }

    /// `COMMENT ON TABLE` with the ownership mark (PostgreSQL).
    fn mark_table(&self, meta: &EntityMeta) -> String {
        format!(
            "COMMENT ON TABLE {} IS '{MANAGED_MARK} entity={}'",
            self.qualified, meta.name
        )
    }

    /// The `CREATE INDEX IF NOT EXISTS` statements of the non-unique indexes.
    fn index_ddl(&self, meta: &EntityMeta) -> Vec<String> {
        let mut out = Vec::new();
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
        out
    }
}

/// Whether a table (or schema) exists and carries the library's mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Missing,
    Managed,
    Foreign,
}

fn is_marked(comment: &str) -> bool {
    comment.starts_with(MANAGED_MARK)
}

/// Run a DDL statement; a concurrent `CREATE ... IF NOT EXISTS` may race on
/// the catalog, so a failure is retried once.
pub(crate) async fn ddl<C: Conn>(c: &C, sql: &str) -> std::result::Result<(), DbErr> {
    if c.execute_unprepared(sql).await.is_err() {
        c.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// The ownership of PostgreSQL schema `schema`.
async fn schema_owner<C: Conn>(c: &C, schema: &str) -> std::result::Result<Owner, DbErr> {
    let row = c
        .row(stmt(
            Dialect::Postgres,
            "SELECT COALESCE(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace WHERE nspname = $1",
            vec![text(schema)],
        ))
        .await?;
    Ok(match row {
        None => Owner::Missing,
        Some(r) => match r.try_get_by_index::<String>(0) {
            Ok(comment) if is_marked(&comment) => Owner::Managed,
            _ => Owner::Foreign,
        },
    })
}

/// Create PostgreSQL schema `schema` with the mark if it does not exist;
/// an existing schema is left as it is. Returns whether it is the library's.
pub(crate) async fn ensure_namespace<C: Conn>(
    c: &C,
    schema: &str,
) -> std::result::Result<bool, DbErr> {
    match schema_owner(c, schema).await? {
        Owner::Managed => Ok(true),
        Owner::Foreign => Ok(false),
        Owner::Missing => {
            ddl(c, &format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema))).await?;
            c.execute_unprepared(&format!(
                "COMMENT ON SCHEMA {} IS '{MANAGED_MARK}'",
                quote(schema)
            ))
            .await?;
            Ok(true)
        }
    }
}

/// Drop PostgreSQL schema `schema` with everything in it, if the library
/// created it (see the module docs). A missing schema is not an error.
pub(crate) async fn drop_namespace<C: Conn>(c: &C, schema: &str) -> Result<()> {
    persistence_core::names::validate(persistence_core::names::NameKind::Schema, schema)?;
    let map = |e: DbErr| map_db_err(e, &ConstraintNames::default());
    match schema_owner(c, schema).await.map_err(map)? {
        Owner::Missing => Ok(()),
        Owner::Foreign => Err(Error::config(format!(
            "schema `{schema}` was not created by persistence (it has no `{MANAGED_MARK}` \
             comment): refusing to drop it; drop it with DROP SCHEMA yourself if you mean to"
        ))),
        Owner::Managed => c
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(schema)))
            .await
            .map(|_| ())
            .map_err(map),
    }
}

/// The ownership of the table.
pub(crate) async fn table_owner<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &EntityMeta,
    dialect: Dialect,
) -> std::result::Result<Owner, DbErr> {
    match dialect {
        Dialect::Postgres => {
            let row = c
                .row(stmt(
                    dialect,
                    "SELECT to_regclass($1) IS NOT NULL, \
                     COALESCE(obj_description(to_regclass($1), 'pg_class'), '')",
                    vec![text(&table.qualified)],
                ))
                .await?;
            let Some(row) = row else {
                return Ok(Owner::Missing);
            };
            let exists = row.try_get_by_index::<bool>(0)?;
            let comment = row.try_get_by_index::<String>(1)?;
            Ok(match (exists, is_marked(&comment)) {
                (false, _) => Owner::Missing,
                (true, true) => Owner::Managed,
                (true, false) => Owner::Foreign,
            })
        }
        Dialect::Sqlite => {
            let row = c
                .row(stmt(
                    dialect,
                    "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?), \
                     (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?)",
                    vec![text(meta.name), text(MARKER_COLLECTION)],
                ))
                .await?;
            let (exists, has_marks) = match row {
                Some(r) => (
                    r.try_get_by_index::<i64>(0)? > 0,
                    r.try_get_by_index::<i64>(1)? > 0,
                ),
                None => (false, false),
            };
            if !exists {
                return Ok(Owner::Missing);
            }
            if !has_marks {
                return Ok(Owner::Foreign);
            }
            let marked = c
                .row(stmt(
                    dialect,
                    &format!(
                        "SELECT count(*) FROM {} WHERE \"name\" = ?",
                        quote(MARKER_COLLECTION)
                    ),
                    vec![text(meta.name)],
                ))
                .await?
                .map(|r| r.try_get_by_index::<i64>(0))
                .transpose()?
                .unwrap_or(0);
            Ok(if marked > 0 {
                Owner::Managed
            } else {
                Owner::Foreign
            })
        }
    }
}

/// Leave the library's mark on the table.
pub(crate) async fn mark<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &EntityMeta,
    dialect: Dialect,
) -> std::result::Result<(), DbErr> {
    match dialect {
        Dialect::Postgres => {
            c.execute_unprepared(&table.mark_table(meta)).await?;
        }
        Dialect::Sqlite => {
            ddl(
                c,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {} (\"name\" TEXT PRIMARY KEY NOT NULL, \"mark\" TEXT NOT NULL)",
                    quote(MARKER_COLLECTION)
                ),
            )
            .await?;
            c.exec(stmt(
                dialect,
                &format!(
                    "INSERT OR IGNORE INTO {} (\"name\", \"mark\") VALUES (?, ?)",
                    quote(MARKER_COLLECTION)
                ),
                vec![text(meta.name), text(MANAGED_MARK)],
            ))
            .await?;
        }
    }
    Ok(())
}

/// The default of a generated id column the library creates (PostgreSQL:
/// an identity for integers, a random UUID for `Uuid` and `String` ids;
/// SQLite: none, an `INTEGER` primary key is the rowid, assigned when left
/// out).
fn generated_default(meta: &EntityMeta, i: usize, dialect: Dialect) -> &'static str {
    use persistence_core::{FieldType, ScalarType as S};
    if i != meta.id_index || !meta.generated.contains(&i) || dialect != Dialect::Postgres {
        return "";
    }
    match meta.fields[i].ty {
        FieldType::Scalar(S::I16 | S::I32 | S::I64) => " GENERATED BY DEFAULT AS IDENTITY",
        FieldType::Scalar(S::Uuid) => " DEFAULT gen_random_uuid()",
        FieldType::Scalar(S::String) => " DEFAULT gen_random_uuid()::text",
        _ => "",
    }
}

/// `ensure_schema` of one table (see the module docs), then what the
/// catalog says about its columns is learned for the SQL translation.
pub(crate) async fn ensure<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &'static EntityMeta,
    dialect: Dialect,
    policy: SchemaPolicy,
) -> Result<()> {
    ensure_table(c, table, meta, dialect, policy, 0).await?;
    let err = |e| map_db_err(e, &table.names).in_context(meta.name, "ensure_schema");
    table
        .facts
        .learn(c, &table.qualified, dialect)
        .await
        .map_err(err)?;
    table
        .facts
        .learn_types(c, &table.qualified, meta, dialect)
        .await
        .map_err(err)
}

/// How many parent tables deep `ensure_schema` creates missing parents.
const MAX_PARENT_DEPTH: usize = 8;

async fn ensure_table<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &'static EntityMeta,
    dialect: Dialect,
    policy: SchemaPolicy,
    depth: usize,
) -> Result<()> {
    let err = |e: DbErr| map_db_err(e, &table.names).in_context(meta.name, "ensure_schema");
    let config = |m: String| Error::config(m).in_context(meta.name, "ensure_schema");
    if let (Some(s), Dialect::Postgres) = (&table.schema, dialect) {
        if policy == SchemaPolicy::VerifyOnly {
            if schema_owner(c, s).await.map_err(err)? == Owner::Missing {
                return Err(config(format!(
                    "schema `{s}` does not exist (schema policy verify-only: nothing is created)"
                )));
            }
        } else {
            ensure_namespace(c, s).await.map_err(err)?;
        }
    }
    let owner = table_owner(c, table, meta, dialect).await.map_err(err)?;
    let own = match (owner, policy) {
        (Owner::Missing, SchemaPolicy::VerifyOnly) => {
            return Err(config(format!(
                "table {} does not exist (schema policy verify-only: nothing is created)",
                table.qualified
            )));
        }
        (Owner::Missing, _) => {
            let fks = parent_tables(c, table, meta, dialect, policy, depth).await?;
            let ddl_all = table.ddl_with(meta, dialect, &fks)?;
            // Create, mark, index (the DDL list marks on PostgreSQL).
            for sql in ddl_all.iter().filter(|s| !s.starts_with("CREATE SCHEMA")) {
                ddl(c, sql).await.map_err(err)?;
            }
            if dialect == Dialect::Sqlite {
                mark(c, table, meta, dialect).await.map_err(err)?;
            }
            return Ok(());
        }
        (Owner::Managed, SchemaPolicy::VerifyOnly) => false,
        (Owner::Managed, _) => true,
        (Owner::Foreign, SchemaPolicy::Adopt) => {
            mark(c, table, meta, dialect).await.map_err(err)?;
            true
        }
        (Owner::Foreign, _) => false,
    };
    if own {
        for sql in table.index_ddl(meta) {
            ddl(c, &sql).await.map_err(err)?;
        }
        for sql in table.rls_ddl(meta, dialect)? {
            ddl(c, &sql).await.map_err(err)?;
        }
        return Ok(());
    }
    let diff = differences(c, &table.qualified, meta, dialect)
        .await
        .map_err(err)?;
    if !diff.missing_columns.is_empty() {
        return Err(config(format!(
            "table {} exists but was not created by persistence and lacks the column(s) {} \
             that entity `{}` stores; ensure_schema never alters a table it did not create: \
             add them yourself, or use SchemaPolicy::Adopt",
            table.qualified,
            diff.missing_columns.join(", "),
            meta.name
        )));
    }
    if !diff.missing_indexes.is_empty() {
        tracing::warn!(
            table = %table.qualified,
            entity = meta.name,
            missing = %diff.missing_indexes.join("; "),
            "table not created by persistence lacks indexes the entity declares; \
             left unchanged (create them yourself, or use SchemaPolicy::Adopt)"
        );
    }
    Ok(())
}

/// The `belongs_to` relations of a table about to be created that get a
/// foreign key: a missing parent table is created first (up to
/// [`MAX_PARENT_DEPTH`] levels; a cycle stops there), a parent table the
/// library did not create gets none (its rows would be constrained by a
/// table it does not know), with a warning.
async fn parent_tables<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &'static EntityMeta,
    dialect: Dialect,
    policy: SchemaPolicy,
    depth: usize,
) -> Result<Vec<&'static RelationMeta>> {
    let mut fks = Vec::new();
    for r in meta.belongs_to().filter(|r| !table.cross.contains(r)) {
        let target = (r.target)();
        if target.name == meta.name {
            fks.push(r);
            continue;
        }
        let parent = TableInfo::new(target, table.schema.as_deref());
        let err = |e: DbErr| map_db_err(e, &parent.names).in_context(meta.name, "ensure_schema");
        match table_owner(c, &parent, target, dialect)
            .await
            .map_err(err)?
        {
            Owner::Managed => fks.push(r),
            Owner::Missing if depth < MAX_PARENT_DEPTH => {
                Box::pin(ensure_table(c, &parent, target, dialect, policy, depth + 1)).await?;
                fks.push(r);
            }
            owner => tracing::warn!(
                table = %table.qualified,
                relation = %meta.relation_path(r),
                parent = %parent.qualified,
                ?owner,
                "no foreign key for this relation: its parent table was not created by persistence \
                 (or the relations form a cycle); the relation is not enforced by the database"
            ),
        }
    }
    Ok(fks)
}

/// `verify_schema` of one table: read the catalog, compare with `meta`
/// (see [`drift`]); creates and changes nothing. An existing table's
/// column facts are learned as `ensure_schema` learns them.
pub(crate) async fn verify_schema<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &'static EntityMeta,
    dialect: Dialect,
) -> Result<persistence_core::SchemaReport> {
    let err = |e: DbErr| map_db_err(e, &table.names).in_context(meta.name, "verify_schema");
    let arg = match dialect {
        Dialect::Postgres => table.qualified.as_str(),
        Dialect::Sqlite => meta.name,
    };
    let live = catalog::read(c, arg, dialect).await.map_err(err)?;
    if live.is_some() {
        // `verify_schema` stands in for `ensure_schema` (the manager's
        // `schema_mode: verify`): learn the columns the same way (read-only
        // catalog queries), so native types (`text[]`, enums, `numeric`..)
        // are read and written through casts afterwards.
        table
            .facts
            .learn(c, &table.qualified, dialect)
            .await
            .map_err(err)?;
        table
            .facts
            .learn_types(c, &table.qualified, meta, dialect)
            .await
            .map_err(err)?;
    }
    Ok(drift::compare(
        meta,
        &table.qualified,
        dialect,
        live.as_ref(),
        &table.cross,
    ))
}
