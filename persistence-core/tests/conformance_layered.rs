//! The conformance suite through every resilience layer (timeout, retry,
//! circuit breaker, metrics) over the memory backend: layers must not change
//! any answer (`harness = false`: the macro defines `main`).
use std::time::Duration;

use persistence_core::conformance::Backend;
use persistence_core::conformance::entities::Person;
use persistence_core::layer::{CircuitBreaker, LayerExt, Layered, Metrics, Retry, Timeout};
use persistence_core::{Capabilities, Entity, MemoryRepository, MemoryStore, Repository};

struct LayeredMemory {
    breaker: CircuitBreaker,
    store: MemoryStore,
}

type Stack<E> = Layered<
    Layered<Layered<Layered<MemoryRepository<E>, Timeout>, Retry>, CircuitBreaker>,
    Metrics,
>;

impl Backend for LayeredMemory {
    type Repo<E: Entity> = Stack<E>;
    fn capabilities() -> Capabilities {
        // Layers report what the repository under them does.
        MemoryRepository::<Person>::new().capabilities()
    }
    async fn repo<E: Entity>(&self) -> Stack<E> {
        self.store
            .repository()
            .layer(Timeout::new(Duration::from_secs(30)))
            .layer(Retry::default())
            .layer(self.breaker.clone())
            .layer(Metrics::new("conformance"))
    }
}

async fn make() -> LayeredMemory {
    LayeredMemory {
        breaker: CircuitBreaker::default(),
        store: MemoryStore::new(),
    }
}

persistence_core::conformance_tests!(make);
