//! Metrics go through the `metrics` facade with the names defined once in
//! `persistence_cache::metrics::names`, and agree with `stats()`.
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{Item, Levels, item};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use persistence_cache::metrics::names;
use persistence_core::{MemoryRepository, Repository};

#[derive(Default)]
struct Recorder {
    counters: Mutex<HashMap<String, Arc<Count>>>,
}

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let c = self
            .counters
            .lock()
            .expect("lock")
            .entry(render(key))
            .or_default()
            .clone();
        Counter::from_arc(c)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test]
async fn counters_reach_the_metrics_facade_and_stats() {
    let rec: &'static Recorder = Box::leak(Box::default());
    metrics::set_global_recorder(rec).expect("the only recorder of this test binary");
    let layer = common::layer_with(Levels::L1, &common::prefix("met"), |b| {
        // The first read misses (the insert only invalidates).
        b.write_through(false)
    })
    .expect("layer");
    let repo = layer.wrap(MemoryRepository::<Item>::new());
    repo.insert(&item(1, "a", 1)).await.expect("insert");
    repo.get(&1).await.expect("miss");
    repo.get(&1).await.expect("hit");
    repo.get(&1).await.expect("hit");
    let s = repo.stats();
    assert_eq!(
        (s.l1_hits, s.l1_misses, s.loads, s.invalidations),
        (2, 1, 1, 1)
    );
    let get = |name: &str, labels: &str| {
        rec.counters
            .lock()
            .expect("lock")
            .get(&format!("{name}{{{labels}}}"))
            .map_or(0, |c| c.0.load(Ordering::SeqCst))
    };
    assert_eq!(get(names::HITS, "entity=cache_items,level=l1"), 2);
    assert_eq!(get(names::MISSES, "entity=cache_items,level=l1"), 1);
    assert_eq!(get(names::LOADS, "entity=cache_items"), 1);
    assert_eq!(get(names::INVALIDATIONS, "entity=cache_items"), 1);
}
