//! Full-text search on PostgreSQL and SQLite (the rules are
//! [`persistence_core::text`]'s; the README's "Text search" has the
//! overview).
//!
//! * **PostgreSQL**: on a table the library owns, `ensure_schema` adds a
//!   stored generated column `"__text" tsvector GENERATED ALWAYS AS
//!   (to_tsvector('<language>', coalesce("a", '') || ' ' || coalesce("b", ''))) STORED`
//!   and a GIN index on it, both `IF NOT EXISTS`; every write path keeps
//!   the column current without knowing about it. A search is
//!   `"__text" @@ websearch_to_tsquery('<language>', $1)` ranked by
//!   `ts_rank`. On a table the library did not create (or before
//!   `ensure_schema` found the column) the same `to_tsvector(..)` is
//!   computed in the query instead: the same answers, without the index.
//!   `$1` is never the user's string: it is the parsed search rewritten
//!   in canonical websearch form (quoted words, `or`, `-`), so both sides
//!   parse it the same way.
//! * **SQLite**: an FTS5 table `"<table>__fts"` (contentless, one column:
//!   the fields joined by a space; tokenizer `porter unicode61
//!   remove_diacritics 0`, or `unicode61 ..` for `simple`) whose rowids are
//!   the table's, kept by three triggers and filled from the existing rows
//!   when created. Each atom of the parsed search is one
//!   `rowid IN (SELECT rowid FROM fts WHERE fts MATCH ?)` bound to a quoted
//!   phrase of its words (letters and digits only), combined with SQL
//!   `AND` / `OR` / `NOT`, so the FTS5 query syntax never sees user input;
//!   relevance is `-bm25()` of the positive atoms. Created only on tables
//!   the library owns; without it, text search is `Unsupported`. SQLite's
//!   `VACUUM` may renumber the rowids of a table whose id is not an
//!   integer: re-create the FTS table then (drop it, `ensure_schema`).

use persistence_core::entity::TextSearch;
use persistence_core::names::SchemaPolicy;
use persistence_core::text::ParsedQuery;
use persistence_core::{EntityMeta, Result, TextLanguage};
use sea_orm::{DbErr, Statement, Value as SV};

use crate::error::map_db_err;
use crate::query::{Dialect, bounded, quote};
use crate::schema::{self, TableInfo};
use crate::store::conn::Conn;

/// The generated `tsvector` column (PostgreSQL).
pub(crate) const COLUMN: &str = "__text";

/// The FTS5 table of an entity (SQLite, unquoted).
pub(crate) fn fts_table(entity: &str) -> String {
    bounded(format!("{entity}__fts"))
}

fn index_name(entity: &str) -> String {
    bounded(format!("tx_{entity}"))
}

/// `'english'::regconfig` (a constant of the enum, never user input).
pub(crate) fn regconfig(language: TextLanguage) -> String {
    format!("'{}'::regconfig", language.name())
}

/// `coalesce(<p>"a", '') || ' ' || coalesce(<p>"b", '')`.
fn joined(ts: &TextSearch, prefix: &str) -> String {
    ts.names
        .iter()
        .map(|n| format!("coalesce({prefix}{}, '')", quote(n)))
        .collect::<Vec<_>>()
        .join(" || ' ' || ")
}

/// The searched `tsvector` (PostgreSQL): the generated column, or the
/// expression it is generated from.
pub(crate) fn pg_document(ts: &TextSearch, column: bool) -> String {
    if column {
        quote(COLUMN)
    } else {
        format!(
            "to_tsvector({}, {})",
            regconfig(ts.language),
            joined(ts, "")
        )
    }
}

/// The parsed search in canonical websearch form: `"w1 w2" or -"w3" "w4"`.
pub(crate) fn websearch(q: &ParsedQuery) -> String {
    q.clauses
        .iter()
        .map(|c| {
            c.iter()
                .map(|a| {
                    format!(
                        "{}\"{}\"",
                        if a.negated { "-" } else { "" },
                        a.words.join(" ")
                    )
                })
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An FTS5 phrase of the atom's words (letters and digits only, so no
/// quote can occur inside).
pub(crate) fn fts_phrase(words: &[String]) -> String {
    format!("\"{}\"", words.join(" "))
}

fn pg_ddl(entity: &str, qualified: &str, ts: &TextSearch) -> Vec<String> {
    vec![
        format!(
            "ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {} tsvector \
             GENERATED ALWAYS AS ({}) STORED",
            quote(COLUMN),
            pg_document(ts, false)
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {qualified} USING gin ({})",
            quote(&index_name(entity)),
            quote(COLUMN)
        ),
    ]
}

fn sqlite_ddl(entity: &str, ts: &TextSearch) -> Vec<String> {
    let fts = quote(&fts_table(entity));
    let table = quote(entity);
    let tokenizer = match ts.language {
        TextLanguage::English => "porter unicode61 remove_diacritics 0",
        TextLanguage::Simple => "unicode61 remove_diacritics 0",
    };
    let trigger = |suffix: &str| quote(&bounded(format!("{entity}__fts_{suffix}")));
    let add = format!(
        "INSERT INTO {fts}(rowid, doc) VALUES (new.rowid, {});",
        joined(ts, "new.")
    );
    let remove = format!(
        "INSERT INTO {fts}({fts}, rowid, doc) VALUES ('delete', old.rowid, {});",
        joined(ts, "old.")
    );
    vec![
        format!(
            "CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(doc, content='', tokenize='{tokenizer}')"
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER INSERT ON {table} BEGIN {add} END",
            trigger("ai")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER DELETE ON {table} BEGIN {remove} END",
            trigger("ad")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER UPDATE ON {table} BEGIN {remove} {add} END",
            trigger("au")
        ),
    ]
}

async fn exists<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &EntityMeta,
    dialect: Dialect,
) -> std::result::Result<bool, DbErr> {
    let (sql, arg) = match dialect {
        Dialect::Postgres => (
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
             AND attname = '__text' AND NOT attisdropped",
            table.qualified.clone(),
        ),
        Dialect::Sqlite => (
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            fts_table(meta.name),
        ),
    };
    let row = c
        .row(Statement::from_sql_and_values(
            dialect.backend(),
            sql,
            [SV::String(Some(arg))],
        ))
        .await?;
    Ok(row.is_some())
}

/// The text index of `meta`'s text-search fields (module docs), on a table
/// the library owns; then record in the table's facts whether it exists.
pub(crate) async fn ensure_text<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &'static EntityMeta,
    dialect: Dialect,
    policy: SchemaPolicy,
) -> Result<()> {
    let Some(ts) = &meta.text else {
        return Ok(());
    };
    let err = |e: DbErr| map_db_err(e, &table.names).in_context(meta.name, "ensure_schema");
    let owned = policy != SchemaPolicy::VerifyOnly
        && schema::table_owner(c, table, meta, dialect)
            .await
            .map_err(err)?
            == schema::Owner::Managed;
    if owned {
        match dialect {
            Dialect::Postgres => {
                for sql in pg_ddl(meta.name, &table.qualified, ts) {
                    schema::ddl(c, &sql).await.map_err(err)?;
                }
            }
            Dialect::Sqlite => {
                let fresh = !exists(c, table, meta, dialect).await.map_err(err)?;
                for sql in sqlite_ddl(meta.name, ts) {
                    schema::ddl(c, &sql).await.map_err(err)?;
                }
                if fresh {
                    let fill = format!(
                        "INSERT INTO {}(rowid, doc) SELECT rowid, {} FROM {}",
                        quote(&fts_table(meta.name)),
                        joined(ts, ""),
                        table.qualified
                    );
                    c.execute_unprepared(&fill).await.map_err(err)?;
                }
            }
        }
    }
    let found = exists(c, table, meta, dialect).await.map_err(err)?;
    table.facts.set_text_index(found);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_websearch_and_names() {
        let q = ParsedQuery::parse(TextLanguage::English, "a\"b c\" or -x; DROP").expect("parse");
        assert_eq!(websearch(&q), "\"b c\" or -\"x\" \"drop\"");
        assert_eq!(fts_table("t"), "t__fts");
        assert_eq!(fts_table(&"a".repeat(70)).len(), 63);
    }
}
