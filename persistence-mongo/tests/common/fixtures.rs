//! Entities shared by the topic test files (accounts with a nested
//! address, sessions with a TTL index, members for partial indexes).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use persistence_core::Entity;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub city: String,
    pub zip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "accounts")]
pub struct Account {
    #[entity(id)]
    pub id: Uuid,
    #[entity(unique)]
    pub email: Option<String>,
    #[entity(version)]
    pub version: i64,
    pub balance: Decimal,
    pub opened: DateTime<Utc>,
    pub birthday: NaiveDate,
    pub tags: Vec<String>,
    pub address: Address,
    pub extra: BTreeMap<String, serde_json::Value>,
}

pub fn account(n: u128, email: Option<&str>) -> Account {
    Account {
        id: Uuid::from_u128(n),
        email: email.map(str::to_string),
        version: 0,
        balance: "12.50".parse().expect("decimal"),
        opened: Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("ts"),
        birthday: NaiveDate::from_ymd_opt(1990, 1, 2).expect("date"),
        tags: vec!["a".into(), "b".into()],
        address: Address {
            city: "Oslo".into(),
            zip: None,
        },
        extra: BTreeMap::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sessions")]
#[entity(index(user, created))]
pub struct Session {
    #[entity(id)]
    pub id: String,
    pub user: i64,
    #[entity(ttl = "30d")]
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "members")]
pub struct Member {
    #[entity(id)]
    pub id: i64,
    pub email: String,
    pub active: bool,
    pub tier: i32,
}

pub fn member(id: i64, email: &str, active: bool, tier: i32) -> Member {
    Member {
        id,
        email: email.into(),
        active,
        tier,
    }
}
