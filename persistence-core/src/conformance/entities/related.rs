//! Related entities for the relation cases: customers have orders
//! (`restrict`) and notes (`set_null`), orders have lines (`cascade`).

use serde::{Deserialize, Serialize};

use crate::Entity;

/// A parent: has many [`RelOrder`]s and [`RelNote`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "conf_rel_customers",
    has_many(RelOrder, key = customer_id, name = "orders"),
    has_many(RelNote, key = customer_id, name = "notes")
)]
pub struct RelCustomer {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A child of [`RelCustomer`] (`restrict`) and parent of [`RelLine`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "conf_rel_orders",
    belongs_to(RelCustomer, key = customer_id, on_delete = restrict, name = "customer"),
    has_many(RelLine, key = order_id, name = "lines")
)]
pub struct RelOrder {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// The customer.
    pub customer_id: i64,
    /// Free text.
    pub note: String,
}

/// A child of [`RelOrder`], removed with it (`cascade`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "conf_rel_lines",
    belongs_to(RelOrder, key = order_id, on_delete = cascade, name = "order")
)]
pub struct RelLine {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// The order.
    pub order_id: i64,
    /// Quantity.
    pub qty: i64,
}

/// An optional child of [`RelCustomer`], kept with a cleared key (`set_null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "conf_rel_notes",
    belongs_to(RelCustomer, key = customer_id, on_delete = set_null, name = "customer")
)]
pub struct RelNote {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// The customer, if any.
    pub customer_id: Option<i64>,
    /// Text.
    pub text: String,
}
