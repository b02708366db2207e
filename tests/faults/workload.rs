//! The fault suite's model (rows, documents, call records) and its writer
//! and reader tasks.

use super::*;

// -------------------------------------------------------------------- model

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "fault_rows")]
pub(crate) struct Row {
    #[entity(id)]
    pub(crate) id: i64,
    pub(crate) writer: i64,
    pub(crate) seq: i64,
    #[entity(version)]
    pub(crate) version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "fault_docs")]
pub(crate) struct Doc {
    #[entity(id)]
    pub(crate) id: i64,
    pub(crate) writer: i64,
    pub(crate) seq: i64,
    #[entity(version)]
    pub(crate) version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Store {
    Pg,
    Mongo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Update,
    Read,
}

/// What a failed call said about its write ([`Error::outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The error guarantees the write was not applied.
    NotApplied,
    /// It may have been applied.
    Unknown,
}

pub(crate) fn outcome(e: &Error) -> Outcome {
    match e.outcome() {
        WriteOutcome::NotApplied => Outcome::NotApplied,
        _ => Outcome::Unknown,
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Res {
    Ok,
    Err {
        kind: String,
        outcome: Outcome,
        retryable: bool,
        /// The error's Display (no secrets by the house rules).
        message: String,
    },
    Hang,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) store: Store,
    pub(crate) op: Op,
    pub(crate) id: i64,
    /// The seq written (writes) or read (reads; -1: not found).
    pub(crate) seq: i64,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) res: Res,
    /// Reads: how long the returned value had been superseded by an
    /// acknowledged write when the read started.
    pub(crate) stale_for: Option<Duration>,
}

/// Acknowledged (seq, when) per row/document, in seq order.
pub(crate) type Acks = HashMap<(Store, i64), Vec<(i64, Instant)>>;

pub(crate) struct Shared {
    pub(crate) t0: Instant,
    pub(crate) stop: AtomicBool,
    pub(crate) calls: Mutex<Vec<Call>>,
    pub(crate) acks: Mutex<Acks>,
    /// Recently acknowledged ids, for the readers.
    pub(crate) recent: Mutex<Vec<(Store, i64)>>,
    /// End of the last successful write per store (µs since t0).
    pub(crate) last_ok: [AtomicU64; 2],
}

impl Shared {
    pub(crate) fn record(&self, call: Call) {
        if let (Res::Ok, Op::Insert | Op::Update) = (&call.res, call.op) {
            self.acks
                .lock()
                .entry((call.store, call.id))
                .or_default()
                .push((call.seq, call.end));
            let mut recent = self.recent.lock();
            if recent.len() >= 512 {
                let i = fastrand::usize(..recent.len());
                recent[i] = (call.store, call.id);
            } else {
                recent.push((call.store, call.id));
            }
            let us = call.end.duration_since(self.t0).as_micros() as u64;
            self.last_ok[call.store as usize].fetch_max(us, Ordering::Relaxed);
        }
        self.calls.lock().push(call);
    }

    pub(crate) fn last_ok(&self, store: Store) -> Instant {
        self.t0 + Duration::from_micros(self.last_ok[store as usize].load(Ordering::Relaxed))
    }
}

pub(crate) fn res_of<T>(
    r: Result<Result<T, Error>, tokio::time::error::Elapsed>,
) -> (Res, Option<T>) {
    match r {
        Ok(Ok(v)) => (Res::Ok, Some(v)),
        Ok(Err(e)) => (
            Res::Err {
                kind: format!("{:?}", e.kind()),
                outcome: outcome(&e),
                retryable: e.is_retryable(),
                message: e.to_string(),
            },
            None,
        ),
        Err(_) => (Res::Hang, None),
    }
}

// ------------------------------------------------------------------ workers

/// One writer: keeps up to 4 live rows (or documents) of its own; inserts
/// new ones and updates live ones with the next seq. A row whose write
/// failed is abandoned (its fate is checked at the end).
pub(crate) async fn writer<E, F>(
    w: i64,
    store: Store,
    repo: SharedRepository<E>,
    make: F,
    seq_of: fn(&E) -> (i64, i64),
    shared: Arc<Shared>,
) where
    E: Entity<Id = i64>,
    F: Fn(i64, i64, i64, i64) -> E + Send + Sync,
{
    let mut next = 0i64;
    let mut live: Vec<(i64, i64, i64)> = Vec::new(); // id, seq, version
    let pause = match store {
        Store::Pg => Duration::from_millis(10),
        Store::Mongo => Duration::from_millis(25),
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let insert = live.len() < 4 || fastrand::u8(..10) == 0;
        let start = Instant::now();
        let (op, id, seq, r) = if insert {
            next += 1;
            let id = w * 10_000_000 + next;
            let r = tokio::time::timeout(HANG, repo.insert(&make(id, w, 1, 0))).await;
            (Op::Insert, id, 1, r)
        } else {
            let i = fastrand::usize(..live.len());
            let (id, seq, version) = live.swap_remove(i);
            let r = tokio::time::timeout(HANG, repo.update(&make(id, w, seq + 1, version))).await;
            (Op::Update, id, seq + 1, r)
        };
        let end = Instant::now();
        let (res, stored) = res_of(r);
        if let Some(stored) = stored {
            let (s, v) = seq_of(&stored);
            live.push((id, s, v));
        }
        shared.record(Call {
            store,
            op,
            id,
            seq,
            start,
            end,
            res,
            stale_for: None,
        });
        tokio::time::sleep(pause).await;
    }
}

/// A reader on instance B: reads recently acknowledged rows/documents and
/// measures how stale each answer is against A's acknowledged writes.
pub(crate) async fn reader(
    rows: SharedRepository<Row>,
    docs: SharedRepository<Doc>,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let pick = {
            let recent = shared.recent.lock();
            (!recent.is_empty()).then(|| recent[fastrand::usize(..recent.len())])
        };
        let Some((store, id)) = pick else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let start = Instant::now();
        let (res, seq) = match store {
            Store::Pg => {
                let (res, v) = res_of(tokio::time::timeout(HANG, rows.get(&id)).await);
                (res, v.map(|o| o.map_or(-1, |r| r.seq)))
            }
            Store::Mongo => {
                let (res, v) = res_of(tokio::time::timeout(HANG, docs.get(&id)).await);
                (res, v.map(|o| o.map_or(-1, |d| d.seq)))
            }
        };
        let end = Instant::now();
        let stale_for = seq.and_then(|seq| {
            let acks = shared.acks.lock();
            acks.get(&(store, id))?
                .iter()
                .filter(|(s, at)| *s > seq && *at <= start)
                .map(|(_, at)| start.duration_since(*at))
                .max()
        });
        shared.record(Call {
            store,
            op: Op::Read,
            id,
            seq: seq.unwrap_or(-2),
            start,
            end,
            res,
            stale_for,
        });
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}
