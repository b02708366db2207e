//! The task that sends the layer's queued invalidations (see [`super`]) as
//! soon as Redis answers. Sending one entity type's queue is the same
//! pipeline as a write's: replace the gen token (and the epoch token for
//! "all"), `DEL` the keys, `PUBLISH`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backplane::Message;
use crate::layer::CacheLayer;
use crate::shared::Shared;

/// Pause between two attempts while Redis does not answer.
const RETRY: Duration = Duration::from_millis(50);

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
    // Entity types whose send failed. On a cluster their node may be the
    // only one down, so the others are still sent; one server that fails
    // fails them all (no need to wait for each).
    let mut failed = Vec::new();
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
        if let Err(e) = l2.invalidate(&p.gen_key, epoch, &keys, publish, None).await {
            tracing::debug!(entity = %base, error = %e, "queued cache invalidations not sent yet");
            failed.push((base, p));
            if !l2.is_cluster() {
                failed.append(&mut items);
            }
            continue;
        }
        tracing::debug!(entity = %base, keys = keys.len(), all = p.all, "queued cache invalidation sent");
    }
    let sent = failed.is_empty();
    outbox.restore(failed);
    layer.retry_pending_tags().await && sent
}
