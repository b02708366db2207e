//! Atomic partial updates: [`Update`], built from the typed field handles
//! `#[derive(Entity)]` generates, and the [`Guard`] a
//! [`patch`](crate::Repository::patch) may carry.
//!
//! ```
//! use persistence_core::{Guard, Update};
//! # use persistence_core::conformance::entities::Person;
//! let update = Update::<Person>::new().inc(Person::AGE, 1).set(Person::NAME, "Ada");
//! let guard = Guard::when(Person::AGE.gte(18));
//! # let _ = (update, guard);
//! ```
//!
//! Each method is typed by the field: `inc` takes a number of the field's
//! type and exists only on numeric fields, `unset` only on `Option` fields,
//! `push`/`pull` only on `Vec` fields, so `inc(Person::NAME, 1)` does not
//! compile:
//!
//! ```compile_fail
//! # use persistence_core::Update;
//! # use persistence_core::conformance::entities::Person;
//! let update = Update::<Person>::new().inc(Person::NAME, 1);
//! ```
//!
//! Backends apply an update in one statement on the server
//! (`UPDATE … SET x = x + $1 … RETURNING`, MongoDB `findOneAndUpdate`…),
//! never by reading, changing and writing back in the client; a versioned
//! entity gets `version + 1` in the same statement.
//!
//! # Semantics (every backend; the conformance suite pins them)
//!
//! * **Checking.** Before a backend sees it, an update is checked against
//!   the entity's metadata ([`Update::checked`]); each of these is
//!   [`InvalidInput`](crate::ErrorKind::InvalidInput) naming the field: an
//!   empty update; a value that could not be serialized
//!   ([`Update::invalid`]); an unknown path; the id field; the version field
//!   (the repository manages it); two assignments on the same or
//!   overlapping paths (`profile` and `profile.level`); `unset` (or `set`
//!   to null) on a field that is not an `Option`; `inc`/`mul` on a
//!   non-numeric field, `min`/`max` on a field without an order (booleans,
//!   bytes, UUIDs, enums, arrays, JSON); `push`/`pull` on a field that is
//!   not an array (and on nested paths); a value that does not normalize to
//!   the field's type (`inc` of an `i32` field by a number past `i32`).
//! * **Null.** `inc` and `mul` count a null field as 0 (`inc` sets it to
//!   the operand, `mul` to 0); `min` and `max` on a null field set the
//!   value; `push` on a null array gives `[value]`; `pull` on a null array
//!   leaves it null.
//! * **Arrays.** `push` appends one element; `pull` removes every element
//!   equal to the value (the filter's equality), keeping the others in order.
//! * **Overflow.** An `inc` or `mul` whose result leaves the range of an
//!   integer field's type (`i64`, and the `i32`/`i16` column) is
//!   `InvalidInput`, and nothing changes: for `patch` the row, for
//!   `update_where` every row. Float arithmetic follows IEEE (overflow to
//!   infinity is backend-specific: PostgreSQL refuses it); decimals are
//!   exact where the backend stores decimals (SQLite stores them as text
//!   and refuses arithmetic on them with `Unsupported`).
//! * **Nested paths** inside JSON fields (`Person::PROFILE.nested::<i64>("level")`)
//!   take `set`, `unset` (the value becomes JSON null), `inc`, `mul`,
//!   `min` and `max` with JSON numbers; the objects above the addressed
//!   value must exist (what happens to a missing parent differs between
//!   backends). Several nested paths of one JSON field may be changed in
//!   one update.
//! * **Guards.** A [`Guard`] filter is evaluated on the stored row before
//!   the change; a `patch` whose row is missing is `NotFound`, whose guard
//!   version differs `Conflict(Version)`, whose guard filter does not match
//!   `Conflict(Guard)`, checked in that order; nothing changes then. SQL
//!   backends learn which of these it was from a second, read-only query
//!   that runs only when the update matched no row.
//! * **Versions.** Every row an update changes gets `version + 1` (once per
//!   statement, however many fields change).
//!
//! [`Update::apply_to`] is the reference application of a checked update
//! to a record: the memory backend uses it, and the other backends must
//! give the same result.

use std::marker::PhantomData;

use serde::Serialize;

use crate::filter::{Compatible, Field, FieldPath, Filter};
use crate::value::Value;

mod apply;
mod check;

/// What an [`Update`] does to one field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UpdateOp {
    /// Replace the value.
    Set(Value),
    /// Set to null (`Option` fields only).
    Unset,
    /// Add a number (a negative one subtracts); a null field counts as 0.
    Inc(Value),
    /// Multiply by a number; a null field counts as 0.
    Mul(Value),
    /// Replace the value when the given one is smaller (or the field is null).
    Min(Value),
    /// Replace the value when the given one is larger (or the field is null).
    Max(Value),
    /// Append an element to an array field (a null array becomes `[value]`).
    Push(Value),
    /// Remove every element equal to the value from an array field.
    Pull(Value),
}

/// One field and what to do to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Stored field path (dotted inside JSON fields).
    pub field: FieldPath,
    /// The change.
    pub op: UpdateOp,
}

/// A typed field handle, by value or by reference: lets the builders take
/// `Person::AGE` as well as `&Person::AGE`, and infer the field's type.
pub trait FieldRef {
    /// The entity the field belongs to.
    type Entity;
    /// The field's Rust type.
    type Ty;
    /// The stored path.
    fn field_path(&self) -> FieldPath;
}
impl<E, T> FieldRef for Field<E, T> {
    type Entity = E;
    type Ty = T;
    fn field_path(&self) -> FieldPath {
        FieldPath::Owned(self.path().to_string())
    }
}
impl<E, T> FieldRef for &Field<E, T> {
    type Entity = E;
    type Ty = T;
    fn field_path(&self) -> FieldPath {
        FieldPath::Owned(self.path().to_string())
    }
}

/// Field types `inc` and `mul` accept, with the type of the operand
/// (`i32` for an `Option<i32>` field).
pub trait Numeric {
    /// The operand type.
    type Operand: Serialize;
}
macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t { type Operand = $t; }
    )*};
}
numeric!(i16, i32, i64, u16, u32, f32, f64);
#[cfg(feature = "decimal")]
numeric!(rust_decimal::Decimal);
impl<T: Numeric> Numeric for Option<T> {
    type Operand = T::Operand;
}

/// Array field types (`Vec<T>`, `Option<Vec<T>>`) with their element type.
pub trait ArrayField {
    /// The element type.
    type Element;
}
impl<T> ArrayField for Vec<T> {
    type Element = T;
}
impl<T> ArrayField for Option<Vec<T>> {
    type Element = T;
}

/// An atomic partial update of entities `E`: an ordered list of
/// [`Assignment`]s, at most one per field. Build it with the typed methods;
/// a value that cannot be serialized makes the update invalid
/// (`InvalidInput` when it is used), as a filter does.
pub struct Update<E> {
    assignments: Vec<Assignment>,
    invalid: Option<String>,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Clone for Update<E> {
    fn clone(&self) -> Self {
        Update {
            assignments: self.assignments.clone(),
            invalid: self.invalid.clone(),
            _entity: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for Update<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update")
            .field("assignments", &self.assignments)
            .field("invalid", &self.invalid)
            .finish()
    }
}

impl<E> PartialEq for Update<E> {
    fn eq(&self, other: &Self) -> bool {
        self.assignments == other.assignments && self.invalid == other.invalid
    }
}

impl<E> Default for Update<E> {
    fn default() -> Self {
        Update::new()
    }
}

impl<E> Update<E> {
    /// An empty update (using it is `InvalidInput`: it must change something).
    pub fn new() -> Self {
        Update {
            assignments: Vec::new(),
            invalid: None,
            _entity: PhantomData,
        }
    }

    /// The assignments, in the order they were added.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// Why the update could not be built, if it could not.
    pub fn invalid(&self) -> Option<&str> {
        self.invalid.as_deref()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.assignments.is_empty()
    }

    /// Add an assignment by untyped path (checked against the entity's
    /// metadata when the update runs).
    pub fn assign(mut self, field: impl Into<FieldPath>, op: UpdateOp) -> Self {
        self.assignments.push(Assignment {
            field: field.into(),
            op,
        });
        self
    }

    fn push_value(
        mut self,
        field: FieldPath,
        value: std::result::Result<Value, String>,
        op: fn(Value) -> UpdateOp,
    ) -> Self {
        match value {
            Ok(v) => self.assignments.push(Assignment { field, op: op(v) }),
            Err(e) => {
                self.invalid.get_or_insert(format!("field `{field}`: {e}"));
            }
        }
        self
    }

    /// `field = value`
    pub fn set<F: FieldRef<Entity = E>>(self, field: F, value: impl Compatible<F::Ty>) -> Self {
        self.push_value(field.field_path(), value.to_filter_value(), UpdateOp::Set)
    }

    /// `field = null` (`Option` fields only).
    pub fn unset<T, F: FieldRef<Entity = E, Ty = Option<T>>>(self, field: F) -> Self {
        self.assign(field.field_path(), UpdateOp::Unset)
    }

    /// `field = field + by` (numeric fields only; a negative `by` subtracts).
    pub fn inc<F>(self, field: F, by: <F::Ty as Numeric>::Operand) -> Self
    where
        F: FieldRef<Entity = E>,
        F::Ty: Numeric,
    {
        self.push_value(field.field_path(), operand(&by), UpdateOp::Inc)
    }

    /// `field = field * by` (numeric fields only).
    pub fn mul<F>(self, field: F, by: <F::Ty as Numeric>::Operand) -> Self
    where
        F: FieldRef<Entity = E>,
        F::Ty: Numeric,
    {
        self.push_value(field.field_path(), operand(&by), UpdateOp::Mul)
    }

    /// `field = min(field, value)`
    pub fn min<F: FieldRef<Entity = E>>(self, field: F, value: impl Compatible<F::Ty>) -> Self {
        self.push_value(field.field_path(), value.to_filter_value(), UpdateOp::Min)
    }

    /// `field = max(field, value)`
    pub fn max<F: FieldRef<Entity = E>>(self, field: F, value: impl Compatible<F::Ty>) -> Self {
        self.push_value(field.field_path(), value.to_filter_value(), UpdateOp::Max)
    }

    /// Append `value` to an array field.
    pub fn push<F>(self, field: F, value: impl Compatible<<F::Ty as ArrayField>::Element>) -> Self
    where
        F: FieldRef<Entity = E>,
        F::Ty: ArrayField,
    {
        self.push_value(field.field_path(), value.to_filter_value(), UpdateOp::Push)
    }

    /// Remove every element equal to `value` from an array field.
    pub fn pull<F>(self, field: F, value: impl Compatible<<F::Ty as ArrayField>::Element>) -> Self
    where
        F: FieldRef<Entity = E>,
        F::Ty: ArrayField,
    {
        self.push_value(field.field_path(), value.to_filter_value(), UpdateOp::Pull)
    }
}

fn operand<T: Serialize>(v: &T) -> std::result::Result<Value, String> {
    Value::from_serialize(v).map_err(|e| e.message().to_string())
}

/// Conditions a [`patch`](crate::Repository::patch) must meet to apply: a
/// filter the stored row must match and/or the version it must have. A
/// failed filter is `Conflict(Guard)`, a failed version `Conflict(Version)`,
/// a missing row `NotFound`; in each case nothing changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guard {
    /// The stored row must match this filter.
    pub filter: Option<Filter>,
    /// The stored version must equal this (versioned entities only).
    pub version: Option<i64>,
}

impl Guard {
    /// No condition: the update applies to whatever is stored.
    pub fn none() -> Guard {
        Guard::default()
    }
    /// Apply only when the stored row matches `filter` (`Inventory::STOCK.gte(2)`).
    pub fn when(filter: Filter) -> Guard {
        Guard {
            filter: Some(filter),
            version: None,
        }
    }
    /// Apply only when the stored version is `version`.
    pub fn version(version: i64) -> Guard {
        Guard {
            filter: None,
            version: Some(version),
        }
    }
    /// Also require the stored version to be `version`.
    pub fn and_version(mut self, version: i64) -> Guard {
        self.version = Some(version);
        self
    }
}
