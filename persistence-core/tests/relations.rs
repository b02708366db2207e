//! Relation metadata and handles from `#[derive(Entity)]`, and the
//! builder's checks for hand-written metadata.
#![allow(clippy::unwrap_used)]

use persistence_core::relation::{OnDelete, RelationKind};
use persistence_core::{Entity, EntityMeta, ErrorKind, FieldMeta, FieldType, ScalarType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "customers", has_many(Order, key = customer_id), has_one(Profile, key = owner))]
struct Customer {
    #[entity(id)]
    id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(
    name = "orders",
    belongs_to(Customer, key = customer_id, on_delete = cascade),
    belongs_to(Customer, key = referrer, on_delete = set_null, name = "referred_by")
)]
struct Order {
    #[entity(id)]
    id: i64,
    customer_id: i64,
    #[serde(rename = "ref")]
    referrer: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "profiles", belongs_to(Customer, key = owner))]
struct Profile {
    #[entity(id)]
    id: String,
    owner: i64,
}

#[test]
fn relations_are_in_the_metadata() {
    let m = Order::meta();
    let c = m.relation("customer").unwrap();
    assert_eq!(c.kind, RelationKind::BelongsTo);
    assert_eq!((c.key, c.on_delete), ("customer_id", OnDelete::Cascade));
    assert_eq!((c.target)().name, "customers");
    assert_eq!(c.constraint, "fk_orders_customer_id");
    let r = m.relation("referred_by").unwrap();
    assert_eq!(
        (r.key, r.on_delete),
        ("ref", OnDelete::SetNull),
        "stored names"
    );
    assert_eq!(m.relation_path(r), "orders.referred_by");
    // Keys are indexed.
    let ix: Vec<&[&str]> = m.indexes.iter().map(|i| i.fields.as_slice()).collect();
    assert!(
        ix.contains(&&["customer_id"][..]) && ix.contains(&&["ref"][..]),
        "{ix:?}"
    );
    let p = Profile::meta().relation("customer").unwrap();
    assert_eq!(p.on_delete, OnDelete::Restrict, "the default");
    let cm = Customer::meta();
    let orders = cm.relation("orders").unwrap();
    assert_eq!(
        (orders.kind, orders.key),
        (RelationKind::HasMany, "customer_id")
    );
    assert_eq!((orders.target)().name, "orders");
    assert_eq!(cm.relation("profile").unwrap().kind, RelationKind::HasOne);
    assert!(cm.belongs_to().next().is_none());
}

#[test]
fn handles_read_keys() {
    let o = Order {
        id: 1,
        customer_id: 7,
        referrer: None,
    };
    assert_eq!(Order::CUSTOMER.parent_id(&o), Some(&7));
    assert_eq!(Order::REFERRED_BY.parent_id(&o), None);
    assert_eq!(Order::CUSTOMER.name(), "customer");
    assert_eq!(Customer::ORDERS.key_name(), "customer_id");
    assert_eq!(Customer::PROFILE.name(), "profile");
    let chain = Customer::ORDERS.then(Order::CUSTOMER);
    assert_eq!(chain.0.name(), "orders");
}

fn field(name: &'static str, ty: ScalarType, nullable: bool, id: bool) -> FieldMeta {
    FieldMeta {
        name,
        rust_name: name,
        ty: FieldType::Scalar(ty),
        nullable,
        id,
        version: false,
        unique: false,
        index: false,
        ttl: None,
    }
}

#[test]
fn the_builder_checks_relations() {
    let base = || {
        EntityMeta::builder("things")
            .field(field("id", ScalarType::I64, false, true))
            .field(field("owner", ScalarType::I64, false, false))
            .field(field("score", ScalarType::F64, false, false))
    };
    let bad = [
        base().belongs_to("owner", Customer::meta, "nope", OnDelete::Restrict),
        base().belongs_to("owner", Customer::meta, "score", OnDelete::Restrict),
        base().belongs_to("owner", Customer::meta, "id", OnDelete::Restrict),
        base().belongs_to("owner", Customer::meta, "owner", OnDelete::SetNull),
        base()
            .belongs_to("owner", Customer::meta, "owner", OnDelete::Restrict)
            .has("owner", Order::meta, "customer_id", true),
    ];
    for b in bad {
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Config, "{e}");
    }
    let ok = base()
        .belongs_to("owner", Customer::meta, "owner", OnDelete::Cascade)
        .build()
        .unwrap();
    assert_eq!(ok.relations.len(), 1);
    assert_ne!(
        ok.schema_version,
        base().build().unwrap().schema_version,
        "a foreign key changes the stored shape"
    );
}
