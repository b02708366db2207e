//! A `metrics` recorder that keeps what the dashboard needs in process:
//! counters and gauges as atomics, histograms as cumulative log-scale
//! bucket counts (about 9 % wide, 1 µs to ~100 s), so percentiles over any
//! recent window are the difference of two bucket snapshots.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use parking_lot::RwLock;

/// Sub-buckets per doubling.
const PER_DOUBLING: f64 = 8.0;
/// Smallest resolved value (seconds); anything below lands in bucket 0.
const MIN_VALUE: f64 = 1e-6;
/// Number of buckets: 1 µs × 2^(215/8) ≈ 115 s; larger values land in the last one.
pub(crate) const BUCKETS: usize = 216;

fn bucket_of(v: f64) -> usize {
    if !v.is_finite() || v <= MIN_VALUE {
        return 0;
    }
    let i = ((v / MIN_VALUE).log2() * PER_DOUBLING).floor() + 1.0;
    if i >= (BUCKETS - 1) as f64 {
        BUCKETS - 1
    } else {
        i as usize
    }
}

/// The value a bucket stands for (geometric middle of its bounds).
pub(crate) fn bucket_value(i: usize) -> f64 {
    if i == 0 {
        return MIN_VALUE;
    }
    let lo = MIN_VALUE * ((i as f64 - 1.0) / PER_DOUBLING).exp2();
    let hi = MIN_VALUE * (i as f64 / PER_DOUBLING).exp2();
    (lo * hi).sqrt()
}

/// The `q` quantile (0..=1) of bucket counts; `None` when empty.
pub(crate) fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(bucket_value(i));
        }
    }
    None
}

/// One histogram: cumulative bucket counts and sum.
#[derive(Debug)]
pub(crate) struct Hist {
    buckets: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl Hist {
    fn new() -> Self {
        Hist {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }
    /// Cumulative counts per bucket.
    pub(crate) fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }
    /// Cumulative sum of recorded values.
    pub(crate) fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Relaxed))
    }
}

impl HistogramFn for Hist {
    fn record(&self, value: f64) {
        self.buckets[bucket_of(value)].fetch_add(1, Relaxed);
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }
}

#[derive(Debug, Default)]
struct Registry {
    counters: RwLock<HashMap<Key, Arc<AtomicU64>>>,
    gauges: RwLock<HashMap<Key, Arc<AtomicU64>>>,
    histograms: RwLock<HashMap<Key, Arc<Hist>>>,
}

fn entry<T>(map: &RwLock<HashMap<Key, Arc<T>>>, key: &Key, new: impl FnOnce() -> T) -> Arc<T> {
    if let Some(v) = map.read().get(key) {
        return v.clone();
    }
    map.write()
        .entry(key.clone())
        .or_insert_with(|| Arc::new(new()))
        .clone()
}

/// The dashboard's recorder. Cheap to clone (one shared registry); install
/// it with [`Aggregator::global`] or fan it out with your own recorder.
#[derive(Debug, Clone, Default)]
pub struct Aggregator {
    registry: Arc<Registry>,
}

/// A point-in-time read of every metric.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    pub counters: Vec<(Key, u64)>,
    pub gauges: Vec<(Key, f64)>,
    pub histograms: Vec<(Key, Vec<u64>, f64)>,
}

impl Aggregator {
    /// A new, empty aggregator (not installed).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide aggregator, installed as the global `metrics`
    /// recorder on first call. `None` when another recorder was installed
    /// first (the dashboard then shows "n/a" for metric-based values).
    pub fn global() -> Option<&'static Aggregator> {
        static GLOBAL: std::sync::OnceLock<Option<Aggregator>> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let agg = Aggregator::new();
                match metrics::set_global_recorder(agg.clone()) {
                    Ok(()) => Some(agg),
                    Err(_) => {
                        tracing::warn!(
                            "a global metrics recorder is already installed; the dashboard shows n/a for metrics"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    pub(crate) fn read(&self) -> Reading {
        let r = &self.registry;
        Reading {
            counters: r
                .counters
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Relaxed)))
                .collect(),
            gauges: r
                .gauges
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), f64::from_bits(v.load(Relaxed))))
                .collect(),
            histograms: r
                .histograms
                .read()
                .iter()
                .map(|(k, h)| (k.clone(), h.counts(), h.sum()))
                .collect(),
        }
    }
}

impl Recorder for Aggregator {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(entry(&self.registry.counters, key, || AtomicU64::new(0)))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(entry(&self.registry.gauges, key, || {
            AtomicU64::new(0f64.to_bits())
        }))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(entry(&self.registry.histograms, key, Hist::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in [2e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0] {
            let b = bucket_of(v);
            assert!(b > last, "{v}");
            last = b;
            let back = bucket_value(b);
            assert!((back / v - 1.0).abs() < 0.1, "{v} -> {back}");
        }
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(1e9), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let h = Hist::new();
        for i in 1..=1000 {
            h.record(f64::from(i) / 1000.0);
        }
        let counts = h.counts();
        let p50 = quantile(&counts, 0.5).expect("p50");
        let p99 = quantile(&counts, 0.99).expect("p99");
        assert!((p50 - 0.5).abs() < 0.05, "{p50}");
        assert!((p99 - 0.99).abs() < 0.1, "{p99}");
        assert!((h.sum() - 500.5).abs() < 1e-6);
        assert_eq!(quantile(&vec![0; BUCKETS], 0.5), None);
    }
}
