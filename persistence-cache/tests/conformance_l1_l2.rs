//! The core conformance suite over a cached MemoryRepository (L1 + L2).
mod common;

async fn make() -> common::CachedMemory {
    common::cached_memory(common::Levels::Both).await
}

persistence_core::conformance_tests!(make);
