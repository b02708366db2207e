use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct NoId {
    name: String,
}

fn main() {}
