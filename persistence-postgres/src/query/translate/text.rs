//! `like` patterns and the ignore-case operators (`Filter::Like`) in SQL.
//!
//! PostgreSQL: `lower(col) = lower($1)` for an ignore-case equality (served
//! by a `lower(col)` expression index), `[lower(]col[)] LIKE [lower(]$1[)]
//! ESCAPE '\'` otherwise (served by a pg_trgm GIN index on the same
//! expression); `lower()` folds by the database's `LC_CTYPE`. SQLite:
//! `GLOB` for case-sensitive patterns (`LIKE` ignores ASCII case there),
//! `LIKE … ESCAPE '\'` ignoring case, which folds ASCII letters only (the
//! backend reports `unicode_case_folding = false`). The pattern is always one
//! bound parameter whose literal parts are escaped.

use persistence_core::entity::ResolvedPath;
use persistence_core::filter::{Pattern, PatternPart};
use persistence_core::{FieldType, Result};
use sea_orm::Value as SV;

use super::{JsonKind, Translator};
use crate::query::Sql;

/// The pattern as SQLite `GLOB` text: `*`, `?` and `[` in literals are
/// written as one-character classes (`[*]`, `[?]`, `[[]`).
fn to_glob(p: &Pattern) -> String {
    let mut out = String::new();
    for part in p.parts() {
        match part {
            PatternPart::Literal(s) => {
                for c in s.chars() {
                    match c {
                        '*' => out.push_str("[*]"),
                        '?' => out.push_str("[?]"),
                        '[' => out.push_str("[[]"),
                        c => out.push(c),
                    }
                }
            }
            PatternPart::Any => out.push('*'),
            PatternPart::One => out.push('?'),
        }
    }
    out
}

impl Translator<'_> {
    /// `(field matches pattern)`; NULL (no match) when the value is null.
    pub(super) fn like(
        &self,
        sql: &mut Sql,
        path: &ResolvedPath<'_>,
        pattern: &Pattern,
    ) -> Result<()> {
        let nested = path.ty(self.meta) == FieldType::Json;
        sql.push("(");
        if nested {
            self.kind_check(sql, path, JsonKind::String)?;
            sql.push(" AND ");
        }
        let target = |t: &Self, sql: &mut Sql| -> Result<()> {
            if nested {
                t.json_text(sql, path)
            } else {
                sql.ident(t.field(path).name);
                Ok(())
            }
        };
        let text = |s: String| SV::String(Some(s));
        match (self.pg(), pattern.is_ignore_case(), pattern.as_literal()) {
            (true, true, Some(lit)) => {
                sql.push("lower(");
                target(self, sql)?;
                sql.push(") = lower(").bind(text(lit.to_string())).push(")");
            }
            (true, true, None) => {
                sql.push("lower(");
                target(self, sql)?;
                sql.push(") LIKE lower(")
                    .bind(text(pattern.to_like()))
                    .push(") ESCAPE '\\'");
            }
            (_, false, Some(lit)) => {
                target(self, sql)?;
                sql.push(" = ").bind(text(lit.to_string()));
            }
            (true, false, None) => {
                target(self, sql)?;
                sql.push(" LIKE ")
                    .bind(text(pattern.to_like()))
                    .push(" ESCAPE '\\'");
            }
            (false, true, _) => {
                target(self, sql)?;
                sql.push(" LIKE ")
                    .bind(text(pattern.to_like()))
                    .push(" ESCAPE '\\'");
            }
            (false, false, None) => {
                target(self, sql)?;
                sql.push(" GLOB ").bind(text(to_glob(pattern)));
            }
        }
        sql.push(")");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::query::Dialect;
    use persistence_core::conformance::entities::Person;
    use persistence_core::{Entity, Filter, StringField};

    /// The SQL text and the number of bound values of a checked filter.
    fn sql(dialect: Dialect, f: Filter) -> (String, usize) {
        let meta = Person::meta();
        let t = Translator {
            meta,
            dialect,
            text_index: false,
        };
        let mut sql = Sql::new(dialect);
        t.filter(&mut sql, &f.checked(meta).unwrap()).unwrap();
        let stmt = sql.into_statement();
        let n = stmt.values.map_or(0, |v| v.0.len());
        (stmt.sql, n)
    }

    #[test]
    fn every_value_is_bound_and_the_index_expressions_are_plain() {
        let evil = "x' OR 1=1 --%_\\";
        let pg = |f| sql(Dialect::Postgres, f);
        assert_eq!(
            pg(Person::NAME.eq_ignore_case(evil)),
            ("(lower(\"name\") = lower($1))".to_string(), 1),
            "served by an index on lower(name)"
        );
        assert_eq!(
            pg(Person::NAME.contains_ignore_case(evil)),
            (
                "(lower(\"name\") LIKE lower($1) ESCAPE '\\')".to_string(),
                1
            )
        );
        assert_eq!(
            pg(Person::NAME.like(Pattern::new().literal(evil).one())),
            ("(\"name\" LIKE $1 ESCAPE '\\')".to_string(), 1)
        );
        let lite = |f| sql(Dialect::Sqlite, f);
        assert_eq!(
            lite(Person::NAME.starts_with_ignore_case(evil)),
            ("(\"name\" LIKE ? ESCAPE '\\')".to_string(), 1)
        );
        assert_eq!(
            lite(Person::NAME.like(Pattern::new().any().literal(evil))),
            ("(\"name\" GLOB ?)".to_string(), 1)
        );
        for (text, _) in [
            pg(Person::NAME.eq_ignore_case(evil)),
            lite(Person::NAME.eq_ignore_case(evil)),
        ] {
            assert!(!text.contains("OR 1=1"), "{text}");
        }
    }

    #[test]
    fn glob_escapes_its_metacharacters() {
        let p = Pattern::new().literal("a*?[b]").any().literal("%_").one();
        assert_eq!(to_glob(&p), "a[*][?][[]b]*%_?");
    }
}
