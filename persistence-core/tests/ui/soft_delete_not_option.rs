use chrono::{DateTime, Utc};
use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct NotOptional {
    #[entity(id)]
    id: i64,
    #[entity(soft_delete)]
    deleted_at: DateTime<Utc>,
}

fn main() {}
