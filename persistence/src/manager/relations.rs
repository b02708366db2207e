//! Where each entity lives (`Persistence::place`) and the relations that
//! cross databases: the manager's half of cross-store relations (see
//! [`persistence_core::relation`]).
//!
//! An entity lives in the database it was placed in, else in the default
//! one (`main`). A `belongs_to` whose target lives in another database than
//! the repository being built is a **cross-store** relation: the backend is
//! told not to enforce it ([`CrossStore`]), and it must be `on_delete =
//! restrict` (the default), because no server sees both sides: a
//! `cascade` or `set_null` across stores is refused with a `Config` error
//! when a repository of either side is asked for, rather than half done.

use persistence_core::relation::{CrossStore, OnDelete, RelationKind};
use persistence_core::{Entity, EntityMeta, Error, Result};

use crate::Persistence;
use crate::config::DatabaseKind;

impl Persistence {
    /// Place entity `E` in database `name`: `repo::<E>()`, eager loading
    /// through the manager ([`Resolve`](persistence_core::Resolve)) and the
    /// relations of other entities pointing at `E` all look for it there.
    /// Place every entity before asking for the first repository.
    ///
    /// `Config` error when `name` is not configured or is a Redis database,
    /// when `E` is already placed elsewhere, or when a repository was
    /// already handed out (relations are settled when repositories are built).
    pub async fn place<E: Entity>(&self, name: &str) -> Result<()> {
        let meta = E::meta();
        let db = self.database(name)?;
        if db.config.kind == DatabaseKind::Redis {
            return Err(Error::config(format!(
                "cannot place {} in `{name}`: a redis database is a cache, not an entity store",
                meta.name
            )));
        }
        if !self.repos.lock().await.is_empty() {
            return Err(Error::config(format!(
                "cannot place {} in `{name}`: repositories were already handed out; place every entity first",
                meta.name
            )));
        }
        if let Some(other) = self.configured_home(meta.name)
            && other != name
        {
            return Err(Error::config(format!(
                "{} is already placed in `{other}` by databases.{other}.{}, not `{name}`",
                meta.name,
                crate::config::keys::ENTITIES
            )));
        }
        let mut placed = self
            .placements
            .write()
            .map_err(|_| Error::backend("placement lock poisoned"))?;
        match placed.get(meta.name) {
            Some(other) if other != name => Err(Error::config(format!(
                "{} is already placed in `{other}`, not `{name}`",
                meta.name
            ))),
            _ => {
                placed.insert(meta.name, name.to_string());
                Ok(())
            }
        }
    }

    /// The database entity `E` lives in: where it was [placed](Self::place)
    /// or listed (`databases.<name>.entities`), else the default database
    /// (`main`, or the only non-Redis one).
    pub fn database_of<E: Entity>(&self) -> Result<String> {
        self.home(E::meta())
    }

    pub(super) fn home(&self, meta: &EntityMeta) -> Result<String> {
        let placed = self
            .placements
            .read()
            .map_err(|_| Error::backend("placement lock poisoned"))?
            .get(meta.name)
            .cloned();
        match placed.or_else(|| self.configured_home(meta.name).map(str::to_string)) {
            Some(name) => Ok(name),
            None => Ok(self.default_database()?.to_string()),
        }
    }

    /// The database whose `entities` list names `entity` (validation keeps
    /// it to one).
    fn configured_home(&self, entity: &str) -> Option<&str> {
        self.config
            .databases
            .iter()
            .find(|(_, d)| d.entities.iter().any(|e| e == entity))
            .map(|(name, _)| name.as_str())
    }

    /// The `belongs_to` relations of `E` whose target lives elsewhere than
    /// `name`, after checking that no relation of `E` (either side)
    /// asks for a `cascade` or `set_null` across databases.
    pub(super) fn cross_store<E: Entity>(&self, name: &str) -> Result<CrossStore> {
        let meta = E::meta();
        let mut cross = Vec::new();
        for r in &meta.relations {
            let other = (r.target)();
            // The child's side: `E` itself, or the entity a `has_many` / `has_one` names.
            let (child, child_rel) = match r.kind {
                RelationKind::BelongsTo => (meta, Some(r)),
                RelationKind::HasMany | RelationKind::HasOne => (
                    other,
                    other
                        .belongs_to()
                        .find(|b| b.key == r.key && (b.target)().name == meta.name),
                ),
            };
            let other_home = match self.home(other) {
                Ok(h) => h,
                // No default database: an unplaced target is only reachable
                // by `repo_in`, so it is taken to be in this one.
                Err(_) => name.to_string(),
            };
            if other_home == name {
                continue;
            }
            let Some(child_rel) = child_rel else { continue };
            if child_rel.on_delete != OnDelete::Restrict {
                let parent = (child_rel.target)();
                let (child_db, parent_db) = if r.kind == RelationKind::BelongsTo {
                    (name.to_string(), other_home.clone())
                } else {
                    (other_home.clone(), name.to_string())
                };
                return Err(Error::config(format!(
                    "relation `{}` crosses databases ({} in `{child_db}`, {} in `{parent_db}`): \
                     on_delete = {} cannot be enforced across stores; declare it on_delete = restrict \
                     (the default; not enforced across stores) and remove the children yourself, \
                     or place both entities in one database (`Persistence::place`)",
                    child.relation_path(child_rel),
                    child.name,
                    parent.name,
                    match child_rel.on_delete {
                        OnDelete::Cascade => "cascade",
                        _ => "set_null",
                    },
                )));
            }
            if r.kind == RelationKind::BelongsTo {
                cross.push(r.name);
            }
        }
        Ok(CrossStore::of(cross))
    }
}
