use persistence_core::Embedded;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Embedded)]
struct Point(f64, f64);

#[derive(Clone, Serialize, Deserialize, Embedded)]
struct Flattened {
    #[serde(flatten)]
    extra: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Serialize, Deserialize, Embedded)]
struct WithEntityAttr {
    #[entity(unique)]
    email: String,
}

fn main() {}
