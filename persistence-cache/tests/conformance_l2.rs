//! The core conformance suite over a cached MemoryRepository (L2 (Redis) only).
mod common;

async fn make() -> common::CachedMemory {
    common::cached_memory(common::Levels::L2).await
}

persistence_core::conformance_tests!(make);
