//! The entity types the conformance suite stores. Backends need nothing
//! special for them: they are ordinary `#[derive(Entity)]` structs.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Entity, EntityEnum};

mod related;
pub use related::{RelCustomer, RelLine, RelNote, RelOrder};

/// A unit-only enum stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, EntityEnum)]
pub enum Status {
    /// Active.
    Active,
    /// Suspended.
    Suspended,
    /// A renamed variant.
    #[serde(rename = "pending-review")]
    PendingReview,
}

/// Nested inside [`Nested`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inner {
    /// A number.
    pub x: i64,
    /// An optional label.
    pub label: Option<String>,
}

/// A nested struct stored as a sub-document / JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nested {
    /// A name.
    pub name: String,
    /// One level deeper.
    pub inner: Inner,
    /// A list of structs.
    pub list: Vec<Inner>,
}

/// Every supported field type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_all_types")]
pub struct AllTypes {
    /// Id.
    #[entity(id)]
    pub id: Uuid,
    /// Text.
    pub s: String,
    /// Boolean.
    pub b: bool,
    /// i16.
    pub i16v: i16,
    /// i32.
    pub i32v: i32,
    /// i64.
    pub i64v: i64,
    /// f32.
    pub f32v: f32,
    /// f64.
    pub f64v: f64,
    /// Uuid.
    pub uuid: Uuid,
    /// Timestamp.
    pub ts: DateTime<Utc>,
    /// Date.
    pub date: NaiveDate,
    /// Decimal.
    pub dec: Decimal,
    /// Bytes.
    pub bytes: Vec<u8>,
    /// Optional text.
    pub opt_s: Option<String>,
    /// Optional integer.
    pub opt_i: Option<i64>,
    /// Optional timestamp.
    pub opt_ts: Option<DateTime<Utc>>,
    /// Array of text.
    pub tags: Vec<String>,
    /// Array of integers.
    pub nums: Vec<i64>,
    /// Nested struct.
    pub nested: Nested,
    /// Optional nested struct.
    pub opt_nested: Option<Nested>,
    /// Map.
    pub map: BTreeMap<String, i64>,
    /// Enum.
    pub status: Status,
    /// Version.
    #[entity(version)]
    pub version: i64,
}

/// A profile nested in [`Person`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// City.
    pub city: String,
    /// Optional zip code.
    pub zip: Option<String>,
    /// A level.
    pub level: i64,
}

/// The entity most filter, sort and concurrency cases use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_people")]
pub struct Person {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// Unique email.
    #[entity(unique)]
    pub email: String,
    /// Name.
    #[entity(index)]
    pub name: String,
    /// Optional age.
    pub age: Option<i32>,
    /// Score.
    pub score: f64,
    /// Optional city.
    pub city: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Nested profile.
    pub profile: Profile,
    /// Version.
    #[entity(version)]
    pub version: i64,
}

/// An entity with a String id, a composite unique constraint and no version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_accounts", unique(tenant, handle))]
pub struct Account {
    /// Id.
    #[entity(id)]
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Handle, unique per tenant.
    pub handle: String,
    /// Balance.
    pub balance: i64,
}

/// An entity with optional arrays (`None`, empty and filled are three
/// different states).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_labeled")]
pub struct Labeled {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// Optional labels.
    pub labels: Option<Vec<String>>,
    /// Optional numbers.
    pub codes: Option<Vec<i64>>,
}

/// A fixed timestamp with microseconds, `n` seconds after 2024-01-01.
pub fn ts(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::seconds(n)
        + chrono::Duration::microseconds(123_456)
}

/// A typical [`AllTypes`] value.
pub fn sample_all_types(seed: u128) -> AllTypes {
    AllTypes {
        id: Uuid::from_u128(seed),
        s: format!("text {seed}"),
        b: seed % 2 == 0,
        i16v: 16,
        i32v: -32,
        i64v: 64_000_000_000,
        f32v: 1.5,
        f64v: 2.25,
        uuid: Uuid::from_u128(seed.wrapping_mul(7919) + 1),
        ts: ts(seed as i64),
        date: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap_or_default(),
        dec: Decimal::new(123_456, 3),
        bytes: vec![0, 1, 2, 254, 255],
        opt_s: Some("some".into()),
        opt_i: None,
        opt_ts: Some(ts(5)),
        tags: vec!["a".into(), "b".into()],
        nums: vec![1, -2, 3],
        nested: Nested {
            name: "n".into(),
            inner: Inner { x: 1, label: None },
            list: vec![Inner {
                x: 2,
                label: Some("two".into()),
            }],
        },
        opt_nested: None,
        map: BTreeMap::from([("k".to_string(), 1), ("other key".to_string(), -1)]),
        status: Status::Active,
        version: 0,
    }
}

/// A [`Person`] with id `id` and derived fields.
pub fn person(id: i64) -> Person {
    Person {
        id,
        email: format!("p{id}@example.com"),
        name: format!("person {id:05}"),
        age: Some((id % 90) as i32),
        score: id as f64 / 4.0,
        city: Some(["Oslo", "Lima", "Pune"][(id % 3) as usize].to_string()),
        tags: vec![format!("t{}", id % 5)],
        created: ts(id),
        profile: Profile {
            city: "Oslo".into(),
            zip: None,
            level: id % 4,
        },
        version: 0,
    }
}

/// A soft-deletable, versioned entity with managed timestamps and a unique
/// `slug` (unique among live rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_notes")]
pub struct Note {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// Unique among live notes.
    #[entity(unique)]
    pub slug: String,
    /// A number to filter, sort and aggregate on.
    pub rank: i64,
    /// Set by `insert`.
    #[entity(created_at)]
    pub created_at: DateTime<Utc>,
    /// Set by every write.
    #[entity(updated_at)]
    pub updated_at: DateTime<Utc>,
    /// Set by `delete`.
    #[entity(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Optimistic-locking version.
    #[entity(version)]
    pub version: i64,
}

impl Note {
    /// A note whose timestamps the repository must overwrite (the epoch).
    pub fn new(id: i64, slug: &str, rank: i64) -> Note {
        Note {
            id,
            slug: slug.to_string(),
            rank,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            deleted_at: None,
            version: 0,
        }
    }
}

/// A tenant-scoped entity (row-level tenancy, see [`crate::tenant`]):
/// versioned, with a code unique within its tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_tickets", unique(tenant, code))]
pub struct Ticket {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// The tenant, set by the repository.
    #[entity(tenant)]
    pub tenant: String,
    /// Unique within the tenant.
    pub code: String,
    /// A number to filter, sort and aggregate on.
    pub rank: i64,
    /// Optimistic-locking version.
    #[entity(version)]
    pub version: i64,
}

impl Ticket {
    /// A ticket without a tenant (the repository fills it in).
    pub fn new(id: i64, code: &str, rank: i64) -> Ticket {
        Ticket {
            id,
            tenant: String::new(),
            code: code.to_string(),
            rank,
            version: 0,
        }
    }
}

/// A tenant-scoped, soft-deletable entity with an integer tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_memos")]
pub struct Memo {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// The tenant, set by the repository.
    #[entity(tenant)]
    pub org: i64,
    /// Text.
    pub body: String,
    /// Set by `delete`.
    #[entity(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Memo {
    /// A live memo without a tenant.
    pub fn new(id: i64, body: &str) -> Memo {
        Memo {
            id,
            org: 0,
            body: body.to_string(),
            deleted_at: None,
        }
    }
}

/// Vector fields, one per metric (the `nearest` cases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_docs")]
pub struct Doc {
    /// Id.
    #[entity(id)]
    pub id: i64,
    /// A filterable label.
    pub lang: String,
    /// Ranked by Euclidean distance (HNSW with pgvector's defaults).
    #[entity(vector(dim = 4, metric = l2))]
    pub emb: Vec<f32>,
    /// Ranked by cosine distance (HNSW, m = 8, ef_construction = 32).
    #[entity(vector(dim = 4, metric = cosine, hnsw(m = 8, ef_construction = 32)))]
    pub dir: Vec<f32>,
    /// Ranked by inner product, optional, without an index.
    #[entity(vector(dim = 4, metric = inner_product, no_index))]
    pub ip: Option<Vec<f32>>,
}

/// Document `i` of the `nearest` cases: components are multiples of 1/8
/// (exact in `f32`), spread by a fixed pseudo-random sequence; every third
/// has no `ip` vector, every fifth is `fr`, the others `en`.
pub fn doc(i: i64) -> Doc {
    let mut x = u64::try_from(i)
        .unwrap_or(0)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ 0xD1B5;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // -4.0 ..= 3.875 in steps of 1/8.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let v = (x % 64) as f32 / 8.0 - 4.0;
        v
    };
    let emb: Vec<f32> = (0..4).map(|_| next()).collect();
    let mut dir: Vec<f32> = (0..4).map(|_| next()).collect();
    if dir.iter().all(|c| *c == 0.0) {
        dir[0] = 1.0;
    }
    let ip: Vec<f32> = (0..4).map(|_| next()).collect();
    Doc {
        id: i,
        lang: if i % 5 == 0 { "fr" } else { "en" }.to_string(),
        emb,
        dir,
        ip: (i % 3 != 0).then_some(ip),
    }
}
