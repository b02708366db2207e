use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct TwoVersions {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    v1: i64,
    #[entity(version)]
    v2: i64,
}

fn main() {}
