//! The lease step of a read (see [`crate::lease`]): after an L2 miss, take
//! the key's lease or wait for its holder's value, and count what happened.

use std::sync::Arc;
use std::time::Duration;

use persistence_core::{Entity, Repository};

use crate::codec::Cached;
use crate::l2::Found;
use crate::lease::{self, Held, LeaseKeys, Outcome};
use crate::metrics::Event;
use crate::repository::Inner;
use crate::repository::entries::{Kind, pick};

/// What a read does after the lease step.
pub(super) enum Leased<E> {
    /// The holder's value (or one stored just before): no load.
    Value(Cached<E>),
    /// Another instance loads and the caller has a value to serve meanwhile.
    Busy,
    /// Load, store in L2 with `store` (gen token, stamp) when set, then
    /// release `held` when set.
    Load {
        store: Option<(u64, u64)>,
        held: Option<Held>,
    },
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    /// The lease protocol for the L2 miss of `key`; `ttl` the lease's
    /// lifetime, `stale_ok` whether the caller serves a value of its own
    /// instead of waiting.
    pub(super) async fn lease_miss(
        self: &Arc<Self>,
        key: &str,
        kind: Kind,
        ttl: Duration,
        stale_ok: bool,
    ) -> Leased<E> {
        let Some(l2) = self.l2.clone() else {
            return Leased::Load {
                store: None,
                held: None,
            };
        };
        let lease_key = self.keys.lease(key);
        let keys = LeaseKeys {
            lease: &lease_key,
            entry: key,
            gen_key: self.keys.gen_key(),
            epoch_key: self.keys.epoch_key(),
        };
        let out = lease::acquire_or_wait(
            &l2,
            keys,
            ttl,
            stale_ok,
            |f| self.l2_live(f, kind),
            || self.record(Event::LeaseWaited),
        )
        .await;
        let tokens = |f: &Found| match (f.gen_token, f.epoch) {
            (Some(g), Some(ep)) => Some((g, pick(kind, g, ep))),
            _ => None,
        };
        match out {
            // (A wait was counted when it began.)
            Outcome::Value(value) => Leased::Value(value),
            Outcome::Hold {
                held,
                found,
                waited,
            } => {
                if waited {
                    self.record(Event::LeaseExpired);
                }
                self.record(Event::LeaseAcquired);
                Leased::Load {
                    store: tokens(&found),
                    held: Some(held),
                }
            }
            Outcome::Busy => {
                self.record(Event::LeaseWaited);
                Leased::Busy
            }
            Outcome::Alone {
                found,
                waited,
                error,
            } => {
                match error {
                    Some(e) => self.l2_failed(&e),
                    None if waited => self.record(Event::LeaseExpired),
                    None => {}
                }
                Leased::Load {
                    store: found.as_ref().and_then(tokens),
                    held: None,
                }
            }
        }
    }
}
