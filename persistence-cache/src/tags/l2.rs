//! The Redis side of tagged values: keys, lookups, stores gated by the tags'
//! tokens, and tag invalidation (see [`super`] for the protocol). A value is
//! encoded with postcard directly, format byte first, together with the
//! tokens of its tags it was loaded under (its stamp).

use std::ops::ControlFlow;
use std::time::Duration;

use deadpool_redis::redis;
use futures_util::future::try_join_all;
use persistence_core::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backplane::Message;
use crate::keys::short_hash;
use crate::layer::CacheLayer;
use crate::metrics::{Event, Level};
use crate::tags::store::METRIC_ENTITY;

/// Format 2: `(stamp tokens, value)`; format 1 (no stamp) reads as a miss.
const FORMAT: u8 = 2;

const TAG_TOKEN_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// Most keys per `DEL` when a tag's values are removed.
const DEL_CHUNK: usize = 256;

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

fn text(v: Option<Vec<u8>>) -> Option<String> {
    v.and_then(|b| String::from_utf8(b).ok())
}

impl CacheLayer {
    fn value_key(&self, key: &str) -> String {
        format!("{}:!val:{}", self.shared.prefix, part(key))
    }
    /// `{prefix}:!tag:{{prefix}:{tag}}`: the set and the token of a tag
    /// share a hash tag, so a slot.
    fn tag_set(&self, tag: &str) -> String {
        let p = &self.shared.prefix;
        format!("{p}:!tag:{{{p}:{}}}", part(tag))
    }
    fn tag_token(&self, tag: &str) -> String {
        let p = &self.shared.prefix;
        format!("{p}:!tagv:{{{p}:{}}}", part(tag))
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

    /// Replace the tag's token (from then on every value stamped with the
    /// old one reads as a miss: this is the invalidation), take its set and
    /// publish, in one script on the tag's slot; then delete the values the
    /// set named (memory only: they are dead already, so a failed `DEL` is
    /// logged, not retried). Returns how many values the set named.
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
        let members: Vec<String> = l2.invoke(inv).await?;
        for chunk in members.chunks(DEL_CHUNK) {
            // On a cluster the client splits a multi-key DEL by slot.
            let mut del = redis::cmd("DEL");
            del.arg(chunk);
            let out = l2
                .with_conn(|mut c| async move { del.query_async::<i64>(&mut c).await })
                .await;
            if let Err(e) = out {
                tracing::debug!(tag, error = %e, "dead tagged values not deleted (they expire)");
            }
        }
        Ok(members.len() as u64)
    }

    /// The tokens of `tags` (`MGET`; split by slot on a cluster), each
    /// created (`SET NX`, a fresh random value) where missing: a value is
    /// never stamped with an absent token, so a token lost with its node
    /// comes back as a value no stamp holds.
    async fn tag_tokens(
        &self,
        tags: &[String],
        mut read: Vec<Option<String>>,
    ) -> Result<Vec<String>> {
        let Some(l2) = self.shared.l2.as_deref() else {
            return Ok(Vec::new());
        };
        if read.iter().any(Option::is_none) {
            for (t, tok) in tags.iter().zip(&read) {
                if tok.is_none() {
                    let mut set = redis::cmd("SET");
                    set.arg(self.tag_token(t))
                        .arg(fastrand::u64(..).to_string())
                        .arg("NX")
                        .arg("PX")
                        .arg(TAG_TOKEN_TTL_MS);
                    l2.with_conn(|mut c| async move { set.query_async::<()>(&mut c).await })
                        .await?;
                }
            }
            let mut mget = redis::cmd("MGET");
            for t in tags {
                mget.arg(self.tag_token(t));
            }
            let again: Vec<Option<Vec<u8>>> = l2
                .with_conn(|mut c| async move { mget.query_async(&mut c).await })
                .await?;
            read = again.into_iter().map(text).collect();
        }
        read.into_iter()
            .map(|t| {
                t.ok_or_else(|| persistence_core::Error::backend("redis did not keep a tag token"))
            })
            .collect()
    }

    /// The L2 half of a tagged read (once pending tag invalidations went
    /// through): `Break(value)` on a hit — a value whose stamp equals its
    /// tags' current tokens; else `Continue` with the tags' tokens to store
    /// the loaded value under (None: do not store in L2).
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
        // One MGET: the value and its tags' tokens (on a cluster the client
        // splits it by slot; a value is valid only if its stamp equals the
        // tokens read, so reading them apart is safe).
        let mut mget = redis::cmd("MGET");
        mget.arg(self.value_key(key));
        for t in tags {
            mget.arg(self.tag_token(t));
        }
        let res: Result<Vec<Option<Vec<u8>>>> = l2
            .with_conn(|mut c| async move { mget.query_async(&mut c).await })
            .await;
        let tokens = res.map(|mut found| {
            let value = if found.is_empty() {
                None
            } else {
                found.remove(0)
            };
            (value, found.into_iter().map(text).collect::<Vec<_>>())
        });
        let (value, read) = match tokens {
            Ok(v) => v,
            Err(e) => {
                store.counters.record(METRIC_ENTITY, Event::L2Error);
                tracing::debug!(error = %e, "redis (L2) failed for a tagged value");
                return ControlFlow::Continue(None);
            }
        };
        if let Some(bytes) = value {
            match decode::<T>(&bytes) {
                Some((stamp, v))
                    if read
                        .iter()
                        .map(|t| t.as_deref())
                        .eq(stamp.iter().map(|s| Some(s.as_str()))) =>
                {
                    store.counters.record(METRIC_ENTITY, Event::Hit(Level::L2));
                    return ControlFlow::Break(v);
                }
                // Stamped with tokens since replaced: invalidated.
                Some(_) => {}
                None => store.counters.record(METRIC_ENTITY, Event::DecodeError),
            }
        }
        store.counters.record(METRIC_ENTITY, Event::Miss(Level::L2));
        match self.tag_tokens(tags, read).await {
            Ok(tokens) => ControlFlow::Continue(Some(tokens)),
            Err(e) => {
                store.counters.record(METRIC_ENTITY, Event::L2Error);
                tracing::debug!(error = %e, "redis (L2) failed reading tag tokens");
                ControlFlow::Continue(None)
            }
        }
    }

    /// Store a loaded tagged value in L2, unless a tag's token moved since
    /// `tokens` were read (stale-set protection): first, on each tag's slot,
    /// add the value's key to the tag's set if its token is unchanged; then
    /// `SET` the value stamped with `tokens`. An invalidation that lands
    /// between the two leaves a value whose stamp no longer matches: a miss.
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
        let Some(bytes) = encode(tokens, value) else {
            return;
        };
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let vkey = self.value_key(key);
        let adds = tags.iter().zip(tokens).map(|(t, tok)| {
            let mut inv = store.store.prepare_invoke();
            inv.key(self.tag_set(t))
                .key(self.tag_token(t))
                .arg(tok)
                .arg(&vkey)
                .arg(ms);
            l2.invoke::<i64>(inv)
        });
        let out = match try_join_all(adds).await {
            Ok(added) if added.iter().all(|n| *n == 1) => {
                let mut set = redis::cmd("SET");
                set.arg(&vkey).arg(bytes).arg("PX").arg(ms);
                l2.with_conn(|mut c| async move { set.query_async::<()>(&mut c).await })
                    .await
                    .map(|()| true)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        match out {
            Ok(true) => {}
            Ok(false) => store
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

fn encode<T: Serialize>(tokens: &[String], value: &T) -> Option<Vec<u8>> {
    postcard::to_extend(&(tokens, value), vec![FORMAT]).ok()
}

/// The stamp and the value; `None` for another format or undecodable bytes.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<(Vec<String>, T)> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).ok(),
        _ => None,
    }
}
