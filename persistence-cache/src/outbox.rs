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
//! Sending one entity type's queue is the same pipeline as a write's: replace
//! the gen token (and the epoch token for "all"), `DEL` the keys, `PUBLISH`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::backplane::Message;
use crate::config::{CacheLayer, Shared};

/// Pause between two attempts while Redis does not answer.
const RETRY: Duration = Duration::from_millis(50);

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

    /// Queued invalidations: entity keys, plus one per "all of an entity type".
    pub(crate) fn len(&self) -> usize {
        let st = self.state.lock();
        st.keys + st.entities.values().filter(|p| p.all).count()
    }

    /// Take everything queued.
    fn take(&self) -> Vec<(String, Pending)> {
        let mut st = self.state.lock();
        st.keys = 0;
        st.entities.drain().collect()
    }

    /// Put back what could not be sent (merged with what was queued since).
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
    }
}

/// Start the task that sends queued invalidations of `shared`'s layer
/// (needs a tokio runtime and L2; a no-op otherwise).
pub(crate) fn start(shared: &Arc<Shared>) {
    if shared.l2.is_none() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let wake = shared.outbox.wake.clone();
    let weak = Arc::downgrade(shared);
    rt.spawn(run(weak, wake));
}

async fn run(weak: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let layer = CacheLayer { shared };
        let idle = layer.shared.outbox.is_empty() && layer.shared.tags.pending_is_empty();
        if idle {
            drop(layer);
            // Re-check now and then that the layer still exists.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            continue;
        }
        let sent = flush(&layer).await;
        drop(layer);
        if !sent {
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Send everything queued; false when Redis failed (the rest is kept).
async fn flush(layer: &CacheLayer) -> bool {
    let Some(l2) = layer.shared.l2.as_deref() else {
        return true;
    };
    let outbox = &layer.shared.outbox;
    let mut items = outbox.take();
    while let Some((base, p)) = items.pop() {
        let keys: Vec<String> = p.keys.iter().cloned().collect();
        let publish = layer.shared.backplane.as_ref().map(|bp| {
            let msg = if p.all {
                Message::All { base: base.clone() }
            } else {
                Message::Keys {
                    base: base.clone(),
                    keys: keys.clone(),
                }
            };
            (bp.channel.as_str(), msg.encode(bp.origin))
        });
        let epoch = p.all.then_some(p.epoch_key.as_str());
        if let Err(e) = l2.invalidate(&p.gen_key, epoch, &keys, publish).await {
            tracing::debug!(error = %e, "queued cache invalidations not sent yet");
            items.push((base, p));
            outbox.restore(items);
            return false;
        }
        tracing::debug!(entity = %base, keys = keys.len(), all = p.all, "queued cache invalidation sent");
    }
    layer.retry_pending_tags().await
}
