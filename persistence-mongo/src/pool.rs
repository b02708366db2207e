//! Pool status for the metrics: driver event hooks installed by [`MongoStore::connect`](crate::MongoStore::connect):
//! connection pool counts from CMAP events, and command shapes (command
//! name, collection and key structure — never values) reported to
//! [`persistence_core::layer::probe`] for the slow-operation log.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bson::{Bson, Document};
use mongodb::event::EventHandler;
use mongodb::event::cmap::CmapEvent;
use mongodb::event::command::CommandEvent;
use mongodb::options::ClientOptions;
use persistence_core::layer::probe;

/// The driver's default `maxPoolSize`.
const DEFAULT_MAX_POOL_SIZE: u32 = 10;
/// In-flight command shapes kept at most (entries of cancelled commands are dropped past it).
const MAX_IN_FLIGHT: usize = 4096;

/// A snapshot of the client's connection pools (summed over servers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MongoPoolStats {
    /// `maxPoolSize` (per server).
    pub max: u32,
    /// Connections open.
    pub open: u32,
    /// Connections checked out.
    pub checked_out: u32,
    /// Check-outs waiting for a connection.
    pub waiting: u32,
}

type AcquireObserver = Box<dyn Fn(Duration) + Send + Sync>;

/// Counts kept from the driver's events.
pub(crate) struct Monitor {
    max: u32,
    open: AtomicI64,
    checked_out: AtomicI64,
    waiting: AtomicI64,
    on_acquire: OnceLock<AcquireObserver>,
    shapes: Mutex<HashMap<i32, String>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn clamp(n: &AtomicI64) -> u32 {
    u32::try_from(n.load(Ordering::Relaxed).max(0)).unwrap_or(u32::MAX)
}

impl Monitor {
    /// Install the event handlers on `opts` (replacing none the caller set:
    /// handlers already present are kept and these are not installed).
    pub(crate) fn install(opts: &mut ClientOptions) -> Option<Arc<Monitor>> {
        if opts.cmap_event_handler.is_some() || opts.command_event_handler.is_some() {
            return None;
        }
        let m = Arc::new(Monitor {
            max: opts.max_pool_size.unwrap_or(DEFAULT_MAX_POOL_SIZE),
            open: AtomicI64::new(0),
            checked_out: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
            on_acquire: OnceLock::new(),
            shapes: Mutex::new(HashMap::new()),
        });
        let cmap = Arc::downgrade(&m);
        opts.cmap_event_handler = Some(EventHandler::callback(move |ev: CmapEvent| {
            if let Some(m) = cmap.upgrade() {
                m.cmap(ev);
            }
        }));
        let cmd = Arc::downgrade(&m);
        opts.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
            if let Some(m) = cmd.upgrade() {
                m.command(ev);
            }
        }));
        Some(m)
    }

    pub(crate) fn stats(&self) -> MongoPoolStats {
        MongoPoolStats {
            max: self.max,
            open: clamp(&self.open),
            checked_out: clamp(&self.checked_out),
            waiting: clamp(&self.waiting),
        }
    }

    pub(crate) fn set_acquire_observer(&self, f: AcquireObserver) {
        let _ = self.on_acquire.set(f);
    }

    fn cmap(&self, ev: CmapEvent) {
        let add = |n: &AtomicI64, d: i64| {
            n.fetch_add(d, Ordering::Relaxed);
        };
        match ev {
            CmapEvent::ConnectionCreated(_) => add(&self.open, 1),
            CmapEvent::ConnectionClosed(_) => add(&self.open, -1),
            CmapEvent::ConnectionCheckoutStarted(_) => add(&self.waiting, 1),
            CmapEvent::ConnectionCheckoutFailed(_) => add(&self.waiting, -1),
            CmapEvent::ConnectionCheckedOut(e) => {
                add(&self.waiting, -1);
                add(&self.checked_out, 1);
                if let Some(f) = self.on_acquire.get() {
                    f(e.duration);
                }
                probe::connection_acquired();
            }
            CmapEvent::ConnectionCheckedIn(_) => add(&self.checked_out, -1),
            _ => {}
        }
    }

    fn command(&self, ev: CommandEvent) {
        match ev {
            // Shapes are only worth computing for an operation being measured.
            CommandEvent::Started(e) if probe::in_scope() => {
                let s = shape(&e.command_name, &e.command);
                if let Ok(mut shapes) = self.shapes.lock() {
                    if shapes.len() >= MAX_IN_FLIGHT {
                        shapes.clear();
                    }
                    shapes.insert(e.request_id, s);
                }
            }
            CommandEvent::Succeeded(e) => self.done(e.request_id, e.duration),
            CommandEvent::Failed(e) => self.done(e.request_id, e.duration),
            _ => {}
        }
    }

    fn done(&self, request_id: i32, elapsed: Duration) {
        let shape = self
            .shapes
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&request_id));
        if let Some(s) = shape {
            probe::statement_executed(&s, elapsed);
        }
    }
}

/// Command fields that are plumbing, not shape.
const SKIP: &[&str] = &[
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "readConcern",
    "writeConcern",
    "cursor",
    "ordered",
    "maxTimeMS",
    "comment",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "signature",
];

/// `find users filter:{email:?, age:{$gt:?}} sort:{name:?}`: the command
/// name, the collection, and every other argument's key structure with
/// each value replaced by `?` (arrays show their first element's shape).
pub fn shape(command_name: &str, command: &Document) -> String {
    let mut out = String::from(command_name);
    for (k, v) in command {
        if k == command_name {
            if let Bson::String(coll) = v {
                out.push(' ');
                out.push_str(coll);
            }
            continue;
        }
        if k.starts_with('$') || SKIP.contains(&k.as_str()) {
            continue;
        }
        let _ = write!(out, " {k}:");
        write_shape(v, &mut out, 0);
    }
    out
}

fn write_shape(v: &Bson, out: &mut String, depth: usize) {
    if depth > 8 {
        out.push('…');
        return;
    }
    match v {
        Bson::Document(d) => {
            out.push('{');
            for (i, (k, v)) in d.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{k}:");
                write_shape(v, out, depth + 1);
            }
            out.push('}');
        }
        Bson::Array(a) => match a.first() {
            None => out.push_str("[]"),
            Some(first) => {
                out.push('[');
                write_shape(first, out, depth + 1);
                if a.len() > 1 {
                    out.push_str(", …");
                }
                out.push(']');
            }
        },
        _ => out.push('?'),
    }
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn shapes_keep_keys_and_drop_values() {
        let cmd = bson::doc! {
            "find": "users",
            "filter": { "email": "secret@x.io", "age": { "$gt": 30 }, "tags": ["a", "b"] },
            "sort": { "name": 1 },
            "lsid": { "id": 1 },
            "$db": "app",
        };
        let s = shape("find", &cmd);
        assert_eq!(
            s,
            "find users filter:{email:?, age:{$gt:?}, tags:[?, …]} sort:{name:?}"
        );
        assert!(!s.contains("secret") && !s.contains("30") && !s.contains("app"));
    }
}
