//! What the error map knows beside the driver error: the constraint names
//! of the table ([`ConstraintNames`]), the repository's [`Hints`], whether an
//! operation may write, and the sqlx error inside a sea-orm error. A leaf:
//! the dialect maps and the entry points all use it.

use std::sync::{Arc, OnceLock};

use persistence_core::EntityMeta;
use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

/// Names used to map constraint violations back to metadata.
#[derive(Debug, Clone, Default)]
// Only the PostgreSQL map reads the names (SQLite does not report them).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct ConstraintNames {
    /// The primary-key constraint the library creates (`pk_<entity>`).
    pub(crate) primary_key: String,
    /// The primary-key constraint of the table as it is (a table the
    /// library did not create may call it anything), looked up once on the
    /// first unique violation that names an unknown constraint.
    pub(crate) actual_primary_key: Arc<OnceLock<String>>,
    /// Unique constraints (`IndexMeta::name`) and their fields.
    pub(crate) uniques: Vec<(String, Vec<&'static str>)>,
    /// Foreign keys this table holds (its `belongs_to`) and those of the
    /// children it declares (`has_many` / `has_one`): constraint and relation.
    pub(crate) foreign_keys: Vec<ForeignKeyName>,
}

/// A foreign key constraint and the relation it enforces.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKeyName {
    /// `fk_<child>_<key>`.
    pub(crate) constraint: String,
    /// `<child>.<relation>`.
    pub(crate) relation: String,
    /// This table holds the key (else: a child table does).
    pub(crate) child: bool,
    /// `on_delete = restrict`: the only kind a delete can violate.
    pub(crate) restrict: bool,
}

/// The error of a foreign key violation (PostgreSQL 23503, SQLite 787):
/// a delete or purge still referenced is `Conflict(Referenced)`, any other
/// write naming a missing parent `Conflict(MissingParent)`; the relation
/// comes from the constraint, or (SQLite names none) from the one relation
/// on that side, when there is one.
pub(crate) fn foreign_key_error(
    names: &ConstraintNames,
    constraint: Option<&str>,
    op: Option<&str>,
    detail: &str,
) -> persistence_core::Error {
    let deleting = matches!(
        op,
        Some("delete" | "delete_many" | "purge" | "find_one_and_delete")
    );
    let known = constraint.and_then(|c| names.foreign_keys.iter().find(|f| f.constraint == c));
    let relation = match (known, constraint) {
        (Some(f), _) => f.relation.clone(),
        (None, Some(c)) => c.to_string(),
        (None, None) => {
            let side: Vec<&str> = names
                .foreign_keys
                .iter()
                .filter(|f| {
                    if deleting {
                        !f.child && f.restrict
                    } else {
                        f.child
                    }
                })
                .map(|f| f.relation.as_str())
                .collect();
            if side.is_empty() {
                "unknown".to_string()
            } else {
                side.join(" | ")
            }
        }
    };
    if deleting {
        persistence_core::Error::referenced(
            relation,
            format!("{detail}: other rows still refer to this row"),
        )
    } else {
        persistence_core::Error::missing_parent(
            relation,
            format!("{detail}: the referenced row does not exist"),
        )
    }
}

impl ConstraintNames {
    /// Whether `constraint` is the foreign key of a declared relation of
    /// this table (its own `belongs_to` or a declared child's).
    pub(crate) fn is_foreign_key(&self, constraint: Option<&str>) -> bool {
        constraint.is_some_and(|c| self.foreign_keys.iter().any(|f| f.constraint == c))
    }

    /// The names the library gives the constraints of `meta`'s table.
    pub(crate) fn of(meta: &EntityMeta) -> ConstraintNames {
        let mut primary_key = format!("pk_{}", meta.name);
        // Identifiers are ASCII (validated); PostgreSQL keeps 63 bytes.
        primary_key.truncate(63);
        ConstraintNames {
            primary_key,
            actual_primary_key: Arc::default(),
            uniques: meta
                .uniques()
                .map(|u| (u.name.clone(), u.fields.clone()))
                .collect(),
            foreign_keys: foreign_keys(meta),
        }
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn is_primary_key(&self, constraint: &str) -> bool {
        constraint == self.primary_key
            || self
                .actual_primary_key
                .get()
                .is_some_and(|pk| pk == constraint)
    }

    /// True when a violated constraint is neither a known unique nor a
    /// known primary key, and the table's primary key was not looked up yet.
    #[cfg(feature = "postgres")]
    pub(crate) fn needs_primary_key_lookup(&self, constraint: &str) -> bool {
        self.actual_primary_key.get().is_none()
            && !self.is_primary_key(constraint)
            && !self.uniques.iter().any(|(n, _)| n == constraint)
    }
}

/// The foreign keys of `meta`'s table and of the children it declares.
fn foreign_keys(meta: &EntityMeta) -> Vec<ForeignKeyName> {
    use persistence_core::relation::RelationKind;
    let mut out: Vec<ForeignKeyName> = meta
        .belongs_to()
        .map(|r| ForeignKeyName {
            constraint: r.constraint.clone(),
            relation: meta.relation_path(r),
            child: true,
            restrict: r.on_delete == persistence_core::relation::OnDelete::Restrict,
        })
        .collect();
    for r in meta
        .relations
        .iter()
        .filter(|r| r.kind != RelationKind::BelongsTo)
    {
        let child = (r.target)();
        for b in child.belongs_to().filter(|b| b.key == r.key) {
            out.push(ForeignKeyName {
                constraint: b.constraint.clone(),
                relation: child.relation_path(b),
                child: false,
                restrict: b.on_delete == persistence_core::relation::OnDelete::Restrict,
            });
        }
    }
    out
}

/// Whether operation `op` may change the store: the repository's writes,
/// a commit, DDL, bulk loads, and any operation not known to only read.
pub(crate) fn may_write(op: Option<&str>) -> bool {
    let Some(op) = op else { return true };
    match persistence_core::layer::Op::from_name(op) {
        Some(o) => o.is_write(),
        None => !matches!(
            op,
            "connect" | "ping" | "begin" | "savepoint" | "list_tenants" | "health"
        ),
    }
}

/// What the repository knows beyond the driver error.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct Hints<'a> {
    /// The operation (`insert`, `delete`, ...).
    pub(crate) op: Option<&'static str>,
    /// The column a value-too-long / out-of-range error is about, and the
    /// column's limit (`200` for `varchar(200)`, `12,2` for `numeric(12,2)`).
    pub(crate) column: Option<(&'a str, &'a str)>,
}

/// The sqlx error a sea-orm error wraps, if any.
pub(crate) fn sqlx_of(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

/// Constraint names of a `users` table with one unique index, for the tests.
#[cfg(test)]
pub(crate) fn test_names() -> ConstraintNames {
    ConstraintNames {
        primary_key: "pk_users".into(),
        actual_primary_key: Arc::default(),
        uniques: vec![("ux_users_email".into(), vec!["email"])],
        foreign_keys: Vec::new(),
    }
}
