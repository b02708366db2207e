//! The Redis side of tagged values: keys, lookups, stores gated by the tags'
//! tokens, and tag invalidation (see [`super`] for the protocol). Values are
//! encoded with postcard directly, format byte first.

use std::ops::ControlFlow;
use std::time::Duration;

use deadpool_redis::redis;
use persistence_core::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backplane::Message;
use crate::keys::short_hash;
use crate::layer::CacheLayer;
use crate::metrics::{Event, Level};
use crate::tags::store::METRIC_ENTITY;

const FORMAT: u8 = 1;

const TAG_TOKEN_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// A tagged lookup: the value bytes and the tokens of its tags.
type Lookup = (Option<Vec<u8>>, Vec<Option<String>>);

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
                let msg = Message::Tag {
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

    /// The L2 half of a tagged read (once pending tag invalidations went
    /// through): `Break(value)` on a hit; else `Continue` with the tags'
    /// tokens to store the loaded value under (None: do not store in L2).
    pub(super) async fn tagged_l2_lookup<T: DeserializeOwned>(
        &self,
        key: &str,
        tags: &[String],
    ) -> ControlFlow<T, Option<Vec<String>>> {
        let store = &self.shared.tags;
        if !self.tags_l2_ready().await {
            return ControlFlow::Continue(None);
        }
        let Some(l2) = self.shared.l2.as_deref() else {
            return ControlFlow::Continue(None);
        };
        let vkey = self.value_key(key);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&vkey);
        let mut mget = redis::cmd("MGET");
        for t in tags {
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
                            return ControlFlow::Break(v);
                        }
                        None => store.counters.record(METRIC_ENTITY, Event::DecodeError),
                    }
                }
                store.counters.record(METRIC_ENTITY, Event::Miss(Level::L2));
                ControlFlow::Continue(Some(
                    toks.into_iter().map(Option::unwrap_or_default).collect(),
                ))
            }
            Err(e) => {
                store.counters.record(METRIC_ENTITY, Event::L2Error);
                tracing::debug!(error = %e, "redis (L2) failed for a tagged value");
                ControlFlow::Continue(None)
            }
        }
    }

    /// Store a loaded tagged value in L2, unless a tag's token moved since
    /// `tokens` were read (stale-set protection).
    pub(super) async fn tagged_l2_store<T: Serialize>(
        &self,
        key: &str,
        tags: &[String],
        tokens: &[String],
        value: &T,
        ttl: Duration,
    ) {
        let store = &self.shared.tags;
        let Some(l2) = self.shared.l2.as_deref() else {
            return;
        };
        let Some(bytes) = encode(value) else { return };
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut inv = store.store.prepare_invoke();
        inv.key(self.value_key(key));
        for t in tags {
            inv.key(self.tag_token(t));
        }
        for t in tags {
            inv.key(self.tag_set(t));
        }
        inv.arg(bytes).arg(ms).arg(tags.len());
        for tok in tokens {
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

    /// The L2 half of [`invalidate_tag`](CacheLayer::invalidate_tag): how
    /// many L2 entries were removed; on a Redis failure the tag is
    /// remembered as pending (tagged L2 entries are bypassed until it is
    /// sent) and 0 is returned.
    pub(super) async fn remove_tagged_l2(&self, tag: &str) -> u64 {
        match self.invalidate_tag_l2(tag).await {
            Ok(n) => n,
            Err(e) => {
                let store = &self.shared.tags;
                store.counters.record(METRIC_ENTITY, Event::L2Error);
                tracing::warn!(tag, error = %e, "redis (L2) failed invalidating a tag; tagged L2 entries are bypassed until it succeeds");
                store.pending.lock().insert(tag.to_string());
                self.shared.outbox.poke();
                0
            }
        }
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
