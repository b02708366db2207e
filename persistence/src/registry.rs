//! The connection registry: connection definitions stored in a table of the
//! main database, their URLs encrypted at rest, their pools opened on first
//! use and closed when a definition changes, is removed, or is the least
//! recently used idle pool past the cap.
//!
//! ```no_run
//! # use persistence::registry::{ConnectionDefinition, Registry, RegistryKey};
//! # use persistence::config::DatabaseKind;
//! # async fn demo(store: persistence::postgres::RelationalStore) -> persistence::Result<()> {
//! let registry = Registry::open(store, RegistryKey::from_env()?, 16).await?;
//! registry
//!     .add(&ConnectionDefinition::new(
//!         "tenant_eu",
//!         DatabaseKind::Postgres,
//!         "postgres://app:s3cret@eu-db:5432/app",
//!     ))
//!     .await?;
//! let pool = registry.pool("tenant_eu").await?;      // connects now, once
//! # Ok(()) }
//! ```
//!
//! # Storage
//!
//! One row per connection in the table [`TABLE`] (an [`Entity`] stored through
//! the ordinary relational repository, so it lives in the configured schema of
//! a PostgreSQL database or in a SQLite file). Name, kind, schema / database
//! name and pool settings are stored in clear; the URL (which carries the
//! password) is sealed with **XChaCha20-Poly1305** (RustCrypto
//! `chacha20poly1305`): a fresh random 24-byte nonce per write, and associated
//! data binding the ciphertext to the row's name and kind, so a ciphertext
//! copied onto another row does not decrypt. Each row also records the id of
//! the key that sealed it (the first 8 bytes of SHA-256 over a domain tag and
//! the key, in hex), which tells "wrong key" from "tampered row" in errors.
//!
//! # Key
//!
//! 32 random bytes, base64-encoded, from the variable
//! [`keys::ENV_REGISTRY_KEY`]
//! or from a file (base64 text or the 32 raw bytes) named by
//! [`keys::ENV_REGISTRY_KEY_FILE`];
//! the `registry` config section can name another variable (`key_env`) or file
//! (`key_file`). [`RegistryKey::generate`] makes one. A malformed key, a row
//! sealed under another key, or a row whose ciphertext, nonce, name or kind was
//! altered is a [`ErrorKind::Config`](persistence_core::ErrorKind) error naming
//! the connection, never a panic.
//!
//! # Rotation
//!
//! [`Registry::rotate`] re-encrypts every row under the new key in **one
//! transaction** (on PostgreSQL the table is locked against concurrent writers
//! for its duration): either every row moves to the new key or none does. Rows
//! already under the new key are verified and left alone, so an interrupted
//! rollout can simply be run again. Other processes still holding the old key
//! get a "wrong key" `Config` error until they are given the new one: rotate,
//! then replace the key in every process's variable or key file.
//!
//! # Pools
//!
//! [`Registry::pool`] reads the definition (one primary-key lookup, so a
//! change made by another process is seen on the next call) and returns the
//! open pool, opening it on first use. A pool whose stored definition differs
//! from the one it was opened with (any field, URL included; a key rotation
//! alone changes none) is closed and reopened; [`Registry::update`] and
//! [`Registry::remove`] close it at once. At most `max_open_pools` pools stay
//! open: opening one more closes the least recently used **idle** pool — idle
//! meaning no [`PoolHandle`] (nor repository made from one) is alive and, for
//! relational pools, no connection is checked out. When every pool is busy the
//! cap is exceeded rather than failing the caller (a warning is logged) and it
//! is enforced again on the next open. Closing a pool makes further calls on
//! handles that still point at it fail with a pool-closed error; closing a
//! relational pool waits for its checked-out connections to come back (so
//! `update` / `remove` of a connection in the middle of a transaction return
//! when that transaction ends), while idle pools closed by the cap have none.
//!
//! # Secrets
//!
//! URLs are [`Secret`](crate::config::Secret)s: `Debug` of a definition, a handle or the registry
//! never shows them, error messages name connections, not URLs, and nothing
//! here logs a URL.
//!
//! # Files
//!
//! `definition` holds what is stored (a [`ConnectionDefinition`], its row);
//! `seal` the [`RegistryKey`] and sealing / opening a row; `pool` an open
//! [`Pool`], the [`PoolHandle`] lease and connecting; this file the
//! [`Registry`] itself (storage calls, the pool cache and its cap, rotation).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::keys;
use persistence_core::{Entity, Error, Filter, Query, Repository, Result, SharedRepository};
use persistence_postgres::sea_orm::ConnectionTrait as _;
use persistence_postgres::{Dialect, RelationalRepository, RelationalStore};
use tokio::sync::{Mutex, RwLock};

mod definition;
mod pool;
mod seal;

pub use definition::{ConnectionDefinition, ConnectionSummary, TABLE};
pub use pool::{Pool, PoolHandle};
pub use seal::RegistryKey;

use definition::{ConnectionRow, parse_kind, printable_name};
use pool::{OpenPool, Usage, connect};
use seal::{open_row, seal_row};

/// Default cap on open pools.
pub const DEFAULT_MAX_OPEN_POOLS: usize = 16;

struct Inner {
    store: RelationalStore,
    rows: RelationalRepository<ConnectionRow>,
    key: RwLock<RegistryKey>,
    open: Mutex<HashMap<String, OpenPool>>,
    clock: Arc<AtomicU64>,
    max_open: usize,
}

/// The connection registry (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.inner.store)
            .field("max_open_pools", &self.inner.max_open)
            .finish()
    }
}

impl Registry {
    /// Open the registry whose table lives in `store` (created if missing),
    /// sealing with `key`, keeping at most `max_open_pools` pools open.
    pub async fn open(
        store: RelationalStore,
        key: RegistryKey,
        max_open_pools: usize,
    ) -> Result<Registry> {
        if max_open_pools == 0 {
            return Err(Error::config(format!(
                "{}.{} must be at least 1",
                keys::REGISTRY,
                keys::REGISTRY_MAX_OPEN_POOLS
            )));
        }
        let rows = store.repository::<ConnectionRow>();
        rows.ensure_schema().await?;
        Ok(Registry {
            inner: Arc::new(Inner {
                store,
                rows,
                key: RwLock::new(key),
                open: Mutex::new(HashMap::new()),
                clock: Arc::new(AtomicU64::new(0)),
                max_open: max_open_pools,
            }),
        })
    }

    /// The id of the key in use.
    pub async fn key_id(&self) -> String {
        self.inner.key.read().await.id().to_string()
    }

    /// Store a new definition (`Conflict` if the name exists).
    pub async fn add(&self, def: &ConnectionDefinition) -> Result<()> {
        def.validate()?;
        let key = self.inner.key.read().await;
        let row = seal_row(&key, def, 0)?;
        self.inner.rows.insert(&row).await.map(|_| ())
    }

    /// Replace a definition (`NotFound` if missing); its open pool is closed
    /// and the next [`pool`](Self::pool) opens one with the new settings.
    pub async fn update(&self, def: &ConnectionDefinition) -> Result<()> {
        def.validate()?;
        let key = self.inner.key.read().await;
        let current = self
            .inner
            .rows
            .get(&def.name)
            .await?
            .ok_or_else(|| not_found(&def.name))?;
        let row = seal_row(&key, def, current.version)?;
        self.inner.rows.update(&row).await?;
        drop(key);
        self.close(&def.name).await;
        Ok(())
    }

    /// Delete a definition and close its pool; false if there was none.
    pub async fn remove(&self, name: &str) -> Result<bool> {
        let removed = self.inner.rows.delete(&name.to_string()).await?;
        self.close(name).await;
        Ok(removed)
    }

    /// The decrypted definition, or `None`.
    pub async fn definition(&self, name: &str) -> Result<Option<ConnectionDefinition>> {
        let key = self.inner.key.read().await;
        match self.inner.rows.get(&name.to_string()).await? {
            Some(row) => Ok(Some(open_row(&key, row)?.0)),
            None => Ok(None),
        }
    }

    /// Every definition, without URLs (nothing is decrypted).
    pub async fn list(&self) -> Result<Vec<ConnectionSummary>> {
        let rows = self
            .inner
            .rows
            .find(&Query::filter(Filter::all()).sort(ConnectionRow::NAME.asc()))
            .await?;
        let open = self.inner.open.lock().await;
        rows.into_iter()
            .map(|r| {
                Ok(ConnectionSummary {
                    kind: parse_kind(&r.name, &r.kind)?,
                    open: open.contains_key(&r.name),
                    name: r.name,
                    key_id: r.key_id,
                    updated_at: r.updated_at,
                })
            })
            .collect()
    }

    /// Names of the pools open in this process.
    pub async fn open_pools(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.open.lock().await.keys().cloned().collect();
        names.sort();
        names
    }

    /// The pool of connection `name`, opened on first use (and reopened when
    /// the stored definition changed). `NotFound` if there is no such
    /// definition; `Config` if it cannot be decrypted.
    pub async fn pool(&self, name: &str) -> Result<PoolHandle> {
        let (def, _) = {
            let key = self.inner.key.read().await;
            let row = match self.inner.rows.get(&name.to_string()).await? {
                Some(row) => row,
                None => {
                    self.close(name).await;
                    return Err(not_found(name));
                }
            };
            open_row(&key, row)?
        };
        let stale = {
            let mut open = self.inner.open.lock().await;
            match open.get(name) {
                Some(p) if p.def == def => {
                    p.usage.touch();
                    return Ok(PoolHandle {
                        name: name.to_string(),
                        pool: p.pool.clone(),
                        usage: p.usage.clone(),
                    });
                }
                Some(_) => open.remove(name),
                None => None,
            }
        };
        if let Some(p) = stale {
            p.pool.close().await;
        }
        let pool = connect(&def).await?;
        pool.settle().await;
        let usage = Arc::new(Usage {
            last_used: AtomicU64::new(0),
            clock: self.inner.clock.clone(),
        });
        usage.touch();
        let (handle, evicted) = {
            let mut open = self.inner.open.lock().await;
            if let Some(p) = open.get(name).filter(|p| p.def == def) {
                // Another caller opened it meanwhile: use theirs, close ours.
                p.usage.touch();
                let handle = PoolHandle {
                    name: name.to_string(),
                    pool: p.pool.clone(),
                    usage: p.usage.clone(),
                };
                (handle, vec![pool])
            } else {
                let mut evicted: Vec<Pool> =
                    open.remove(name).map(|p| p.pool).into_iter().collect();
                open.insert(
                    name.to_string(),
                    OpenPool {
                        pool: pool.clone(),
                        def,
                        usage: usage.clone(),
                    },
                );
                while open.len() > self.inner.max_open {
                    let victim = open
                        .iter()
                        .filter(|(n, p)| n.as_str() != name && p.is_idle())
                        .min_by_key(|(_, p)| p.usage.last_used.load(Ordering::Relaxed))
                        .map(|(n, _)| n.clone());
                    match victim.and_then(|v| open.remove(&v).map(|p| (v, p))) {
                        Some((victim, p)) => {
                            tracing::debug!(connection = %victim, "registry: closing the least recently used idle pool");
                            evicted.push(p.pool);
                        }
                        None => {
                            tracing::warn!(
                                open = open.len(),
                                cap = self.inner.max_open,
                                "registry: every open pool is in use; exceeding max_open_pools"
                            );
                            break;
                        }
                    }
                }
                let handle = PoolHandle {
                    name: name.to_string(),
                    pool,
                    usage,
                };
                (handle, evicted)
            }
        };
        for p in evicted {
            p.close().await;
        }
        Ok(handle)
    }

    /// A repository of `E` on connection `name`, schema ensured.
    pub async fn repo<E: Entity>(&self, name: &str) -> Result<SharedRepository<E>> {
        let repo = self.pool(name).await?.repository::<E>();
        repo.ensure_schema().await?;
        Ok(repo)
    }

    /// Re-encrypt every row under `new_key` in one transaction, then use it.
    /// Returns the number of rows re-encrypted. A row the current key cannot
    /// open aborts the whole rotation with its `Config` error (nothing changes).
    pub async fn rotate(&self, new_key: RegistryKey) -> Result<u64> {
        let mut key = self.inner.key.write().await;
        let old = key.clone();
        let next = new_key.clone();
        let table = self.inner.rows.table_name().to_string();
        let dialect = self.inner.store.dialect();
        let rotated = self
            .inner
            .store
            .transaction(move |tx| {
                Box::pin(async move {
                    if dialect == Dialect::Postgres {
                        // Writers from other processes wait; readers go on.
                        tx.connection()
                            .execute_unprepared(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
                            .await
                            .map_err(|e| {
                                Error::unavailable("cannot lock the registry table for rotation")
                                    .with_source(e)
                            })?;
                    }
                    let rows = tx.repository::<ConnectionRow>();
                    let all = rows.find(&Query::filter(Filter::all())).await?;
                    let mut n = 0u64;
                    for row in all {
                        if row.key_id == next.id() {
                            next.open(&row)?;
                            continue;
                        }
                        let version = row.version;
                        let (def, _) = open_row(&old, row)?;
                        let sealed = seal_row(&next, &def, version)?;
                        rows.update(&sealed).await?;
                        n += 1;
                    }
                    Ok::<u64, Error>(n)
                })
            })
            .await?;
        *key = new_key;
        Ok(rotated)
    }

    /// Close the pool of `name` if it is open.
    pub async fn close(&self, name: &str) {
        let p = self.inner.open.lock().await.remove(name);
        if let Some(p) = p {
            p.pool.close().await;
        }
    }

    /// Close every open pool (definitions stay).
    pub async fn close_all(&self) {
        let pools: Vec<OpenPool> = self
            .inner
            .open
            .lock()
            .await
            .drain()
            .map(|(_, p)| p)
            .collect();
        for p in pools {
            p.pool.close().await;
        }
    }
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!(
        "no connection named `{}` in the registry",
        printable_name(name)
    ))
}
