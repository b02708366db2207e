//! What the catalog says about a table's columns, as far as the SQL
//! translation can use it: which columns are `NOT NULL` (PostgreSQL).
//!
//! The library's sort rule puts nulls lowest, so on PostgreSQL (whose
//! default is the opposite) a sort key is written `ASC NULLS FIRST` /
//! `DESC NULLS LAST`; a btree index cannot provide that order (it stores
//! nulls last, or first when scanned backwards), so PostgreSQL sorts every
//! match. On a column that holds no null the clause changes nothing, and
//! without it the index serves the order. A column counts as holding no
//! null only when both are true:
//!
//! * the field is not an `Option` in the entity's metadata, and
//! * the catalog said the column is `NOT NULL` when `ensure_schema` last
//!   ran (through any repository of the table in this store or a store
//!   derived from it: tenant stores share the registry).
//!
//! Until `ensure_schema` has run the clause is always written (nothing is
//! known). Should the column later lose its `NOT NULL` (an `ALTER TABLE`
//! behind the library's back), a null in it could not be decoded into the
//! non-`Option` field anyway, so the clause could only move rows that fail
//! to decode.
//!
//! `ensure_schema` also learns the columns' types: columns of a native type
//! other than the crate's mapping of their field (tables the library did
//! not create) are read and written through casts ([`super::native`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use sea_orm::{DbErr, Statement, Value as SV};

use persistence_core::EntityMeta;

use crate::query::native::{Adapt, Adapted};
use crate::query::{Dialect, column_type};
use crate::store::conn::Conn;

/// Per column: name, `format_type` (a domain's base type), the type's
/// category, and the name to cast a written value to (built-in types as
/// `format_type` spells them without modifiers, others schema-qualified).
const PG_COLUMN_TYPES: &str = "SELECT a.attname::text, \
     CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) \
          ELSE format_type(a.atttypid, a.atttypmod) END, \
     t.typcategory::text, \
     CASE WHEN n.nspname = 'pg_catalog' THEN format_type(a.atttypid, NULL) \
          ELSE quote_ident(n.nspname) || '.' || quote_ident(t.typname) END \
   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
   JOIN pg_namespace n ON n.oid = t.typnamespace \
   WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";

/// The facts of one table (shared by the repositories of that table).
#[derive(Debug, Default)]
pub(crate) struct TableFacts {
    /// Columns the catalog reported `NOT NULL`; `None` until learned.
    not_null: RwLock<Option<Arc<BTreeSet<String>>>>,
    /// The library's text index exists (PostgreSQL: the generated
    /// `tsvector` column; SQLite: the FTS5 table), see [`crate::fulltext`].
    text_index: std::sync::atomic::AtomicBool,
    /// The adapted columns (see [`super::native`]); `None` while unknown
    /// and when every column is the crate's own type.
    adapted: RwLock<Option<Arc<Adapted>>>,
}

impl TableFacts {
    /// Whether the catalog reported column `name` `NOT NULL` (false while unknown).
    pub(crate) fn not_null(&self, name: &str) -> bool {
        self.not_null
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| s.contains(name))
    }

    /// Whether `ensure_schema` found the text index (false while unknown).
    pub(crate) fn text_index(&self) -> bool {
        self.text_index.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set_text_index(&self, found: bool) {
        self.text_index
            .store(found, std::sync::atomic::Ordering::Release);
    }

    /// The table's adapted columns, if any (learned by `ensure_schema`).
    pub(crate) fn adapted(&self) -> Option<Arc<Adapted>> {
        self.adapted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Read the types of the table's columns and remember which fields of
    /// `meta` need adapting (PostgreSQL only). `alias` names the sub-select.
    pub(crate) async fn learn_types<C: Conn>(
        &self,
        c: &C,
        qualified: &str,
        meta: &EntityMeta,
        dialect: Dialect,
    ) -> Result<(), DbErr> {
        if dialect != Dialect::Postgres {
            return Ok(());
        }
        let rows = c
            .rows(Statement::from_sql_and_values(
                dialect.backend(),
                PG_COLUMN_TYPES,
                [SV::String(Some(qualified.to_string()))],
            ))
            .await?;
        let mut live = HashMap::new();
        for r in &rows {
            let name = r.try_get_by_index::<String>(0)?;
            let have = r.try_get_by_index::<Option<String>>(1)?.unwrap_or_default();
            let category = r.try_get_by_index::<Option<String>>(2)?.unwrap_or_default();
            let cast = r.try_get_by_index::<Option<String>>(3)?.unwrap_or_default();
            live.insert(name, (have, category, cast));
        }
        let fields = meta
            .fields
            .iter()
            .map(|f| {
                let want = column_type(dialect, f.ty).ok()?;
                let (have, category, cast) = live.get(f.name)?;
                Adapt::of(f, want, have, category, cast)
            })
            .collect();
        let names: Vec<&str> = meta.fields.iter().map(|f| f.name).collect();
        let adapted = Adapted::new(&names, fields, qualified, meta.name).map(Arc::new);
        *self.adapted.write().unwrap_or_else(PoisonError::into_inner) = adapted;
        Ok(())
    }

    fn set(&self, columns: BTreeSet<String>) {
        *self
            .not_null
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(columns));
    }

    /// Read the table's `NOT NULL` columns from the catalog and remember
    /// them (PostgreSQL; nothing to learn on SQLite, whose default null
    /// order is the library's). `qualified` is the quoted table name.
    pub(crate) async fn learn<C: Conn>(
        &self,
        c: &C,
        qualified: &str,
        dialect: Dialect,
    ) -> Result<(), DbErr> {
        if dialect != Dialect::Postgres {
            return Ok(());
        }
        let rows = c
            .rows(Statement::from_sql_and_values(
                dialect.backend(),
                "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) \
                 AND attnum > 0 AND NOT attisdropped AND attnotnull",
                [SV::String(Some(qualified.to_string()))],
            ))
            .await?;
        let columns = rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect::<Result<BTreeSet<_>, _>>()?;
        self.set(columns);
        Ok(())
    }
}

/// The facts of every table of a store (and of the stores derived from
/// it), by qualified table name.
#[derive(Debug, Default)]
pub(crate) struct FactsRegistry {
    tables: Mutex<HashMap<String, Arc<TableFacts>>>,
}

impl FactsRegistry {
    /// The facts of table `qualified` (created empty on first use).
    pub(crate) fn table(&self, qualified: &str) -> Arc<TableFacts> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(qualified.to_string())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::query::Sql;
    use crate::query::translate::Translator;
    use persistence_core::conformance::entities::Person;
    use persistence_core::{Entity, Query};

    /// The ` ORDER BY ...` of a query on `Person`, the catalog reporting
    /// `not_null` columns NOT NULL.
    fn order(dialect: Dialect, q: Query, not_null: &[&str]) -> String {
        let meta = Person::meta();
        let q = q.checked(meta).unwrap();
        let mut sql = Sql::new(dialect);
        Translator {
            meta,
            dialect,
            text_index: false,
        }
        .order_by_known(&mut sql, &q.sort, &|c| not_null.contains(&c))
        .unwrap();
        sql.text
    }

    #[test]
    fn the_nulls_clause_is_written_only_where_it_can_matter() {
        let q = || {
            Query::all()
                .sort(Person::SCORE.desc())
                .sort(Person::AGE.asc())
                .sort(Person::NAME.desc())
        };
        let pg = Dialect::Postgres;
        assert_eq!(
            order(pg, q(), &[]),
            " ORDER BY \"score\" DESC NULLS LAST, \"age\" ASC NULLS FIRST, \
             \"name\" COLLATE \"C\" DESC NULLS LAST, \"id\" ASC NULLS FIRST",
            "nothing known: the rule spelled out"
        );
        assert_eq!(
            order(pg, q(), &["score", "age", "name", "id"]),
            " ORDER BY \"score\" DESC, \"age\" ASC NULLS FIRST, \
             \"name\" COLLATE \"C\" DESC, \"id\" ASC",
            "NOT NULL columns of non-Option fields: plain; an Option field keeps it"
        );
        assert_eq!(
            order(Dialect::Sqlite, q(), &[]),
            " ORDER BY \"score\" DESC, \"age\" ASC, \"name\" DESC, \"id\" ASC",
            "SQLite's default is the rule"
        );
    }

    #[test]
    fn unknown_until_learned_and_shared_by_name() {
        let reg = FactsRegistry::default();
        let a = reg.table("\"s\".\"t\"");
        assert!(!a.not_null("id"), "nothing is known before ensure_schema");
        a.set(["id".to_string(), "score".to_string()].into());
        let b = reg.table("\"s\".\"t\"");
        assert!(b.not_null("score") && b.not_null("id") && !b.not_null("tag"));
        assert!(!reg.table("\"s2\".\"t\"").not_null("id"), "per table");
    }
}
