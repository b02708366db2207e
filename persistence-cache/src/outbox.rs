//! Invalidations waiting for Redis: a write whose L2 invalidation (and
//! backplane message) could not be sent is queued here, and a background task
//! sends it as soon as Redis answers again, so no instance keeps serving the
//! old value from its L1 or from L2 for longer than the outage.
//!
//! * Coalesced per entity type: a set of entity keys, or "all" (what
//!   `delete_many` and the overflow below ask for). Invalidations are
//!   idempotent and commute, so order does not matter.
//! * Bounded: at most `max_keys` entity keys in total; the entity type whose
//!   keys would exceed it is degraded to "all of this entity type" (one epoch
//!   replacement and one message instead of its keys).
//! * Tagged values: tags whose L2 invalidation failed are already remembered
//!   by the tag store; the task retries them too (the Lua invalidation also
//!   publishes the backplane message).
//!
//! This file holds the queue; [`sender`] the task that empties it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

mod sender;

pub(crate) use sender::start;

/// The pending invalidation of one entity type.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) gen_key: String,
    pub(crate) epoch_key: String,
    /// Everything of the entity type (`keys` is then empty).
    pub(crate) all: bool,
    pub(crate) keys: HashSet<String>,
}

#[derive(Debug, Default)]
struct State {
    /// By entity base key.
    entities: HashMap<String, Pending>,
    /// Entity keys queued in total (bounded by `max_keys`).
    keys: usize,
    /// What the sender has taken and not yet sent or put back (counted as
    /// [`Outbox::len`] counts), so the layer's status reports an
    /// invalidation as queued until it has reached Redis.
    sending: usize,
}

impl State {
    /// Queued invalidations: entity keys, plus one per "all of an entity type".
    fn queued(&self) -> usize {
        self.keys + self.entities.values().filter(|p| p.all).count()
    }
}

/// The queue of one layer.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    wake: Arc<Notify>,
    max_keys: usize,
}

impl Outbox {
    pub(crate) fn new(max_keys: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            wake: Arc::new(Notify::new()),
            max_keys,
        }
    }

    /// Queue an invalidation of `keys` (every entity of the type when None).
    pub(crate) fn push(&self, base: &str, gen_key: &str, epoch_key: &str, keys: Option<&[String]>) {
        {
            let mut st = self.state.lock();
            let State {
                entities,
                keys: total,
                ..
            } = &mut *st;
            let p = entities.entry(base.to_string()).or_insert_with(|| Pending {
                gen_key: gen_key.to_string(),
                epoch_key: epoch_key.to_string(),
                all: false,
                keys: HashSet::new(),
            });
            match keys {
                _ if p.all => {}
                None => {
                    *total -= p.keys.len();
                    p.keys.clear();
                    p.all = true;
                }
                Some(keys) => {
                    for k in keys {
                        if p.keys.insert(k.clone()) {
                            *total += 1;
                        }
                    }
                    if *total > self.max_keys {
                        tracing::warn!(
                            entity = base,
                            queued = *total,
                            "cache invalidation queue full: invalidating every entry of the entity type instead"
                        );
                        *total -= p.keys.len();
                        p.keys.clear();
                        p.all = true;
                    }
                }
            }
        }
        self.wake.notify_one();
    }

    /// Wake the task (Redis answered, or a tag invalidation failed: it
    /// retries pending tags too).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.state.lock().entities.is_empty()
    }

    /// Invalidations not yet sent (queued, or being sent): entity keys,
    /// plus one per "all of an entity type".
    pub(crate) fn len(&self) -> usize {
        let st = self.state.lock();
        st.queued() + st.sending
    }

    /// Take everything queued; it counts as unsent until [`Outbox::restore`].
    fn take(&self) -> Vec<(String, Pending)> {
        let mut st = self.state.lock();
        st.sending += st.queued();
        st.keys = 0;
        st.entities.drain().collect()
    }

    /// After a send: put back what could not be sent (merged with what was
    /// queued since); the rest has reached Redis.
    fn restore(&self, items: Vec<(String, Pending)>) {
        for (base, p) in items {
            let keys: Vec<String> = p.keys.into_iter().collect();
            self.push(
                &base,
                &p.gen_key,
                &p.epoch_key,
                if p.all { None } else { Some(&keys) },
            );
        }
        // Put back first, then stop counting the taken ones: the length
        // never dips to 0 while something is unsent.
        self.state.lock().sending = 0;
    }
}
