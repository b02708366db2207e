use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct Customer {
    #[entity(id)]
    id: i64,
}

#[derive(Clone, Serialize, Deserialize, Entity)]
#[entity(belongs_to(Customer, key = customer_id, on_delete = drop_everything))]
struct Order {
    #[entity(id)]
    id: i64,
    customer_id: i64,
}

fn main() {}
