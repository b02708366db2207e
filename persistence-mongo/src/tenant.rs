//! Tenants: one database per tenant, or one collection prefix per tenant.
//!
//! Tenant names are validated before they reach MongoDB: lowercase ASCII
//! letters, digits and `_`, starting with a letter, 1 to 32 bytes, and never
//! one of MongoDB's reserved databases (`admin`, `local`, `config`). In
//! database mode the database is `<prefix><tenant>`; in prefix mode the
//! collections are `<tenant>__<entity>` in the store's database.
//! [`TenantScope::provision`] ensures collections, validators and indexes,
//! [`TenantScope::remove`] drops the tenant's data.

use bson::doc;
use mongodb::Collection;
use persistence_core::{Entity, Error, Repository, Result};

use crate::config::{MongoStore, validate_database_name};
use crate::error::map_plain;
use crate::repository::MongoRepository;

/// Database names MongoDB reserves.
pub const RESERVED: &[&str] = &["admin", "local", "config"];

/// How tenants are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantMode {
    /// A database per tenant, named `<prefix><tenant>`.
    DatabasePerTenant {
        /// Prefix of every tenant database (validated like a database name; may be empty).
        prefix: String,
    },
    /// Collections `<tenant>__<entity>` in the store's database.
    CollectionPrefix,
}

/// Check a tenant name (see the module docs).
pub fn validate_tenant(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(Error::invalid_input(format!(
            "invalid tenant name `{}` (lowercase letters, digits and _, starting with a letter, at most 32 bytes)",
            name.chars().take(40).collect::<String>().escape_default()
        )));
    }
    if RESERVED.contains(&name) {
        return Err(Error::invalid_input(format!(
            "`{name}` is a reserved MongoDB database name"
        )));
    }
    Ok(())
}

/// Hands out tenant scopes of one store.
#[derive(Debug, Clone)]
pub struct Tenants {
    store: MongoStore,
    mode: TenantMode,
}

impl Tenants {
    /// Tenants over `store` isolated by `mode`.
    pub fn new(store: MongoStore, mode: TenantMode) -> Result<Tenants> {
        if let TenantMode::DatabasePerTenant { prefix } = &mode {
            if !prefix.is_empty() {
                validate_database_name(prefix)?;
            }
        }
        Ok(Tenants { store, mode })
    }

    /// The scope of `tenant` (validated).
    pub fn tenant(&self, tenant: &str) -> Result<TenantScope> {
        validate_tenant(tenant)?;
        let (store, prefix) = match &self.mode {
            TenantMode::DatabasePerTenant { prefix } => {
                let name = format!("{prefix}{tenant}");
                if RESERVED.contains(&name.as_str()) {
                    return Err(Error::invalid_input(format!(
                        "`{name}` is a reserved MongoDB database name"
                    )));
                }
                (self.store.with_database(&name)?, None)
            }
            TenantMode::CollectionPrefix => (self.store.clone(), Some(format!("{tenant}__"))),
        };
        Ok(TenantScope { store, prefix })
    }
}

/// One tenant's repositories.
#[derive(Debug, Clone)]
pub struct TenantScope {
    store: MongoStore,
    prefix: Option<String>,
}

impl TenantScope {
    /// The collection name of `E` for this tenant.
    pub fn collection_name<E: Entity>(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}{}", E::meta().name),
            None => E::meta().name.to_string(),
        }
    }

    /// The tenant's repository of `E`.
    pub fn repository<E: Entity>(&self) -> MongoRepository<E> {
        let coll: Collection<bson::Document> = self
            .store
            .database()
            .collection(&self.collection_name::<E>());
        MongoRepository::with_collection(coll)
    }

    /// Ensure the collection, validator and indexes of `E` for this tenant.
    pub async fn provision<E: Entity>(&self) -> Result<MongoRepository<E>> {
        let repo = self.repository::<E>();
        repo.ensure_schema().await?;
        Ok(repo)
    }

    /// The tenant's store (its own database in database mode).
    pub fn store(&self) -> &MongoStore {
        &self.store
    }

    /// Drop the tenant's data: its database, or its prefixed collections.
    pub async fn remove(&self) -> Result<()> {
        match &self.prefix {
            None => self.store.drop_database().await,
            Some(p) => {
                let names = self
                    .store
                    .database()
                    .list_collection_names()
                    .filter(doc! { "name": { "$regex": format!("^{}", crate::filter::regex_escape(p)) } })
                    .await
                    .map_err(|e| map_plain(e).with_operation("remove tenant"))?;
                for n in names {
                    self.store
                        .database()
                        .collection::<bson::Document>(&n)
                        .drop()
                        .await
                        .map_err(|e| map_plain(e).with_operation("remove tenant"))?;
                }
                Ok(())
            }
        }
    }
}
