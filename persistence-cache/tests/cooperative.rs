//! An L1 hit is cooperative: tasks doing nothing but L1 hits still let the
//! runtime's workers run other tasks (moka answers at once, so without a
//! budget check such a task never yields).
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Item, item};
use persistence_cache::CacheLayer;
use persistence_core::{MemoryRepository, Repository};

#[test]
fn tasks_spinning_on_l1_hits_do_not_starve_other_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let layer = CacheLayer::builder()
        .prefix(common::prefix("coop"))
        // The first read misses (the insert only invalidates).
        .write_through(false)
        .build()
        .expect("layer");
    let repo = layer.wrap(MemoryRepository::<Item>::new());
    rt.block_on(async {
        repo.insert(&item(1, "hot", 1)).await.expect("insert");
        repo.get(&1).await.expect("get");
        let many = repo.get_many(&[1]).await.expect("get_many");
        assert_eq!(many.len(), 1);
    });
    let stop = Arc::new(AtomicBool::new(false));
    for i in 0..32 {
        let (repo, stop) = (repo.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Half through `get`, half through `get_many`: both only hit L1.
                if i % 2 == 0 {
                    repo.get(&1).await.expect("get");
                } else {
                    repo.get_many(&[1]).await.expect("get_many");
                }
            }
        });
    }
    // The spinners are running (both workers busy with them).
    let start = Instant::now();
    while repo.stats().l1_hits < 100_000 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "spinners did not run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let _ = tx.send(());
    });
    // Generous: the point is that it completes at all.
    let done = rx.recv_timeout(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let stats = repo.stats();
    rt.shutdown_background();
    assert!(done.is_ok(), "a task starved behind 32 tasks doing L1 hits");
    assert_eq!(stats.loads, 1, "the spinners did only L1 hits: {stats:?}");
}
