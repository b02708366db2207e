//! Entity metadata: fields, indexes and the builder that validates them,
//! and the resolution of dotted field paths against it.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::names::{NameKind, reserved_reason};

use self::relation::{Declared, RelationMeta};
use super::hash::StableHasher;
use super::shape::Shape;
use super::text::{TextLanguage, TextSearch};
use super::types::{FieldType, ScalarType};
use super::vector::{VectorField, VectorSpec};

/// Metadata of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMeta {
    /// The serialized (and stored) name.
    pub name: &'static str,
    /// The Rust field name.
    pub rust_name: &'static str,
    /// Storage type class.
    pub ty: FieldType,
    /// `Option<T>`: may be null.
    pub nullable: bool,
    /// The id field.
    pub id: bool,
    /// The optimistic-locking version field (`i64`).
    pub version: bool,
    /// Unique on its own.
    pub unique: bool,
    /// Indexed on its own.
    pub index: bool,
    /// Expire documents this long after the field's timestamp (backends with TTL indexes).
    pub ttl: Option<Duration>,
}

/// A (possibly composite) index or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMeta {
    /// Deterministic name: `ux_`/`ix_` + entity + fields, shortened with a hash past 63 bytes.
    pub name: String,
    /// Stored field names, in order.
    pub fields: Vec<&'static str>,
    /// Unique constraint.
    pub unique: bool,
    /// The index covers only the rows where this field is null: set to the
    /// soft-delete field on soft-deletable entities, so a unique
    /// constraint ignores deleted rows (a partial index).
    pub live_only: Option<&'static str>,
}

/// A field the repository manages (see [`crate::lifecycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Managed {
    /// Set to the write's time by `insert`, never changed afterwards.
    CreatedAt,
    /// Set to the write's time by every write of the row.
    UpdatedAt,
    /// `Option<DateTime<Utc>>`: `delete` sets it, reads skip rows where it is set.
    SoftDelete,
}

/// Metadata of an entity type.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityMeta {
    /// Logical name (table / collection / cache namespace).
    pub name: &'static str,
    /// All fields in declaration order.
    pub fields: Vec<FieldMeta>,
    /// Index of the id field in `fields`.
    pub id_index: usize,
    /// Index of the version field, if any.
    pub version_index: Option<usize>,
    /// Unique constraints and indexes (field-level and struct-level), id excluded.
    pub indexes: Vec<IndexMeta>,
    /// The `#[entity(created_at)]` field (index in `fields`).
    pub created_at: Option<usize>,
    /// The `#[entity(updated_at)]` field (index in `fields`).
    pub updated_at: Option<usize>,
    /// The `#[entity(soft_delete)]` field (index in `fields`).
    pub soft_delete: Option<usize>,
    /// A fingerprint of everything above; changes when the stored shape changes.
    pub schema_version: u64,
    /// Known shapes of [`FieldType::Json`] fields, parallel to `fields`
    /// (see [`EntityMeta::shape`]). Not part of `schema_version`.
    shapes: Vec<Option<Shape>>,
    /// The `#[entity(tenant)]` field (index in `fields`): row-level tenancy,
    /// see [`crate::tenant`].
    pub tenant: Option<usize>,
    /// The `#[entity(vector(..))]` fields (see [`crate::vector`]), in field order.
    pub vectors: Vec<VectorField>,
    /// Declared relations (see [`crate::relation`]), in declaration order.
    pub relations: Vec<RelationMeta>,
    /// The `#[entity(text_search)]` fields and their language (see [`crate::text`]).
    pub text: Option<TextSearch>,
    /// The `#[entity(generated)]` fields (indexes in `fields`): the database
    /// fills them. An insert leaves such a column out (`DEFAULT`) while the
    /// field is unset ([`EntityMeta::is_unset_generated`]: `0` / `""` / the
    /// nil UUID for the id, `None` for other fields) and the stored row,
    /// with the value the database assigned, comes back from `insert`;
    /// `update` and `upsert` never write these columns (other than the id).
    pub generated: Vec<usize>,
    /// The `#[entity(object_id)]` fields (indexes in `fields`): `String`
    /// fields holding an ObjectId in its 24-digit hex form, stored by
    /// MongoDB as an ObjectId (other backends keep the text).
    pub object_ids: Vec<usize>,
    /// Per field (in `fields` order): the key serde writes the field under.
    /// The field's stored name (its column / document key) unless
    /// `#[entity(column = "..")]` names the column apart from the Rust side.
    pub serde_keys: Vec<&'static str>,
}

/// Builder used by the derive macro (and by hand-written impls).
#[derive(Debug)]
pub struct EntityMetaBuilder {
    name: &'static str,
    fields: Vec<FieldMeta>,
    composite: Vec<(Vec<&'static str>, bool)>,
    shapes: Vec<(&'static str, Shape)>,
    managed: Vec<(Managed, &'static str)>,
    tenant: Option<&'static str>,
    vectors: Vec<(&'static str, VectorSpec)>,
    pub(super) relations: Vec<Declared>,
    text: Vec<(&'static str, TextLanguage)>,
    generated: Vec<&'static str>,
    object_ids: Vec<&'static str>,
    serde_keys: Vec<(&'static str, &'static str)>,
}

impl EntityMeta {
    /// Start building metadata for entity `name`.
    pub fn builder(name: &'static str) -> EntityMetaBuilder {
        EntityMetaBuilder {
            name,
            fields: Vec::new(),
            composite: Vec::new(),
            shapes: Vec::new(),
            managed: Vec::new(),
            tenant: None,
            vectors: Vec::new(),
            relations: Vec::new(),
            text: Vec::new(),
            generated: Vec::new(),
            object_ids: Vec::new(),
            serde_keys: Vec::new(),
        }
    }

    /// The key serde writes field `index` under (see [`EntityMeta::serde_keys`]).
    pub fn serde_key(&self, index: usize) -> &'static str {
        self.serde_keys
            .get(index)
            .copied()
            .unwrap_or(self.fields[index].name)
    }

    /// Whether field `index` is `#[entity(generated)]` and `value` (its
    /// normalized value) leaves it to the database: `0`, `""` or the nil
    /// UUID for the id, null for other fields.
    pub fn is_unset_generated(&self, index: usize, value: &crate::Value) -> bool {
        use crate::Value as V;
        self.generated.contains(&index)
            && match value {
                V::Null => true,
                V::I64(0) => index == self.id_index,
                V::String(s) => index == self.id_index && s.is_empty(),
                V::Uuid(u) => index == self.id_index && u.is_nil(),
                _ => false,
            }
    }

    /// The vector field with this stored name, if it is one.
    pub fn vector(&self, name: &str) -> Option<&VectorField> {
        self.vectors.iter().find(|v| v.name == name)
    }

    /// The inner shape of a [`FieldType::Json`] field (by index in
    /// `fields`), when its type declares one: nested structs deriving
    /// [`Embedded`](derive@crate::Embedded), and `Option`/`Vec`/`Box`/maps of
    /// such types. `None` for other fields and for shapes nobody declared.
    pub fn shape(&self, index: usize) -> Option<&Shape> {
        self.shapes.get(index).and_then(Option::as_ref)
    }

    /// The id field.
    pub fn id_field(&self) -> &FieldMeta {
        &self.fields[self.id_index]
    }

    /// The version field, if any.
    pub fn version_field(&self) -> Option<&FieldMeta> {
        self.version_index.map(|i| &self.fields[i])
    }

    /// Find a field by stored name.
    pub fn field(&self, name: &str) -> Option<(usize, &FieldMeta)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// The soft-delete field, if the entity has one.
    pub fn soft_delete_field(&self) -> Option<&FieldMeta> {
        self.soft_delete.map(|i| &self.fields[i])
    }

    /// The tenant field, if the entity is tenant-scoped (`#[entity(tenant)]`).
    pub fn tenant_field(&self) -> Option<&FieldMeta> {
        self.tenant.map(|i| &self.fields[i])
    }

    /// Unique constraints only.
    pub fn uniques(&self) -> impl Iterator<Item = &IndexMeta> {
        self.indexes.iter().filter(|i| i.unique)
    }

    /// Resolve and validate a dotted path against this entity.
    ///
    /// The first segment must be a field; further segments are only allowed
    /// into [`FieldType::Json`] fields. Every segment must be non-empty, must
    /// not start with `$`, and must not contain NUL, `.` or control characters
    /// (so paths can never smuggle an operator or break out of a quoted identifier).
    pub fn resolve_path<'p>(&self, path: &'p str) -> Result<ResolvedPath<'p>> {
        let mut segs = path.split('.');
        let first = segs.next().unwrap_or("");
        let Some((index, field)) = self.field(first) else {
            return Err(Error::invalid_input(format!(
                "unknown field `{}` on {}",
                printable(first),
                self.name
            )));
        };
        let rest: Vec<&str> = segs.collect();
        if !rest.is_empty() && field.ty != FieldType::Json {
            return Err(Error::invalid_input(format!(
                "field `{}` of {} has no nested fields",
                field.name, self.name
            )));
        }
        for seg in &rest {
            validate_segment(seg)?;
        }
        Ok(ResolvedPath { index, rest })
    }
}

fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}

/// Check one segment of a nested path.
pub fn validate_segment(seg: &str) -> Result<()> {
    if seg.is_empty() {
        return Err(Error::invalid_input("empty segment in field path"));
    }
    if seg.len() > 255 {
        return Err(Error::invalid_input(
            "field path segment longer than 255 bytes",
        ));
    }
    if seg.starts_with('$') {
        return Err(Error::invalid_input(format!(
            "field path segment `{}` must not start with `$`",
            printable(seg)
        )));
    }
    if seg.chars().any(|c| c.is_control() || c == '.') {
        return Err(Error::invalid_input(format!(
            "field path segment `{}` contains a control character",
            printable(seg)
        )));
    }
    Ok(())
}

/// A validated path: a field plus segments inside it (JSON fields only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath<'p> {
    /// Index of the top-level field in [`EntityMeta::fields`].
    pub index: usize,
    /// Segments below the field (empty for a plain field).
    pub rest: Vec<&'p str>,
}

impl ResolvedPath<'_> {
    /// The type of the addressed value: the field's own type, or `Json` inside a JSON field.
    pub fn ty(&self, meta: &EntityMeta) -> FieldType {
        if self.rest.is_empty() {
            meta.fields[self.index].ty
        } else {
            FieldType::Json
        }
    }
    /// Whether the addressed value may be null.
    pub fn nullable(&self, meta: &EntityMeta) -> bool {
        !self.rest.is_empty() || meta.fields[self.index].nullable
    }
}

impl EntityMetaBuilder {
    /// Add a field.
    pub fn field(mut self, field: FieldMeta) -> Self {
        self.fields.push(field);
        self
    }
    /// Declare the inner shape of a [`FieldType::Json`] field (by stored
    /// name; `None` is ignored, so the derive can pass what it found). Shapes
    /// of fields that are not `Json` are ignored.
    pub fn shape(mut self, field: &'static str, shape: Option<Shape>) -> Self {
        if let Some(shape) = shape {
            self.shapes.push((field, shape));
        }
        self
    }
    /// Mark the field (by stored name) as managed by the repository.
    pub fn managed(mut self, role: Managed, field: &'static str) -> Self {
        self.managed.push((role, field));
        self
    }
    /// Mark the field (by stored name) as the tenant field (row-level
    /// tenancy, see [`crate::tenant`]): a `String`, integer or `Uuid`, not
    /// nullable, not the id or version.
    pub fn tenant(mut self, field: &'static str) -> Self {
        self.tenant = Some(field);
        self
    }
    /// Declare the field (by stored name) a vector field: a `Vec<f32>` or
    /// `Vec<f64>` of `spec.dim` components ranked by `spec.metric`.
    pub fn vector(mut self, field: &'static str, spec: VectorSpec) -> Self {
        self.vectors.push((field, spec));
        self
    }
    /// Declare the `String` field (by stored name) searched by full-text
    /// queries, normalized by `language` (see [`crate::text`]).
    pub fn text_search(mut self, field: &'static str, language: TextLanguage) -> Self {
        self.text.push((field, language));
        self
    }
    /// Mark the field (by stored name) as filled by the database (see
    /// [`EntityMeta::generated`]): the id (an integer, `String` or `Uuid`)
    /// or an `Option` field that is not the version or a managed field.
    pub fn generated(mut self, field: &'static str) -> Self {
        self.generated.push(field);
        self
    }
    /// Mark the `String` field (by stored name) as holding an ObjectId in
    /// hex (see [`EntityMeta::object_ids`]).
    pub fn object_id(mut self, field: &'static str) -> Self {
        self.object_ids.push(field);
        self
    }
    /// The field stored as `field` (its column / document key) is written
    /// by serde under `key` (`#[entity(column = "..")]`: the column is
    /// named apart from the Rust side).
    pub fn serde_key(mut self, field: &'static str, key: &'static str) -> Self {
        self.serde_keys.push((field, key));
        self
    }
    /// Add a composite unique constraint or index over stored field names.
    pub fn composite(mut self, fields: &[&'static str], unique: bool) -> Self {
        self.composite.push((fields.to_vec(), unique));
        self
    }

    /// Validate and finish. The derive macro reports the same problems at
    /// compile time; this check protects hand-written implementations.
    pub fn build(self) -> Result<EntityMeta> {
        let ids: Vec<usize> = positions(&self.fields, |f| f.id);
        let [id_index] = ids[..] else {
            return Err(Error::config(format!(
                "{} must have exactly one id field",
                self.name
            )));
        };
        let versions = positions(&self.fields, |f| f.version);
        if versions.len() > 1 {
            return Err(Error::config(format!(
                "{} has more than one version field",
                self.name
            )));
        }
        if let Some(&v) = versions.first() {
            if self.fields[v].ty != FieldType::Scalar(ScalarType::I64) || self.fields[v].nullable {
                return Err(Error::config(format!(
                    "{}: the version field must be i64",
                    self.name
                )));
            }
        }
        match self.fields[id_index].ty {
            FieldType::Scalar(
                ScalarType::String
                | ScalarType::I16
                | ScalarType::I32
                | ScalarType::I64
                | ScalarType::Uuid,
            ) if !self.fields[id_index].nullable => {}
            other => {
                return Err(Error::config(format!(
                    "{}: the id must be a String, integer or Uuid, not {other:?}",
                    self.name
                )));
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::config(format!(
                    "{}: duplicate field `{}`",
                    self.name, f.name
                )));
            }
            validate_identifier(f.name)?;
        }
        validate_identifier(self.name)?;
        // Tables and collections are named after the entity.
        if let Some(why) = reserved_reason(NameKind::Table, self.name) {
            return Err(Error::config(format!(
                "entity name `{}` is reserved ({why}): it names the table / collection",
                self.name
            )));
        }
        let (mut created_at, mut updated_at, mut soft_delete) = (None, None, None);
        for &(role, name) in &self.managed {
            let Some(i) = self.fields.iter().position(|f| f.name == name) else {
                return Err(Error::config(format!(
                    "{}: {role:?} names unknown field `{name}`",
                    self.name
                )));
            };
            let f = &self.fields[i];
            if f.id || f.version || f.ty != FieldType::Scalar(ScalarType::DateTime) {
                return Err(Error::config(format!(
                    "{}: the {role:?} field `{name}` must be a DateTime<Utc> (not the id or version)",
                    self.name
                )));
            }
            if role == Managed::SoftDelete && !f.nullable {
                return Err(Error::config(format!(
                    "{}: the soft-delete field `{name}` must be an Option<DateTime<Utc>>",
                    self.name
                )));
            }
            let slot = match role {
                Managed::CreatedAt => &mut created_at,
                Managed::UpdatedAt => &mut updated_at,
                Managed::SoftDelete => &mut soft_delete,
            };
            if slot.replace(i).is_some() {
                return Err(Error::config(format!(
                    "{}: more than one {role:?} field",
                    self.name
                )));
            }
        }
        let roles = [created_at, updated_at, soft_delete];
        if roles
            .iter()
            .enumerate()
            .any(|(k, a)| a.is_some() && roles[k + 1..].contains(a))
        {
            return Err(Error::config(format!(
                "{}: one field cannot have two managed roles",
                self.name
            )));
        }
        let live_only = soft_delete.map(|i| self.fields[i].name);
        let mut indexes = Vec::new();
        for f in &self.fields {
            if f.id {
                continue;
            }
            if f.unique {
                indexes.push(IndexMeta::new(self.name, vec![f.name], true, live_only));
            } else if f.index || f.ttl.is_some() {
                indexes.push(IndexMeta::new(self.name, vec![f.name], false, None));
            }
        }
        // The key of a belongs_to relation is indexed (cascades, restrict
        // checks and has_many loads look rows up by it), unless an index
        // already starts with it.
        for d in self
            .relations
            .iter()
            .filter(|d| d.kind == relation::RelationKind::BelongsTo)
        {
            let covered = indexes
                .iter()
                .any(|i: &IndexMeta| i.fields.first() == Some(&d.key))
                || self
                    .composite
                    .iter()
                    .any(|(c, _)| c.first() == Some(&d.key));
            if !covered && self.fields.iter().any(|f| f.name == d.key) {
                indexes.push(IndexMeta::new(self.name, vec![d.key], false, None));
            }
        }
        for (fields, unique) in self.composite {
            for name in &fields {
                if !self.fields.iter().any(|f| f.name == *name) {
                    return Err(Error::config(format!(
                        "{}: index names unknown field `{name}`",
                        self.name
                    )));
                }
            }
            indexes.push(IndexMeta::new(
                self.name,
                fields,
                unique,
                live_only.filter(|_| unique),
            ));
        }
        let mut h = StableHasher::default();
        self.name.hash(&mut h);
        for f in &self.fields {
            (f.name, f.ty, f.nullable, f.id, f.version).hash(&mut h);
        }
        for i in &indexes {
            (&i.fields, i.unique).hash(&mut h);
            if let Some(f) = i.live_only {
                f.hash(&mut h);
            }
        }
        if created_at.is_some() || updated_at.is_some() || soft_delete.is_some() {
            (created_at, updated_at, soft_delete).hash(&mut h);
        }
        let tenant = self
            .tenant
            .map(|name| tenant_index(self.name, &self.fields, name))
            .transpose()?;
        if let Some(i) = tenant {
            ("tenant", i).hash(&mut h);
        }
        let vectors = vector_fields(self.name, &self.fields, &self.vectors)?;
        for v in &vectors {
            v.spec.hash_into(v.name, &mut h);
        }
        let relations = relation::check(self.name, &self.fields, self.relations)?;
        for r in relations
            .iter()
            .filter(|r| r.kind == relation::RelationKind::BelongsTo)
        {
            // The foreign key is part of the stored shape (SQL constraints).
            // (Not the target's name: reading its metadata here could
            // re-enter this one's initialization.)
            ("belongs_to", r.name, r.key, r.on_delete).hash(&mut h);
        }
        let text = text_search(self.name, &self.fields, &self.text)?;
        if let Some(t) = &text {
            t.hash_into(&mut h);
        }
        let mut generated = Vec::new();
        for name in &self.generated {
            let Some(i) = self.fields.iter().position(|f| f.name == *name) else {
                return Err(Error::config(format!(
                    "{}: `generated` names unknown field `{name}`",
                    self.name
                )));
            };
            let f = &self.fields[i];
            let managed = [created_at, updated_at, soft_delete].contains(&Some(i));
            if !f.id && (!f.nullable || f.version || managed) {
                return Err(Error::config(format!(
                    "{}: the generated field `{name}` must be the id or an Option field \
                     (not the version or a managed field)",
                    self.name
                )));
            }
            if !generated.contains(&i) {
                generated.push(i);
            }
        }
        if !generated.is_empty() {
            ("generated", &generated).hash(&mut h);
        }
        let mut object_ids = Vec::new();
        for name in &self.object_ids {
            match self.fields.iter().position(|f| f.name == *name) {
                Some(i) if self.fields[i].ty == FieldType::Scalar(ScalarType::String) => {
                    if !object_ids.contains(&i) {
                        object_ids.push(i);
                    }
                }
                _ => {
                    return Err(Error::config(format!(
                        "{}: the object_id field `{name}` must be a String field",
                        self.name
                    )));
                }
            }
        }
        if !object_ids.is_empty() {
            ("object_id", &object_ids).hash(&mut h);
        }
        let mut serde_keys: Vec<&'static str> = self.fields.iter().map(|f| f.name).collect();
        for (name, key) in &self.serde_keys {
            let Some(i) = self.fields.iter().position(|f| f.name == *name) else {
                return Err(Error::config(format!(
                    "{}: `column` names unknown field `{name}`",
                    self.name
                )));
            };
            serde_keys[i] = key;
        }
        for (i, key) in serde_keys.iter().enumerate() {
            if serde_keys[..i].contains(key) {
                return Err(Error::config(format!(
                    "{}: two fields are serialized as `{key}`",
                    self.name
                )));
            }
        }
        let mut shapes: Vec<Option<Shape>> = vec![None; self.fields.len()];
        for (name, shape) in self.shapes {
            let Some(i) = self.fields.iter().position(|f| f.name == name) else {
                return Err(Error::config(format!(
                    "{}: shape given for unknown field `{name}`",
                    self.name
                )));
            };
            if self.fields[i].ty == FieldType::Json {
                shapes[i] = Some(shape);
            }
        }
        Ok(EntityMeta {
            name: self.name,
            fields: self.fields,
            id_index,
            version_index: versions.first().copied(),
            indexes,
            created_at,
            updated_at,
            soft_delete,
            schema_version: h.finish(),
            shapes,
            tenant,
            vectors,
            relations,
            text,
            generated,
            object_ids,
            serde_keys,
        })
    }
}

/// The index of the tenant field `name`, checked: a non-null `String`,
/// integer or `Uuid` that is not the id or the version.
fn tenant_index(entity: &str, fields: &[FieldMeta], name: &str) -> Result<usize> {
    let Some(i) = fields.iter().position(|f| f.name == name) else {
        return Err(Error::config(format!(
            "{entity}: the tenant names unknown field `{name}`"
        )));
    };
    let f = &fields[i];
    let scalar = matches!(
        f.ty,
        FieldType::Scalar(
            ScalarType::String
                | ScalarType::I16
                | ScalarType::I32
                | ScalarType::I64
                | ScalarType::Uuid
        )
    );
    if f.id || f.version || f.nullable || !scalar {
        return Err(Error::config(format!(
            "{entity}: the tenant field `{name}` must be a String, integer or Uuid (not optional, not the id or version)"
        )));
    }
    Ok(i)
}

fn vector_fields(
    entity: &str,
    fields: &[FieldMeta],
    declared: &[(&'static str, VectorSpec)],
) -> Result<Vec<VectorField>> {
    let mut out: Vec<VectorField> = Vec::with_capacity(declared.len());
    for &(name, spec) in declared {
        let Some(index) = fields.iter().position(|f| f.name == name) else {
            return Err(Error::config(format!(
                "{entity}: vector names unknown field `{name}`"
            )));
        };
        let f = &fields[index];
        if f.id || !matches!(f.ty, FieldType::Array(ScalarType::F32 | ScalarType::F64)) {
            return Err(Error::config(format!(
                "{entity}.{name}: a vector field must be a Vec<f32> or Vec<f64>"
            )));
        }
        if out.iter().any(|v| v.name == name) {
            return Err(Error::config(format!(
                "{entity}.{name}: declared a vector twice"
            )));
        }
        spec.validate(entity, name)?;
        out.push(VectorField { name, index, spec });
    }
    out.sort_by_key(|v| v.index);
    Ok(out)
}

fn positions(fields: &[FieldMeta], pred: impl Fn(&FieldMeta) -> bool) -> Vec<usize> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| pred(f))
        .map(|(i, _)| i)
        .collect()
}

/// Identifiers that reach SQL or MongoDB (entity and field names): ASCII
/// letter or `_` first, then letters, digits, `_`; at most 63 bytes.
pub fn validate_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "`{}` is not a valid identifier (ASCII letters, digits and _, at most 63 bytes)",
            printable(name)
        )))
    }
}

/// `<prefix>_<entity>_<fields>`, shortened with a hash past 63 bytes.
pub(super) fn constraint_name(prefix: &str, entity: &str, fields: &[&str]) -> String {
    let mut name = format!("{prefix}_{entity}_{}", fields.join("_"));
    if name.len() > 63 {
        let mut h = StableHasher::default();
        name.hash(&mut h);
        let hash = format!("_{:016x}", h.finish());
        name.truncate(63 - hash.len());
        name.push_str(&hash);
    }
    name
}

impl IndexMeta {
    fn new(
        entity: &str,
        fields: Vec<&'static str>,
        unique: bool,
        live_only: Option<&'static str>,
    ) -> Self {
        let prefix = if unique { "ux" } else { "ix" };
        IndexMeta {
            name: constraint_name(prefix, entity, &fields),
            fields,
            unique,
            live_only,
        }
    }
}

/// Check the declared `(field, language)` pairs: string fields, one language.
fn text_search(
    entity: &str,
    fields: &[FieldMeta],
    declared: &[(&'static str, TextLanguage)],
) -> Result<Option<TextSearch>> {
    let Some(&(_, language)) = declared.first() else {
        return Ok(None);
    };
    let mut out = TextSearch {
        fields: Vec::new(),
        names: Vec::new(),
        language,
    };
    for &(name, lang) in declared {
        let Some(i) = fields.iter().position(|f| f.name == name) else {
            return Err(Error::config(format!(
                "{entity}: text_search names unknown field `{name}`"
            )));
        };
        let f = &fields[i];
        if f.id || !matches!(f.ty, FieldType::Scalar(ScalarType::String)) {
            return Err(Error::config(format!(
                "{entity}.{name}: a text_search field must be a String or Option<String>"
            )));
        }
        if lang != language {
            return Err(Error::config(format!(
                "{entity}.{name}: every text_search field must use the same language ({} vs {})",
                lang.name(),
                language.name()
            )));
        }
        if out.fields.contains(&i) {
            return Err(Error::config(format!(
                "{entity}.{name}: declared text_search twice"
            )));
        }
        out.fields.push(i);
    }
    out.fields.sort_unstable();
    out.names = out.fields.iter().map(|&i| fields[i].name).collect();
    Ok(Some(out))
}

// Relation metadata lives in this file: its types and `EntityMeta`'s refer
// to each other.
pub(crate) mod relation {
    //! Relation metadata: `belongs_to` (the child holds the key) and its
    //! reverse `has_many` / `has_one` (declared on the parent). See
    //! [`crate::relation`] for the semantics and the typed handles.
    use std::fmt;

    use crate::error::{Error, Result};

    use crate::entity::meta::{EntityMeta, FieldMeta};
    use crate::entity::types::{FieldType, ScalarType};

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
    pub(crate) struct Declared {
        pub(crate) name: &'static str,
        pub(crate) kind: RelationKind,
        pub(crate) target: fn() -> &'static EntityMeta,
        pub(crate) key: &'static str,
        pub(crate) on_delete: OnDelete,
    }

    /// Check the declared relations of `entity` against its fields (the
    /// target's metadata is not read here: relations may be mutual).
    pub(crate) fn check(
        entity: &'static str,
        fields: &[FieldMeta],
        declared: Vec<Declared>,
    ) -> Result<Vec<RelationMeta>> {
        let mut out: Vec<RelationMeta> = Vec::with_capacity(declared.len());
        for d in declared {
            crate::entity::meta::validate_identifier(d.name)?;
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
                constraint = crate::entity::meta::constraint_name("fk", entity, &[d.key]);
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
        crate::entity::meta::validate_identifier(key).map_err(|_| {
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

    impl crate::entity::meta::EntityMetaBuilder {
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
}
