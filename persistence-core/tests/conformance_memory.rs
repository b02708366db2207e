//! The conformance suite on the reference backend (`harness = false`: the
//! macro defines `main`).
use persistence_core::conformance::Backend;
use persistence_core::conformance::entities::Person;
use persistence_core::{Capabilities, Entity, MemoryRepository, MemoryStore, Repository};

/// One store per case: related tables see each other.
struct Memory(MemoryStore);

impl Backend for Memory {
    type Repo<E: Entity> = MemoryRepository<E>;
    fn capabilities() -> Capabilities {
        // Static: the memory backend needs no server to say what it does.
        MemoryRepository::<Person>::new().capabilities()
    }
    async fn repo<E: Entity>(&self) -> MemoryRepository<E> {
        self.0.repository()
    }
}

async fn make() -> Memory {
    Memory(MemoryStore::new())
}

persistence_core::conformance_tests!(make);
