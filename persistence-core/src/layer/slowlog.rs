//! The slow-operation log: a bounded, shared, in-process record of operations
//! slower than the [`Metrics`](super::Metrics) layer's threshold.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// One slow operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    /// When it finished.
    pub at: SystemTime,
    /// Database name from the configuration.
    pub db: String,
    /// Entity logical name.
    pub entity: String,
    /// Repository operation (`find`, `insert`, ...).
    pub op: String,
    /// How long it took.
    pub duration: Duration,
    /// The shape of the slowest statement it ran: SQL text with placeholders
    /// (`$1`, `?`) or a document command shape, never bound values or secrets.
    /// `None` when the backend does not report statements.
    pub statement: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Newest at the back.
    recent: VecDeque<SlowEntry>,
    /// Longest first.
    top: Vec<SlowEntry>,
}

/// A bounded log of slow operations, shared by every `Metrics` layer of the
/// process through [`SlowLog::global`]: the `capacity` most recent entries
/// and, separately, the `capacity` longest ones seen (so a burst of
/// moderately slow calls does not push out the worst).
#[derive(Debug)]
pub struct SlowLog {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// Longest statement text kept in an entry (longer ones are cut at a character boundary).
pub const MAX_STATEMENT_LEN: usize = 2048;

impl SlowLog {
    /// An empty log keeping `capacity` recent and `capacity` longest entries.
    pub fn new(capacity: usize) -> Self {
        SlowLog {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The process-wide log (256 entries) the `Metrics` layer writes to.
    pub fn global() -> &'static SlowLog {
        static GLOBAL: OnceLock<SlowLog> = OnceLock::new();
        GLOBAL.get_or_init(|| SlowLog::new(256))
    }

    /// Add an entry.
    pub fn record(&self, mut entry: SlowEntry) {
        if let Some(s) = &mut entry.statement {
            truncate(s, MAX_STATEMENT_LEN);
        }
        let mut inner = self.inner.lock();
        if inner.recent.len() == self.capacity {
            inner.recent.pop_front();
        }
        inner.recent.push_back(entry.clone());
        let full = inner.top.len() == self.capacity;
        if full
            && inner
                .top
                .last()
                .is_some_and(|last| last.duration >= entry.duration)
        {
            return;
        }
        let at = inner.top.partition_point(|e| e.duration >= entry.duration);
        inner.top.insert(at, entry);
        inner.top.truncate(self.capacity);
    }

    /// The `n` longest operations, longest first.
    pub fn top(&self, n: usize) -> Vec<SlowEntry> {
        self.inner.lock().top.iter().take(n).cloned().collect()
    }

    /// The `n` most recent operations, newest first.
    pub fn recent(&self, n: usize) -> Vec<SlowEntry> {
        self.inner
            .lock()
            .recent
            .iter()
            .rev()
            .take(n)
            .cloned()
            .collect()
    }

    /// Number of recent entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().recent.len()
    }

    /// Whether nothing was recorded (or everything was cleared).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.recent.clear();
        inner.top.clear();
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ms: u64) -> SlowEntry {
        SlowEntry {
            at: SystemTime::now(),
            db: "main".into(),
            entity: "users".into(),
            op: "find".into(),
            duration: Duration::from_millis(ms),
            statement: Some("SELECT 1".into()),
        }
    }

    #[test]
    fn keeps_recent_and_longest_bounded() {
        let log = SlowLog::new(3);
        for ms in [50, 900, 10, 20, 30, 40] {
            log.record(entry(ms));
        }
        let recent: Vec<u64> = log
            .recent(10)
            .iter()
            .map(|e| e.duration.as_millis() as u64)
            .collect();
        assert_eq!(recent, vec![40, 30, 20]);
        let top: Vec<u64> = log
            .top(2)
            .iter()
            .map(|e| e.duration.as_millis() as u64)
            .collect();
        assert_eq!(top, vec![900, 50]);
        log.clear();
        assert!(log.is_empty() && log.top(1).is_empty());
    }

    #[test]
    fn long_statements_are_cut() {
        let log = SlowLog::new(1);
        let mut e = entry(1);
        e.statement = Some("é".repeat(MAX_STATEMENT_LEN));
        log.record(e);
        let s = log.recent(1)[0].statement.clone().unwrap_or_default();
        assert!(s.len() <= MAX_STATEMENT_LEN + '…'.len_utf8());
        assert!(s.ends_with('…'));
    }
}
