//! Tagged values: [`CacheLayer::get_or_load_tagged`] caches an arbitrary
//! computed value under a key with tags; [`CacheLayer::invalidate_tag`]
//! removes everything carrying a tag, from L1 and L2, in O(tagged items).
//!
//! * L2: the value lives at `{prefix}:!val:{key}`; each tag has a Redis set
//!   of the value keys carrying it, `{prefix}:!tag:{{prefix}:{tag}}`, and a
//!   token, `{prefix}:!tagv:{{prefix}:{tag}}` — set and token share a slot
//!   (Redis Cluster hash tag), the value has its own. A value is stored
//!   *stamped* with the tokens of its tags read before its load, and is a
//!   hit only while its stamp equals its tags' current tokens.
//!   * Store: on each tag's slot a script adds the value key to the set if
//!     the token is unchanged (else nothing is stored: stale-set
//!     protection); then the stamped value is `SET`.
//!   * Invalidation: one script on the tag's slot replaces the token, takes
//!     the set and publishes the backplane message; then the values it named
//!     are deleted (`DEL`, split by slot on a cluster). O(tagged items), no
//!     keyspace scan.
//!   * Guarantee: once `invalidate_tag` has returned (its script ran), no
//!     read returns a value loaded before it — the token it replaced is the
//!     stamp of every such value, whether or not the `DEL`s reached it (they
//!     only free memory). A store racing the invalidation either fails its
//!     token check or writes a value stamped with the old token (a miss).
//!     Tokens are created `SET NX` with a random value before a load, never
//!     empty, so a token lost with its node (a restart without persistence)
//!     comes back as a value no stamp holds.
//! * L1: the local key carries a generation per tag; `invalidate_tag` bumps
//!   the tag's generation, so entries loaded before are unreachable.
//! * Values are encoded with postcard directly (format byte first): use
//!   plain serde shapes (no `flatten`, untagged enums or `serde_json::Value`);
//!   a value that fails to decode is a miss.
//! * Fail-safe: a tag whose L2 invalidation failed is remembered; tagged L2
//!   entries are not read until every such tag has been invalidated in L2.
//!
//! This file holds the API and the L1 path; `store` the state, `l2` (feature `redis`) the
//! Redis side.

use std::future::Future;
#[cfg(feature = "redis")]
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use persistence_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::layer::CacheLayer;
use crate::metrics::{Event, Level};
use crate::singleflight::{Checked, Joined};
use crate::tags::store::{AnyValue, METRIC_ENTITY, TagEntry};

#[cfg(feature = "redis")]
mod l2;
pub(crate) mod store;

impl CacheLayer {
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
                    // The loader runs once, so a late joiner cannot read
                    // again: tagged values keep the flight's answer.
                    me.fill_tagged::<T, F, Fut>(key, tags, local, ttl, loader)
                        .await
                        .map(|v| Checked {
                            value: Arc::new(v) as AnyValue,
                            since: u64::MAX,
                            token: None,
                        })
                }
                .boxed()
            })
            .await?;
        let out = match out {
            Joined::Current(v) => v,
            Joined::Superseded(c) => c.value,
        };
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
        #[cfg(feature = "redis")]
        let tokens = match self.tagged_l2_lookup::<T>(&key, &tags).await {
            ControlFlow::Break(v) => {
                self.tag_l1_put(&key, &tag_refs, local, &v, ttl).await;
                return Ok(v);
            }
            ControlFlow::Continue(tokens) => tokens,
        };
        store.counters.record(METRIC_ENTITY, Event::Load);
        let value = loader().await.inspect_err(|_| {
            store.counters.record(METRIC_ENTITY, Event::LoadError);
        })?;
        #[cfg(feature = "redis")]
        if let Some(tokens) = tokens {
            self.tagged_l2_store(&key, &tags, &tokens, &value, ttl)
                .await;
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
        let ttl = self.shared.l1_ttl(self.shared.jittered(ttl));
        l1.insert(
            local,
            TagEntry {
                value: Arc::new(value.clone()),
                ttl,
            },
        )
        .await;
    }

    /// Remove every value tagged `tag`, from L1 and L2. Returns how many L2
    /// entries were removed. Redis failures are absorbed: L1 is invalidated
    /// anyway, and tagged L2 entries are not read until the L2 side succeeded.
    pub async fn invalidate_tag(&self, tag: &str) -> u64 {
        let store = &self.shared.tags;
        store.counters.record(METRIC_ENTITY, Event::Invalidation);
        #[cfg(feature = "redis")]
        let removed = self.remove_tagged_l2(tag).await;
        #[cfg(not(feature = "redis"))]
        let removed = 0;
        store.bump(tag);
        removed
    }

    /// Counters of tagged values.
    pub fn tagged_stats(&self) -> crate::Stats {
        self.shared.tags.counters.snapshot()
    }
}
