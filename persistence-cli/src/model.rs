//! What introspection found, independent of the store it came from: tables
//! (or collections) with typed columns, keys, uniques, indexes and foreign
//! keys, and the native enums they use. [`crate::postgres`] and
//! [`crate::mongo`] fill it in, [`crate::codegen`] prints it as Rust.

/// A column's type, as the entity field type that reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// `smallint`: `i16`.
    I16,
    /// `integer` / `serial`: `i32`.
    I32,
    /// `bigint` / `bigserial`: `i64`.
    I64,
    /// `real`: `f32`.
    F32,
    /// `double precision`: `f64`.
    F64,
    /// `numeric(p, s)` / decimal128: `Decimal`.
    Decimal,
    /// `boolean`: `bool`.
    Bool,
    /// `text`, `varchar(n)`, `char(n)`: `String`.
    String,
    /// `uuid`: `Uuid`.
    Uuid,
    /// `timestamptz` / `timestamp` / BSON date: `DateTime<Utc>`.
    DateTime,
    /// `date`: `NaiveDate`.
    Date,
    /// `bytea` / BSON binary: `Vec<u8>`.
    Bytes,
    /// `json` / `jsonb` / an embedded document: `serde_json::Value`.
    Json,
    /// An array of the element type: `Vec<T>`.
    Array(Box<ColumnType>),
    /// A native enum (the [`EnumType`] of this name): a generated
    /// `#[derive(EntityEnum)]` enum.
    Enum(String),
    /// A type the entity cannot hold: the column is left out of the struct
    /// (the repository never reads or writes it), with a comment naming it.
    Unsupported(String),
}

/// One column (field) of a table (collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name as stored.
    pub name: String,
    /// The field type.
    pub ty: ColumnType,
    /// May be null (or absent): the field is an `Option`.
    pub nullable: bool,
    /// The database fills it (identity / serial id, a `DEFAULT now()`-like
    /// default, a generated column): `#[entity(generated)]`.
    pub generated: bool,
    /// MongoDB: an ObjectId held as its hex string (`#[entity(object_id)]`).
    pub object_id: bool,
    /// Not null, no default and left out of the struct: every insert
    /// through the entity would fail (said in the comment).
    pub blocks_inserts: bool,
    /// The type as the database spells it (for comments).
    pub native: String,
}

/// What `ON DELETE` does to the referencing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// `RESTRICT` or `NO ACTION` (both refuse to delete a referenced row).
    Restrict,
    /// `CASCADE`.
    Cascade,
    /// `SET NULL`.
    SetNull,
    /// `SET DEFAULT`: no entity equivalent (the relation is left out).
    SetDefault,
}

/// A single-column foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The constraint's name.
    pub name: String,
    /// The referencing column.
    pub column: String,
    /// The referenced table.
    pub table: String,
    /// The referenced column.
    pub ref_column: String,
    /// What a delete of the referenced row does.
    pub on_delete: OnDelete,
}

/// An index over plain columns (expression and partial indexes are kept
/// as notes: the entity cannot declare them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The index's name in the database.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// A unique index or constraint.
    pub unique: bool,
}

/// A table or collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Its name (the entity's `name`).
    pub name: String,
    /// Columns in their order in the table (MongoDB: `_id` first, then by name).
    pub columns: Vec<Column>,
    /// The primary key's columns (MongoDB: `_id`).
    pub primary_key: Vec<String>,
    /// Unique constraints and indexes, and plain indexes, primary key excluded.
    pub indexes: Vec<Index>,
    /// Foreign keys (single column ones; others are notes).
    pub foreign_keys: Vec<ForeignKey>,
    /// What the entity cannot say (printed as comments above the struct).
    pub notes: Vec<String>,
}

impl Table {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A native enum type and its labels in their declared order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumType {
    /// The type's name.
    pub name: String,
    /// Its labels.
    pub labels: Vec<String>,
}

/// Everything introspected from one schema (database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Tables (collections), in name order.
    pub tables: Vec<Table>,
    /// The native enums the tables use, in name order.
    pub enums: Vec<EnumType>,
}
