//! Write-through: a write that returns the stored row (`insert`, `update`,
//! `upsert`, `patch`) stores that row in the cache, instead of only
//! invalidating, when no other write of the same key can have overlapped
//! it — so the next read of a hot key is a hit rather than a load.
//!
//! # The rule
//! Every write of an entity type takes part (when write-through is on):
//! 1. **Before** the write reaches the repository, the writer registers in
//!    an *in-flight* set (one Redis round trip: `crate::l2::L2::write_begin`;
//!    in process without L2): the entry's own set for a write of one
//!    known key, the entity type's set for a write of unknown or many keys
//!    (`update_where`, `delete_many`, `purge`, `find_one_and_delete`,
//!    `insert_many`). A set has a *token*, replaced by each registration.
//!    The writer learns whether it was **alone**: no other writer in the
//!    entry's set, none in the type's set.
//! 2. **After** the write answered, one script
//!    (`crate::l2::L2::write_end`) takes the writer out of the set and
//!    does the usual invalidation (gen token replaced, backplane message),
//!    and stores the returned row (stamped with the epoch read at the
//!    start) instead of deleting the entry **only if** the writer was
//!    alone, the entry's token is still its own, the type's token and the
//!    epoch are still those it saw at the start. Anything else — overlap,
//!    an error of the write (it may have landed), a Redis error or timeout
//!    (unknown outcome: the invalidation is queued as before, which deletes
//!    whatever the script may have stored), a writer slower than half the
//!    in-flight TTL — is the plain invalidation of before.
//! 3. Invalidations that are not such writes (`invalidate`, relations,
//!    the outbox, writers with write-through off) replace the token of every
//!    entry they touch (`crate::l2::L2::invalidate`), or the epoch.
//!
//! # Why a stored row is never older than the database
//! Call a writer's *window* the time from its registration to its end
//! script; its database write lands inside it. A writer W stores its row
//! only if no other window overlapped its own: one that began before W's
//! and was still open would have been in a set at W's start (not alone);
//! one that began during W's window replaced a token W checks at its end.
//! So every other write of the key landed before W's registration (its
//! window closed before W's opened) or after W's end script (it opens after
//! it). W's row is the database's value at W's end, and every later write
//! runs its own end script later, deleting or replacing the entry: W's
//! store can never overwrite a newer value, and a reader that saw a newer
//! value can never see W's afterwards. A write that did not register
//! (invalidations of 3., or a writer whose registration failed) lands
//! before its invalidation: if that invalidation comes before W's end, it
//! replaced the token (or the epoch) and W does not store; if after, it
//! deletes what W stored. Concurrent *readers* keep the stale-set rule: the
//! end script replaces the gen token, so a load that started before it
//! never stores its (possibly older) result over the row.
//!
//! The in-flight sets expire (`crate::l2::IN_FLIGHT_TTL`, refreshed by
//! every registration) so that a writer that dies does not disable
//! write-through of its key forever; the rule therefore assumes that a
//! database write lands (or fails) within that time of its start — a write
//! that outlives it could land after a later writer stored its row. That
//! writer's own end script then still invalidates (it lands before its own
//! end, and its token was replaced), so the window of such a stale entry is
//! the slow write's own, as without write-through.
//!
//! # Versioned entities: one round trip
//! An entity with an `#[entity(version)]` field needs no registration: each
//! write of a row sets `version + 1` in the same statement, so the versions
//! a row's writes return are in the order the database applied them. A
//! write of one key that returns its row runs its database write first and
//! then one script (`crate::l2::L2::write_end_versioned`), which keeps the
//! entry's *version mark* (`…:!v`: the highest version ended with, or `x`):
//! - a mark as high as the row's version means a newer write ended first,
//!   or the row is new: a write of unknown keys (`delete_many`, `pop`)
//!   deleted the key's row, and versions started over when it was inserted
//!   again. The entry is deleted (which is right in both cases; the mark
//!   stays, so until the new row's version passes it, writes of the key
//!   only invalidate);
//! - else the mark rises to the row's version, and the row is stored only
//!   if the mark was not `x`, no write of unknown keys is in flight (the
//!   type's in-flight hash holds none) and the epoch is still the token
//!   this instance knew *before* the write began (from any earlier Redis
//!   answer: every lookup and end script returns it); else the entry is
//!   deleted. A write slower than half the marks' lifetime stores nothing.
//!
//! Why no older row is stored over a newer one: a later write of the key
//! (in the database's order) either ended first, leaving a mark at least
//! its version (refused, the row is older), or ends later and replaces or
//! deletes the entry itself. Every other invalidation of the key (a delete,
//! a write without write-through, `invalidate`, the outbox) sets the mark
//! to `x` for the marks' lifetime in the same pipeline, so an older write
//! that ends after it stores nothing; a write of unknown keys is in the
//! type hash while it runs and moves the epoch (or marks its keys) when it
//! ends, which the epoch check catches since the token was known before
//! the write began. Readers keep the stale-set rule: the script replaces
//! the gen token. A single-key write of a versioned entity that returns no
//! row (`delete`) never registers: its plain invalidation marks the key.
//!
//! # L1
//! The writer's own L1 gets the row under the same condition, and only
//! under the local generation its own bump creates: the key's generation
//! is read before the end script, and the bump must move it from exactly
//! that value (`Gens::bump_from`) — a backplane message or a local write in
//! between (a later write) leaves the row out. Other instances' L1 are
//! invalidated by the backplane as before and refill from L2. Without L2,
//! an in-process table ([`InFlight`]) plays the in-flight sets' part.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use persistence_core::{Entity, Repository};

use crate::codec::Cached;
use crate::config::EntityTtl;
use crate::metrics::Event;
use crate::repository::Inner;
use crate::repository::entries::{Kind, Target};

/// How a write registered before it ran (see the module docs).
pub(super) enum Reg {
    /// Not registered (write-through off, L2 unreachable): plain invalidation.
    None,
    /// In the entry's in-flight hash in Redis.
    #[cfg(feature = "redis")]
    L2Key {
        token: u64,
        alone: bool,
        type_token: Vec<u8>,
        /// The epoch token as stored, and parsed (None: none).
        epoch: Option<(Vec<u8>, u64)>,
        started: std::time::Instant,
    },
    /// In the entity type's in-flight hash in Redis.
    #[cfg(feature = "redis")]
    L2Type { token: u64 },
    /// Not registered: a write of one key of a versioned entity, whose row's
    /// version orders it (see "Versioned entities" in the module docs).
    #[cfg(feature = "redis")]
    L2Versioned {
        /// The epoch token this instance knew before the write began (0:
        /// none known; the row is then not stored).
        epoch: u64,
        started: std::time::Instant,
    },
    /// In the in-process table, for one key.
    LocalKey {
        token: u64,
        alone: bool,
        type_token: u64,
        left: Leave,
    },
    /// In the in-process table, for the entity type.
    LocalType(Leave),
}

/// Leaves the in-process table when dropped: a write whose future is
/// dropped mid-way must not keep its key out of write-through for good.
pub(super) struct Leave {
    table: Arc<InFlight>,
    /// The key (None: the entity type's slot); None once left.
    key: Option<Option<String>>,
}

impl Leave {
    /// Leave now: for a key, true when its writer may store its row
    /// (`token` still its own, the type's token still `type_token`).
    fn now(mut self, check: Option<(u64, bool, u64)>) -> bool {
        match self.key.take() {
            Some(Some(k)) => {
                let (token, alone, type_token) = check.unwrap_or((0, false, 0));
                self.table.end_key(&k, token, alone, type_token)
            }
            Some(None) => {
                self.table.end_type();
                false
            }
            None => false,
        }
    }
}

impl Drop for Leave {
    fn drop(&mut self) {
        match self.key.take() {
            Some(Some(k)) => {
                self.table.end_key(&k, 0, false, 0);
            }
            Some(None) => self.table.end_type(),
            None => {}
        }
    }
}

#[derive(Default)]
struct Slot {
    members: u32,
    token: u64,
}

/// The in-flight table of one cached repository without L2: the same rule
/// as the Redis sets, in process.
#[derive(Default)]
pub(super) struct InFlight {
    seq: AtomicU64,
    /// The entity type's slot, then the entries' (locked in that order).
    all: Mutex<Slot>,
    keys: Mutex<HashMap<String, Slot>>,
}

impl InFlight {
    /// Register a writer of `key`: (its token, alone, the type's token).
    fn begin_key(&self, key: &str) -> (u64, bool, u64) {
        let token = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let all = self.all.lock();
        let mut keys = self.keys.lock();
        let slot = keys.entry(key.to_string()).or_default();
        slot.members += 1;
        slot.token = token;
        (token, slot.members == 1 && all.members == 0, all.token)
    }

    /// Unregister it: true when it may store its row.
    fn end_key(&self, key: &str, token: u64, alone: bool, type_token: u64) -> bool {
        let all = self.all.lock();
        let mut keys = self.keys.lock();
        let Some(slot) = keys.get_mut(key) else {
            return false;
        };
        let ok = alone && slot.token == token && all.token == type_token;
        slot.members -= 1;
        if slot.members == 0 {
            keys.remove(key);
        }
        ok
    }

    fn begin_type(&self) {
        let token = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut all = self.all.lock();
        all.members += 1;
        all.token = token;
    }

    fn end_type(&self) {
        self.all.lock().members -= 1;
    }

    /// An invalidation that is not a registered write: no writer in flight
    /// on these keys may store its row.
    pub(super) fn poison(&self, target: &Target) {
        let token = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        match target {
            Target::Keys(ks) => {
                let mut keys = self.keys.lock();
                for k in ks {
                    if let Some(slot) = keys.get_mut(k) {
                        slot.token = token;
                    }
                }
            }
            Target::All => self.all.lock().token = token,
        }
    }
}

/// The one key of a write of one known key.
fn single(target: &Target) -> Option<&String> {
    match target {
        Target::Keys(k) if k.len() == 1 => k.first(),
        _ => None,
    }
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    /// Register a write of `target` before it runs, when write-through is
    /// `on` (see the module docs); `returns_row`: the write answers with
    /// the stored row.
    pub(super) async fn begin_write(
        self: &Arc<Self>,
        target: &Target,
        on: bool,
        returns_row: bool,
    ) -> Reg {
        if !on {
            return Reg::None;
        }
        // Only L2's versioned rule tells such writes apart.
        #[cfg(not(feature = "redis"))]
        let _ = returns_row;
        #[cfg(feature = "redis")]
        if self.l2.is_some() {
            let Some(l2) = self.l2_ready().await else {
                return Reg::None;
            };
            if E::meta().version_field().is_some() && single(target).is_some() {
                // Versioned: no round trip before the write. A write of one
                // key that does not return its row invalidates as before,
                // which marks the entry (a later end script of an older
                // write then stores nothing).
                if !returns_row {
                    return Reg::None;
                }
                if self.seen_epoch.load(Ordering::SeqCst) == 0 {
                    // Once per instance and entity type, before its first
                    // Redis answer: learn the epoch (creating the tokens).
                    let keys = (self.keys.gen_key(), self.keys.epoch_key());
                    match Box::pin(l2.init_tokens(keys.0, keys.1)).await {
                        Ok((_, epoch)) => self.saw_epoch(Some(epoch)),
                        Err(e) => {
                            self.l2_failed(&e);
                            return Reg::None;
                        }
                    }
                }
                return Reg::L2Versioned {
                    epoch: self.seen_epoch.load(Ordering::SeqCst),
                    started: std::time::Instant::now(),
                };
            }
            let token = fastrand::u64(1..);
            let type_hash = crate::l2::in_flight_key(self.keys.base());
            let own = single(target).map(|k| crate::l2::in_flight_key(k));
            let started = std::time::Instant::now();
            let begun = l2
                .write_begin(
                    own.as_deref().unwrap_or(&type_hash),
                    &type_hash,
                    (self.keys.gen_key(), self.keys.epoch_key()),
                    token,
                )
                .await;
            return match (begun, own) {
                (Ok(b), Some(_)) => {
                    let parsed = crate::l2::token(Some(b.epoch.clone()));
                    self.saw_epoch(parsed);
                    Reg::L2Key {
                        token,
                        alone: b.len == 2 && b.type_len <= 1,
                        type_token: b.type_token,
                        epoch: parsed.map(|p| (b.epoch, p)),
                        started,
                    }
                }
                (Ok(_), None) => Reg::L2Type { token },
                (Err(e), _) => {
                    self.l2_failed(&e);
                    Reg::None
                }
            };
        }
        match single(target) {
            Some(k) => {
                let (token, alone, type_token) = self.inflight.begin_key(k);
                Reg::LocalKey {
                    token,
                    alone,
                    type_token,
                    left: Leave {
                        table: self.inflight.clone(),
                        key: Some(Some(k.clone())),
                    },
                }
            }
            None => {
                self.inflight.begin_type();
                Reg::LocalType(Leave {
                    table: self.inflight.clone(),
                    key: Some(None),
                })
            }
        }
    }

    /// After the write registered as `reg` answered (`row`: the row it
    /// returned, to store): store it where the rule allows, else invalidate.
    pub(super) async fn end_write(
        self: &Arc<Self>,
        target: Target,
        reg: Reg,
        row: Option<E>,
        ttl: EntityTtl,
        keep: Option<Duration>,
    ) {
        match reg {
            Reg::None => self.after_write(target).await,
            #[cfg(feature = "redis")]
            Reg::L2Type { token } => {
                self.l2_invalidate_as(&target, Some(token)).await;
                self.invalidate_local(&target).await;
                self.record(Event::Invalidation);
            }
            #[cfg(feature = "redis")]
            Reg::L2Versioned { epoch, started } => {
                self.end_versioned(target, epoch, started, row, ttl, keep)
                    .await;
            }
            #[cfg(feature = "redis")]
            Reg::L2Key {
                token,
                alone,
                type_token,
                epoch,
                started,
            } => {
                let (Some(key), Some(l2)) = (single(&target).cloned(), self.l2.clone()) else {
                    return self.after_write(target).await;
                };
                let key = key.as_str();
                if self.l2_suspect() && self.recovering.load(Ordering::SeqCst) {
                    // Queued, as any invalidation while Redis is down.
                    return self.after_write(target).await;
                }
                let snap = self.gens.snapshot(key);
                let in_time = started.elapsed() < crate::l2::IN_FLIGHT_TTL / 2;
                let value = row.map(|e| Cached::Entity(Some(e)));
                let encoded = match (&value, &epoch) {
                    (Some(v), Some((_, stamp))) if alone && in_time => {
                        crate::codec::encode(*stamp, v).ok()
                    }
                    _ => None,
                };
                let stored = match (&encoded, &epoch, &value) {
                    (Some(bytes), Some((raw, _)), Some(v)) => {
                        Some((raw.as_slice(), bytes.as_slice(), self.l2_ttl_for(v, ttl)))
                    }
                    _ => None,
                };
                let publish = self.backplane_message(&target);
                let type_hash = crate::l2::in_flight_key(self.keys.base());
                let through = match l2
                    .write_end(
                        key,
                        &type_hash,
                        (self.keys.gen_key(), self.keys.epoch_key()),
                        (token, &type_token),
                        stored,
                        publish.clone(),
                    )
                    .await
                {
                    Ok(through) => {
                        self.shared.redis_answered();
                        through
                    }
                    Err(e) => {
                        self.l2_invalidate_failed(&l2, &target, &e, publish).await;
                        false
                    }
                };
                match value {
                    Some(v) if through => {
                        self.record(Event::WriteThrough);
                        self.local_through(key, snap, v, ttl, keep).await;
                    }
                    _ => self.invalidate_local(&target).await,
                }
                self.record(Event::Invalidation);
            }
            Reg::LocalKey {
                token,
                alone,
                type_token,
                left,
            } => {
                let Some(key) = single(&target).cloned() else {
                    return self.after_write(target).await;
                };
                let key = key.as_str();
                // Read before the check: a write after it moves it.
                let snap = self.gens.snapshot(key);
                let ok = left.now(Some((token, alone, type_token)));
                match row {
                    Some(e) if ok => {
                        self.record(Event::WriteThrough);
                        let v = Cached::Entity(Some(e));
                        self.local_through(key, snap, v, ttl, keep).await;
                    }
                    _ => self.invalidate_local(&target).await,
                }
                self.record(Event::Invalidation);
            }
            Reg::LocalType(left) => {
                left.now(None);
                self.after_write(target).await;
            }
        }
    }

    /// The end of a versioned write of one key (`Reg::L2Versioned`): one
    /// script stores the row unless a newer write of the key ended first,
    /// an invalidation marked it, a write of unknown keys is in flight or
    /// the epoch moved since `epoch` was seen (see the module docs).
    #[cfg(feature = "redis")]
    async fn end_versioned(
        self: &Arc<Self>,
        target: Target,
        epoch: u64,
        started: std::time::Instant,
        row: Option<E>,
        ttl: EntityTtl,
        keep: Option<Duration>,
    ) {
        let version = row.as_ref().and_then(Entity::version);
        let (Some(key), Some(l2), Some(version)) =
            (single(&target).cloned(), self.l2.clone(), version)
        else {
            return self.after_write(target).await;
        };
        let key = key.as_str();
        if self.l2_suspect() && self.recovering.load(Ordering::SeqCst) {
            // Queued, as any invalidation while Redis is down.
            return self.after_write(target).await;
        }
        let snap = self.gens.snapshot(key);
        let in_time = started.elapsed() < crate::l2::IN_FLIGHT_TTL / 2;
        let value = row.map(|e| Cached::Entity(Some(e)));
        let encoded = match &value {
            Some(v) if in_time && epoch != 0 => crate::codec::encode(epoch, v)
                .ok()
                .map(|b| (b, self.l2_ttl_for(v, ttl))),
            _ => None,
        };
        let publish = self.backplane_message(&target);
        let type_hash = crate::l2::in_flight_key(self.keys.base());
        let through = match l2
            .write_end_versioned(
                key,
                &type_hash,
                (self.keys.gen_key(), self.keys.epoch_key()),
                (version, epoch),
                encoded.as_ref().map(|(b, t)| (b.as_slice(), *t)),
                publish.clone(),
            )
            .await
        {
            Ok((through, now)) => {
                self.shared.redis_answered();
                self.saw_epoch(now);
                through
            }
            Err(e) => {
                self.l2_invalidate_failed(&l2, &target, &e, publish).await;
                false
            }
        };
        match value {
            Some(v) if through => {
                self.record(Event::WriteThrough);
                self.local_through(key, snap, v, ttl, keep).await;
            }
            _ => self.invalidate_local(&target).await,
        }
        self.record(Event::Invalidation);
    }

    /// Remember the epoch token Redis held (see [`Reg::L2Versioned`]): any
    /// value Redis answered with was current before a write that reads it
    /// here begins, which is all the rule needs.
    #[cfg(feature = "redis")]
    pub(super) fn saw_epoch(&self, epoch: Option<u64>) {
        if let Some(e) = epoch {
            self.seen_epoch.store(e, Ordering::SeqCst);
        }
    }

    /// Bump the local generation of `key` and store `value` in L1 under the
    /// new one, if the bump is the first since `snap` (see the module docs).
    async fn local_through(
        &self,
        key: &str,
        snap: (u64, u64),
        value: Cached<E>,
        ttl: EntityTtl,
        keep: Option<Duration>,
    ) {
        let old = format!("{key}@{}.{}", snap.0, snap.1);
        let fresh = self.gens.bump_from(key, snap);
        if let Some(l1) = &self.l1 {
            l1.invalidate(&old).await;
            if let Some(local) = fresh {
                self.l1_put(key, Kind::Entity, local, value, ttl, keep)
                    .await;
            }
        }
    }
}
