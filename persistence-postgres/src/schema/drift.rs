//! `verify_schema` on PostgreSQL and SQLite: the live table read from the
//! catalog ([`super::catalog`]) compared with the entity metadata, each
//! difference one [`Difference`] (see [`persistence_core::drift`] for the
//! severities).
//!
//! * **Types** follow the crate's type mapping. PostgreSQL: the column's
//!   type (a domain's base type) without modifiers must be the mapped type,
//!   except that a `String` / enum field also reads `varchar(n)` and
//!   `char(n)`, and `numeric(p, s)` counts as `numeric`; a native type the
//!   repository reads and writes through casts (`integer` / `numeric` for
//!   numbers, a native enum for a string or enum, `text[]` for a `Vec`,
//!   `json`, `timestamp`; see `query::native`) is compatible too. SQLite: the
//!   declared type's affinity must be the mapped one's (an `INTEGER`,
//!   `bool` or integer field also accepts `NUMERIC` affinity, and a column
//!   declared without a type accepts anything).
//! * **Indexes** are matched by definition, under any name: the primary key
//!   by any full unique index on the id alone; a unique by any unique index
//!   on the same column set with the same partial condition; an index by any
//!   full index led by its columns in order. Without a match, an index
//!   bearing the declared name is reported as different, else as missing.
//! * **Foreign keys** (one per `belongs_to`) are matched by definition under
//!   any name: the key column, the parent's table and id, the `ON DELETE`
//!   action (`NO ACTION`, what a bare `REFERENCES` gets, counts as
//!   `restrict`). Without a match, a foreign key bearing the declared name
//!   or on the same column is reported as different, else as missing.

use persistence_core::drift::{Difference, DifferenceKind as K, SchemaReport, Severity};
use persistence_core::relation::CrossStore;
use persistence_core::{EntityMeta, FieldMeta, FieldType, IndexMeta, ScalarType};

use crate::query::{Dialect, column_type, native};

use super::catalog::{LiveColumn, LiveForeignKey, LiveIndex, LiveTable};

/// Compare `live` (`None`: the table does not exist) with `meta`.
pub(super) fn compare(
    meta: &EntityMeta,
    target: &str,
    dialect: Dialect,
    live: Option<&LiveTable>,
    cross: &CrossStore,
) -> SchemaReport {
    let mut report = SchemaReport::new(meta.name, target);
    let Some(live) = live else {
        report.push(Difference::new(
            K::MissingTable,
            target,
            "",
            format!("a table for entity `{}`", meta.name),
            "none",
        ));
        return report;
    };
    for f in &meta.fields {
        let Ok(want) = column_type(dialect, f.ty) else {
            continue;
        };
        match live.columns.iter().find(|c| c.name == f.name) {
            None => report.push(Difference::new(
                K::MissingColumn,
                target,
                format!("column {}", f.name),
                format!("{want}{}", if f.nullable { "" } else { " NOT NULL" }),
                "none",
            )),
            Some(col) => {
                // The database fills a generated field's NOT NULL column
                // from its default: the field is an Option only for the insert.
                let generated = meta
                    .field(f.name)
                    .is_some_and(|(i, _)| meta.generated.contains(&i));
                column_differences(
                    &mut report,
                    target,
                    dialect,
                    f,
                    want,
                    col,
                    generated && col.has_default,
                )
            }
        }
    }
    for col in &live.columns {
        // The generated `tsvector` column of text search is the library's.
        if meta.field(&col.name).is_some()
            || (meta.text.is_some() && col.name == crate::fulltext::COLUMN)
        {
            continue;
        }
        let blocks_inserts = col.not_null && !col.has_default;
        let d = Difference::new(
            K::ExtraColumn,
            target,
            format!("column {}", col.name),
            "nullable or with a default (the entity never writes it)",
            format!(
                "{}{}{}",
                col.ty,
                if col.not_null { " NOT NULL" } else { "" },
                if col.has_default {
                    " with a default"
                } else {
                    ""
                }
            ),
        );
        report.push(if blocks_inserts {
            d.severity(Severity::Error)
        } else {
            d
        });
    }
    index_differences(&mut report, target, meta, &live.indexes);
    foreign_key_differences(&mut report, target, meta, &live.foreign_keys, cross);
    report.sorted()
}

/// One difference per `belongs_to` whose foreign key is missing or not as
/// declared (matched by definition under any name; by name for "differs").
fn foreign_key_differences(
    report: &mut SchemaReport,
    target: &str,
    meta: &EntityMeta,
    live: &[LiveForeignKey],
    cross: &CrossStore,
) {
    for r in cross.enforced(meta) {
        let parent = (r.target)();
        let want_refs = [parent.id_field().name.to_string()];
        let want = format!(
            "({}) REFERENCES {} ({}) ON DELETE {}",
            r.key,
            parent.name,
            want_refs[0],
            r.on_delete.sql()
        );
        let same_columns = |fk: &&LiveForeignKey| fk.columns == [r.key];
        let exact = live.iter().filter(same_columns).any(|fk| {
            fk.table == parent.name
                && fk.ref_columns == want_refs
                && same_action(r.on_delete.sql(), &fk.on_delete)
        });
        if exact {
            continue;
        }
        let subject = format!("foreign key {} ({})", r.constraint, meta.relation_path(r));
        let named = live
            .iter()
            .find(|fk| fk.name == r.constraint)
            .or_else(|| live.iter().find(same_columns));
        report.push(match named {
            Some(fk) => Difference::new(
                K::ForeignKeyDiffers,
                target,
                subject,
                want,
                format!(
                    "({}) REFERENCES {} ({}) ON DELETE {}",
                    fk.columns.join(", "),
                    fk.table,
                    fk.ref_columns.join(", "),
                    fk.on_delete
                ),
            ),
            None => Difference::new(K::MissingForeignKey, target, subject, want, "none"),
        });
    }
}

/// Whether live `ON DELETE` action `have` does what `want` asks. `NO
/// ACTION` (the default of a `REFERENCES` written without one) counts as
/// `RESTRICT`: both refuse to delete a referenced row (`NO ACTION` checks
/// at the end of the statement, or of the transaction when deferred).
fn same_action(want: &str, have: &str) -> bool {
    want == have || (want == "RESTRICT" && have == "NO ACTION")
}

fn column_differences(
    report: &mut SchemaReport,
    target: &str,
    dialect: Dialect,
    f: &FieldMeta,
    want: &str,
    col: &LiveColumn,
    filled_by_default: bool,
) {
    let subject = format!("column {}", f.name);
    if let Some(found) = type_mismatch(dialect, f.ty, want, &col.ty, &col.category) {
        report.push(Difference::new(
            K::TypeMismatch,
            target,
            subject.clone(),
            want,
            found,
        ));
    }
    if f.nullable && col.not_null && !filled_by_default {
        report.push(Difference::new(
            K::NullabilityMismatch,
            target,
            subject,
            "nullable (the field is an Option)",
            "NOT NULL",
        ));
    } else if !f.nullable && !col.not_null {
        // The library never writes null there; a null written by someone
        // else fails to decode.
        report.push(
            Difference::new(
                K::NullabilityMismatch,
                target,
                subject,
                "NOT NULL",
                "nullable",
            )
            .severity(Severity::Warning),
        );
    }
}

/// `Some(found)` when live type `have` (category `category`, PostgreSQL)
/// cannot hold a field of type `ty` mapped to `want`.
fn type_mismatch(
    dialect: Dialect,
    ty: FieldType,
    want: &str,
    have: &str,
    category: &str,
) -> Option<String> {
    match dialect {
        Dialect::Postgres => {
            let ok = native::same_type(ty, want, have) || native::adaptable(ty, have, category);
            (!ok).then(|| have.to_string())
        }
        Dialect::Sqlite => {
            let (want_aff, have_aff) = (affinity(want), affinity(have));
            let integral = matches!(
                ty,
                FieldType::Scalar(
                    ScalarType::Bool | ScalarType::I16 | ScalarType::I32 | ScalarType::I64
                )
            ) && have_aff == "NUMERIC";
            let ok = have.trim().is_empty() || want_aff == have_aff || integral;
            (!ok).then(|| {
                if have.eq_ignore_ascii_case(have_aff) {
                    have.to_string()
                } else {
                    format!("{have} ({have_aff} affinity)")
                }
            })
        }
    }
}

/// SQLite's type affinity of a declared type (section 3.1 of its datatype docs).
fn affinity(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "TEXT"
    } else if t.contains("BLOB") || t.trim().is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// `UNIQUE (a, b) WHERE c IS NULL` / `INDEX (a)`.
fn describe(unique: bool, columns: &[impl AsRef<str>], condition: &str) -> String {
    let cols: Vec<&str> = columns.iter().map(AsRef::as_ref).collect();
    let mut s = format!(
        "{} ({})",
        if unique { "UNIQUE" } else { "INDEX" },
        cols.join(", ")
    );
    if !condition.is_empty() {
        s.push_str(" WHERE ");
        s.push_str(condition);
    }
    s
}

fn describe_live(ix: &LiveIndex) -> String {
    describe(ix.unique, &ix.columns, &ix.condition())
}

fn index_differences(
    report: &mut SchemaReport,
    target: &str,
    meta: &EntityMeta,
    live: &[LiveIndex],
) {
    let id = meta.id_field().name;
    if !live
        .iter()
        .any(|i| i.unique && i.columns == [id] && i.condition().is_empty())
    {
        report.push(Difference::new(
            K::MissingPrimaryKey,
            target,
            "",
            format!("PRIMARY KEY ({id})"),
            "none",
        ));
    }
    for ix in &meta.indexes {
        let want = ix
            .live_only
            .filter(|_| ix.unique)
            .map(|f| format!("{f} IS NULL"))
            .unwrap_or_default();
        let matched = live.iter().any(|l| {
            if ix.unique {
                l.unique
                    && l.columns.len() == ix.fields.len()
                    && ix.fields.iter().all(|f| l.columns.iter().any(|c| c == f))
                    && l.condition().eq_ignore_ascii_case(&want)
            } else {
                l.condition().is_empty()
                    && l.columns.len() >= ix.fields.len()
                    && ix.fields.iter().zip(&l.columns).all(|(f, c)| c == f)
            }
        });
        if matched {
            continue;
        }
        report.push(index_difference(target, ix, &want, live));
    }
}

fn index_difference(target: &str, ix: &IndexMeta, want: &str, live: &[LiveIndex]) -> Difference {
    let expected = describe(ix.unique, &ix.fields, want);
    let named = live.iter().find(|l| l.name == ix.name);
    let (kind, found) = match (ix.unique, named) {
        (true, Some(l)) => (K::UniqueDiffers, describe_live(l)),
        (true, None) => (K::MissingUnique, "none".to_string()),
        (false, Some(l)) => (K::IndexDiffers, describe_live(l)),
        (false, None) => (K::MissingIndex, "none".to_string()),
    };
    Difference::new(kind, target, ix.name.clone(), expected, found)
}

#[cfg(test)]
mod tests {
    use super::{affinity, same_action};

    #[test]
    fn no_action_counts_as_restrict_only() {
        assert!(same_action("RESTRICT", "NO ACTION"));
        assert!(same_action("CASCADE", "CASCADE"));
        assert!(!same_action("CASCADE", "NO ACTION"));
        assert!(!same_action("SET NULL", "RESTRICT"));
    }
    use crate::query::native::without_modifiers;

    #[test]
    fn modifiers_and_affinities() {
        assert_eq!(
            without_modifiers("character varying(20)"),
            "character varying"
        );
        assert_eq!(
            without_modifiers("timestamp(3) with time zone"),
            "timestamp with time zone"
        );
        assert_eq!(without_modifiers("numeric(12,2)"), "numeric");
        assert_eq!(affinity("VARCHAR(10)"), "TEXT");
        assert_eq!(affinity("BIGINT"), "INTEGER");
        assert_eq!(affinity("DOUBLE"), "REAL");
        assert_eq!(affinity(""), "BLOB");
        assert_eq!(affinity("BOOLEAN"), "NUMERIC");
    }
}
