//! Tenants through the manager: `Persistence::tenant_repo`,
//! `provision_tenant`, `register_tenant_entity` and `tenant_activity`, per
//! the database's `tenancy` section ([`crate::config::keys::TENANCY`]).

use std::any::{Any, TypeId};
use std::sync::Arc;

use persistence_core::layer::LayerExt;
use persistence_core::tenant::TenantExt;
use persistence_core::{Entity, Error, Result, SharedRepository};

use crate::Persistence;
use crate::config::{TenancyConfig, TenancyStrategy, keys};
use crate::database::{Backend, Database};
use crate::tenancy::{Counted, TenantActivity, Tracker};

/// Most memoized tenant repositories (schema / database strategies) before
/// the memo starts over (each holds its own L1 cache).
const MAX_TENANT_REPOS: usize = 4096;

/// Longest row-strategy tenant value tracked (bytes).
const MAX_TENANT_LEN: usize = 256;

/// Creates an entity's collection, validator and indexes in a MongoDB tenant.
#[cfg(feature = "mongo")]
pub(crate) type MongoSetup = Arc<
    dyn for<'a> Fn(
            &'a persistence_mongo::TenantScope,
        ) -> persistence_core::layer::BoxFuture<'a, Result<()>>
        + Send
        + Sync,
>;

/// What the manager keeps per tenant database.
#[derive(Default)]
pub(crate) struct TenantState {
    /// Activity tracker per database.
    pub(crate) trackers: std::collections::HashMap<String, Arc<Tracker>>,
    /// PostgreSQL schema-per-tenant managers with their registered entities.
    #[cfg(relational)]
    pub(crate) pg: std::collections::HashMap<String, persistence_postgres::Tenants>,
    /// MongoDB tenants' registered entities, per database.
    #[cfg(feature = "mongo")]
    pub(crate) mongo: std::collections::HashMap<String, Vec<(&'static str, MongoSetup)>>,
    /// Memoized repositories by database, tenant and entity type.
    pub(crate) repos:
        std::collections::HashMap<(String, String, TypeId), Box<dyn Any + Send + Sync>>,
}

impl Persistence {
    fn tenancy_of(&self, name: &str) -> Result<(&Arc<Database>, &TenancyConfig)> {
        let db = self.database(name)?;
        match &db.config.tenancy {
            Some(t) => Ok((db, t)),
            None => Err(Error::config(format!(
                "database `{name}` has no `{}` section: tenants need one \
                 (strategy: schema | row | database)",
                keys::TENANCY
            ))),
        }
    }

    fn tracker(&self, name: &str, t: &TenancyConfig) -> Arc<Tracker> {
        let mut s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        s.trackers
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Tracker::new(name, t.strategy, t.window, t.tracked)))
            .clone()
    }

    /// Create `E`'s table / collection in every tenant of database `name`
    /// that [`provision_tenant`](Persistence::provision_tenant) makes from
    /// now on (`schema` and `database` strategies; [`tenant_repo`](Persistence::tenant_repo)
    /// registers its entity too). Register every tenant entity at start-up:
    /// on PostgreSQL a tenant provisioned with fewer entities than others of
    /// the database is refused (`Config`, naming them).
    pub async fn register_tenant_entity<E: Entity>(&self, name: &str) -> Result<()> {
        let (db, t) = self.tenancy_of(name)?;
        if t.strategy == TenancyStrategy::Row {
            return Ok(());
        }
        let backend = self.backend(db).await?;
        let mut s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        match backend {
            #[cfg(relational)]
            Backend::Relational(store) => {
                let tenants = match s.pg.remove(name) {
                    Some(t) => t,
                    None => persistence_postgres::Tenants::new(store)?,
                };
                s.pg.insert(name.to_string(), tenants.register::<E>());
            }
            #[cfg(feature = "mongo")]
            Backend::Mongo(_) => {
                let list = s.mongo.entry(name.to_string()).or_default();
                if list.iter().all(|(n, _)| *n != E::meta().name) {
                    let setup: MongoSetup = Arc::new(|scope| {
                        Box::pin(async move { scope.provision::<E>().await.map(|_| ()) })
                    });
                    list.push((E::meta().name, setup));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Provision `tenant` in database `name`: on PostgreSQL (`schema`) its
    /// schema and the registered entities' tables, recorded in the tenant
    /// registry (idempotent, safe concurrently: see
    /// [`Tenants::provision`](persistence_postgres::Tenants::provision)); on
    /// MongoDB (`schema`: collection prefix, `database`: a database per
    /// tenant) the registered entities' collections, validators and indexes.
    /// Nothing to do for `row`.
    pub async fn provision_tenant(&self, name: &str, tenant: &str) -> Result<()> {
        let (db, t) = self.tenancy_of(name)?;
        if t.strategy == TenancyStrategy::Row {
            return Ok(());
        }
        let backend = self.backend(db).await?;
        match backend {
            #[cfg(relational)]
            Backend::Relational(store) => {
                let id = persistence_postgres::TenantId::new(tenant)?;
                let tenants = {
                    let s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
                    s.pg.get(name).cloned()
                };
                let tenants = match tenants {
                    Some(t) => t,
                    None => persistence_postgres::Tenants::new(store)?,
                };
                tenants.provision(&id).await
            }
            #[cfg(feature = "mongo")]
            Backend::Mongo(store) => {
                let scope = mongo_scope(store, t, tenant)?;
                let setups: Vec<MongoSetup> = {
                    let s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
                    s.mongo
                        .get(name)
                        .map(|l| l.iter().map(|(_, f)| f.clone()).collect())
                        .unwrap_or_default()
                };
                for setup in setups {
                    setup(&scope).await?;
                }
                Ok(())
            }
            _ => Err(Error::config(format!(
                "database `{name}`: strategy `{}` is not supported here",
                t.strategy.name()
            ))),
        }
    }

    /// A repository of `E` for `tenant` of database `name`, with the
    /// database's layers and cache, per its `tenancy.strategy`:
    ///
    /// * `row`: the database's repository of `E` bound to the tenant
    ///   ([`TenantExt::for_tenant`]; `E` needs an `#[entity(tenant)]` field,
    ///   otherwise `InvalidInput`); cheap, not memoized;
    /// * `schema` (PostgreSQL): `E`'s table in the tenant's schema; a tenant
    ///   the registry does not know is `NotFound` unless
    ///   `tenancy.auto_provision` provisions it here (with `E` and the
    ///   entities registered so far);
    /// * `schema` / `database` (MongoDB): the tenant's collection of `E`
    ///   (`<tenant>__<entity>`, or in database `<prefix><tenant>`);
    ///   `auto_provision` ensures it, its validator and indexes first.
    ///
    /// Cache entries of a tenant's repository are keyed by its tenant (row:
    /// in each key; schema / database: under `{prefix}.t.{tenant}`), so no
    /// tenant reads another's entries. Each call is counted for
    /// [`tenant_activity`](Persistence::tenant_activity). Tenant
    /// repositories of the `schema` / `database` strategies use the primary
    /// (no replica routing nor failover).
    pub async fn tenant_repo<E: Entity>(
        &self,
        name: &str,
        tenant: &str,
    ) -> Result<SharedRepository<E>> {
        let (db, t) = self.tenancy_of(name)?;
        if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN {
            return Err(Error::invalid_input(format!(
                "tenant of database `{name}` must be 1 to {MAX_TENANT_LEN} bytes"
            )));
        }
        let tracker = self.tracker(name, t);
        let counted = Counted {
            tracker,
            tenant: Arc::from(tenant),
        };
        if t.strategy == TenancyStrategy::Row {
            let repo = self.repo_in::<E>(name).await?.for_tenant(tenant)?;
            return Ok(Arc::new(repo.layer(counted)));
        }
        let key = (name.to_string(), tenant.to_string(), TypeId::of::<E>());
        {
            let s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = s
                .repos
                .get(&key)
                .and_then(|b| b.downcast_ref::<SharedRepository<E>>())
            {
                return Ok(r.clone());
            }
        }
        self.register_tenant_entity::<E>(name).await?;
        let backend = self.backend(db).await?;
        let raw = self.tenant_raw::<E>(backend, name, t, tenant).await?;
        let scope = format!("t.{tenant}");
        let repo = self.decorate(raw, db, backend, name, Some(&scope)).await?;
        let repo: SharedRepository<E> = Arc::new(repo.layer(counted));
        let mut s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if s.repos.len() >= MAX_TENANT_REPOS {
            s.repos.clear();
        }
        s.repos.insert(key, Box::new(repo.clone()));
        Ok(repo)
    }

    /// The undecorated repository of `E` in `tenant`'s schema / database,
    /// provisioned first when `auto_provision` says so.
    async fn tenant_raw<E: Entity>(
        &self,
        backend: &Backend,
        name: &str,
        t: &TenancyConfig,
        tenant: &str,
    ) -> Result<SharedRepository<E>> {
        match backend {
            #[cfg(relational)]
            Backend::Relational(store) => {
                let id = persistence_postgres::TenantId::new(tenant)?;
                let tenants = {
                    let s = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
                    s.pg.get(name).cloned()
                };
                let tenants = match tenants {
                    Some(t) => t,
                    None => persistence_postgres::Tenants::new(store)?,
                };
                let known = tenants.entities(&id).await?;
                let has_e = known
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|n| n == E::meta().name));
                if !has_e {
                    if !t.auto_provision {
                        return Err(Error::not_found(format!(
                            "tenant `{tenant}` of database `{name}` {}: call provision_tenant \
                             (or set {}.{}: true)",
                            if known.is_some() {
                                format!("has no table for {}", E::meta().name)
                            } else {
                                "is not provisioned".to_string()
                            },
                            keys::TENANCY,
                            keys::TENANCY_AUTO_PROVISION
                        )));
                    }
                    tenants
                        .clone()
                        .allow_fewer_entities()
                        .provision(&id)
                        .await?;
                }
                Ok(Arc::new(tenants.repository::<E>(&id)))
            }
            #[cfg(feature = "mongo")]
            Backend::Mongo(store) => {
                let scope = mongo_scope(store, t, tenant)?;
                if t.auto_provision {
                    Ok(Arc::new(scope.provision::<E>().await?))
                } else {
                    Ok(Arc::new(scope.repository::<E>()))
                }
            }
            _ => Err(Error::config(format!(
                "database `{name}`: strategy `{}` is not supported here",
                t.strategy.name()
            ))),
        }
    }

    /// The tenants of database `name` by activity: how many are active
    /// within `tenancy.window`, and the `top` busiest with their rates and
    /// totals. `None` when the database has no `tenancy` section.
    pub fn tenant_activity(&self, name: &str, top: usize) -> Option<TenantActivity> {
        let (_, t) = self.tenancy_of(name).ok()?;
        Some(self.tracker(name, t).report(top))
    }
}

#[cfg(feature = "mongo")]
fn mongo_scope(
    store: &persistence_mongo::MongoStore,
    t: &TenancyConfig,
    tenant: &str,
) -> Result<persistence_mongo::TenantScope> {
    use persistence_mongo::{TenantMode, Tenants};
    let mode = match t.strategy {
        TenancyStrategy::Database => TenantMode::DatabasePerTenant {
            prefix: t
                .prefix
                .clone()
                .unwrap_or_else(|| format!("{}_", store.database().name())),
        },
        _ => TenantMode::CollectionPrefix,
    };
    Tenants::new(store.clone(), mode)?.tenant(tenant)
}
