//! Schema drift: how a live table / collection differs from the entity
//! metadata, as [`Repository::verify_schema`](crate::Repository::verify_schema)
//! reports it.
//!
//! `verify_schema` only reads the catalog (it never creates or alters
//! anything) and returns a [`SchemaReport`]: one [`Difference`] per thing
//! that differs, each with a one-line `Display` naming the table, the column
//! or index, and what was expected and found. Each difference has a
//! [`Severity`]:
//!
//! * **Error**: the repository cannot work as declared: a missing table or
//!   column, a column type the library cannot read or write, an `Option`
//!   field over a `NOT NULL` column (writing `None` fails), an extra
//!   `NOT NULL` column without a default (every insert fails), a missing
//!   primary key, a missing or different unique constraint (the declared
//!   uniqueness is not enforced, or a different one is), a MongoDB
//!   validator that differs from the generated one (it may reject the
//!   entity's documents).
//! * **Warning**: the repository works, with a weaker guarantee or slower:
//!   a required field over a nullable column (a `NULL` written by someone
//!   else fails to decode), a missing or different non-unique index or TTL,
//!   a missing MongoDB validator or a different validation level/action,
//!   and anything the server would not let the check read ("cannot verify
//!   ..."), so a check never fails because of what it could not see.
//! * **Info**: allowed, listed for completeness: an extra column that is
//!   nullable or has a default (columns not in the struct are ignored).
//!
//! [`SchemaReport::is_ok`] is true when there is no error. Foreign keys of
//! declared `belongs_to` relations are compared where a backend has them
//! (SQL): a missing one, or one over other columns, another table or with
//! another `ON DELETE`, is a **warning** (the repository works; the
//! database does not enforce the relation as declared). Extra foreign keys,
//! indexes, check constraints and triggers of the table are not compared.

use std::fmt;

/// How much a [`Difference`] matters (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Allowed; listed for completeness.
    Info,
    /// The repository works, with a weaker guarantee or slower.
    Warning,
    /// The repository cannot work as declared.
    Error,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DifferenceKind {
    /// The table / collection (or its PostgreSQL schema) does not exist.
    MissingTable,
    /// A column the entity stores is missing.
    MissingColumn,
    /// A column the entity does not know.
    ExtraColumn,
    /// The column type is not the one the library maps the field to.
    TypeMismatch,
    /// `NOT NULL` where the field is an `Option`, or nullable where it is not.
    NullabilityMismatch,
    /// The primary key over the id is missing.
    MissingPrimaryKey,
    /// A declared unique constraint / unique index is missing.
    MissingUnique,
    /// A declared unique constraint exists under its name but differs
    /// (columns, order, partial condition).
    UniqueDiffers,
    /// A declared index is missing.
    MissingIndex,
    /// A declared index exists under its name but differs (columns, order,
    /// unique flag, partial condition, TTL).
    IndexDiffers,
    /// The MongoDB collection has no validator.
    ValidatorMissing,
    /// The MongoDB validator (or its level / action) differs from the generated one.
    ValidatorDiffers,
    /// Part of the check could not be done on this server.
    Unverifiable,
    /// The foreign key of a declared `belongs_to` is missing.
    MissingForeignKey,
    /// The foreign key of a declared `belongs_to` exists under its name
    /// but differs (column, referenced table or column, `ON DELETE`).
    ForeignKeyDiffers,
}

/// One difference between the metadata and the live table / collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What differs.
    pub kind: DifferenceKind,
    /// How much it matters.
    pub severity: Severity,
    /// The table / collection (qualified as the backend names it).
    pub target: String,
    /// The column, index or object concerned (empty for the table itself).
    pub subject: String,
    /// What the metadata asks for.
    pub expected: String,
    /// What the server has.
    pub found: String,
}

impl Difference {
    /// A difference with its default severity for `kind` (see the module
    /// docs); change it with [`Difference::severity`].
    pub fn new(
        kind: DifferenceKind,
        target: impl Into<String>,
        subject: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        use DifferenceKind as K;
        let severity = match kind {
            K::MissingTable
            | K::MissingColumn
            | K::TypeMismatch
            | K::NullabilityMismatch
            | K::MissingPrimaryKey
            | K::MissingUnique
            | K::UniqueDiffers
            | K::ValidatorDiffers => Severity::Error,
            K::MissingIndex
            | K::IndexDiffers
            | K::ValidatorMissing
            | K::Unverifiable
            | K::MissingForeignKey
            | K::ForeignKeyDiffers => Severity::Warning,
            K::ExtraColumn => Severity::Info,
        };
        Difference {
            kind,
            severity,
            target: target.into(),
            subject: subject.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// The same difference with another severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The kind in words.
    fn what(&self) -> &'static str {
        use DifferenceKind as K;
        match self.kind {
            K::MissingTable => "missing table",
            K::MissingColumn => "missing column",
            K::ExtraColumn => "extra column",
            K::TypeMismatch => "type mismatch",
            K::NullabilityMismatch => "nullability mismatch",
            K::MissingPrimaryKey => "missing primary key",
            K::MissingUnique => "missing unique",
            K::UniqueDiffers => "unique differs",
            K::MissingIndex => "missing index",
            K::IndexDiffers => "index differs",
            K::ValidatorMissing => "missing validator",
            K::ValidatorDiffers => "validator differs",
            K::Unverifiable => "cannot verify",
            K::MissingForeignKey => "missing foreign key",
            K::ForeignKeyDiffers => "foreign key differs",
        }
    }
}

/// `error: type mismatch: "app"."users"."age": expected bigint, found integer`
impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.severity.name(),
            self.what(),
            self.target
        )?;
        if !self.subject.is_empty() {
            write!(f, " {}", self.subject)?;
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

/// What [`Repository::verify_schema`](crate::Repository::verify_schema) found for one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReport {
    /// The entity's logical name.
    pub entity: &'static str,
    /// The table / collection checked (qualified as the backend names it).
    pub target: String,
    /// Every difference, errors first.
    pub differences: Vec<Difference>,
}

impl SchemaReport {
    /// A report without differences.
    pub fn new(entity: &'static str, target: impl Into<String>) -> Self {
        SchemaReport {
            entity,
            target: target.into(),
            differences: Vec::new(),
        }
    }

    /// Add a difference.
    pub fn push(&mut self, d: Difference) {
        self.differences.push(d);
    }

    /// Sort errors first (stable: the order found within a severity is kept).
    pub fn sorted(mut self) -> Self {
        self.differences
            .sort_by_key(|d| std::cmp::Reverse(d.severity));
        self
    }

    /// No difference of severity [`Severity::Error`].
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The differences of severity [`Severity::Error`].
    pub fn errors(&self) -> impl Iterator<Item = &Difference> {
        self.at(Severity::Error)
    }

    /// The differences of severity [`Severity::Warning`].
    pub fn warnings(&self) -> impl Iterator<Item = &Difference> {
        self.at(Severity::Warning)
    }

    fn at(&self, s: Severity) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(move |d| d.severity == s)
    }

    /// The differences of a kind.
    pub fn of_kind(&self, kind: DifferenceKind) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(move |d| d.kind == kind)
    }

    /// A `Config` error listing every error of the report, one per line
    /// (`None` when [`is_ok`](Self::is_ok)).
    pub fn into_error(&self) -> Option<crate::Error> {
        if self.is_ok() {
            return None;
        }
        let lines: Vec<String> = self.errors().map(ToString::to_string).collect();
        Some(crate::Error::config(format!(
            "schema of entity `{}` ({}) differs from its metadata:\n{}",
            self.entity,
            self.target,
            lines.join("\n")
        )))
    }
}

/// One line per difference; `<target>: schema matches` when there is none.
impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.differences.is_empty() {
            return write!(
                f,
                "{}: schema matches entity `{}`",
                self.target, self.entity
            );
        }
        for (i, d) in self.differences.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_difference_errors_first() {
        let mut r = SchemaReport::new("users", "\"app\".\"users\"");
        assert!(r.is_ok());
        assert_eq!(
            r.to_string(),
            "\"app\".\"users\": schema matches entity `users`"
        );
        r.push(Difference::new(
            DifferenceKind::MissingIndex,
            "\"app\".\"users\"",
            "ix_users_age",
            "index (age)",
            "none",
        ));
        assert!(r.is_ok(), "a warning is not an error");
        r.push(Difference::new(
            DifferenceKind::TypeMismatch,
            "\"app\".\"users\"",
            "column age",
            "bigint",
            "integer",
        ));
        let r = r.sorted();
        assert!(!r.is_ok());
        assert_eq!(
            r.to_string(),
            "error: type mismatch: \"app\".\"users\" column age: expected bigint, found integer\n\
             warning: missing index: \"app\".\"users\" ix_users_age: expected index (age), found none"
        );
        let e = r.into_error().expect("an error");
        assert_eq!(e.kind(), &crate::ErrorKind::Config);
        assert!(e.message().contains("column age: expected bigint"), "{e}");
        assert!(
            !e.message().contains("ix_users_age"),
            "warnings are not listed: {e}"
        );
    }
}
