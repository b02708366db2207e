//! A parent's delete that the store cascades (or answers with `set_null`)
//! changes child rows the cache never saw written: the cache layer drops the
//! child types' entries before the delete returns, in this instance and,
//! through L2 and the backplane, in the others — also when the instance that
//! deletes does not cache the child type at all (found through the parent's
//! declared `has_many`), and down a chain of cascades.
#![allow(clippy::unwrap_used)]
mod common;

use common::{Levels, until, wait_connected};
use persistence_cache::CacheLayer;
use persistence_core::{Entity, Filter, MemoryStore, Query, Repository};
use serde::{Deserialize, Serialize};

/// Top of a chain: declares its children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "casc_a", has_many(CascB, key = a_id, name = "bs"))]
struct CascA {
    #[entity(id)]
    id: i64,
}

/// Middle: removed with its `CascA`, declares its children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "casc_b",
    belongs_to(CascA, key = a_id, on_delete = cascade, name = "a"),
    has_many(CascC, key = b_id, name = "cs")
)]
struct CascB {
    #[entity(id)]
    id: i64,
    a_id: i64,
}

/// Bottom: removed with its `CascB`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "casc_c",
    belongs_to(CascB, key = b_id, on_delete = cascade, name = "b")
)]
struct CascC {
    #[entity(id)]
    id: i64,
    b_id: i64,
}

/// A parent that declares no children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "casc_owner")]
struct Owner {
    #[entity(id)]
    id: i64,
}

/// Known to its parent only from this side; its key is cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "casc_pet",
    belongs_to(Owner, key = owner_id, on_delete = set_null, name = "owner")
)]
struct Pet {
    #[entity(id)]
    id: i64,
    owner_id: Option<i64>,
}

async fn fill(store: &MemoryStore) {
    let a = store.repository::<CascA>();
    let b = store.repository::<CascB>();
    let c = store.repository::<CascC>();
    a.insert_many(&[CascA { id: 1 }, CascA { id: 2 }])
        .await
        .unwrap();
    b.insert_many(&[CascB { id: 10, a_id: 1 }, CascB { id: 20, a_id: 2 }])
        .await
        .unwrap();
    c.insert_many(&[CascC { id: 100, b_id: 10 }, CascC { id: 200, b_id: 20 }])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_layer_a_cascade_drops_the_cached_children_and_grandchildren() {
    let layer = CacheLayer::builder()
        .prefix(common::prefix("casc1"))
        .build()
        .unwrap();
    let store = MemoryStore::new();
    fill(&store).await;
    let a = layer.wrap(store.repository::<CascA>());
    let b = layer.wrap(store.repository::<CascB>());
    let c = layer.wrap(store.repository::<CascC>());
    // Cache them: entities, queries, counts.
    assert!(b.get(&10).await.unwrap().is_some());
    assert!(c.get(&100).await.unwrap().is_some());
    assert_eq!(c.find(&Query::all()).await.unwrap().len(), 2);
    assert_eq!(c.count(&Filter::all()).await.unwrap(), 2);
    let hits = c.stats().l1_hits;
    assert!(c.get(&100).await.unwrap().is_some());
    assert_eq!(c.stats().l1_hits, hits + 1, "served from L1");

    assert!(a.delete(&1).await.unwrap());
    assert_eq!(b.get(&10).await.unwrap(), None, "child");
    assert_eq!(c.get(&100).await.unwrap(), None, "grandchild");
    assert_eq!(c.find(&Query::all()).await.unwrap().len(), 1);
    assert_eq!(c.count(&Filter::all()).await.unwrap(), 1);
    // A delete that removed nothing drops nothing.
    assert!(c.get(&200).await.unwrap().is_some());
    let hits = c.stats().l1_hits;
    assert!(!a.delete(&1).await.unwrap());
    assert!(c.get(&200).await.unwrap().is_some());
    assert_eq!(c.stats().l1_hits, hits + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_known_only_from_its_own_side_is_found_among_the_wrapped_types() {
    let layer = CacheLayer::builder()
        .prefix(common::prefix("casc2"))
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let owners = layer.wrap(store.repository::<Owner>());
    let pets = layer.wrap(store.repository::<Pet>());
    owners.insert(&Owner { id: 1 }).await.unwrap();
    pets.insert(&Pet {
        id: 5,
        owner_id: Some(1),
    })
    .await
    .unwrap();
    assert_eq!(pets.get(&5).await.unwrap().unwrap().owner_id, Some(1));
    let with_owner = Query::filter(Filter::field("owner_id").eq(1_i64));
    assert_eq!(pets.find(&with_owner).await.unwrap().len(), 1);
    assert_eq!(
        owners.delete_many(&Filter::all()).await.unwrap(),
        1,
        "delete_many"
    );
    assert_eq!(pets.get(&5).await.unwrap().unwrap().owner_id, None);
    assert!(pets.find(&with_owner).await.unwrap().is_empty());
}

fn instance(prefix: &str, levels: Levels) -> Option<CacheLayer> {
    // A backplane serves L1: the L2-only instance has none.
    common::layer_with(levels, prefix, |b| b.backplane(levels == Levels::Both))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_instances_lose_the_children_even_when_the_deleter_does_not_cache_them() {
    let prefix = common::prefix("casc3");
    // The deleter caches only the top; one reader has L2 alone, one L1 + L2.
    let (Some(deleter), Some(l2_reader), Some(reader)) = (
        instance(&prefix, Levels::Both),
        instance(&prefix, Levels::L2),
        instance(&prefix, Levels::Both),
    ) else {
        return;
    };
    wait_connected(&deleter).await;
    wait_connected(&reader).await;
    let store = MemoryStore::new();
    fill(&store).await;
    let a = deleter.wrap(store.repository::<CascA>());
    let c_l2 = l2_reader.wrap(store.repository::<CascC>());
    let c = reader.wrap(store.repository::<CascC>());
    assert!(c_l2.get(&100).await.unwrap().is_some());
    assert!(c.get(&100).await.unwrap().is_some());
    assert_eq!(c.find(&Query::all()).await.unwrap().len(), 2);

    let popped = a.find_one_and_delete(&Query::all()).await.unwrap();
    assert_eq!(popped.map(|x| x.id), Some(1));
    // L2 was invalidated before the delete returned.
    assert_eq!(c_l2.get(&100).await.unwrap(), None);
    // L1 hears it through the backplane.
    until(async || c.get(&100).await.unwrap().is_none()).await;
    until(async || c.find(&Query::all()).await.unwrap().len() == 1).await;
    assert!(
        c.get(&200).await.unwrap().is_some(),
        "the other chain stays"
    );
}
