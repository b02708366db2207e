//! Cost of the `Metrics` layer per call: `cargo bench -p persistence-core --bench metrics_layer --features conformance`.
//!
//! Point reads on a `MemoryRepository` (the cheapest backend, so the layer's
//! own cost shows), bare vs. wrapped in `Metrics` (counters, histogram, the
//! task-local operation context), vs. `Metrics` with a pool probe and a leak
//! detector (what the manager applies to PostgreSQL/SQLite), each with the
//! no-op recorder and with a `metrics-util` debugging recorder installed.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use persistence_core::conformance::entities::{Person, person};
use persistence_core::layer::{LayerExt, LeakDetector, Metrics, PoolProbe};
use persistence_core::{MemoryRepository, Repository};

fn per_op<R: Repository<Person>>(rt: &tokio::runtime::Runtime, repo: &R, n: u64) -> Duration {
    let mut k = 0i64;
    let t = Instant::now();
    for _ in 0..n {
        k = (k * 7919 + 13) % 1000 + 1;
        black_box(rt.block_on(repo.get(&k)).unwrap());
    }
    t.elapsed() / n as u32
}

fn table(rt: &tokio::runtime::Runtime, label: &str) {
    let base = MemoryRepository::<Person>::new();
    rt.block_on(base.insert_many(&(1..=1000).map(person).collect::<Vec<_>>()))
        .unwrap();
    let plain = Metrics::new("bench");
    let full = Metrics::new("bench")
        .pool_probe(PoolProbe::new("bench"))
        .leak_detector(LeakDetector::new("bench", Duration::from_secs(30)));
    let n = 200_000;
    // Warm up, then best of three per variant (the machine is shared).
    let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
    let _ = per_op(rt, &base, n / 10);
    let raw = best(&|| per_op(rt, &base, n));
    let m = best(&|| per_op(rt, &base.clone().layer(plain.clone()), n));
    let f = best(&|| per_op(rt, &base.clone().layer(full.clone()), n));
    let ns = |d: Duration| d.as_nanos() as f64;
    println!(
        "| {label:<28} | {:>8.0} | {:>8.0} ({:>4.2}x) | {:>8.0} ({:>4.2}x) |",
        ns(raw),
        ns(m),
        ns(m) / ns(raw),
        ns(f),
        ns(f) / ns(raw)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    println!("get() on MemoryRepository, ns per call (ratio vs bare)");
    println!(
        "| recorder                     |     bare |  + Metrics            |  + probe + leak detector |"
    );
    println!(
        "|------------------------------|----------|-----------------------|--------------------------|"
    );
    table(&rt, "none (no-op)");
    metrics_util::debugging::DebuggingRecorder::new()
        .install()
        .unwrap();
    table(&rt, "metrics-util debugging");
}
