//! One validator for every name the library puts into a server: PostgreSQL
//! schemas, MongoDB databases, tenant ids, tables, collections and cache key
//! prefixes.
//!
//! A name is checked twice: its **spelling** (a per-kind character set and
//! length, so it can be quoted or used as a namespace without escaping
//! surprises; anything else, such as `x"; DROP TABLE t; --`, is refused
//! before any statement is built), and whether it is **reserved**.
//!
//! ## Reserved names
//!
//! Namespaces (schemas, databases, tenants, cache prefixes) never use a name
//! a server keeps for itself or shares between applications, whatever the
//! backend, so a name that is valid for one backend is valid for all (a
//! tenant id can become a schema, a database and a cache prefix):
//!
//! | name | why |
//! |---|---|
//! | `public` | PostgreSQL's default schema, shared by every application of the database |
//! | `information_schema`, `pg_*` | PostgreSQL's catalogs (and `pg_temp*`, `pg_toast*`) |
//! | `postgres`, `template0`, `template1` | PostgreSQL's maintenance and template databases |
//! | `admin`, `local`, `config` | MongoDB's system databases (users and roles, the oplog, sharding) |
//!
//! Tables and collections must not start with `pg_` (PostgreSQL's catalog
//! prefix: `pg_catalog` is searched first, so such a table would be
//! shadowed), `sqlite_` (reserved by SQLite) or `system.` (MongoDB's system
//! collections), nor be the library's own bookkeeping objects
//! ([`TENANT_REGISTRY`], [`MARKER_COLLECTION`]). Reserved names are compared
//! case-insensitively (MongoDB database names are case-insensitive).
//!
//! ## What "reserved" means for `public`
//!
//! Reserved names are never *owned* by the library: they cannot be
//! configured as the schema / database / tenant of a store, so the library
//! never creates, marks or drops them. Leaving the PostgreSQL schema unset
//! still places the tables in the connection's default schema (normally
//! `public`), unqualified; a store without a schema has nothing to drop.
//!
//! ## Ownership marks
//!
//! Objects the library creates carry a mark starting with [`MANAGED_MARK`]
//! (a PostgreSQL `COMMENT`, a document in the [`MARKER_COLLECTION`] of a
//! MongoDB database). Destructive operations (`drop_schema`,
//! `drop_database`, dropping a tenant) and schema changes on existing
//! objects (`ensure_schema` adding indexes or validators) only touch marked
//! objects; see the backends' docs.

use crate::{Error, Result};

/// The mark the library leaves on the schemas, tables, databases and
/// collections it creates (a PostgreSQL comment starts with it; MongoDB
/// marker documents carry it).
pub const MANAGED_MARK: &str = "persistence:managed";

/// The PostgreSQL table holding the tenant registry (in the control schema).
pub const TENANT_REGISTRY: &str = "persistence_tenants";

/// The MongoDB collection (in each database) recording what the library created.
pub const MARKER_COLLECTION: &str = "persistence_managed";

/// Namespace names reserved on every backend (see the module docs).
pub const RESERVED_NAMESPACES: &[&str] = &[
    "public",
    "information_schema",
    "postgres",
    "template0",
    "template1",
    "admin",
    "local",
    "config",
];

/// Namespace prefixes reserved on every backend.
pub const RESERVED_NAMESPACE_PREFIXES: &[&str] = &["pg_"];

/// Table / collection prefixes reserved by the servers.
pub const RESERVED_OBJECT_PREFIXES: &[&str] = &["pg_", "sqlite_", "system."];

/// What `ensure_schema` may do to existing tables and collections (set per
/// repository: `with_schema_policy`). Objects the library created (marked)
/// are always its own; the policy decides about the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SchemaPolicy {
    /// Create what is missing (and mark it); keep the library's own objects
    /// up to date (indexes, validators); never alter an existing object
    /// without the mark: verify it and report what it lacks.
    #[default]
    Managed,
    /// Like `Managed`, but an existing object without the mark is taken
    /// over: marked, then given the missing indexes / validator. Opt in per
    /// repository, for an object you own.
    Adopt,
    /// Create and change nothing: a missing object is a `Config` error, an
    /// existing one is only verified.
    VerifyOnly,
}

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A PostgreSQL schema: `^[a-z_][a-z0-9_]{0,62}$`.
    Schema,
    /// A MongoDB database: ASCII letters, digits, `_` and `-`, 1 to 63 bytes.
    Database,
    /// A tenant id: `^[a-z][a-z0-9_]{0,62}$` (backends may cap the length further).
    Tenant,
    /// A table: ASCII letters, digits and `_`, not starting with a digit, 1 to 63 bytes.
    Table,
    /// A collection: as a table.
    Collection,
    /// A cache key prefix: ASCII letters, digits, `_`, `-` and `.`, 1 to 64 bytes.
    KeyPrefix,
}

impl NameKind {
    /// The kind in words (`schema`, `database`, ...).
    pub fn noun(self) -> &'static str {
        match self {
            NameKind::Schema => "schema",
            NameKind::Database => "database",
            NameKind::Tenant => "tenant",
            NameKind::Table => "table",
            NameKind::Collection => "collection",
            NameKind::KeyPrefix => "key prefix",
        }
    }

    fn is_namespace(self) -> bool {
        matches!(
            self,
            NameKind::Schema | NameKind::Database | NameKind::Tenant | NameKind::KeyPrefix
        )
    }

    fn max_len(self) -> usize {
        match self {
            NameKind::KeyPrefix => 64,
            _ => 63,
        }
    }

    fn rule(self) -> &'static str {
        match self {
            NameKind::Schema => {
                "lowercase ASCII letters, digits and _, starting with a letter or _, at most 63 bytes"
            }
            NameKind::Tenant => {
                "lowercase ASCII letters, digits and _, starting with a letter, at most 63 bytes"
            }
            NameKind::Database => "ASCII letters, digits, _ and -, at most 63 bytes",
            NameKind::Table | NameKind::Collection => {
                "ASCII letters, digits and _, not starting with a digit, at most 63 bytes"
            }
            NameKind::KeyPrefix => "ASCII letters, digits, _, - and ., at most 64 bytes",
        }
    }

    fn spelled_ok(self, name: &str) -> bool {
        if name.is_empty() || name.len() > self.max_len() {
            return false;
        }
        let mut chars = name.chars();
        let first = chars.next();
        let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        match self {
            NameKind::Schema => {
                first.is_some_and(|c| c.is_ascii_lowercase() || c == '_') && chars.all(lower)
            }
            NameKind::Tenant => first.is_some_and(|c| c.is_ascii_lowercase()) && chars.all(lower),
            NameKind::Database => name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            NameKind::Table | NameKind::Collection => {
                first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            NameKind::KeyPrefix => name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'),
        }
    }
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.noun())
    }
}

/// A name as it may be printed: at most 64 characters, escaped.
fn shown(name: &str) -> String {
    let s: String = name.chars().take(64).collect();
    let more = if s.len() < name.len() { "…" } else { "" };
    format!("\"{}{more}\"", s.escape_default())
}

/// Why `name` is reserved for `kind`, if it is.
pub fn reserved_reason(kind: NameKind, name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if kind.is_namespace() {
        let why = match lower.as_str() {
            "public" => {
                Some("PostgreSQL's default schema, shared by every application of the database")
            }
            "information_schema" => Some("a PostgreSQL catalog"),
            "postgres" | "template0" | "template1" => {
                Some("a PostgreSQL maintenance or template database")
            }
            "admin" | "local" | "config" => Some("a MongoDB system database"),
            _ => None,
        };
        if why.is_some() {
            return why;
        }
        if RESERVED_NAMESPACE_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Some("the pg_ prefix is reserved for PostgreSQL's system schemas");
        }
        return None;
    }
    if lower.starts_with("pg_") {
        return Some("the pg_ prefix is reserved for PostgreSQL's catalogs");
    }
    if lower.starts_with("sqlite_") {
        return Some("the sqlite_ prefix is reserved by SQLite");
    }
    if lower.starts_with("system.") {
        return Some("system.* collections are reserved by MongoDB");
    }
    if lower == TENANT_REGISTRY || lower == MARKER_COLLECTION {
        return Some("one of the library's own bookkeeping objects");
    }
    None
}

/// Whether `name` is reserved for `kind` (see the module docs).
pub fn is_reserved(kind: NameKind, name: &str) -> bool {
    reserved_reason(kind, name).is_some()
}

/// What is wrong with `name` as a `kind`, in words (`None`: nothing).
pub fn problem(kind: NameKind, name: &str) -> Option<String> {
    if !kind.spelled_ok(name) {
        return Some(format!(
            "{} is not a valid {kind} name ({})",
            shown(name),
            kind.rule()
        ));
    }
    reserved_reason(kind, name).map(|why| {
        let hint = match (kind, name.to_ascii_lowercase().as_str()) {
            (NameKind::Schema, "public") => {
                "; leave the schema unset to place tables in the default schema, or pick a name of your own"
            }
            _ => "; pick a name of your own",
        };
        format!("{} is reserved ({why}){hint}", shown(name))
    })
}

/// Check `name` as a `kind`: `InvalidInput` naming the rule it breaks.
pub fn validate(kind: NameKind, name: &str) -> Result<()> {
    match problem(kind, name) {
        None => Ok(()),
        Some(p) => Err(Error::invalid_input(p)),
    }
}

/// Check `name` read from the configuration key `key` (e.g.
/// `databases.main.schema`): a `Config` error starting with the key.
pub fn validate_config(kind: NameKind, name: &str, key: &str) -> Result<()> {
    match problem(kind, name) {
        None => Ok(()),
        Some(p) => Err(Error::config(format!("{key}: {p}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling() {
        for (kind, good) in [
            (NameKind::Schema, "_app_1"),
            (NameKind::Tenant, "acme_01"),
            (NameKind::Database, "My-App_1"),
            (NameKind::Table, "Users_1"),
            (NameKind::Collection, "users"),
            (NameKind::KeyPrefix, "app-1.tenant_2"),
        ] {
            assert!(validate(kind, good).is_ok(), "{kind} {good}");
        }
        let long = "a".repeat(64);
        for kind in [
            NameKind::Schema,
            NameKind::Database,
            NameKind::Tenant,
            NameKind::Table,
            NameKind::Collection,
            NameKind::KeyPrefix,
        ] {
            for bad in [
                "",
                "x\"; DROP TABLE t; --",
                "a b",
                "a;b",
                "a\u{200b}",
                "аcme",
                "a:b",
            ] {
                let err = validate(kind, bad).expect_err(bad);
                assert!(err.message().contains("is not a valid"), "{err}");
            }
            assert!(validate(kind, &"a".repeat(63)).is_ok(), "{kind}");
            assert_eq!(
                validate(kind, &long).is_ok(),
                kind == NameKind::KeyPrefix,
                "{kind}"
            );
        }
        assert!(validate(NameKind::Schema, "Acme").is_err());
        assert!(validate(NameKind::Tenant, "_acme").is_err());
        assert!(validate(NameKind::Tenant, "1acme").is_err());
        assert!(validate(NameKind::Table, "1t").is_err());
    }

    #[test]
    fn reserved_everywhere() {
        for kind in [
            NameKind::Schema,
            NameKind::Database,
            NameKind::Tenant,
            NameKind::KeyPrefix,
        ] {
            for name in [
                "public",
                "information_schema",
                "pg_catalog",
                "pg_toast",
                "pg_temp_3",
                "postgres",
                "template1",
                "admin",
                "local",
                "config",
            ] {
                let err = validate(kind, name).expect_err(name);
                assert!(err.message().contains("is reserved"), "{err}");
            }
        }
        // Case-insensitive where the spelling allows upper case.
        assert!(validate(NameKind::Database, "ADMIN").is_err());
        assert!(validate(NameKind::KeyPrefix, "Local").is_err());
        for name in [
            "pg_class",
            "sqlite_master",
            "persistence_managed",
            "persistence_tenants",
        ] {
            assert!(is_reserved(NameKind::Table, name), "{name}");
            assert!(validate(NameKind::Collection, name).is_err(), "{name}");
        }
        // Namespace words are fine as tables (a `config` table is nobody's system object).
        assert!(validate(NameKind::Table, "config").is_ok());
        assert!(validate(NameKind::Collection, "public").is_ok());
        assert!(validate(NameKind::Schema, "publicity").is_ok());
        assert!(validate(NameKind::Schema, "app_pg_x").is_ok());
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = validate_config(NameKind::Schema, "public", "databases.main.schema")
            .expect_err("reserved");
        assert_eq!(err.kind(), &crate::ErrorKind::Config);
        assert!(
            err.message()
                .starts_with("databases.main.schema: \"public\" is reserved"),
            "{err}"
        );
        let err = validate_config(
            NameKind::Schema,
            "x\"; DROP TABLE t; --",
            "databases.main.schema",
        )
        .expect_err("hostile");
        assert!(
            err.message().starts_with(
                "databases.main.schema: \"x\\\"; DROP TABLE t; --\" is not a valid schema name"
            ),
            "{err}"
        );
        let long = "é".repeat(100);
        let err = validate(NameKind::Database, &long).expect_err("long");
        assert!(err.message().contains('…'), "{err}");
    }
}
