use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct User {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    version: String,
}

fn main() {}
