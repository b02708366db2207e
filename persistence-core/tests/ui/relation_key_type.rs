use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct Customer {
    #[entity(id)]
    id: i64,
}

// The key holds a Customer id: an i64 (or Option<i64>), not a String.
#[derive(Clone, Serialize, Deserialize, Entity)]
#[entity(belongs_to(Customer, key = customer_id))]
struct Order {
    #[entity(id)]
    id: i64,
    customer_id: String,
}

fn main() {}
