//! The Redis side of a cached repository: L2 lookups and generation-checked
//! stores for the read path, the L2 invalidation (or its queueing) after a
//! write, and the fail-safe — Redis failures mark L2 suspect, and a reset
//! (in the background until Redis answers) drops every entry older than the
//! outage. Also the backplane's [`Receiver`] for this repository.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use persistence_core::{Entity, Error, Repository};

use crate::backplane::{Message, Receiver};
use crate::codec::{self, Cached};
use crate::config::EntityTtl;
use crate::l2::{Found, L2};
use crate::metrics::{Event, Level};
use crate::repository::Inner;
use crate::repository::entries::{Kind, Target, pick};
use crate::repository::read::Probe;

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    pub(crate) fn l2_failed(self: &Arc<Self>, e: &Error) {
        self.l2_failures.fetch_add(1, Ordering::SeqCst);
        self.spawn_recovery();
        self.record(Event::L2Error);
        if !self.l2_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(entity = E::meta().name, error = %e, "redis (L2) failed; reading through until it is back");
        } else {
            tracing::debug!(entity = E::meta().name, error = %e, "redis (L2) failed");
        }
    }

    pub(super) fn decode_failed(&self, e: &Error) {
        self.record(Event::DecodeError);
        if !self.decode_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(entity = E::meta().name, error = %e, "undecodable cache entry treated as a miss (logged once)");
        }
    }

    /// True while Redis failures have not been followed by a successful reset.
    pub(crate) fn l2_suspect(&self) -> bool {
        self.l2_failures.load(Ordering::SeqCst) > self.l2_reset_upto.load(Ordering::SeqCst)
    }

    /// If L2 is suspect, drop every entry older than the outage by replacing
    /// the tokens. True when L2 can be trusted afterwards.
    async fn try_reset(&self) -> bool {
        let Some(l2) = self.l2.as_deref() else {
            return false;
        };
        let failures = self.l2_failures.load(Ordering::SeqCst);
        if failures <= self.l2_reset_upto.load(Ordering::SeqCst) {
            return true;
        }
        match l2
            .invalidate(
                self.keys.gen_key(),
                Some(self.keys.epoch_key()),
                &[],
                None,
                None,
            )
            .await
        {
            Ok(()) => {
                self.l2_reset_upto.fetch_max(failures, Ordering::SeqCst);
                self.l2_warned.store(false, Ordering::Relaxed);
                tracing::info!(
                    entity = E::meta().name,
                    "redis (L2) is back; entries written before the outage were dropped"
                );
                !self.l2_suspect()
            }
            Err(_) => false,
        }
    }

    /// L2, if configured and trusted (after a reset when it was suspect).
    pub(crate) async fn l2_ready(&self) -> Option<&L2> {
        let l2 = self.l2.as_deref()?;
        if !self.l2_suspect() {
            return Some(l2);
        }
        // While the background task retries, do not pay a timeout on every read.
        if self.recovering.load(Ordering::SeqCst) {
            return None;
        }
        // Boxed, as the rare steps of a lookup below: they stay out of the
        // read's future (its size, and the depth of its type).
        if Box::pin(self.try_reset()).await {
            Some(l2)
        } else {
            None
        }
    }

    /// Retry the reset in the background until Redis answers, so entries
    /// older than the outage are dropped soon after it ends even when this
    /// instance does not touch L2 (other instances may read them).
    fn spawn_recovery(self: &Arc<Self>) {
        if self.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.recovering.store(false, Ordering::SeqCst);
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            let mut delay = Duration::from_millis(25);
            loop {
                tokio::time::sleep(delay).await;
                let Some(me) = weak.upgrade() else { return };
                if me.try_reset().await {
                    me.recovering.store(false, Ordering::SeqCst);
                    if !me.l2_suspect() || me.recovering.swap(true, Ordering::SeqCst) {
                        return;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        });
    }

    /// The single entry of `found` if it is live (stamped with the current
    /// epoch for an entity, gen token for a query) and decodes.
    pub(super) fn l2_live(&self, found: &Found, kind: Kind) -> Option<Cached<E>> {
        let want = match kind {
            Kind::Entity => found.epoch,
            Kind::Query => found.gen_token,
        };
        let (Some(Some(bytes)), Some(w)) = (found.values.first(), want) else {
            return None;
        };
        if codec::stamp(bytes) != Some(w) {
            return None;
        }
        match codec::decode::<E>(bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                self.decode_failed(&e);
                None
            }
        }
    }

    /// The L2 half of a single read (L2 configured and trusted):
    /// `Break((value, gen token))` on a hit; else `Continue` with the (gen
    /// token, stamp) to store the loaded value under (None: do not store in L2).
    pub(super) async fn l2_fetch(
        self: &Arc<Self>,
        key: &str,
        kind: Kind,
    ) -> ControlFlow<(Cached<E>, Option<u64>), Option<(u64, u64)>> {
        let Some(l2) = self.l2_ready().await else {
            return ControlFlow::Continue(None);
        };
        match l2
            .lookup(&[key], self.keys.gen_key(), self.keys.epoch_key())
            .await
        {
            Ok(found) => {
                self.saw_epoch(found.epoch);
                if let Some(v) = self.l2_live(&found, kind) {
                    self.record(Event::Hit(Level::L2));
                    return ControlFlow::Break((v, found.gen_token));
                }
                self.record(Event::Miss(Level::L2));
                match (found.gen_token, found.epoch) {
                    (Some(g), Some(ep)) => ControlFlow::Continue(Some((g, pick(kind, g, ep)))),
                    _ => match Box::pin(l2.init_tokens(self.keys.gen_key(), self.keys.epoch_key()))
                        .await
                    {
                        Ok((g, ep)) => {
                            self.saw_epoch(Some(ep));
                            ControlFlow::Continue(Some((g, pick(kind, g, ep))))
                        }
                        Err(e) => {
                            self.l2_failed(&e);
                            ControlFlow::Continue(None)
                        }
                    },
                }
            }
            Err(e) => {
                self.l2_failed(&e);
                ControlFlow::Continue(None)
            }
        }
    }

    /// A read's own L2 lookup, before (and without) its single flight:
    /// `Break((value, gen token))` on a hit; else what the flight needs to
    /// know of the miss (see [`crate::singleflight`]).
    pub(super) async fn l2_probe(
        self: &Arc<Self>,
        key: &str,
        kind: Kind,
    ) -> ControlFlow<(Cached<E>, Option<u64>), Probe> {
        let ended = self.flights.ended();
        match self.l2_fetch(key, kind).await {
            ControlFlow::Break(v) => ControlFlow::Break(v),
            ControlFlow::Continue(store) => ControlFlow::Continue(Probe { store, ended }),
        }
    }

    /// The L2 half of `get_many`: the entities of `missing` (id, key, local
    /// key) found in L2 go to `found` (and L1); returns those still missing
    /// and the (gen token, epoch) to store loaded entities under (None: do
    /// not store in L2).
    pub(super) async fn l2_fetch_many(
        self: &Arc<Self>,
        missing: Vec<(E::Id, String, String)>,
        found: &mut HashMap<String, Option<E>>,
        ttls: EntityTtl,
        keep: Option<Duration>,
    ) -> (Vec<(E::Id, String, String)>, Option<(u64, u64)>) {
        if missing.is_empty() {
            return (missing, None);
        }
        let Some(l2) = self.l2_ready().await else {
            return (missing, None);
        };
        let keys: Vec<&str> = missing.iter().map(|(_, k, _)| k.as_str()).collect();
        match l2
            .lookup(&keys, self.keys.gen_key(), self.keys.epoch_key())
            .await
        {
            Ok(f) => {
                self.saw_epoch(f.epoch);
                let mut still = Vec::with_capacity(missing.len());
                for ((id, key, local), bytes) in missing.into_iter().zip(f.values) {
                    let hit = match (&bytes, f.epoch) {
                        (Some(b), Some(ep)) if codec::stamp(b) == Some(ep) => {
                            match codec::decode::<E>(b) {
                                Ok(Cached::Entity(e)) => Some(e),
                                Ok(_) => None,
                                Err(e) => {
                                    self.decode_failed(&e);
                                    None
                                }
                            }
                        }
                        _ => None,
                    };
                    match hit {
                        Some(e) => {
                            self.record(Event::Hit(Level::L2));
                            let value = Cached::Entity(e.clone());
                            self.l1_put(&key, Kind::Entity, local, value, ttls, keep)
                                .await;
                            found.insert(key, e);
                        }
                        None => {
                            self.record(Event::Miss(Level::L2));
                            still.push((id, key, local));
                        }
                    }
                }
                let store = match (f.gen_token, f.epoch) {
                    (Some(g), Some(ep)) => Some((g, ep)),
                    _ => match l2
                        .init_tokens(self.keys.gen_key(), self.keys.epoch_key())
                        .await
                    {
                        Ok(t) => {
                            self.saw_epoch(Some(t.1));
                            Some(t)
                        }
                        Err(e) => {
                            self.l2_failed(&e);
                            None
                        }
                    },
                };
                (still, store)
            }
            Err(e) => {
                self.l2_failed(&e);
                (missing, None)
            }
        }
    }

    /// Whether Redis still holds gen token `token` (no write of this entity
    /// type since it was read; false when Redis does not answer).
    pub(super) async fn l2_still(self: &Arc<Self>, token: u64) -> bool {
        let Some(l2) = self.l2_ready().await else {
            return false;
        };
        match l2
            .lookup(&[], self.keys.gen_key(), self.keys.epoch_key())
            .await
        {
            Ok(found) => {
                self.saw_epoch(found.epoch);
                found.gen_token == Some(token)
            }
            Err(e) => {
                self.l2_failed(&e);
                false
            }
        }
    }

    /// Store `items` in L2 if the gen token is still `token`: true when
    /// Redis accepted them.
    pub(super) async fn l2_store(
        self: &Arc<Self>,
        l2: &L2,
        token: u64,
        items: Vec<(String, u64, Cached<E>)>,
        ttl: EntityTtl,
    ) -> bool {
        let mut entries = Vec::with_capacity(items.len());
        for (key, stamp, value) in items {
            match codec::encode(stamp, &value) {
                Ok(bytes) => entries.push((key, bytes, self.l2_ttl_for(&value, ttl))),
                Err(e) => {
                    tracing::debug!(entity = E::meta().name, error = %e, "value not cached in L2");
                }
            }
        }
        match l2.set_if_gen(self.keys.gen_key(), token, &entries).await {
            Ok(true) => true,
            Ok(false) => {
                self.record(Event::StaleSetPrevented);
                false
            }
            Err(e) => {
                self.l2_failed(&e);
                false
            }
        }
    }

    /// The L2 half of the invalidation after a write: replace the tokens,
    /// delete the keys and publish on the backplane, or queue all that (see
    /// [`crate::outbox`]) while Redis does not answer.
    pub(super) async fn l2_invalidate(self: &Arc<Self>, target: &Target) {
        self.l2_invalidate_as(target, None).await;
    }

    /// [`Self::l2_invalidate`], also taking writer `unregister` (a token)
    /// out of the entity type's in-flight hash (see `super::through`).
    pub(super) async fn l2_invalidate_as(
        self: &Arc<Self>,
        target: &Target,
        unregister: Option<u64>,
    ) {
        if self.l2.is_some() && self.l2_suspect() && self.recovering.load(Ordering::SeqCst) {
            // Redis is down and being retried: instead of paying a timeout,
            // count this write as a failure, so the reset that ends the
            // outage happens after it and drops whatever L2 holds for it,
            // and queue the invalidation for the other instances.
            self.l2_failures.fetch_add(1, Ordering::SeqCst);
            self.queue(target);
        } else if let Some(l2) = self.l2.as_deref() {
            let (epoch, keys): (Option<&str>, &[String]) = match target {
                Target::Keys(k) => (None, k),
                Target::All => (Some(self.keys.epoch_key()), &[]),
            };
            let publish = self.backplane_message(target);
            let type_hash = crate::l2::in_flight_key(self.keys.base());
            let unregister = unregister.map(|t| (type_hash.as_str(), t));
            match l2
                .invalidate(
                    self.keys.gen_key(),
                    epoch,
                    keys,
                    publish.clone(),
                    unregister,
                )
                .await
            {
                Ok(()) => self.shared.redis_answered(),
                Err(e) => self.l2_invalidate_failed(l2, target, &e, publish).await,
            }
        }
    }

    /// The backplane message announcing the invalidation of `target` (None: no backplane).
    pub(super) fn backplane_message(&self, target: &Target) -> Option<(&str, String)> {
        self.shared.backplane.as_ref().map(|bp| {
            let base = self.keys.base().to_string();
            let msg = match target {
                Target::Keys(k) => Message::Keys {
                    base,
                    keys: k.clone(),
                },
                Target::All => Message::All { base },
            };
            (bp.channel.as_str(), msg.encode(bp.origin))
        })
    }

    /// The invalidation of `target` failed (it may or may not have reached
    /// Redis): queue it to be sent again, mark L2 suspect and, on a
    /// cluster, publish the backplane message through the channel's node.
    pub(super) async fn l2_invalidate_failed(
        self: &Arc<Self>,
        l2: &L2,
        target: &Target,
        e: &Error,
        publish: Option<(&str, String)>,
    ) {
        self.queue(target);
        self.l2_failed(e);
        // On a cluster the entity type's node may be the only one
        // down: tell the other instances' L1 now, through the
        // channel's node, rather than when the queue is sent
        // (their L2 reads fail the same way, so they load from
        // the source).
        if let (Some((channel, msg)), true) = (publish, l2.is_cluster()) {
            if let Err(e) = l2.publish(channel, msg).await {
                tracing::debug!(error = %e, "backplane message not published either");
            }
        }
    }

    fn queue(&self, target: &Target) {
        self.shared.outbox.push(
            self.keys.base(),
            self.keys.gen_key(),
            self.keys.epoch_key(),
            match target {
                Target::Keys(k) => Some(k),
                Target::All => None,
            },
        );
    }
}

impl<E: Entity, R: Repository<E> + 'static> Receiver for Inner<E, R> {
    fn apply(&self, keys: Option<&[String]>) {
        self.bump(keys);
    }

    fn outage(self: Arc<Self>) {
        if self.l2.is_some() {
            self.l2_failures.fetch_add(1, Ordering::SeqCst);
            self.spawn_recovery();
        }
    }
}
