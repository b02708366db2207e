//! Tagged values: [`CacheLayer::get_or_load_tagged`] caches an arbitrary
//! computed value under a key with tags; [`CacheLayer::invalidate_tag`]
//! removes everything carrying a tag, from L1 and L2, in O(tagged items).
//!
//! * L2: the value lives at `{prefix}:!val:{key}`; each tag has a Redis set
//!   `{prefix}:!tag:{tag}` of the value keys carrying it and a token
//!   `{prefix}:!tagv:{tag}`. A store (Lua) checks that the tokens of all its
//!   tags are the ones read before the load (stale-set protection), then
//!   `SET`s the value and `SADD`s its key to each tag set. Invalidation (Lua)
//!   replaces the token, deletes the set's members and the set: no keyspace scan.
//! * L1: the local key carries a generation per tag; `invalidate_tag` bumps
//!   the tag's generation, so entries loaded before are unreachable.
//! * Values are encoded with postcard directly (format byte first): use
//!   plain serde shapes (no `flatten`, untagged enums or `serde_json::Value`);
//!   a value that fails to decode is a miss.
//! * Fail-safe: a tag whose L2 invalidation failed is remembered; tagged L2
//!   entries are not read until every such tag has been invalidated in L2.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, Script};
use futures_util::FutureExt as _;
use moka::future::Cache;
use parking_lot::Mutex;
use persistence_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::CacheLayer;
use crate::keys::short_hash;
use crate::metrics::{Counters, Event, Level};
use crate::singleflight::Flights;

const FORMAT: u8 = 1;
const METRIC_ENTITY: &str = "!tagged";

const STORE: &str = r"
local n = tonumber(ARGV[3])
for i = 1, n do
  local cur = redis.call('GET', KEYS[1 + i]) or ''
  if cur ~= ARGV[3 + i] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 1, n do
  local set = KEYS[1 + n + i]
  redis.call('SADD', set, KEYS[1])
  if redis.call('PTTL', set) < tonumber(ARGV[2]) then redis.call('PEXPIRE', set, ARGV[2]) end
end
return 1
";

const INVALIDATE: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(members) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return #members
";

const TAG_TOKEN_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

type AnyValue = Arc<dyn Any + Send + Sync>;
/// A tagged lookup: the value bytes and the tokens of its tags.
type Lookup = (Option<Vec<u8>>, Vec<Option<String>>);

#[derive(Clone)]
pub(crate) struct TagEntry {
    value: AnyValue,
    ttl: Duration,
}

struct TagExpiry;

impl moka::Expiry<String, TagEntry> for TagExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &TagEntry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The tagged-value state of a layer.
pub(crate) struct TagStore {
    l1: Option<Cache<String, TagEntry>>,
    gens: Mutex<HashMap<String, u64>>,
    epoch: AtomicU64,
    next_gen: AtomicU64,
    flights: Flights<AnyValue>,
    pending: Mutex<HashSet<String>>,
    store: Script,
    invalidate: Script,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for TagStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagStore").finish_non_exhaustive()
    }
}

impl TagStore {
    pub(crate) fn new(l1_max_weight: Option<u64>) -> TagStore {
        TagStore {
            l1: l1_max_weight.map(|w| {
                Cache::builder()
                    .max_capacity(w)
                    .expire_after(TagExpiry)
                    .build()
            }),
            gens: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            next_gen: AtomicU64::new(1),
            flights: Flights::new(),
            pending: Mutex::new(HashSet::new()),
            store: Script::new(STORE),
            invalidate: Script::new(INVALIDATE),
            counters: Counters::default(),
        }
    }

    /// True when no tag waits for its L2 invalidation.
    pub(crate) fn pending_is_empty(&self) -> bool {
        self.pending.lock().is_empty()
    }

    /// Tags waiting for their L2 invalidation.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.lock().len()
    }

    /// Make entries tagged `tag` unreachable locally (`""`: every entry).
    pub(crate) fn bump(&self, tag: &str) {
        if tag.is_empty() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        } else {
            let g = self.next_gen.fetch_add(1, Ordering::SeqCst);
            self.gens.lock().insert(tag.to_string(), g);
        }
    }

    fn local_key(&self, key: &str, tags: &[&str]) -> String {
        let gens = self.gens.lock();
        let mut k = String::with_capacity(key.len() + 8 * tags.len());
        k.push_str(key);
        let _ = write!(k, "@{}:", self.epoch.load(Ordering::SeqCst));
        for t in tags {
            let _ = write!(k, "{}.", gens.get(*t).copied().unwrap_or(0));
        }
        k
    }
}

fn part(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@' | b'/'))
    {
        s.to_string()
    } else {
        format!("#{}", short_hash(s.as_bytes()))
    }
}

impl CacheLayer {
    fn value_key(&self, key: &str) -> String {
        format!("{}:!val:{}", self.shared.prefix, part(key))
    }
    fn tag_set(&self, tag: &str) -> String {
        format!("{}:!tag:{}", self.shared.prefix, part(tag))
    }
    fn tag_token(&self, tag: &str) -> String {
        format!("{}:!tagv:{}", self.shared.prefix, part(tag))
    }

    /// Return the value cached under `key`, or run `loader`, cache its result
    /// with `tags` (layer TTL with jitter) and return it. Concurrent misses
    /// of one key share one load; a load that raced an [`invalidate_tag`] of
    /// one of its tags returns its value but does not cache it.
    ///
    /// [`invalidate_tag`]: CacheLayer::invalidate_tag
    pub async fn get_or_load_tagged<T, F, Fut>(
        &self,
        key: &str,
        tags: &[&str],
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.get_or_load_tagged_ttl(key, tags, self.shared.default_ttl.ttl, loader)
            .await
    }

    /// [`get_or_load_tagged`](CacheLayer::get_or_load_tagged) with a TTL for this call.
    pub async fn get_or_load_tagged_ttl<T, F, Fut>(
        &self,
        key: &str,
        tags: &[&str],
        ttl: Duration,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let store = &self.shared.tags;
        let local = store.local_key(key, tags);
        if let Some(l1) = &store.l1 {
            if let Some(hit) = l1.get(&local).await {
                if let Ok(v) = hit.value.downcast::<T>() {
                    store.counters.record(METRIC_ENTITY, Event::Hit(Level::L1));
                    return Ok(T::clone(&v));
                }
            }
            store.counters.record(METRIC_ENTITY, Event::Miss(Level::L1));
        }
        let me = self.clone();
        let key = key.to_string();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let flight_key = local.clone();
        let out = store
            .flights
            .run(flight_key, move || {
                async move {
                    me.fill_tagged::<T, F, Fut>(key, tags, local, ttl, loader)
                        .await
                        .map(|v| Arc::new(v) as AnyValue)
                }
                .boxed()
            })
            .await?;
        out.downcast::<T>()
            .map(|v| T::clone(&v))
            .map_err(|_| Error::invalid_input("a tagged key was used with two value types"))
    }

    async fn fill_tagged<T, F, Fut>(
        &self,
        key: String,
        tags: Vec<String>,
        local: String,
        ttl: Duration,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let store = &self.shared.tags;
        // A flight that finished just before this one started has filled L1
        // (between this caller's L1 miss and its joining the flight map).
        if let Some(l1) = &store.l1 {
            if let Some(hit) = l1.get(&local).await {
                if let Ok(v) = hit.value.downcast::<T>() {
                    return Ok(T::clone(&v));
                }
            }
        }
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let vkey = self.value_key(&key);
        let mut tokens: Option<Vec<String>> = None;
        if self.tags_l2_ready().await {
            if let Some(l2) = self.shared.l2.as_deref() {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(&vkey);
                let mut mget = redis::cmd("MGET");
                for t in &tags {
                    mget.arg(self.tag_token(t));
                }
                if !tags.is_empty() {
                    pipe.add_command(mget);
                }
                let res: Result<Lookup> = if tags.is_empty() {
                    l2.query(pipe)
                        .await
                        .map(|(v,): (Option<Vec<u8>>,)| (v, Vec::new()))
                } else {
                    l2.query(pipe).await
                };
                match res {
                    Ok((value, toks)) => {
                        if let Some(bytes) = value {
                            match decode::<T>(&bytes) {
                                Some(v) => {
                                    store.counters.record(METRIC_ENTITY, Event::Hit(Level::L2));
                                    self.tag_l1_put(&key, &tag_refs, local, &v, ttl).await;
                                    return Ok(v);
                                }
                                None => store.counters.record(METRIC_ENTITY, Event::DecodeError),
                            }
                        }
                        store.counters.record(METRIC_ENTITY, Event::Miss(Level::L2));
                        tokens = Some(toks.into_iter().map(Option::unwrap_or_default).collect());
                    }
                    Err(e) => {
                        store.counters.record(METRIC_ENTITY, Event::L2Error);
                        tracing::debug!(error = %e, "redis (L2) failed for a tagged value");
                    }
                }
            }
        }
        store.counters.record(METRIC_ENTITY, Event::Load);
        let value = loader().await.inspect_err(|_| {
            store.counters.record(METRIC_ENTITY, Event::LoadError);
        })?;
        if let (Some(tokens), Some(l2)) = (tokens, self.shared.l2.as_deref()) {
            if let Some(bytes) = encode(&value) {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let mut inv = store.store.prepare_invoke();
                inv.key(&vkey);
                for t in &tags {
                    inv.key(self.tag_token(t));
                }
                for t in &tags {
                    inv.key(self.tag_set(t));
                }
                inv.arg(bytes).arg(ms).arg(tags.len());
                for tok in &tokens {
                    inv.arg(tok);
                }
                match l2.invoke::<i64>(inv).await {
                    Ok(1) => {}
                    Ok(_) => store
                        .counters
                        .record(METRIC_ENTITY, Event::StaleSetPrevented),
                    Err(e) => {
                        store.counters.record(METRIC_ENTITY, Event::L2Error);
                        tracing::debug!(error = %e, "redis (L2) failed storing a tagged value");
                    }
                }
            }
        }
        self.tag_l1_put(&key, &tag_refs, local, &value, ttl).await;
        Ok(value)
    }

    async fn tag_l1_put<T: Send + Sync + Clone + 'static>(
        &self,
        key: &str,
        tags: &[&str],
        local: String,
        value: &T,
        ttl: Duration,
    ) {
        let store = &self.shared.tags;
        let Some(l1) = &store.l1 else { return };
        if store.local_key(key, tags) != local {
            store
                .counters
                .record(METRIC_ENTITY, Event::StaleSetPrevented);
            return;
        }
        let mut ttl = self.jitter(ttl);
        if let Some(bp) = &self.shared.backplane {
            if !bp.connected() {
                ttl = ttl.min(bp.degraded_ttl);
            }
        }
        l1.insert(
            local,
            TagEntry {
                value: Arc::new(value.clone()),
                ttl,
            },
        )
        .await;
    }

    pub(crate) fn jitter(&self, ttl: Duration) -> Duration {
        let j = self.shared.jitter;
        if j <= 0.0 {
            ttl
        } else {
            ttl.mul_f64(1.0 - j * fastrand::f64())
        }
    }

    /// Before reading tagged L2 entries: every tag whose L2 invalidation
    /// failed must be invalidated first (also retried by the outbox task,
    /// so other instances hear of it as soon as Redis answers).
    pub(crate) async fn retry_pending_tags(&self) -> bool {
        self.tags_l2_ready().await
    }

    async fn tags_l2_ready(&self) -> bool {
        let pending: Vec<String> = self.shared.tags.pending.lock().iter().cloned().collect();
        for tag in pending {
            if self.invalidate_tag_l2(&tag).await.is_err() {
                return false;
            }
            self.shared.tags.pending.lock().remove(&tag);
        }
        true
    }

    async fn invalidate_tag_l2(&self, tag: &str) -> Result<u64> {
        let Some(l2) = self.shared.l2.as_deref() else {
            return Ok(0);
        };
        let mut inv = self.shared.tags.invalidate.prepare_invoke();
        inv.key(self.tag_set(tag))
            .key(self.tag_token(tag))
            .arg(fastrand::u64(..).to_string())
            .arg(TAG_TOKEN_TTL_MS);
        match &self.shared.backplane {
            Some(bp) => {
                let msg = crate::backplane::Message::Tag {
                    tag: tag.to_string(),
                };
                inv.arg(bp.channel.as_str()).arg(msg.encode(bp.origin));
            }
            None => {
                inv.arg("").arg("");
            }
        }
        l2.invoke::<u64>(inv).await
    }

    /// Remove every value tagged `tag`, from L1 and L2. Returns how many L2
    /// entries were removed. Redis failures are absorbed: L1 is invalidated
    /// anyway, and tagged L2 entries are not read until the L2 side succeeded.
    pub async fn invalidate_tag(&self, tag: &str) -> u64 {
        let store = &self.shared.tags;
        store.counters.record(METRIC_ENTITY, Event::Invalidation);
        let removed = match self.invalidate_tag_l2(tag).await {
            Ok(n) => n,
            Err(e) => {
                store.counters.record(METRIC_ENTITY, Event::L2Error);
                tracing::warn!(tag, error = %e, "redis (L2) failed invalidating a tag; tagged L2 entries are bypassed until it succeeds");
                store.pending.lock().insert(tag.to_string());
                self.shared.outbox.poke();
                0
            }
        };
        store.bump(tag);
        removed
    }

    /// Counters of tagged values.
    pub fn tagged_stats(&self) -> crate::Stats {
        self.shared.tags.counters.snapshot()
    }
}

fn encode<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    postcard::to_extend(value, vec![FORMAT]).ok()
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).ok(),
        _ => None,
    }
}
