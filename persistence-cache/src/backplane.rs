//! Cross-instance L1 invalidation over Redis pub/sub (the backplane).
//!
//! Every write publishes, in the same pipeline as its L2 invalidation, a
//! message on `{prefix}:!bus` naming the entity type and the keys written
//! (or "all", or a tag). Every other instance of the layer bumps its local
//! generations for them, so its L1 entries loaded before are unreachable.
//! Messages from oneself are ignored (the write already did it locally).
//!
//! While the subscription is down (not yet established, lost, or stalled)
//! messages may be missed, so: every L1 entry is dropped when the connection
//! is lost and again when it is re-established, and entries stored meanwhile
//! live at most the *degraded TTL* (default 1 s) instead of the normal TTL.
//! L2 is suspect too (a writer may not have reached it): before reading it
//! again, the instance replaces the entity types' tokens, so entries stored
//! before the outage are dead.
//!
//! **Heartbeat.** A Redis that stops answering without closing its
//! connections (a paused process, a network stall) would leave the
//! subscription "connected" while nothing arrives. So every instance
//! publishes a tick on the channel every *heartbeat* interval (default
//! 250 ms); a subscriber that has received nothing (no tick of its own, no
//! message) for the *heartbeat timeout* (default 3 intervals) treats the
//! connection as lost: it drops L1, switches to the degraded TTL and
//! reconnects. It is connected again once a fresh subscription answers.
//!
//! **Redis Cluster.** Classic pub/sub: a message published on any node
//! reaches the subscribers of every node (the cluster bus forwards it), so
//! the subscriber holds one plain connection to one node, starting with the
//! first configured node and moving to the next one each time it
//! (re)connects after a failure; writes publish through the cluster
//! connection, from whichever node serves their keys. Chosen over sharded
//! pub/sub (`SSUBSCRIBE`), which would need one subscription per shard and
//! follow slot moves, for one channel of low volume. A node that dies takes
//! its subscriptions down with it: the subscriber notices (connection
//! closed, or the heartbeat stops) and moves on, with the outage handling
//! above. Heartbeat ticks go to the channel name's slot, so the loss of that
//! node also reads as a lost backplane (conservative).
//!
//! **Never dropped.** A write whose invalidation cannot reach Redis queues it
//! (see [`crate::CacheLayerBuilder::max_queued_invalidations`]); the
//! queue is published as soon as Redis answers again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use parking_lot::Mutex;

use crate::connect::RedisEndpoint;
use crate::l2::L2;

/// What a message asks receivers to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Entity keys (and every query) of one entity type.
    Keys { base: String, keys: Vec<String> },
    /// Everything of one entity type.
    All { base: String },
    /// A tag.
    Tag { tag: String },
    /// A heartbeat tick (invalidates nothing; proves the channel is alive).
    Tick,
}

const VERSION: &str = "pcb1";

impl Message {
    pub(crate) fn encode(&self, origin: u64) -> String {
        let mut out = format!("{VERSION}\n{origin}\n");
        match self {
            Message::Keys { base, keys } => {
                out.push_str("K\n");
                out.push_str(base);
                for k in keys {
                    out.push('\n');
                    out.push_str(k);
                }
            }
            Message::All { base } => {
                out.push_str("A\n");
                out.push_str(base);
            }
            Message::Tag { tag } => {
                out.push_str("T\n");
                out.push_str(tag);
            }
            Message::Tick => out.push_str("H\n"),
        }
        out
    }

    /// Decode; `None` for a malformed or foreign message.
    pub(crate) fn decode(s: &str) -> Option<(u64, Message)> {
        let mut lines = s.split('\n');
        if lines.next()? != VERSION {
            return None;
        }
        let origin: u64 = lines.next()?.parse().ok()?;
        let kind = lines.next()?;
        let rest = lines.next()?.to_string();
        let msg = match kind {
            "K" => Message::Keys {
                base: rest,
                keys: lines.map(str::to_string).collect(),
            },
            "A" => Message::All { base: rest },
            "H" => Message::Tick,
            // A tag may contain newlines: take the remainder verbatim.
            "T" => {
                let prefix_len = VERSION.len() + 1 + origin.to_string().len() + 1 + 2;
                Message::Tag {
                    tag: s.get(prefix_len..)?.to_string(),
                }
            }
            _ => return None,
        };
        Some((origin, msg))
    }
}

/// Receivers of backplane messages (one per cached repository).
pub(crate) trait Receiver: Send + Sync {
    /// Invalidate these keys (or everything when `keys` is None) locally.
    fn apply(&self, keys: Option<&[String]>);
    /// The backplane was lost: invalidations of other instances may have
    /// missed L2 too, so treat L2 as suspect (replace its tokens before
    /// reading it again).
    fn outage(self: Arc<Self>);
}

/// Called with a tag to invalidate locally (`""`: every tag).
pub(crate) type TagSink = Box<dyn Fn(&str) + Send + Sync>;

/// The backplane of one layer.
pub(crate) struct Backplane {
    pub(crate) origin: u64,
    pub(crate) channel: String,
    pub(crate) degraded_ttl: Duration,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
    connected: AtomicBool,
    /// When the subscriber last received anything (a tick or a message).
    last_heartbeat: Mutex<Option<Instant>>,
    receivers: Mutex<HashMap<String, Vec<Weak<dyn Receiver>>>>,
    tag_sink: Mutex<Option<TagSink>>,
}

impl std::fmt::Debug for Backplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backplane")
            .field("channel", &self.channel)
            .field("connected", &self.connected())
            .finish()
    }
}

impl Backplane {
    pub(crate) fn new(
        prefix: &str,
        degraded_ttl: Duration,
        heartbeat: Duration,
        heartbeat_timeout: Duration,
    ) -> Backplane {
        Backplane {
            origin: fastrand::u64(..),
            channel: format!("{prefix}:!bus"),
            degraded_ttl,
            heartbeat,
            heartbeat_timeout,
            connected: AtomicBool::new(false),
            last_heartbeat: Mutex::new(None),
            receivers: Mutex::new(HashMap::new()),
            tag_sink: Mutex::new(None),
        }
    }

    /// True while subscribed and hearing heartbeats.
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// When the subscriber last received anything.
    pub(crate) fn last_heartbeat(&self) -> Option<Instant> {
        *self.last_heartbeat.lock()
    }

    pub(crate) fn register(&self, base: &str, r: Weak<dyn Receiver>) {
        let mut map = self.receivers.lock();
        let list = map.entry(base.to_string()).or_default();
        list.retain(|w| w.strong_count() > 0);
        list.push(r);
    }

    pub(crate) fn set_tag_sink(&self, f: TagSink) {
        *self.tag_sink.lock() = Some(f);
    }

    fn receivers(&self, base: Option<&str>) -> Vec<Arc<dyn Receiver>> {
        let map = self.receivers.lock();
        match base {
            Some(b) => map
                .get(b)
                .map(|l| l.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default(),
            None => map
                .values()
                .flat_map(|l| l.iter().filter_map(Weak::upgrade))
                .collect(),
        }
    }

    fn handle(&self, payload: &[u8]) {
        *self.last_heartbeat.lock() = Some(Instant::now());
        let Some((origin, msg)) = std::str::from_utf8(payload).ok().and_then(Message::decode)
        else {
            tracing::debug!("ignored a malformed backplane message");
            return;
        };
        if origin == self.origin {
            return;
        }
        match msg {
            Message::Tick => {}
            Message::Keys { base, keys } => {
                for r in self.receivers(Some(&base)) {
                    r.apply(Some(&keys));
                }
            }
            Message::All { base } => {
                for r in self.receivers(Some(&base)) {
                    r.apply(None);
                }
            }
            Message::Tag { tag } => {
                if let Some(sink) = &*self.tag_sink.lock() {
                    sink(&tag);
                }
            }
        }
    }

    /// Messages may have been missed: drop every L1 entry of every receiver.
    fn drop_everything(&self) {
        for r in self.receivers(None) {
            r.apply(None);
        }
        if let Some(sink) = &*self.tag_sink.lock() {
            sink("");
        }
    }

    /// Start the subscriber and heartbeat tasks (requires a tokio runtime;
    /// without one the backplane stays disconnected and L1 entries live the
    /// degraded TTL). Ticks are published through `l2`'s pool.
    pub(crate) fn start(self: &Arc<Self>, endpoint: RedisEndpoint, l2: Arc<L2>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: cache backplane not started");
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(heartbeat(weak.clone(), l2, self.heartbeat));
        rt.spawn(subscriber(weak, endpoint, self.heartbeat_timeout));
    }

    /// The subscription is gone or silent: messages may be missed from now.
    fn lost(&self, why: &str) {
        self.connected.store(false, Ordering::SeqCst);
        self.drop_everything();
        for r in self.receivers(None) {
            r.outage();
        }
        tracing::warn!(channel = %self.channel, why, "cache backplane connection lost; L1 entries are dropped and short-lived until it is back");
    }
}

/// Publish a tick every `every` (through the L2 pool, under its timeout).
async fn heartbeat(weak: Weak<Backplane>, l2: Arc<L2>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(me) = weak.upgrade() else { return };
        let (channel, msg) = (me.channel.clone(), Message::Tick.encode(me.origin));
        drop(me);
        if let Err(e) = l2.publish(&channel, msg).await {
            tracing::debug!(error = %e, "cache backplane heartbeat not published");
        }
    }
}

/// Subscribe, apply messages, watch the heartbeat; reconnect on loss or silence.
async fn subscriber(weak: Weak<Backplane>, endpoint: RedisEndpoint, silence: Duration) {
    let mut delay = Duration::from_millis(25);
    // Bound of one subscribe attempt: long enough for a slow connect, short
    // enough that a stalled server is retried soon after it resumes.
    let connect_timeout = silence.max(Duration::from_secs(1));
    // Which node to subscribe on (a cluster's nodes in turn; one server: 0).
    let mut node = 0usize;
    loop {
        let Some(me) = weak.upgrade() else { return };
        let channel = me.channel.clone();
        drop(me);
        let pubsub = async {
            let client = endpoint.node_client(node).map_err(|e| e.to_string())?;
            let mut ps = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            ps.subscribe(&channel).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(ps)
        };
        match tokio::time::timeout(connect_timeout, pubsub).await {
            Ok(Ok(ps)) => {
                let Some(me) = weak.upgrade() else { return };
                // Anything published while we were away is lost: start clean.
                me.drop_everything();
                *me.last_heartbeat.lock() = Some(Instant::now());
                me.connected.store(true, Ordering::SeqCst);
                tracing::debug!(channel = %me.channel, "cache backplane subscribed");
                drop(me);
                delay = Duration::from_millis(25);
                let mut stream = ps.into_on_message();
                let mut last = Instant::now();
                let mut check = tokio::time::interval(silence / 4);
                check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let why = loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(m) => match weak.upgrade() {
                                Some(me) => {
                                    last = Instant::now();
                                    me.handle(m.get_payload_bytes());
                                }
                                None => return,
                            },
                            None => break "connection closed",
                        },
                        _ = check.tick() => {
                            if weak.strong_count() == 0 {
                                return;
                            }
                            if last.elapsed() > silence {
                                break "no heartbeat";
                            }
                        }
                    }
                };
                let Some(me) = weak.upgrade() else { return };
                me.lost(why);
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cache backplane cannot subscribe");
            }
            Err(_) => tracing::debug!("cache backplane subscribe timed out"),
        }
        node = node.wrapping_add(1);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Keys {
                base: "p:e:1".into(),
                keys: vec!["p:e:1:5".into(), "p:e:1:#ab".into()],
            },
            Message::All {
                base: "p:e:1".into(),
            },
            Message::Tag {
                tag: "user:1\nodd".into(),
            },
            Message::Tick,
        ] {
            assert_eq!(Message::decode(&m.encode(42)), Some((42, m)));
        }
        assert_eq!(Message::decode("garbage"), None);
    }
}
