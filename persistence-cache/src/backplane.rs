//! Cross-instance L1 invalidation over Redis pub/sub (the backplane).
//!
//! Every write publishes, in the same pipeline as its L2 invalidation, a
//! message on `{prefix}:!bus` naming the entity type and the keys written
//! (or "all", or a tag). Every other instance of the layer bumps its local
//! generations for them, so its L1 entries loaded before are unreachable.
//! Messages from oneself are ignored (the write already did it locally).
//!
//! While the subscription is down (not yet established, or lost) messages
//! may be missed, so: every L1 entry is dropped when the connection is lost
//! and again when it is re-established, and entries stored meanwhile live
//! at most the *degraded TTL* (default 1 s) instead of the normal TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_redis::redis;
use futures_util::StreamExt as _;
use parking_lot::Mutex;

/// What a message asks receivers to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Entity keys (and every query) of one entity type.
    Keys { base: String, keys: Vec<String> },
    /// Everything of one entity type.
    All { base: String },
    /// A tag.
    Tag { tag: String },
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
}

/// Called with a tag to invalidate locally (`""`: every tag).
pub(crate) type TagSink = Box<dyn Fn(&str) + Send + Sync>;

/// The backplane of one layer.
pub(crate) struct Backplane {
    pub(crate) origin: u64,
    pub(crate) channel: String,
    pub(crate) degraded_ttl: Duration,
    connected: AtomicBool,
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
    pub(crate) fn new(prefix: &str, degraded_ttl: Duration) -> Backplane {
        Backplane {
            origin: fastrand::u64(..),
            channel: format!("{prefix}:!bus"),
            degraded_ttl,
            connected: AtomicBool::new(false),
            receivers: Mutex::new(HashMap::new()),
            tag_sink: Mutex::new(None),
        }
    }

    /// True while subscribed.
    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
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
        let Some((origin, msg)) = std::str::from_utf8(payload).ok().and_then(Message::decode)
        else {
            tracing::debug!("ignored a malformed backplane message");
            return;
        };
        if origin == self.origin {
            return;
        }
        match msg {
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

    /// Start the subscriber task (requires a tokio runtime; without one the
    /// backplane stays disconnected and L1 entries live the degraded TTL).
    pub(crate) fn start(self: &Arc<Self>, url: String) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: cache backplane not started");
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            let mut delay = Duration::from_millis(25);
            loop {
                let Some(me) = weak.upgrade() else { return };
                let channel = me.channel.clone();
                drop(me);
                let pubsub = async {
                    let client = redis::Client::open(url.as_str())?;
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(ps)
                };
                match tokio::time::timeout(Duration::from_secs(2), pubsub).await {
                    Ok(Ok(ps)) => {
                        let Some(me) = weak.upgrade() else { return };
                        // Anything published while we were away is lost: start clean.
                        me.drop_everything();
                        me.connected.store(true, Ordering::SeqCst);
                        tracing::debug!(channel = %me.channel, "cache backplane subscribed");
                        drop(me);
                        delay = Duration::from_millis(25);
                        let mut stream = ps.into_on_message();
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            tokio::select! {
                                msg = stream.next() => match msg {
                                    Some(m) => match weak.upgrade() {
                                        Some(me) => me.handle(m.get_payload_bytes()),
                                        None => return,
                                    },
                                    None => break,
                                },
                                _ = tick.tick() => {
                                    if weak.strong_count() == 0 {
                                        return;
                                    }
                                }
                            }
                        }
                        let Some(me) = weak.upgrade() else { return };
                        me.connected.store(false, Ordering::SeqCst);
                        me.drop_everything();
                        tracing::warn!(channel = %me.channel, "cache backplane connection lost; L1 entries are short-lived until it is back");
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "cache backplane cannot subscribe");
                    }
                    Err(_) => tracing::debug!("cache backplane subscribe timed out"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        });
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
        ] {
            assert_eq!(Message::decode(&m.encode(42)), Some((42, m)));
        }
        assert_eq!(Message::decode("garbage"), None);
    }
}
