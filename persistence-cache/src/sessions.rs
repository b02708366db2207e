//! A session store on the cache machinery: sessions live in Redis (L2) with
//! their TTL, an optional short-lived L1 in front.
//!
//! * A session id is 68 hex digits: 4 naming the user's *slot tag* (the
//!   first 4 hex digits of SHA-256 of the user) and 64 from the OS random
//!   source (two v4 UUIDs), so a session and its user's index share a Redis
//!   Cluster slot and every script touches one slot.
//! * `{prefix}:!sess:{store}:{{prefix}:{store}:{tag}}:{rest of id}` holds
//!   the postcard-encoded session (user and data) with a Redis expiry
//!   (`PX`): an expired session is never returned, Redis does not serve
//!   expired keys.
//! * `{prefix}:!sessu:{store}:{{prefix}:{store}:{tag}}:{user}` is the set of
//!   a user's session ids, so [`SessionStore::destroy_user`] is
//!   O(sessions of the user), one script (on the user's slot).
//! * Ids of another shape (sessions made before the slot tag) are looked up
//!   at `{prefix}:!sess:{store}:{id}`; `destroy_user` does not see them.
//! * L1 (optional, [`SessionStore::with_l1`]): an entry lives at most the L1
//!   TTL and never past the session's expiry; destroy/touch in this process
//!   drop it at once, in other processes after at most the L1 TTL.
//! * Unlike the read-through cache, Redis errors here reach the caller as
//!   `Unavailable`/`Timeout`: the caller explicitly asked for L2.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, Script};
use moka::future::Cache;
use persistence_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{key_part, short_hash, validate_part};
use crate::l2::L2;
use crate::layer::CacheLayer;

const FORMAT: u8 = 1;

const CREATE: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
";

/// `ARGV[1]`: the session key's start up to the slot tag (so every key it
/// deletes is in `KEYS[1]`'s slot); a member is a whole id, whose first 4
/// digits are that tag.
const DESTROY_USER: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, id in ipairs(ids) do n = n + redis.call('DEL', ARGV[1] .. string.sub(id, 5)) end
redis.call('DEL', KEYS[1])
return n
";

/// Hex digits of the slot tag at the start of a session id.
const TAG_LEN: usize = 4;
/// Length of a session id: the slot tag and 64 random hex digits.
const ID_LEN: usize = TAG_LEN + 64;

/// One session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session<T> {
    /// The session id (hand it to the client).
    pub id: String,
    /// The user the session belongs to.
    pub user: String,
    /// Application data.
    pub data: T,
    /// When it expires (as of this read).
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Stored<T> {
    user: String,
    data: T,
}

/// A typed session store. Cheap to clone.
pub struct SessionStore<T> {
    l2: std::sync::Arc<L2>,
    base: String,
    users: String,
    /// `{prefix}:{store}:`, the start of every slot tag of the store.
    hash_tag: String,
    l1: Option<(Cache<String, Session<T>>, Duration)>,
    create: std::sync::Arc<Script>,
    destroy_user: std::sync::Arc<Script>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for SessionStore<T> {
    fn clone(&self) -> Self {
        SessionStore {
            l2: self.l2.clone(),
            base: self.base.clone(),
            users: self.users.clone(),
            hash_tag: self.hash_tag.clone(),
            l1: self.l1.clone(),
            create: self.create.clone(),
            destroy_user: self.destroy_user.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SessionStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("base", &self.base)
            .field("l1", &self.l1.as_ref().map(|(_, ttl)| ttl))
            .finish()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn expires_in(ms: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(ms)
}

impl<T> SessionStore<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A store named `name` (1..=64 of `[A-Za-z0-9_.-]`) on the layer's Redis.
    pub fn new(layer: &CacheLayer, name: &str) -> Result<SessionStore<T>> {
        validate_part("session store name", name)?;
        let Some(l2) = layer.shared.l2.clone() else {
            return Err(Error::config("a session store needs L2 (redis)"));
        };
        let prefix = &layer.shared.prefix;
        Ok(SessionStore {
            l2,
            base: format!("{prefix}:!sess:{name}:"),
            users: format!("{prefix}:!sessu:{name}:"),
            hash_tag: format!("{prefix}:{name}:"),
            l1: None,
            create: std::sync::Arc::new(Script::new(CREATE)),
            destroy_user: std::sync::Arc::new(Script::new(DESTROY_USER)),
            _t: PhantomData,
        })
    }

    /// Keep sessions in an in-process cache for at most `ttl` (bounded by
    /// `max_entries`); see the module docs for what that means across processes.
    pub fn with_l1(mut self, ttl: Duration, max_entries: u64) -> Self {
        self.l1 = Some((
            Cache::builder()
                .max_capacity(max_entries)
                .expire_after(SessionExpiry { max: ttl })
                .support_invalidation_closures()
                .build(),
            ttl,
        ));
        self
    }

    /// The slot tag of `user`: 4 hex digits of SHA-256.
    fn user_tag(user: &str) -> String {
        short_hash(user.as_bytes())[..TAG_LEN].to_string()
    }

    /// `{base}{{{prefix}:{store}:{tag}}}:` — the sessions of the users with
    /// this slot tag start so.
    fn tagged_base(&self, tag: &str) -> String {
        format!("{}{{{}{tag}}}:", self.base, self.hash_tag)
    }

    fn key(&self, id: &str) -> String {
        let ours = id.len() == ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ours {
            let (tag, rest) = id.split_at(TAG_LEN);
            format!("{}{rest}", self.tagged_base(tag))
        } else {
            format!("{}{}", self.base, key_part(id))
        }
    }

    fn user_key(&self, user: &str) -> String {
        format!(
            "{}{{{}{}}}:{}",
            self.users,
            self.hash_tag,
            Self::user_tag(user),
            key_part(user)
        )
    }

    /// Create a session for `user` living `ttl`.
    pub async fn create(&self, user: &str, data: T, ttl: Duration) -> Result<Session<T>> {
        if ttl.is_zero() {
            return Err(Error::invalid_input("session TTL must be positive"));
        }
        let id = format!(
            "{}{}{}",
            Self::user_tag(user),
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let stored = Stored {
            user: user.to_string(),
            data,
        };
        let bytes = postcard::to_extend(&stored, vec![FORMAT])
            .map_err(|e| Error::invalid_input(format!("cannot encode session data: {e}")))?;
        let mut inv = self.create.prepare_invoke();
        inv.key(self.key(&id))
            .key(self.user_key(user))
            .arg(bytes)
            .arg(ms(ttl))
            .arg(id.as_str());
        self.l2.invoke::<i64>(inv).await?;
        Ok(Session {
            id,
            user: stored.user,
            data: stored.data,
            expires_at: expires_in(i64::try_from(ms(ttl)).unwrap_or(i64::MAX)),
        })
    }

    /// The session, if it exists and has not expired.
    pub async fn get(&self, id: &str) -> Result<Option<Session<T>>> {
        if let Some((l1, _)) = &self.l1 {
            if let Some(s) = l1.get(id).await {
                if s.expires_at > Utc::now() {
                    return Ok(Some(s));
                }
                l1.invalidate(id).await;
            }
        }
        let key = self.key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let (bytes, pttl): (Option<Vec<u8>>, i64) = self.l2.query(pipe).await?;
        let Some(bytes) = bytes else { return Ok(None) };
        if pttl <= 0 {
            // -2: gone meanwhile; -1 cannot happen (always created with PX).
            return Ok(None);
        }
        let stored: Stored<T> = match bytes.split_first() {
            Some((&FORMAT, body)) => match postcard::from_bytes(body) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable session treated as absent");
                    return Ok(None);
                }
            },
            _ => return Ok(None),
        };
        let session = Session {
            id: id.to_string(),
            user: stored.user,
            data: stored.data,
            expires_at: expires_in(pttl),
        };
        if let Some((l1, _)) = &self.l1 {
            l1.insert(id.to_string(), session.clone()).await;
        }
        Ok(Some(session))
    }

    /// Extend a live session to expire `ttl` from now; false if it is gone.
    pub async fn touch(&self, id: &str, ttl: Duration) -> Result<bool> {
        if let Some((l1, _)) = &self.l1 {
            l1.invalidate(id).await;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("PEXPIRE").arg(self.key(id)).arg(ms(ttl));
        let (n,): (i64,) = self.l2.query(pipe).await?;
        Ok(n == 1)
    }

    /// Destroy a session; false if it did not exist.
    pub async fn destroy(&self, id: &str) -> Result<bool> {
        if let Some((l1, _)) = &self.l1 {
            l1.invalidate(id).await;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.key(id));
        let (n,): (i64,) = self.l2.query(pipe).await?;
        Ok(n == 1)
    }

    /// Destroy every session of `user`; returns how many existed.
    pub async fn destroy_user(&self, user: &str) -> Result<u64> {
        if let Some((l1, _)) = &self.l1 {
            let u = user.to_string();
            // Entries of this user in this process; other processes: at most the L1 TTL.
            l1.invalidate_entries_if(move |_, s| s.user == u)
                .map_err(|e| Error::backend(format!("cannot invalidate sessions in L1: {e}")))?;
        }
        let mut inv = self.destroy_user.prepare_invoke();
        inv.key(self.user_key(user))
            .arg(self.tagged_base(&Self::user_tag(user)));
        self.l2.invoke::<u64>(inv).await
    }
}

struct SessionExpiry {
    max: Duration,
}

impl<T> moka::Expiry<String, Session<T>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Session<T>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = (value.expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Some(left.min(self.max))
    }
}
