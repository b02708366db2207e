//! `Filter::MatchesText` in SQL (see [`crate::fulltext`]): a `tsvector`
//! match on PostgreSQL, FTS5 `MATCH` subqueries on SQLite, always from the
//! parsed search, never the user's string.

use persistence_core::text::ParsedQuery;
use persistence_core::{Error, Result};
use sea_orm::Value as SV;

use super::Translator;
use crate::fulltext::{fts_phrase, fts_table, pg_document, regconfig, websearch};
use crate::query::{Dialect, Sql, quote};

impl Translator<'_> {
    /// The parsed search of `text` for this entity.
    pub(crate) fn parse_text(&self, text: &str) -> Result<ParsedQuery> {
        let ts = self.meta.text.as_ref().ok_or_else(|| {
            Error::invalid_input(format!(
                "matches_text: {} has no #[entity(text_search)] field",
                self.meta.name
            ))
        })?;
        ParsedQuery::parse(ts.language, text)
    }

    /// `(document @@ websearch_to_tsquery(cfg, $n))` (PostgreSQL); the
    /// `tsquery` expression alone is [`Self::pg_tsquery`].
    pub(super) fn matches_text(&self, sql: &mut Sql, text: &str) -> Result<()> {
        let q = self.parse_text(text)?;
        if q.is_empty() {
            sql.push(self.dialect.f());
            return Ok(());
        }
        match self.dialect {
            Dialect::Postgres => {
                let ts = self.meta.text.as_ref().ok_or_else(no_text)?;
                sql.push("(")
                    .push(&pg_document(ts, self.text_index))
                    .push(" @@ ");
                self.pg_tsquery(sql, &q)?;
                sql.push(")");
            }
            Dialect::Sqlite => self.sqlite_match(sql, &q)?,
        }
        Ok(())
    }

    /// `websearch_to_tsquery('<language>'::regconfig, $n)` of the canonical form.
    pub(crate) fn pg_tsquery(&self, sql: &mut Sql, q: &ParsedQuery) -> Result<()> {
        let ts = self.meta.text.as_ref().ok_or_else(no_text)?;
        sql.push("websearch_to_tsquery(")
            .push(&regconfig(ts.language))
            .push(", ")
            .bind(SV::String(Some(websearch(q))))
            .push(")");
        Ok(())
    }

    fn sqlite_match(&self, sql: &mut Sql, q: &ParsedQuery) -> Result<()> {
        if !self.text_index {
            return Err(Error::unsupported(format!(
                "text search on SQLite needs the FTS5 table {} that ensure_schema creates \
                 on tables the library owns",
                fts_table(self.meta.name)
            )));
        }
        let fts = quote(&fts_table(self.meta.name));
        let table = quote(self.meta.name);
        sql.push("(");
        for (i, clause) in q.clauses.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { " AND (" });
            for (j, atom) in clause.iter().enumerate() {
                sql.push(if j == 0 { "" } else { " OR " })
                    .push(&table)
                    .push(if atom.negated {
                        ".rowid NOT IN"
                    } else {
                        ".rowid IN"
                    })
                    .push(" (SELECT rowid FROM ")
                    .push(&fts)
                    .push(" WHERE ")
                    .push(&fts)
                    .push(" MATCH ")
                    .bind(SV::String(Some(fts_phrase(&atom.words))))
                    .push(")");
            }
            sql.push(")");
        }
        sql.push(")");
        Ok(())
    }
}

fn no_text() -> Error {
    Error::invalid_input("matches_text: the entity has no #[entity(text_search)] field")
}
