//! The fail-safe never serves a value another instance has invalidated
//! since: instance A keeps a stale copy, instance B writes through its own
//! cache, the backplane carries the invalidation, and A's failed load then
//! fails instead of serving the copy. With L2 and no backplane, nothing
//! stale is served at all (other instances' writes would not reach L1).
mod common;

use std::time::{Duration, Instant};

use common::flaky::flaky;
use common::{Item, Levels, item, wait_connected};
use persistence_cache::{CacheLayer, EntityTtl, FailSafe, ReadPolicy, Served};
use persistence_core::{Error, Filter, MemoryRepository, Repository};

fn instance(prefix: &str) -> Option<CacheLayer> {
    common::layer_with(Levels::Both, prefix, |b| b.backplane(true).jitter(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_write_poisons_the_stale_copy() {
    let prefix = common::prefix("stalebp");
    let (Some(la), Some(lb)) = (instance(&prefix), instance(&prefix)) else {
        return;
    };
    wait_connected(&la).await;
    wait_connected(&lb).await;
    let mem = MemoryRepository::<Item>::new();
    // Written to the source directly: no invalidation messages in flight.
    mem.insert(&item(1, "v1", 1)).await.expect("insert");
    mem.insert(&item(2, "v1", 1)).await.expect("insert");
    let (source, switch) = flaky(mem.clone());
    let ttl = Duration::from_millis(100);
    let policy = ReadPolicy::default().fail_safe(
        FailSafe::new(Duration::from_secs(600)).with_throttle(Duration::from_millis(20)),
    );
    let a = la
        .wrap(source)
        .with_ttl(EntityTtl::new(ttl, ttl))
        .with_read_policy(policy)
        .expect("policy");
    // Same cache, long TTL: shows when B's invalidation has reached A.
    let a_long = a.with_ttl(EntityTtl::new(
        Duration::from_secs(600),
        Duration::from_secs(600),
    ));
    let b = lb.wrap(mem.clone());

    assert_eq!(a.get_served(&1).await.expect("get").1, Served::Fresh);
    assert!(a_long.get(&2).await.expect("get").is_some());
    tokio::time::sleep(ttl * 2).await;
    // The copy is servable while nothing invalidated it.
    switch.fail_with(Some(|| Error::unavailable("down")));
    assert_eq!(a.get_served(&1).await.expect("stale").1, Served::Stale);
    switch.fail_with(None);

    // B deletes everything; A learns it over the backplane.
    b.delete_many(&Filter::all()).await.expect("delete_many");
    let start = Instant::now();
    while a_long.get(&2).await.expect("get").is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "invalidation never reached A"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    switch.fail_with(Some(|| Error::unavailable("down")));
    let out = a.get_served(&1).await;
    assert!(out.is_err(), "served a value B deleted: {out:?}");
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}

#[tokio::test]
async fn with_l2_and_no_backplane_nothing_stale_is_served() {
    let prefix = common::prefix("stalenobp");
    let Some(layer) = common::layer_with(Levels::Both, &prefix, |b| b.jitter(0.0)) else {
        return;
    };
    let mem = MemoryRepository::<Item>::new();
    mem.insert(&item(1, "v1", 1)).await.expect("insert");
    let (source, switch) = flaky(mem);
    let ttl = Duration::from_millis(100);
    let a = layer
        .wrap(source)
        .with_ttl(EntityTtl::new(ttl, ttl))
        .with_read_policy(ReadPolicy::default().fail_safe(FailSafe::new(Duration::from_secs(600))))
        .expect("policy");
    assert_eq!(a.get_served(&1).await.expect("get").1, Served::Fresh);
    tokio::time::sleep(ttl * 2).await;
    switch.fail_with(Some(|| Error::unavailable("down")));
    assert!(a.get_served(&1).await.is_err());
    assert_eq!(a.stats().stale_served, 0);
    common::delete_keys(&common::redis_url().expect("redis"), &prefix).await;
}
