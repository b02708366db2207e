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
//! URLs are [`Secret`]s: `Debug` of a definition, a handle or the registry
//! never shows them, error messages name connections, not URLs, and nothing
//! here logs a URL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{
    DatabaseConfig, DatabaseKind, PersistenceConfig, PoolConfig, RegistryConfig, Secret, keys,
};
use base64::Engine as _;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use persistence_core::layer::{Around, BoxFuture, Call, LayerExt, Op};
use persistence_core::{Entity, Error, Filter, Query, Repository, Result, SharedRepository};
use persistence_mongo::{MongoConfig, MongoStore};
use persistence_postgres::sea_orm::ConnectionTrait as _;
use persistence_postgres::{Dialect, RelationalRepository, RelationalStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, RwLock};

/// The logical name (table) of the stored definitions.
pub const TABLE: &str = "persistence_connections";

/// Default cap on open pools.
pub const DEFAULT_MAX_OPEN_POOLS: usize = 16;

const KEY_ID_DOMAIN: &[u8] = b"persistence.registry.key-id.v1";
const AAD_DOMAIN: &str = "persistence.registry.v1";
/// How long [`Pool::settle`] waits at most for a new pool's connections to come back.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);

/// The key sealing the stored URLs: 32 bytes, used with XChaCha20-Poly1305.
/// `Debug` shows only its id; the cipher state is zeroized on drop.
#[derive(Clone)]
pub struct RegistryKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for RegistryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryKey").field("id", &self.id).finish()
    }
}

impl RegistryKey {
    /// From the 32 raw key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<RegistryKey> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::config(format!(
                "the registry key must be 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: [u8; 32]) -> RegistryKey {
        let mut h = Sha256::new();
        h.update(KEY_ID_DOMAIN);
        h.update(key);
        let digest = h.finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        RegistryKey {
            cipher: XChaCha20Poly1305::new(&key.into()),
            id,
        }
    }

    /// From base64 text (standard alphabet, padding optional; surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<RegistryKey> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| Error::config("the registry key is not valid base64"))?;
        Self::from_bytes(&bytes)
    }

    /// From a file holding base64 text or the 32 raw bytes.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<RegistryKey> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::config(format!(
                "cannot read the registry key file {}: {e}",
                path.display()
            ))
        })?;
        if bytes.len() == 32 {
            return Self::from_bytes(&bytes);
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            Error::config(format!(
                "the registry key file {} holds neither 32 raw bytes nor base64 text",
                path.display()
            ))
        })?;
        Self::from_base64(text).map_err(|e| {
            Error::config(format!(
                "registry key file {}: {}",
                path.display(),
                e.message()
            ))
        })
    }

    /// From the variable `var` (base64).
    pub fn from_env_var(var: &str) -> Result<RegistryKey> {
        match std::env::var(var) {
            Ok(v) => {
                Self::from_base64(&v).map_err(|e| Error::config(format!("{var}: {}", e.message())))
            }
            Err(_) => Err(Error::config(format!(
                "the registry key variable {var} is not set (32 bytes, base64)"
            ))),
        }
    }

    /// [`keys::ENV_REGISTRY_KEY`], else the file named by [`keys::ENV_REGISTRY_KEY_FILE`].
    pub fn from_env() -> Result<RegistryKey> {
        Self::from_config(&RegistryConfig::default())
    }

    /// As the `registry` section says: its `key_file`, else its `key_env`
    /// variable (default [`keys::ENV_REGISTRY_KEY`]), else the file named by
    /// [`keys::ENV_REGISTRY_KEY_FILE`].
    pub fn from_config(config: &RegistryConfig) -> Result<RegistryKey> {
        if let Some(path) = &config.key_file {
            return Self::from_file(path);
        }
        let var = config.key_env.as_deref().unwrap_or(keys::ENV_REGISTRY_KEY);
        if std::env::var_os(var).is_some() {
            return Self::from_env_var(var);
        }
        if let Some(path) = std::env::var_os(keys::ENV_REGISTRY_KEY_FILE) {
            return Self::from_file(path);
        }
        Err(Error::config(format!(
            "no registry key: set {var} (32 bytes, base64) or {} (a key file), or registry.{} in the config",
            keys::ENV_REGISTRY_KEY_FILE,
            keys::REGISTRY_KEY_FILE
        )))
    }

    /// A new random key and its base64 form (to store in a secret manager).
    pub fn generate() -> (RegistryKey, Secret) {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        (Self::from_key(key), Secret::new(text))
    }

    /// The key id stored with each row (not secret: a truncated hash).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, name: &str, kind: &str, plaintext: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(name, kind);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::config(format!("registry connection `{name}`: encryption failed"))
            })?;
        Ok((nonce.to_vec(), ciphertext))
    }

    fn open(&self, row: &ConnectionRow) -> Result<Secret> {
        let name = &row.name;
        if row.key_id != self.id {
            return Err(Error::config(format!(
                "registry connection `{name}` is sealed with key {} but the registry key is {}: wrong key (or the row was altered)",
                printable(&row.key_id),
                self.id
            )));
        }
        let tampered = || {
            Error::config(format!(
                "registry connection `{name}` cannot be decrypted: its stored secret was altered (or the key is wrong)"
            ))
        };
        let nonce: [u8; 24] = row.nonce.as_slice().try_into().map_err(|_| tampered())?;
        let nonce = XNonce::from(nonce);
        let aad = aad(name, &row.kind);
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &row.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| tampered())?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| tampered())
    }
}

fn aad(name: &str, kind: &str) -> String {
    format!("{AAD_DOMAIN}\0{name}\0{kind}")
}

fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect()
}

/// One connection definition. `Debug` redacts the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDefinition {
    /// Unique name (an identifier: letters, digits, `_`).
    pub name: String,
    /// Backend: `postgres`, `sqlite` or `mongo`.
    pub kind: DatabaseKind,
    /// Connection URL, with its password (stored encrypted).
    pub url: Secret,
    /// PostgreSQL schema.
    pub schema: Option<String>,
    /// MongoDB database name (default: the connection name).
    pub database: Option<String>,
    /// Pool settings.
    pub pool: PoolConfig,
}

impl ConnectionDefinition {
    /// A definition with default pool settings.
    pub fn new(name: impl Into<String>, kind: DatabaseKind, url: impl Into<Secret>) -> Self {
        ConnectionDefinition {
            name: name.into(),
            kind,
            url: url.into(),
            schema: None,
            database: None,
            pool: PoolConfig::default(),
        }
    }

    /// Set the PostgreSQL schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Set the MongoDB database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Set the pool settings.
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    fn validate(&self) -> Result<()> {
        if !matches!(
            self.kind,
            DatabaseKind::Postgres | DatabaseKind::Sqlite | DatabaseKind::Mongo
        ) {
            return Err(Error::config(format!(
                "registry connection `{}`: kind {} is not supported (postgres, sqlite, mongo)",
                self.name,
                self.kind.name()
            )));
        }
        // The same name and URL checks as a configured database.
        let mut config = PersistenceConfig::default();
        config
            .databases
            .insert(self.name.clone(), self.as_database_config());
        config.validate().map_err(|e| {
            Error::config(format!(
                "registry connection `{}`: {}",
                printable_name(&self.name),
                e.message()
            ))
        })
    }

    fn as_database_config(&self) -> DatabaseConfig {
        DatabaseConfig {
            schema: self.schema.clone(),
            database: self.database.clone(),
            pool: self.pool.clone(),
            ..DatabaseConfig::new(self.kind, Some(self.url.clone()))
        }
    }
}

fn printable_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

/// A definition as listed: everything but the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSummary {
    /// Name.
    pub name: String,
    /// Backend.
    pub kind: DatabaseKind,
    /// The id of the key the URL is sealed with.
    pub key_id: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Whether its pool is open in this process.
    pub open: bool,
}

/// The stored row.
#[derive(Debug, Clone, Serialize, Deserialize, Entity)]
#[entity(name = "persistence_connections")]
struct ConnectionRow {
    #[entity(id)]
    name: String,
    kind: String,
    schema_name: Option<String>,
    database_name: Option<String>,
    pool: PoolConfig,
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    #[entity(version)]
    version: i64,
    updated_at: DateTime<Utc>,
}

fn parse_kind(name: &str, kind: &str) -> Result<DatabaseKind> {
    match kind {
        "postgres" => Ok(DatabaseKind::Postgres),
        "sqlite" => Ok(DatabaseKind::Sqlite),
        "mongo" => Ok(DatabaseKind::Mongo),
        other => Err(Error::config(format!(
            "registry connection `{name}` has an unknown kind `{}`",
            printable(other)
        ))),
    }
}

/// An open pool. `Debug` shows the dialect and schema or database name only.
#[derive(Clone)]
pub enum Pool {
    /// PostgreSQL or SQLite.
    Relational(RelationalStore),
    /// MongoDB.
    Mongo(MongoStore),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pool::Relational(store) => f.debug_tuple("Relational").field(store).finish(),
            Pool::Mongo(store) => f
                .debug_struct("Mongo")
                .field("database", &store.database().name())
                .finish(),
        }
    }
}

impl Pool {
    async fn close(&self) {
        match self {
            Pool::Relational(store) => store.close().await,
            Pool::Mongo(store) => store.client().clone().shutdown().immediate(true).await,
        }
    }

    /// Wait (bounded) until the connections that opening the pool used are
    /// back in it. sqlx returns a dropped connection from a spawned task, so
    /// right after `connect` a pool nobody holds can still count one in use,
    /// and the LRU cap would take the new, unused pool for a busy one.
    async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
        while self.connections_in_use() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn connections_in_use(&self) -> usize {
        match self {
            Pool::Relational(store) => match store.dialect() {
                Dialect::Postgres => {
                    let p = store.connection().get_postgres_connection_pool();
                    (p.size() as usize).saturating_sub(p.num_idle())
                }
                Dialect::Sqlite => {
                    let p = store.connection().get_sqlite_connection_pool();
                    (p.size() as usize).saturating_sub(p.num_idle())
                }
            },
            Pool::Mongo(_) => 0,
        }
    }
}

/// Per-pool usage, shared by every handle: the handles' count is the lease
/// count; `last_used` is a tick of the registry's clock.
#[derive(Debug)]
struct Usage {
    last_used: AtomicU64,
    clock: Arc<AtomicU64>,
}

impl Usage {
    fn touch(&self) {
        let t = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        self.last_used.store(t, Ordering::Relaxed);
    }
}

/// A lease on an open pool: while it (or a repository made from it) lives,
/// the pool is not idle and the LRU cap does not close it.
#[derive(Clone, Debug)]
pub struct PoolHandle {
    name: String,
    pool: Pool,
    usage: Arc<Usage>,
}

impl PoolHandle {
    /// The connection name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The relational store, if this is a PostgreSQL or SQLite connection.
    pub fn relational(&self) -> Option<&RelationalStore> {
        match &self.pool {
            Pool::Relational(s) => Some(s),
            Pool::Mongo(_) => None,
        }
    }

    /// The MongoDB store, if this is a MongoDB connection.
    pub fn mongo(&self) -> Option<&MongoStore> {
        match &self.pool {
            Pool::Mongo(s) => Some(s),
            Pool::Relational(_) => None,
        }
    }

    /// A repository of `E` on this pool (schema not ensured). It holds the
    /// lease and counts as a use of the pool on every call.
    pub fn repository<E: Entity>(&self) -> SharedRepository<E> {
        let lease = Lease(self.usage.clone());
        match &self.pool {
            Pool::Relational(s) => Arc::new(s.repository::<E>().layer(lease)),
            Pool::Mongo(s) => Arc::new(s.repository::<E>().layer(lease)),
        }
    }
}

/// The hook that keeps a pool leased and marks it used.
#[derive(Debug, Clone)]
struct Lease(Arc<Usage>);

impl Around for Lease {
    fn around<'a, T: Send + 'a>(
        &'a self,
        _entity: &'static str,
        _op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        self.0.touch();
        call()
    }
}

struct OpenPool {
    pool: Pool,
    /// The definition it was opened with.
    def: ConnectionDefinition,
    usage: Arc<Usage>,
}

impl OpenPool {
    fn is_idle(&self) -> bool {
        Arc::strong_count(&self.usage) == 1 && self.pool.connections_in_use() == 0
    }
}

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

fn seal_row(key: &RegistryKey, def: &ConnectionDefinition, version: i64) -> Result<ConnectionRow> {
    let kind = def.kind.name();
    let (nonce, ciphertext) = key.seal(&def.name, kind, def.url.expose())?;
    Ok(ConnectionRow {
        name: def.name.clone(),
        kind: kind.to_string(),
        schema_name: def.schema.clone(),
        database_name: def.database.clone(),
        pool: def.pool.clone(),
        key_id: key.id().to_string(),
        nonce,
        ciphertext,
        version,
        updated_at: Utc::now(),
    })
}

fn open_row(key: &RegistryKey, row: ConnectionRow) -> Result<(ConnectionDefinition, i64)> {
    let kind = parse_kind(&row.name, &row.kind)?;
    let url = key.open(&row)?;
    Ok((
        ConnectionDefinition {
            name: row.name,
            kind,
            url,
            schema: row.schema_name,
            database: row.database_name,
            pool: row.pool,
        },
        row.version,
    ))
}

async fn connect(def: &ConnectionDefinition) -> Result<Pool> {
    let in_context = |e: Error| {
        Error::new(
            e.kind().clone(),
            format!("registry connection `{}`: {}", def.name, e.message()),
        )
    };
    match def.kind {
        DatabaseKind::Postgres | DatabaseKind::Sqlite => {
            let rc = crate::manager::relational_config(
                def.url.expose().to_string(),
                def.schema.clone(),
                &def.pool,
            );
            Ok(Pool::Relational(
                RelationalStore::connect(&rc).await.map_err(in_context)?,
            ))
        }
        DatabaseKind::Mongo => {
            let database = def.database.clone().unwrap_or_else(|| def.name.clone());
            let store = MongoStore::connect(&MongoConfig::new(def.url.expose(), database))
                .await
                .map_err(in_context)?;
            Ok(Pool::Mongo(store))
        }
        other => Err(Error::config(format!(
            "registry connection `{}`: kind {} is not supported",
            def.name,
            other.name()
        ))),
    }
}
