use persistence_core::Entity;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Entity)]
struct Labeled {
    #[entity(id)]
    id: i64,
    labels: Option<Vec<String>>,
}

fn main() {
    // `has` on an optional array takes an element, not a number.
    let _ = Labeled::LABELS.has(5);
}
