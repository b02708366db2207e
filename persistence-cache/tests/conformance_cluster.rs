//! The core conformance suite over a cached MemoryRepository on a Redis
//! Cluster (`REDIS_CLUSTER_URL`, comma-separated node URLs; `scripts/services
//! up` starts a local one): L2 only (`l2::`) and L1 + L2 (`l1_l2::`). With
//! `CI=true` a missing cluster fails every case.
mod common;

fn main() -> std::process::ExitCode {
    use persistence_core::conformance::harness::{main, trials};
    let mut all = trials("l2::", || common::cached_memory_cluster(common::Levels::L2));
    all.extend(trials("l1_l2::", || {
        common::cached_memory_cluster(common::Levels::Both)
    }));
    main(all)
}
