//! Relation metadata: `belongs_to` (the child holds the key) and its
//! reverse `has_many` / `has_one` (declared on the parent). See
//! [`crate::relation`] for the semantics and the typed handles.

use std::fmt;

use crate::error::{Error, Result};

use super::meta::{EntityMeta, FieldMeta};
use super::types::{FieldType, ScalarType};

/// What deleting a parent does to the rows of a `belongs_to` relation that
/// refer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnDelete {
    /// The delete is refused while rows refer to the parent
    /// ([`ConflictKind::Referenced`](crate::ConflictKind::Referenced)).
    #[default]
    Restrict,
    /// The referring rows are deleted with the parent (recursively).
    Cascade,
    /// The referring rows' key is set to null (the key must be an `Option`).
    SetNull,
}

impl OnDelete {
    /// The SQL spelling (`RESTRICT`, `CASCADE`, `SET NULL`).
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }
}

/// Which side of a relation this entity is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationKind {
    /// This entity holds the key (`key` is one of its fields).
    BelongsTo,
    /// The target holds the key; many target rows per row of this entity.
    HasMany,
    /// The target holds the key; at most one target row per row of this entity.
    HasOne,
}

/// One declared relation of an entity.
#[derive(Clone)]
pub struct RelationMeta {
    /// The relation's name (`customer`, `orders`): the typed handle is its
    /// upper-case form (`Order::CUSTOMER`, `Customer::ORDERS`).
    pub name: &'static str,
    /// Which side.
    pub kind: RelationKind,
    /// The other entity's metadata. Call it only after this entity's
    /// metadata is built (relations may be mutual).
    pub target: fn() -> &'static EntityMeta,
    /// The stored name of the key field: on this entity for `BelongsTo`, on
    /// the target for `HasMany` / `HasOne`.
    pub key: &'static str,
    /// What deleting the parent does (`BelongsTo` only; `Restrict` otherwise).
    pub on_delete: OnDelete,
    /// The foreign key constraint's name (`fk_<entity>_<key>`, shortened
    /// with a hash past 63 bytes) for `BelongsTo`; empty otherwise.
    pub constraint: String,
}

impl fmt::Debug for RelationMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelationMeta")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("on_delete", &self.on_delete)
            .field("constraint", &self.constraint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RelationMeta {
    fn eq(&self, other: &Self) -> bool {
        // The target is compared by what it is, not by function address.
        (
            self.name,
            self.kind,
            self.key,
            self.on_delete,
            &self.constraint,
        ) == (
            other.name,
            other.kind,
            other.key,
            other.on_delete,
            &other.constraint,
        )
    }
}

/// A relation as the builder receives it.
#[derive(Debug)]
pub(super) struct Declared {
    pub(super) name: &'static str,
    pub(super) kind: RelationKind,
    pub(super) target: fn() -> &'static EntityMeta,
    pub(super) key: &'static str,
    pub(super) on_delete: OnDelete,
}

/// Check the declared relations of `entity` against its fields (the
/// target's metadata is not read here: relations may be mutual).
pub(super) fn check(
    entity: &'static str,
    fields: &[FieldMeta],
    declared: Vec<Declared>,
) -> Result<Vec<RelationMeta>> {
    let mut out: Vec<RelationMeta> = Vec::with_capacity(declared.len());
    for d in declared {
        super::meta::validate_identifier(d.name)?;
        if out.iter().any(|r| r.name == d.name) {
            return Err(Error::config(format!(
                "{entity}: two relations are named `{}` (give one a `name = ..`)",
                d.name
            )));
        }
        let mut constraint = String::new();
        if d.kind == RelationKind::BelongsTo {
            let Some(f) = fields.iter().find(|f| f.name == d.key) else {
                return Err(Error::config(format!(
                    "{entity}: relation `{}` names unknown key field `{}`",
                    d.name, d.key
                )));
            };
            let key_like = matches!(
                f.ty,
                FieldType::Scalar(
                    ScalarType::String
                        | ScalarType::I16
                        | ScalarType::I32
                        | ScalarType::I64
                        | ScalarType::Uuid
                )
            );
            if f.id || f.version || !key_like {
                return Err(Error::config(format!(
                    "{entity}: the key `{}` of relation `{}` must be a String, integer or Uuid field (not the id or version)",
                    d.key, d.name
                )));
            }
            if d.on_delete == OnDelete::SetNull && !f.nullable {
                return Err(Error::config(format!(
                    "{entity}: relation `{}` is on_delete = set_null, so its key `{}` must be an Option",
                    d.name, d.key
                )));
            }
            if out
                .iter()
                .any(|r| r.kind == RelationKind::BelongsTo && r.key == d.key)
            {
                return Err(Error::config(format!(
                    "{entity}: two belongs_to relations use the key `{}`",
                    d.key
                )));
            }
            constraint = super::meta::constraint_name("fk", entity, &[d.key]);
        } else {
            validate_key(entity, d.name, d.key)?;
        }
        out.push(RelationMeta {
            name: d.name,
            kind: d.kind,
            target: d.target,
            key: d.key,
            on_delete: if d.kind == RelationKind::BelongsTo {
                d.on_delete
            } else {
                OnDelete::Restrict
            },
            constraint,
        });
    }
    Ok(out)
}

fn validate_key(entity: &str, name: &str, key: &str) -> Result<()> {
    super::meta::validate_identifier(key).map_err(|_| {
        Error::config(format!(
            "{entity}: relation `{name}` names an invalid key `{key}`"
        ))
    })
}

impl EntityMeta {
    /// The declared relation named `name`.
    pub fn relation(&self, name: &str) -> Option<&RelationMeta> {
        self.relations.iter().find(|r| r.name == name)
    }

    /// The `belongs_to` relations (this entity holds the key).
    pub fn belongs_to(&self) -> impl Iterator<Item = &RelationMeta> {
        self.relations
            .iter()
            .filter(|r| r.kind == RelationKind::BelongsTo)
    }

    /// `<entity>.<relation>`, the name errors and constraints use.
    pub fn relation_path(&self, relation: &RelationMeta) -> String {
        format!("{}.{}", self.name, relation.name)
    }
}

impl super::meta::EntityMetaBuilder {
    /// Declare a `belongs_to` relation: the field `key` (stored name) holds
    /// the id of a `target` row; deleting that row does `on_delete`.
    pub fn belongs_to(
        mut self,
        name: &'static str,
        target: fn() -> &'static EntityMeta,
        key: &'static str,
        on_delete: OnDelete,
    ) -> Self {
        self.relations.push(Declared {
            name,
            kind: RelationKind::BelongsTo,
            target,
            key,
            on_delete,
        });
        self
    }

    /// Declare the reverse of a target's `belongs_to`: `target` rows whose
    /// field `key` holds this entity's id (`many`: `has_many`, else `has_one`).
    pub fn has(
        mut self,
        name: &'static str,
        target: fn() -> &'static EntityMeta,
        key: &'static str,
        many: bool,
    ) -> Self {
        self.relations.push(Declared {
            name,
            kind: if many {
                RelationKind::HasMany
            } else {
                RelationKind::HasOne
            },
            target,
            key,
            on_delete: OnDelete::Restrict,
        });
        self
    }
}
