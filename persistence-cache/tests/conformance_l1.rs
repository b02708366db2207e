//! The core conformance suite over a cached MemoryRepository (L1 only).
mod common;

async fn make() -> common::CachedMemory {
    common::cached_memory(common::Levels::L1).await
}

persistence_core::conformance_tests!(make);
