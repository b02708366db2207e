//! Cache coherence property test: random sequences of reads, writes and
//! invalidations across two instances (L1 + L2 + backplane) over one
//! repository. A read through the instance that wrote always sees the last
//! acknowledged write; a read through the other instance sees it once
//! propagation has settled (polled, bounded), and never an older value after.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Item, Levels, item};
use persistence_cache::CachedRepository;
use persistence_core::{Filter, Guard, MemoryRepository, Query, Repository, Update};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Upsert { via: usize, id: i64, n: i64 },
    Delete { via: usize, id: i64 },
    DeleteMany { via: usize, below: i64 },
    Read { via: usize, id: i64 },
    ReadMany { via: usize },
    Find { via: usize },
    Invalidate { via: usize, id: i64 },
    Inc { via: usize, id: i64, by: i64 },
    SetWhere { via: usize, below: i64, n: i64 },
    Pop { via: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let via = 0..2usize;
    let id = 0..6i64;
    prop_oneof![
        3 => (via.clone(), id.clone(), 0..100i64).prop_map(|(via, id, n)| Op::Upsert { via, id, n }),
        1 => (via.clone(), id.clone()).prop_map(|(via, id)| Op::Delete { via, id }),
        1 => (via.clone(), 0..100i64).prop_map(|(via, below)| Op::DeleteMany { via, below }),
        4 => (via.clone(), id.clone()).prop_map(|(via, id)| Op::Read { via, id }),
        1 => via.clone().prop_map(|via| Op::ReadMany { via }),
        2 => via.clone().prop_map(|via| Op::Find { via }),
        1 => (via.clone(), id.clone()).prop_map(|(via, id)| Op::Invalidate { via, id }),
        2 => (via.clone(), id, 0..10i64).prop_map(|(via, id, by)| Op::Inc { via, id, by }),
        1 => (via.clone(), 0..100i64, 0..100i64).prop_map(|(via, below, n)| Op::SetWhere { via, below, n }),
        1 => via.prop_map(|via| Op::Pop { via }),
    ]
}

type Repo = CachedRepository<Item, MemoryRepository<Item>>;
type Model = BTreeMap<i64, i64>;

async fn snapshot(r: &Repo) -> Model {
    r.find(&Query::filter(Filter::field("n").gte(0)))
        .await
        .expect("find")
        .into_iter()
        .map(|i| (i.id, i.n))
        .collect()
}

async fn many(r: &Repo) -> Model {
    let ids: Vec<i64> = (0..6).collect();
    r.get_many(&ids)
        .await
        .expect("get_many")
        .into_iter()
        .map(|i| (i.id, i.n))
        .collect()
}

/// Wait (bounded) until `r` agrees with the model on queries and on every id.
async fn settle(r: &Repo, model: &Model) {
    for _ in 0..2500 {
        if &snapshot(r).await == model && &many(r).await == model {
            let mut all = true;
            for id in 0..6 {
                all &= r.get(&id).await.expect("get").map(|i| i.n) == model.get(&id).copied();
            }
            if all {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("instance did not converge to {model:?}");
}

/// `strict`: both handles are one instance, so no read may need settling.
async fn run(ops: Vec<Op>, repos: [Repo; 2], strict: bool) {
    let mut model = Model::new();
    // unsettled[i]: the other instance wrote since instance i last converged.
    let mut unsettled = [false, false];
    for op in ops {
        let via = match &op {
            Op::Upsert { via, .. }
            | Op::Delete { via, .. }
            | Op::DeleteMany { via, .. }
            | Op::Read { via, .. }
            | Op::ReadMany { via }
            | Op::Find { via }
            | Op::Invalidate { via, .. }
            | Op::Inc { via, .. }
            | Op::SetWhere { via, .. }
            | Op::Pop { via } => *via,
        };
        let is_read = matches!(op, Op::Read { .. } | Op::ReadMany { .. } | Op::Find { .. });
        if is_read && unsettled[via] {
            settle(&repos[via], &model).await;
            unsettled[via] = false;
        }
        match op {
            Op::Upsert { id, n, .. } => {
                repos[via].upsert(&item(id, "x", n)).await.expect("upsert");
                model.insert(id, n);
            }
            Op::Delete { id, .. } => {
                repos[via].delete(&id).await.expect("delete");
                model.remove(&id);
            }
            Op::DeleteMany { below, .. } => {
                repos[via]
                    .delete_many(&Filter::field("n").lt(below))
                    .await
                    .expect("delete_many");
                model.retain(|_, n| *n >= below);
            }
            Op::Inc { id, by, .. } => {
                let update = Update::<Item>::new().inc(Item::N, by);
                match repos[via].patch(&id, &update, &Guard::none()).await {
                    Ok(stored) => {
                        let n = model.get_mut(&id).expect("patched a row the model lacks");
                        *n += by;
                        assert_eq!(stored.n, *n, "patch returns the stored row");
                    }
                    Err(e) => {
                        assert!(e.is_not_found(), "{e}");
                        assert!(!model.contains_key(&id), "patch of id {id}: {e}");
                    }
                }
            }
            Op::SetWhere { below, n, .. } => {
                let update = Update::<Item>::new().set(Item::N, n);
                let count = repos[via]
                    .update_where(&Filter::field("n").lt(below), &update)
                    .await
                    .expect("update_where");
                let mut matched = 0;
                for v in model.values_mut().filter(|v| **v < below) {
                    *v = n;
                    matched += 1;
                }
                assert_eq!(count, matched, "update_where count");
            }
            Op::Pop { .. } => {
                let popped = repos[via]
                    .find_one_and_delete(&Query::all().sort(Item::N.asc()))
                    .await
                    .expect("find_one_and_delete")
                    .map(|i| (i.id, i.n));
                let first = model
                    .iter()
                    .map(|(id, n)| (*n, *id))
                    .min()
                    .map(|(n, id)| (id, n));
                assert_eq!(popped, first, "pops the lowest n (ties by id)");
                if let Some((id, _)) = first {
                    model.remove(&id);
                }
            }
            Op::Invalidate { id, .. } => repos[via].invalidate(&id).await,
            // Reads: exact, with no waiting.
            Op::Read { id, .. } => assert_eq!(
                repos[via].get(&id).await.expect("get").map(|i| i.n),
                model.get(&id).copied(),
                "id {id} via {via}"
            ),
            Op::ReadMany { .. } => assert_eq!(many(&repos[via]).await, model, "via {via}"),
            Op::Find { .. } => assert_eq!(snapshot(&repos[via]).await, model, "via {via}"),
        }
        if !is_read && !strict {
            unsettled[1 - via] = true;
        }
    }
    for r in &repos {
        settle(r, &model).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One L1-only instance used through two handles: strictly coherent at every step.
    #[test]
    fn single_instance_l1_is_strictly_coherent(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(async {
            let layer = common::layer(Levels::L1, &common::prefix("coh1")).expect("layer");
            let r: Repo = layer.wrap(MemoryRepository::new());
            run(ops, [r.clone(), r], true).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Two instances (L1 + L2 + backplane).
    #[test]
    fn two_instances_converge(ops in proptest::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            let prefix = common::prefix("coh2");
            let make = || common::layer_with(Levels::Both, &prefix, |b| b.backplane(true));
            let (Some(a), Some(b)) = (make(), make()) else { return };
            for l in [&a, &b] {
                for _ in 0..500 {
                    if l.backplane_connected() { break; }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let mem = MemoryRepository::<Item>::new();
            run(ops, [a.wrap(mem.clone()), b.wrap(mem)], false).await;
            if let Some(url) = common::redis_url() {
                common::delete_keys(&url, &prefix).await;
            }
        });
    }
}
