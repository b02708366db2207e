use persistence_core::{Entity, StringField};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct User {
    #[entity(id)]
    id: i64,
    age: i32,
}

fn main() {
    let _ = User::AGE.starts_with("1");
}
