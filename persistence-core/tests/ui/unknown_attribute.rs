use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct User {
    #[entity(id)]
    id: i64,
    #[entity(uniq)]
    email: String,
    #[serde(flatten)]
    extra: std::collections::BTreeMap<String, String>,
}

fn main() {}
