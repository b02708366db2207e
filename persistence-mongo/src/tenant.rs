//! Tenants: one database per tenant, or one collection prefix per tenant.
//!
//! Tenant names are validated before they reach MongoDB, by
//! [`persistence_core::names`] ([`NameKind::Tenant`]): lowercase ASCII
//! letters, digits and `_`, starting with a letter, here at most 32 bytes,
//! and never a reserved name (MongoDB's `admin`, `local`, `config`, and the
//! names reserved on the other backends, such as `public`). In database
//! mode the database is `<prefix><tenant>`; in prefix mode the collections
//! are `<tenant>__<entity>` in the store's database.
//! [`TenantScope::provision`] ensures collections, validators and indexes,
//! idempotently and safely under concurrency: the creation steps accept
//! the server's "already exists" answers (collection, marker), and when a
//! step still fails with an answer that means another client was creating
//! the same collection or index at that moment (codes 48, 68, 112, 276,
//! 11000), the whole ensure runs again (a few times, briefly spaced), which
//! finds what the other one made and verifies it against the declaration
//! (an index with another definition is a `Config` error, never retried).
//! [`TenantScope::remove`] drops the tenant's data: only what the library
//! created (a database or collections carrying its marker, see
//! [`crate::schema`]); anything else is a `Config` error and nothing is dropped.

use bson::doc;
use mongodb::Collection;
use persistence_core::names::{self, NameKind};
use persistence_core::{Entity, Error, Repository, Result};

use crate::config::validate_database_name;
use crate::error::map_plain;
use crate::repository::MongoRepository;
use crate::store::MongoStore;

/// Database names MongoDB reserves (every reserved name:
/// [`persistence_core::names::RESERVED_NAMESPACES`]).
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
    names::validate(NameKind::Tenant, name)?;
    if name.len() > 32 {
        return Err(Error::invalid_input(format!(
            "invalid tenant name `{}…` (at most 32 bytes here)",
            &name[..32]
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
                names::validate(NameKind::Database, &name)?;
                (self.store.with_database(&name)?, None)
            }
            TenantMode::CollectionPrefix => (self.store.clone(), Some(format!("{tenant}__"))),
        };
        Ok(TenantScope { store, prefix })
    }
}

/// How many times [`TenantScope::provision`] verifies after losing a race.
const RACE_RETRIES: u32 = 4;

/// Server codes a `create` / `createIndexes` / marker write answers when
/// another client is creating the same thing at that moment: 48
/// NamespaceExists (an implicit creation raced an explicit one), 68
/// IndexAlreadyExists, 112 WriteConflict (two catalog updates), 276
/// IndexBuildAlreadyInProgress, 11000 duplicate key (a marker written twice).
/// Never 85/86: an index that exists with another definition is a real
/// conflict.
fn race_code(code: i32) -> bool {
    matches!(code, 48 | 68 | 112 | 276 | 11000)
}

/// Whether `e` is the server's answer to a concurrent creation of the same
/// collection or index (by its code, from the driver error kept as source).
fn lost_a_race(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<mongodb::error::Error>() {
            return crate::error::server_code(d).is_some_and(race_code);
        }
        cur = err.source();
    }
    false
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

    /// Ensure the collection, validator and indexes of `E` for this tenant
    /// (idempotent; safe to call concurrently, see the module docs).
    pub async fn provision<E: Entity>(&self) -> Result<MongoRepository<E>> {
        let repo = self.repository::<E>();
        let mut lost = 0;
        loop {
            match repo.ensure_schema().await {
                Ok(()) => return Ok(repo),
                // Another provisioning got there first: the next pass finds
                // its collection and indexes and checks them against the
                // declaration (a different index is a `Config` error then).
                Err(e) if lost < RACE_RETRIES && lost_a_race(&e) => {
                    lost += 1;
                    tracing::debug!(
                        collection = %self.collection_name::<E>(),
                        error = %e,
                        "concurrent provisioning: verifying what the other one created"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(20 << lost)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The tenant's store (its own database in database mode).
    pub fn store(&self) -> &MongoStore {
        &self.store
    }

    /// Drop the tenant's data: its database, or its prefixed collections;
    /// only what the library created (see the module docs). A prefixed
    /// collection without the mark is a `Config` error naming it, and
    /// nothing is dropped.
    pub async fn remove(&self) -> Result<()> {
        match &self.prefix {
            None => self.store.drop_database().await,
            Some(p) => {
                let db = self.store.database();
                let colls = db
                    .list_collection_names()
                    .filter(doc! { "name": { "$regex": format!("^{}", crate::query::regex_escape(p)) } })
                    .await
                    .map_err(|e| map_plain(e).with_operation("remove tenant"))?;
                let mut foreign = Vec::new();
                for n in &colls {
                    let marker = crate::schema::collection_marker(n);
                    if !crate::schema::has_marker(db, &marker)
                        .await
                        .map_err(|e| e.with_operation("remove tenant"))?
                    {
                        foreign.push(n.as_str());
                    }
                }
                if !foreign.is_empty() {
                    return Err(Error::config(format!(
                        "collection(s) {} were not created by persistence: refusing to remove \
                         the tenant (nothing was dropped)",
                        foreign.join(", ")
                    ))
                    .with_operation("remove tenant"));
                }
                for n in colls {
                    db.collection::<bson::Document>(&n)
                        .drop()
                        .await
                        .map_err(|e| map_plain(e).with_operation("remove tenant"))?;
                    db.collection::<bson::Document>(names::MARKER_COLLECTION)
                        .delete_one(doc! { "_id": crate::schema::collection_marker(&n) })
                        .await
                        .map_err(|e| map_plain(e).with_operation("remove tenant"))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_race_answers_are_verified_again() {
        for code in [48, 68, 112, 276, 11000] {
            assert!(race_code(code), "{code}");
        }
        // Conflicting index definitions, validation, auth, bad values.
        for code in [85, 86, 121, 13, 2, 67] {
            assert!(!race_code(code), "{code}");
        }
        assert!(!lost_a_race(&Error::config("plain")));
    }
}
