//! The [`RegistryKey`] and sealing: a stored URL is encrypted with
//! XChaCha20-Poly1305 under a fresh nonce, bound to its row's name and kind
//! (associated data), and tagged with the key's id (see the module docs of
//! `registry`).

use base64::Engine as _;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::Utc;
use persistence_core::{Error, Result};
use sha2::{Digest as _, Sha256};

use crate::config::{RegistryConfig, Secret, keys};
use crate::registry::definition::{ConnectionDefinition, ConnectionRow, parse_kind, printable};

const KEY_ID_DOMAIN: &[u8] = b"persistence.registry.key-id.v1";
const AAD_DOMAIN: &str = "persistence.registry.v1";

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

    pub(super) fn open(&self, row: &ConnectionRow) -> Result<Secret> {
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

/// The row storing `def`, its URL sealed under `key`.
pub(super) fn seal_row(
    key: &RegistryKey,
    def: &ConnectionDefinition,
    version: i64,
) -> Result<ConnectionRow> {
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

/// The definition stored in `row` (URL opened with `key`) and the row's version.
pub(super) fn open_row(
    key: &RegistryKey,
    row: ConnectionRow,
) -> Result<(ConnectionDefinition, i64)> {
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
