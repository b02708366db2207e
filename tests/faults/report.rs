//! The fault suite's per-phase statistics and the printed table.

use super::*;

#[derive(Default)]
pub(crate) struct PhaseStats {
    pub(crate) acked: u64,
    pub(crate) lost: u64,
    pub(crate) unknown: u64,
    pub(crate) unknown_applied: u64,
    pub(crate) not_applied: u64,
    pub(crate) errors: u64,
    pub(crate) reads: u64,
    pub(crate) stale_beyond: u64,
    pub(crate) max_stale: Duration,
    pub(crate) max_latency: Duration,
}

pub(crate) struct Report {
    pub(crate) table: String,
    pub(crate) pg_lost: u64,
    pub(crate) mongo_lost: u64,
    pub(crate) lost_examples: Vec<(i64, i64)>,
    pub(crate) duplicates: u64,
    pub(crate) not_applied_but_applied: u64,
    pub(crate) stale_beyond: u64,
    pub(crate) max_stale: Duration,
    pub(crate) max_latency: Duration,
    pub(crate) slowest: String,
    pub(crate) hangs: u64,
    /// Conflict errors on writes that were in fact applied (a retried
    /// write that met itself).
    pub(crate) false_conflicts: u64,
    /// Write errors that said "retryable" although the write was applied
    /// (retrying an insert or update on that flag duplicates it).
    pub(crate) retryable_applied: u64,
    /// Offending errors, for the failure message.
    pub(crate) examples: Vec<(&'static str, String)>,
    pub(crate) recovery: Vec<(&'static str, Option<Duration>)>,
}

impl Report {
    pub(crate) fn build(
        phases: &[Phase],
        (end, resolved_at_end): (Instant, (u64, u64)),
        calls: &[Call],
        history: &HashMap<(i64, i64), u32>,
        final_rows: &HashMap<i64, i64>,
        final_docs: &HashMap<i64, i64>,
    ) -> Report {
        // Highest acknowledged seq per id: the final state must have at least it.
        let mut max_acked: HashMap<(Store, i64), i64> = HashMap::new();
        for c in calls {
            if matches!(c.res, Res::Ok) && c.op != Op::Read {
                let e = max_acked.entry((c.store, c.id)).or_insert(0);
                *e = (*e).max(c.seq);
            }
        }
        let applied = |c: &Call| -> bool {
            match c.store {
                Store::Pg => history.contains_key(&(c.id, c.seq)),
                // Documents keep no history: applied iff the stored seq reached it.
                Store::Mongo => final_docs.get(&c.id).is_some_and(|s| *s >= c.seq),
            }
        };
        let phase_of =
            |t: Instant| -> usize { phases.iter().rposition(|p| p.start <= t).unwrap_or(0) };
        let mut rows: Vec<PhaseStats> = phases.iter().map(|_| PhaseStats::default()).collect();
        let mut r = Report {
            table: String::new(),
            pg_lost: 0,
            mongo_lost: 0,
            lost_examples: Vec::new(),
            duplicates: history.values().filter(|n| **n > 1).count() as u64,
            not_applied_but_applied: 0,
            stale_beyond: 0,
            max_stale: Duration::ZERO,
            max_latency: Duration::ZERO,
            slowest: String::new(),
            hangs: 0,
            false_conflicts: 0,
            retryable_applied: 0,
            examples: Vec::new(),
            recovery: Vec::new(),
        };
        for c in calls.iter().filter(|c| c.start < end) {
            let row = &mut rows[phase_of(c.start)];
            let latency = c.end.duration_since(c.start);
            if latency > row.max_latency {
                row.max_latency = latency;
            }
            if latency > r.max_latency {
                r.max_latency = latency;
                r.slowest = format!("{:?} {:?} id {} ({:?})", c.store, c.op, c.id, c.res);
            }
            match (&c.res, c.op) {
                (Res::Hang, _) => r.hangs += 1,
                (Res::Ok, Op::Read) => {
                    row.reads += 1;
                    if let Some(s) = c.stale_for {
                        row.max_stale = row.max_stale.max(s);
                        r.max_stale = r.max_stale.max(s);
                        if s > STALE_BOUND {
                            row.stale_beyond += 1;
                            r.stale_beyond += 1;
                        }
                    }
                }
                (Res::Err { .. }, Op::Read) => {}
                (Res::Ok, _) => {
                    row.acked += 1;
                    let lost = match c.store {
                        Store::Pg => {
                            !history.contains_key(&(c.id, c.seq))
                                || final_rows.get(&c.id).is_none_or(|s| *s < c.seq)
                        }
                        // Documents keep no history: the last acknowledged
                        // seq of each must be stored.
                        Store::Mongo => {
                            max_acked.get(&(c.store, c.id)) == Some(&c.seq)
                                && final_docs.get(&c.id).is_none_or(|s| *s < c.seq)
                        }
                    };
                    if lost {
                        row.lost += 1;
                        match c.store {
                            Store::Pg => {
                                r.pg_lost += 1;
                                if r.lost_examples.len() < 5 {
                                    r.lost_examples.push((c.id, c.seq));
                                }
                            }
                            Store::Mongo => r.mongo_lost += 1,
                        }
                    }
                }
                (
                    Res::Err {
                        outcome,
                        kind,
                        retryable,
                        message,
                    },
                    _,
                ) => {
                    row.errors += 1;
                    let was_applied = applied(c);
                    let example = || {
                        format!(
                            "[{}] {:?} {:?} id {} seq {}: {message}",
                            phases[phase_of(c.start)].name,
                            c.store,
                            c.op,
                            c.id,
                            c.seq
                        )
                    };
                    if was_applied && *retryable {
                        r.retryable_applied += 1;
                        if r.examples.len() < 10 {
                            r.examples.push((
                                "retryable_applied",
                                format!("retryable but applied: {}", example()),
                            ));
                        }
                    }
                    if was_applied && kind.starts_with("Conflict") {
                        r.false_conflicts += 1;
                    }
                    match outcome {
                        Outcome::Unknown => {
                            row.unknown += 1;
                            row.unknown_applied += u64::from(was_applied);
                        }
                        Outcome::NotApplied => {
                            row.not_applied += 1;
                            if was_applied {
                                r.not_applied_but_applied += 1;
                                if r.examples.len() < 10 {
                                    r.examples.push((
                                        "not_applied",
                                        format!("NotApplied but applied: {}", example()),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\n{:<26} {:>6} {:>5} {:>8} {:>9} {:>7} {:>9} {:>11} {:>9} {:>9} {:>9}",
            "fault",
            "acked",
            "lost",
            "errors",
            "unknown",
            "(appl.)",
            "resolved",
            "stale>bound",
            "max stale",
            "recovery",
            "max lat."
        );
        for (i, p) in phases.iter().enumerate() {
            let row = &rows[i];
            let next = phases.get(i + 1).map_or(end, |n| n.start);
            let resolved_next = phases
                .get(i + 1)
                .map_or(resolved_at_end, |n| n.resolved_before);
            let resolved = format!(
                "{}/{}",
                resolved_next.0 - p.resolved_before.0,
                resolved_next.1 - p.resolved_before.1
            );
            let recovery = p.back.and_then(|back| {
                calls
                    .iter()
                    .filter(|c| {
                        c.store == p.store
                            && c.op != Op::Read
                            && matches!(c.res, Res::Ok)
                            && c.end >= back
                            && c.end < next
                    })
                    .map(|c| c.end.duration_since(back))
                    .min()
            });
            if i > 0 {
                r.recovery.push((p.name, recovery));
            }
            let _ = writeln!(
                t,
                "{:<26} {:>6} {:>5} {:>8} {:>9} {:>7} {:>9} {:>11} {:>9} {:>9} {:>9}",
                p.name,
                row.acked,
                row.lost,
                row.errors,
                row.unknown,
                row.unknown_applied,
                resolved,
                row.stale_beyond,
                ms(row.max_stale),
                if i == 0 {
                    "-".to_string()
                } else {
                    recovery.map_or("none".to_string(), ms)
                },
                ms(row.max_latency)
            );
        }
        r.table = t;
        r
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
