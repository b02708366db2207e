use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct WrongType {
    #[entity(id)]
    id: i64,
    #[entity(soft_delete)]
    deleted: Option<bool>,
}

fn main() {}
