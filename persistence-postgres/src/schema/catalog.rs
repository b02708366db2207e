//! What the catalog says about a live table, for `verify_schema`: its
//! columns (type, nullability, default) and its indexes (name, unique,
//! columns in order, partial condition). Read-only queries only:
//! `pg_attribute` / `pg_index` on PostgreSQL, `pragma_table_xinfo` /
//! `pragma_index_list` / `pragma_index_info` on SQLite; foreign keys from
//! `pg_constraint` / `pragma_foreign_key_list`.

use sea_orm::{DbErr, QueryResult};

use crate::query::Dialect;
use crate::store::conn::Conn;

use super::verify::{get_string, stmt, text};

/// One live column.
#[derive(Debug, Clone)]
pub(super) struct LiveColumn {
    pub(super) name: String,
    /// `format_type` on PostgreSQL (a domain's base type), the declared
    /// type on SQLite (may be empty).
    pub(super) ty: String,
    pub(super) not_null: bool,
    /// A default, identity, generated column or SQLite rowid alias: an
    /// insert that leaves it out still succeeds.
    pub(super) has_default: bool,
    /// `pg_type.typcategory` on PostgreSQL (`N` numeric, `S` string, `E`
    /// enum, `A` array, ...), empty on SQLite.
    pub(super) category: String,
}

/// One live index (unique constraints and the primary key included).
#[derive(Debug, Clone)]
pub(super) struct LiveIndex {
    pub(super) name: String,
    pub(super) unique: bool,
    /// Key columns in order (`(expression)` for an expression).
    pub(super) columns: Vec<String>,
    /// The condition of a partial index, as the catalog gives it (empty
    /// for a full index; SQLite gives the whole `CREATE INDEX` statement).
    pub(super) predicate: String,
}

impl LiveIndex {
    /// The partial condition without quotes, parentheses and the SQLite
    /// `CREATE .. WHERE` head, whitespace collapsed (empty for a full index).
    pub(super) fn condition(&self) -> String {
        normalize_condition(&self.predicate)
    }
}

/// A partial index condition in a comparable form (see [`LiveIndex::condition`]).
pub(super) fn normalize_condition(predicate: &str) -> String {
    let plain: String = predicate
        .chars()
        .filter(|c| !matches!(c, '"' | '(' | ')' | '`'))
        .collect();
    let words: Vec<&str> = plain.split_whitespace().collect();
    // SQLite gives the whole CREATE INDEX statement: keep its condition.
    let start = words
        .iter()
        .rposition(|w| w.eq_ignore_ascii_case("where"))
        .map_or(0, |i| i + 1);
    words[start..].join(" ")
}

/// One live foreign key of the table.
#[derive(Debug, Clone)]
pub(super) struct LiveForeignKey {
    /// The constraint's name (empty on SQLite, which keeps none).
    pub(super) name: String,
    /// Referencing columns in order.
    pub(super) columns: Vec<String>,
    /// The referenced table (bare name).
    pub(super) table: String,
    /// Referenced columns in order.
    pub(super) ref_columns: Vec<String>,
    /// `RESTRICT`, `CASCADE`, `SET NULL`, `NO ACTION` or `SET DEFAULT`.
    pub(super) on_delete: String,
}

/// A live table: `None` when it does not exist.
#[derive(Debug, Clone, Default)]
pub(super) struct LiveTable {
    pub(super) columns: Vec<LiveColumn>,
    pub(super) indexes: Vec<LiveIndex>,
    pub(super) foreign_keys: Vec<LiveForeignKey>,
}

const PG_FOREIGN_KEYS: &str = "SELECT c.conname::text, \
     array_to_string(ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o) \
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), ','), \
     (SELECT r.relname::text FROM pg_class r WHERE r.oid = c.confrelid), \
     array_to_string(ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o) \
       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o), ','), \
     CASE c.confdeltype WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' \
       WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END \
   FROM pg_constraint c WHERE c.conrelid = to_regclass($1) AND c.contype = 'f' ORDER BY c.conname";

/// SQLite keeps no names: one row per column of each foreign key (`id`).
const SQLITE_FOREIGN_KEYS: &str = "SELECT '', group_concat(\"from\", ','), \"table\", \
     group_concat(\"to\", ','), upper(on_delete) \
   FROM (SELECT * FROM pragma_foreign_key_list(?1) ORDER BY id, seq) GROUP BY id ORDER BY id";

const PG_COLUMNS: &str = "SELECT a.attname::text, \
     CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) \
          ELSE format_type(a.atttypid, a.atttypmod) END, \
     a.attnotnull, (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''), \
     t.typcategory::text \
   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
   WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
   ORDER BY a.attnum";

const PG_INDEXES: &str = "SELECT c.relname::text, i.indisunique OR i.indisprimary, \
     array_to_string(ARRAY(\
       SELECT COALESCE(a.attname::text, '(expression)') \
       FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o) \
       LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n AND k.n > 0 \
       WHERE k.o <= i.indnkeyatts ORDER BY k.o), ','), \
     COALESCE(pg_get_expr(i.indpred, i.indrelid), '') \
   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
   WHERE i.indrelid = to_regclass($1) ORDER BY c.relname";

/// SQLite: an `INTEGER PRIMARY KEY` column is the rowid: never null,
/// assigned when left out.
const SQLITE_COLUMNS: &str = "SELECT name, type, \
     (\"notnull\" <> 0 OR rowid_alias), (dflt_value IS NOT NULL OR hidden IN (2, 3) OR rowid_alias) \
   FROM (SELECT *, (pk = 1 AND upper(type) = 'INTEGER' \
          AND (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1) AS rowid_alias \
         FROM pragma_table_xinfo(?1) WHERE hidden <> 1) ORDER BY cid";

const SQLITE_INDEXES: &str = "SELECT il.name, il.\"unique\" <> 0, \
     (SELECT group_concat(x.name, ',') FROM \
       (SELECT COALESCE(name, '(expression)') AS name FROM pragma_index_info(il.name) ORDER BY seqno) AS x), \
     CASE WHEN il.partial <> 0 THEN (SELECT m.sql FROM sqlite_master AS m \
       WHERE m.type = 'index' AND m.name = il.name) ELSE '' END \
   FROM pragma_index_list(?1) AS il ORDER BY il.name";

/// SQLite: the primary key columns (an `INTEGER PRIMARY KEY` is the rowid,
/// not an index).
const SQLITE_PK: &str = "SELECT group_concat(name, ',') FROM \
   (SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk)";

fn custom(e: persistence_core::Error) -> DbErr {
    DbErr::Custom(e.to_string())
}

/// Read table `arg` (the quoted, qualified name on PostgreSQL; the bare
/// name on SQLite). `Ok(None)` when it does not exist.
pub(super) async fn read<C: Conn>(
    c: &C,
    arg: &str,
    dialect: Dialect,
) -> Result<Option<LiveTable>, DbErr> {
    let (columns_sql, indexes_sql) = match dialect {
        Dialect::Postgres => (PG_COLUMNS, PG_INDEXES),
        Dialect::Sqlite => (SQLITE_COLUMNS, SQLITE_INDEXES),
    };
    let mut live = LiveTable::default();
    for r in c.rows(stmt(dialect, columns_sql, vec![text(arg)])).await? {
        live.columns.push(column(&r)?);
    }
    if live.columns.is_empty() {
        // No table has no column (PostgreSQL allows it, but then no entity fits).
        if !exists(c, arg, dialect).await? {
            return Ok(None);
        }
    }
    for r in c.rows(stmt(dialect, indexes_sql, vec![text(arg)])).await? {
        let cols = get_string(&r, 2).map_err(custom)?;
        live.indexes.push(LiveIndex {
            name: r.try_get_by_index::<String>(0)?,
            unique: r.try_get_by_index::<bool>(1)?,
            columns: cols.split(',').map(str::to_string).collect(),
            predicate: get_string(&r, 3).map_err(custom)?,
        });
    }
    let fk_sql = match dialect {
        Dialect::Postgres => PG_FOREIGN_KEYS,
        Dialect::Sqlite => SQLITE_FOREIGN_KEYS,
    };
    for r in c.rows(stmt(dialect, fk_sql, vec![text(arg)])).await? {
        let list = |i: usize| -> Result<Vec<String>, DbErr> {
            Ok(get_string(&r, i)
                .map_err(custom)?
                .split(',')
                .map(str::to_string)
                .collect())
        };
        live.foreign_keys.push(LiveForeignKey {
            name: get_string(&r, 0).map_err(custom)?,
            columns: list(1)?,
            table: get_string(&r, 2).map_err(custom)?,
            ref_columns: list(3)?,
            on_delete: get_string(&r, 4).map_err(custom)?,
        });
    }
    if dialect == Dialect::Sqlite {
        if let Some(r) = c.row(stmt(dialect, SQLITE_PK, vec![text(arg)])).await? {
            let cols = get_string(&r, 0).map_err(custom)?;
            let has_index = live
                .indexes
                .iter()
                .any(|i| i.unique && i.columns.join(",") == cols);
            if !cols.is_empty() && !has_index {
                live.indexes.push(LiveIndex {
                    name: "PRIMARY KEY".into(),
                    unique: true,
                    columns: cols.split(',').map(str::to_string).collect(),
                    predicate: String::new(),
                });
            }
        }
    }
    Ok(Some(live))
}

fn column(r: &QueryResult) -> Result<LiveColumn, DbErr> {
    Ok(LiveColumn {
        name: r.try_get_by_index::<String>(0)?,
        ty: get_string(r, 1).map_err(custom)?,
        not_null: r.try_get_by_index::<bool>(2)?,
        has_default: r.try_get_by_index::<bool>(3)?,
        category: r
            .try_get_by_index::<Option<String>>(4)
            .ok()
            .flatten()
            .unwrap_or_default(),
    })
}

async fn exists<C: Conn>(c: &C, arg: &str, dialect: Dialect) -> Result<bool, DbErr> {
    let sql = match dialect {
        Dialect::Postgres => "SELECT to_regclass($1) IS NOT NULL",
        Dialect::Sqlite => {
            "SELECT count(*) > 0 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1"
        }
    };
    Ok(match c.row(stmt(dialect, sql, vec![text(arg)])).await? {
        Some(r) => r.try_get_by_index::<bool>(0)?,
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_condition as n;

    #[test]
    fn conditions_compare_across_catalogs() {
        assert_eq!(n("(deleted_at IS NULL)"), "deleted_at IS NULL");
        assert_eq!(
            n(r#"CREATE UNIQUE INDEX "ux" ON "Note" ("slug") WHERE "deleted_at" IS NULL"#),
            "deleted_at IS NULL"
        );
        assert_eq!(n(""), "");
        assert_eq!(
            n("((deleted_at IS NULL) AND (rank > 0))"),
            "deleted_at IS NULL AND rank > 0"
        );
    }
}
