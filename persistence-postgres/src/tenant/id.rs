//! [`TenantId`]: a validated tenant id (also its schema name).

use persistence_core::Result;
use persistence_core::names::{self, NameKind};

/// A validated tenant id, usable as a schema name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validate with [`persistence_core::names`] ([`NameKind::Tenant`]):
    /// `^[a-z][a-z0-9_]{0,62}$`, not reserved (`public`,
    /// `information_schema`, `pg_*`, `admin`, ...).
    pub fn new(id: impl AsRef<str>) -> Result<TenantId> {
        let id = id.as_ref();
        names::validate(NameKind::Tenant, id)?;
        // A tenant id is also a schema name.
        names::validate(NameKind::Schema, id)?;
        Ok(TenantId(id.to_string()))
    }

    /// The id (also the schema name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(TenantId::new("acme_01").is_ok());
        for bad in [
            "",
            "x; DROP SCHEMA public",
            "\"",
            "Acme",
            "1acme",
            "аcme", // Cyrillic а
            "acme\u{200b}",
            "public",
            "pg_catalog",
            "pg_toast",
            "information_schema",
            "admin",
            "config",
            &"a".repeat(64),
        ] {
            assert!(TenantId::new(bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::new("a".repeat(63)).is_ok());
    }
}
