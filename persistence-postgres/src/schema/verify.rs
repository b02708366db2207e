//! The verification of an existing table `ensure_schema` did not create:
//! what it lacks compared with the entity (see [`crate::schema`]).

use persistence_core::{EntityMeta, Error, Result};
use sea_orm::{DbErr, QueryResult, Statement, Value as SV};

use crate::query::Dialect;
use crate::store::conn::Conn;

/// What an existing table lacks compared with the entity.
#[derive(Debug, Default)]
pub(super) struct Differences {
    pub(super) missing_columns: Vec<String>,
    /// Primary key, unique constraints and indexes, in words.
    pub(super) missing_indexes: Vec<String>,
}

/// One index of an existing table: unique (or primary), its columns in
/// order, and the condition of a partial index (empty for a full one).
struct Existing {
    unique: bool,
    columns: Vec<String>,
    predicate: String,
}

impl Existing {
    /// Whether this partial index covers exactly the rows where `field` is
    /// null (read from the catalog's text of the condition).
    fn live_only(&self, field: &str) -> bool {
        let norm: String = self
            .predicate
            .chars()
            .filter(|c| !matches!(c, '"' | '(' | ')'))
            .collect::<String>()
            .to_lowercase();
        let norm = norm.split_whitespace().collect::<Vec<_>>().join(" ");
        // SQLite gives the whole CREATE INDEX statement: keep its condition.
        let cond = match norm.rfind(" where ") {
            Some(at) => &norm[at + " where ".len()..],
            None => norm.as_str(),
        };
        cond == format!("{} is null", field.to_lowercase())
    }
}

pub(super) async fn differences<C: Conn>(
    c: &C,
    qualified: &str,
    meta: &EntityMeta,
    dialect: Dialect,
) -> std::result::Result<Differences, DbErr> {
    let (columns_sql, indexes_sql, pk_sql, arg) = match dialect {
        Dialect::Postgres => (
            "SELECT attname::text FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
            "SELECT i.indisunique OR i.indisprimary, array_to_string(ARRAY(\
               SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o) \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), ','), \
               COALESCE(pg_get_expr(i.indpred, i.indrelid), '') \
             FROM pg_index i WHERE i.indrelid = to_regclass($1)",
            None,
            qualified.to_string(),
        ),
        Dialect::Sqlite => (
            "SELECT name FROM pragma_table_info(?)",
            "SELECT il.\"unique\" <> 0, (SELECT group_concat(x.name, ',') FROM \
               (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno) AS x), \
               CASE WHEN il.partial <> 0 THEN (SELECT m.sql FROM sqlite_master AS m \
                 WHERE m.type = 'index' AND m.name = il.name) ELSE '' END \
             FROM pragma_index_list(?) AS il",
            Some(
                "SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk)",
            ),
            meta.name.to_string(),
        ),
    };
    let have: Vec<String> = c
        .rows(stmt(dialect, columns_sql, vec![text(&arg)]))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Differences::default();
    for f in &meta.fields {
        if !have.iter().any(|h| h == f.name) {
            out.missing_columns.push(f.name.to_string());
        }
    }
    let mut existing = Vec::new();
    for r in c.rows(stmt(dialect, indexes_sql, vec![text(&arg)])).await? {
        let unique = r.try_get_by_index::<bool>(0)?;
        let cols = get_string(&r, 1).map_err(|e| DbErr::Custom(e.to_string()))?;
        let predicate = get_string(&r, 2).map_err(|e| DbErr::Custom(e.to_string()))?;
        existing.push(Existing {
            unique,
            columns: cols.split(',').map(str::to_string).collect(),
            predicate,
        });
    }
    if let Some(pk_sql) = pk_sql {
        // SQLite: an INTEGER PRIMARY KEY is the rowid, not an index.
        if let Some(r) = c.row(stmt(dialect, pk_sql, vec![text(&arg)])).await? {
            let cols = get_string(&r, 0).map_err(|e| DbErr::Custom(e.to_string()))?;
            if !cols.is_empty() {
                existing.push(Existing {
                    unique: true,
                    columns: cols.split(',').map(str::to_string).collect(),
                    predicate: String::new(),
                });
            }
        }
    }
    let id = meta.id_field().name;
    let mut wanted: Vec<(String, bool, Vec<&str>, Option<&str>)> =
        vec![(format!("primary key ({id})"), true, vec![id], None)];
    for ix in &meta.indexes {
        let what = match (ix.unique, ix.live_only) {
            (true, Some(live)) => format!(
                "unique index {} ({}) WHERE {live} IS NULL",
                ix.name,
                ix.fields.join(", ")
            ),
            (true, None) => format!("unique constraint {} ({})", ix.name, ix.fields.join(", ")),
            (false, _) => format!("index {} ({})", ix.name, ix.fields.join(", ")),
        };
        wanted.push((what, ix.unique, ix.fields.clone(), ix.live_only));
    }
    for (what, unique, fields, live_only) in wanted {
        let covered = existing.iter().any(|e| {
            if unique {
                // The same column set, enforced unique over the same rows:
                // all of them, or the live ones (a partial index).
                e.unique
                    && e.columns.len() == fields.len()
                    && fields.iter().all(|f| e.columns.iter().any(|c| c == f))
                    && match live_only {
                        None => e.predicate.is_empty(),
                        Some(live) => e.live_only(live),
                    }
            } else {
                // Any index led by these columns.
                e.columns.len() >= fields.len()
                    && fields.iter().zip(&e.columns).all(|(f, c)| c == f)
            }
        });
        if !covered {
            out.missing_indexes.push(what);
        }
    }
    Ok(out)
}

/// A catalog statement with bound values.
pub(super) fn stmt(dialect: Dialect, sql: &str, values: Vec<SV>) -> Statement {
    Statement::from_sql_and_values(dialect.backend(), sql, values)
}

/// A text value to bind.
pub(super) fn text(v: &str) -> SV {
    SV::String(Some(v.to_string()))
}

/// Column `i` of a catalog row as text (null: empty).
pub(super) fn get_string(row: &QueryResult, i: usize) -> Result<String> {
    row.try_get_by_index::<Option<String>>(i)
        .map(Option::unwrap_or_default)
        .map_err(|e| Error::decode(format!("catalog query: {e}")))
}

#[cfg(test)]
mod tests {
    use super::Existing;

    fn partial(predicate: &str) -> Existing {
        Existing {
            unique: true,
            columns: vec!["slug".into()],
            predicate: predicate.into(),
        }
    }

    #[test]
    fn a_partial_index_is_read_from_either_catalog() {
        // PostgreSQL: pg_get_expr of indpred.
        assert!(partial("(deleted_at IS NULL)").live_only("deleted_at"));
        // SQLite: the CREATE INDEX statement.
        assert!(
            partial(r#"CREATE UNIQUE INDEX "ux_Note_slug" ON "Note" ("slug") WHERE "deleted_at" IS NULL"#)
                .live_only("deleted_at")
        );
        assert!(!partial("").live_only("deleted_at"), "a full index");
        assert!(!partial("(deleted_at IS NOT NULL)").live_only("deleted_at"));
        assert!(!partial("((deleted_at IS NULL) AND (rank > 0))").live_only("deleted_at"));
        assert!(!partial("(archived_at IS NULL)").live_only("deleted_at"));
    }
}
