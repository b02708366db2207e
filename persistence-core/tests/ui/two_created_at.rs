use chrono::{DateTime, Utc};
use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct TwoCreated {
    #[entity(id)]
    id: i64,
    #[entity(created_at)]
    a: DateTime<Utc>,
    #[entity(created_at)]
    b: DateTime<Utc>,
}

fn main() {}
