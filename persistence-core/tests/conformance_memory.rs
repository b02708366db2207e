//! The conformance suite on the reference backend.
use persistence_core::conformance::Backend;
use persistence_core::{Entity, MemoryRepository};

struct Memory;

impl Backend for Memory {
    type Repo<E: Entity> = MemoryRepository<E>;
    async fn repo<E: Entity>(&self) -> MemoryRepository<E> {
        MemoryRepository::new()
    }
}

async fn make() -> Memory {
    Memory
}

persistence_core::conformance_tests!(make);
