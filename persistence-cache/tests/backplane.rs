//! Cross-instance L1 invalidation over Redis pub/sub: two instances (two
//! layers = two "processes") over one MemoryRepository.
mod common;

use std::time::{Duration, Instant};

use common::{Item, Levels, item, wait_connected};
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::{Filter, MemoryRepository, Query, Repository};

fn instance(prefix: &str) -> Option<CacheLayer> {
    common::layer_with(Levels::Both, prefix, |b| b.backplane(true))
}

/// Poll `b` until `check` holds (bounded: 5 s); returns how long it took.
async fn until<F: AsyncFnMut() -> bool>(mut check: F) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if check().await {
            return start.elapsed();
        }
        tokio::task::yield_now().await;
    }
    panic!("not propagated within 5 s");
}

type Repo = CachedRepository<Item, MemoryRepository<Item>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_in_one_instance_invalidate_the_others_l1() {
    let prefix = common::prefix("bp");
    let (Some(la), Some(lb)) = (instance(&prefix), instance(&prefix)) else {
        return;
    };
    wait_connected(&la).await;
    wait_connected(&lb).await;
    let mem = MemoryRepository::<Item>::new();
    let a: Repo = la.wrap(mem.clone());
    let b: Repo = lb.wrap(mem.clone());

    let v1 = a.insert(&item(1, "v1", 1)).await.expect("insert");
    assert_eq!(b.get(&1).await.expect("get"), Some(v1.clone()));
    let q = Query::filter(Filter::field("n").gte(0));
    assert_eq!(b.find(&q).await.expect("find").len(), 1);
    // (The insert's own message may reach b after its first read.)
    until(async || {
        b.get(&1).await.expect("get");
        b.stats().l1_hits >= 1
    })
    .await;

    let mut v2 = v1.clone();
    v2.name = "v2".into();
    let v2 = a.update(&v2).await.expect("update");
    until(async || b.get(&1).await.expect("get") == Some(v2.clone())).await;
    a.insert(&item(2, "two", 2)).await.expect("insert");
    until(async || b.find(&q).await.expect("find").len() == 2).await;
    a.delete_many(&Filter::all()).await.expect("delete_many");
    until(async || b.get(&1).await.expect("get").is_none()).await;

    // Tags travel too.
    let v: String = lb
        .get_or_load_tagged("k", &["t"], || async { Ok("old".to_string()) })
        .await
        .expect("tagged");
    assert_eq!(v, "old");
    la.invalidate_tag("t").await;
    until(async || {
        lb.get_or_load_tagged("k", &["t"], || async { Ok("new".to_string()) })
            .await
            .expect("tagged")
            == "new"
    })
    .await;

    // Propagation time on loopback: update in A until B's L1 no longer serves the old value.
    let mut samples = Vec::with_capacity(200);
    let mut cur = a.insert(&item(9, "p", 0)).await.expect("insert");
    for i in 0..200 {
        assert_eq!(b.get(&9).await.expect("get").map(|x| x.n), Some(cur.n));
        cur.n = i + 1;
        cur = a.update(&cur).await.expect("update");
        let want = cur.n;
        samples
            .push(until(async || b.get(&9).await.expect("get").map(|x| x.n) == Some(want)).await);
    }
    samples.sort();
    eprintln!(
        "backplane propagation over {} updates: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples[samples.len() - 1]
    );
    if let Some(url) = common::redis_url() {
        common::delete_keys(&url, &prefix).await;
    }
}
