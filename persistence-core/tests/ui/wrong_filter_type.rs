use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct User {
    #[entity(id)]
    id: i64,
    email: String,
}

fn main() {
    let _ = User::EMAIL.eq(5);
}
