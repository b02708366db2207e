//! [`TagStore`]: the tagged-value state of one layer — the L1 of tagged
//! values, the local generation of each tag, the in-flight loads and the tags
//! whose L2 invalidation is pending. A leaf: the layer's shared state holds it.

use std::any::Any;
use std::collections::HashMap;
#[cfg(feature = "redis")]
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "redis")]
use deadpool_redis::redis::Script;
use moka::future::Cache;
use parking_lot::Mutex;

use crate::metrics::Counters;
use crate::singleflight::Flights;

/// The `entity` label of tagged values' counters.
pub(crate) const METRIC_ENTITY: &str = "!tagged";

/// Add a value key to one tag's set if the tag's token is still the one
/// read before the load. `KEYS`: the set, the token (one slot).
#[cfg(feature = "redis")]
const STORE: &str = r"
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
";

/// Replace one tag's token and take its set's members (to delete them
/// after). `KEYS`: the set, the token (one slot).
#[cfg(feature = "redis")]
const INVALIDATE: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return members
";

pub(crate) type AnyValue = Arc<dyn Any + Send + Sync>;
#[derive(Clone)]
pub(crate) struct TagEntry {
    pub(crate) value: AnyValue,
    pub(crate) ttl: Duration,
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
    pub(crate) l1: Option<Cache<String, TagEntry>>,
    gens: Mutex<HashMap<String, u64>>,
    epoch: AtomicU64,
    next_gen: AtomicU64,
    pub(crate) flights: Flights<AnyValue>,
    /// Tags whose L2 invalidation failed (retried before tagged L2 reads).
    #[cfg(feature = "redis")]
    pub(crate) pending: Mutex<HashSet<String>>,
    #[cfg(feature = "redis")]
    pub(crate) store: Script,
    #[cfg(feature = "redis")]
    pub(crate) invalidate: Script,
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
            #[cfg(feature = "redis")]
            pending: Mutex::new(HashSet::new()),
            #[cfg(feature = "redis")]
            store: Script::new(STORE),
            #[cfg(feature = "redis")]
            invalidate: Script::new(INVALIDATE),
            counters: Counters::default(),
        }
    }

    /// True when no tag waits for its L2 invalidation.
    #[cfg(feature = "redis")]
    pub(crate) fn pending_is_empty(&self) -> bool {
        self.pending.lock().is_empty()
    }

    /// Tags waiting for their L2 invalidation.
    #[cfg(feature = "redis")]
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

    pub(crate) fn local_key(&self, key: &str, tags: &[&str]) -> String {
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
