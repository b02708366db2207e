use persistence_core::Entity;
use serde::{Deserialize, Serialize};

// has_many names a key the child declares no belongs_to for.
#[derive(Clone, Serialize, Deserialize, Entity)]
#[entity(has_many(Order, key = customer_id))]
struct Customer {
    #[entity(id)]
    id: i64,
}

#[derive(Clone, Serialize, Deserialize, Entity)]
struct Order {
    #[entity(id)]
    id: i64,
    customer_id: i64,
}

fn main() {}
