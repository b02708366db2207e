//! Shared test bodies: each runs against a fresh store and is compared with
//! the in-memory reference backend where results are compared.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use persistence_core::{
    ConflictKind, Entity, EntityEnum, ErrorKind, Filter, MemoryRepository, Query, Repository,
    StringField,
};
use persistence_postgres::{RelationalRepository, RelationalStore};
use persistence_testing::services::{self, Service};
use persistence_testing::{TestPostgres, TestSqlite};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// PostgreSQL URL, or None (test skipped) when no server answers and services are not required.
pub fn pg_url() -> Option<String> {
    services::url(Service::Postgres)
}

pub fn suffix() -> String {
    services::unique_suffix()
}

/// A PostgreSQL store in its own schema, and the guard that drops the schema
/// when the test ends — also when it panics. Derefs to the store.
pub struct PgStore {
    store: RelationalStore,
    _schema: TestPostgres,
}

impl std::ops::Deref for PgStore {
    type Target = RelationalStore;
    fn deref(&self) -> &RelationalStore {
        &self.store
    }
}

/// A fresh PostgreSQL store in its own (already created) schema, dropped with
/// the returned guard (an explicit `drop_schema` first is harmless).
pub async fn pg_store() -> Option<PgStore> {
    let pg = TestPostgres::schema().await?;
    let store = RelationalStore::connect(&pg.config())
        .await
        .expect("connect to PostgreSQL");
    Some(PgStore { store, _schema: pg })
}

/// A fresh SQLite store in a temporary file (removed by [`remove_sqlite`]).
pub async fn sqlite_store() -> (RelationalStore, std::path::PathBuf) {
    let db = TestSqlite::new();
    let store = db.store().await.expect("open SQLite");
    (store, db.keep())
}

pub fn remove_sqlite(path: &std::path::Path) {
    drop(TestSqlite::adopt(path));
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, EntityEnum)]
pub enum Status {
    Active,
    Banned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub city: Option<String>,
    pub zip: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub bio: String,
    pub score: f64,
    pub address: Address,
    pub labels: Vec<String>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "things", unique(tenant, code), index(created_at, name))]
pub struct Thing {
    #[entity(id)]
    pub id: Uuid,
    #[entity(unique)]
    pub email: String,
    pub tenant: String,
    pub code: i32,
    #[entity(version)]
    pub version: i64,
    pub name: Option<String>,
    pub small: i16,
    pub big: i64,
    pub ratio: f32,
    pub score: f64,
    pub flag: bool,
    pub amount: Decimal,
    pub created_at: DateTime<Utc>,
    pub born: Option<NaiveDate>,
    pub bytes: Vec<u8>,
    pub status: Status,
    pub tags: Vec<String>,
    pub profile: Option<Profile>,
    pub attrs: BTreeMap<String, i64>,
}

pub fn thing(i: u32) -> Thing {
    let names = ["alice", "Bob", "bob", "Émile", "zoë", "a%b", "a_b", "ALICE"];
    let t0 = Utc
        .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
        .single()
        .expect("ts");
    Thing {
        id: Uuid::from_u128(0x1000 + u128::from(i) * 7919),
        email: format!("user{i}@x.io"),
        tenant: format!("t{}", i % 3),
        code: i as i32,
        version: 0,
        name: if i % 4 == 3 {
            None
        } else {
            Some(names[i as usize % names.len()].to_string())
        },
        small: (i as i16) - 5,
        big: i64::from(i) * 1_000_000_007 - 3,
        ratio: i as f32 / 3.0,
        score: f64::from(i) * 1.5 - 4.0,
        flag: i % 2 == 0,
        amount: Decimal::new(i64::from(i) * 125, 2),
        created_at: t0 + chrono::Duration::microseconds(i64::from(i) * 1_234_567),
        born: if i % 3 == 0 {
            None
        } else {
            NaiveDate::from_ymd_opt(1990 + i as i32, 1 + i % 12, 1 + i % 28)
        },
        bytes: vec![i as u8, 0, 255],
        status: if i % 5 == 0 {
            Status::Banned
        } else {
            Status::Active
        },
        tags: (0..i % 3).map(|k| format!("tag{k}")).collect(),
        profile: if i % 5 == 4 {
            None
        } else {
            Some(Profile {
                bio: format!("bio {}", names[(i as usize + 3) % names.len()]),
                score: f64::from(i % 7) - 2.5,
                address: Address {
                    city: if i % 2 == 0 {
                        Some(["Berlin", "berlin", "Zürich"][i as usize % 3].to_string())
                    } else {
                        None
                    },
                    zip: i64::from(i) * 100,
                },
                labels: vec![format!("l{}", i % 2)],
                active: i % 3 == 1,
            })
        },
        attrs: [("k".to_string(), i64::from(i))].into_iter().collect(),
    }
}

fn ids(v: &[Thing]) -> Vec<u128> {
    v.iter().map(|t| t.id.as_u128()).collect()
}

/// Queries whose answers must equal the reference backend's.
pub fn queries() -> Vec<(&'static str, Query)> {
    let q = Query::filter;
    let f = Filter::field;
    vec![
        ("all", Query::all()),
        ("name asc", Query::all().sort(Thing::NAME.asc())),
        ("name desc", Query::all().sort(Thing::NAME.desc())),
        ("born desc", Query::all().sort(Thing::BORN.desc())),
        ("eq name", q(Thing::NAME.eq("bob"))),
        ("ne name (matches null)", q(Thing::NAME.ne("bob"))),
        (
            "lt name code point",
            q(Thing::NAME.lt("a")).sort(Thing::NAME.asc()),
        ),
        ("gte name", q(Thing::NAME.gte("b"))),
        ("in", q(Thing::NAME.is_in(["alice", "zoë"]))),
        ("in empty", q(Thing::NAME.is_in(Vec::<String>::new()))),
        ("not_in", q(Thing::NAME.not_in(["alice"]))),
        ("not_in empty", q(Thing::NAME.not_in(Vec::<String>::new()))),
        ("is_null", q(Thing::NAME.is_null())),
        ("is_not_null", q(Thing::NAME.is_not_null())),
        ("not eq (two-valued)", q(Thing::NAME.eq("alice").not())),
        (
            "not gt",
            q(Thing::BORN
                .gt(NaiveDate::from_ymd_opt(1995, 1, 1).expect("d"))
                .not()),
        ),
        ("starts_with literal %", q(Thing::NAME.starts_with("a%"))),
        ("starts_with case", q(Thing::NAME.starts_with("a"))),
        ("contains _", q(Thing::NAME.contains("_"))),
        ("contains case", q(Thing::NAME.contains("LI"))),
        ("contains empty", q(Thing::NAME.contains(""))),
        ("or", q(Thing::SMALL.lt(0).or(Thing::FLAG.eq(true)))),
        ("and empty", q(Filter::all())),
        ("or empty", q(Filter::none())),
        (
            "big range",
            q(Thing::BIG
                .gte(3_000_000_000i64)
                .and(Thing::BIG.lt(9_000_000_000i64))),
        ),
        ("float", q(Thing::SCORE.gt(2.0))),
        ("f32", q(Thing::RATIO.lte(1.0f32))),
        ("f32 column vs f64 literal", q(f("ratio").lte(1.0f64 / 3.0))),
        ("f32 column eq f64 literal", q(f("ratio").eq(1.0f64 / 3.0))),
        (
            "decimal",
            q(Thing::AMOUNT.gt(Decimal::new(500, 2))).sort(Thing::AMOUNT.desc()),
        ),
        (
            "timestamp",
            q(Thing::CREATED_AT.gt(Utc
                .with_ymd_and_hms(2024, 1, 2, 3, 4, 10)
                .single()
                .expect("ts"))),
        ),
        ("uuid sort", Query::all().sort(Thing::ID.desc())),
        ("bytes sort", Query::all().sort(Thing::BYTES.asc())),
        ("enum", q(Thing::STATUS.eq(Status::Banned))),
        (
            "enum sort",
            Query::all()
                .sort(Thing::STATUS.asc())
                .sort(Thing::CODE.desc()),
        ),
        ("bool sort", Query::all().sort(Thing::FLAG.desc())),
        ("array has", q(Thing::TAGS.has("tag1"))),
        ("array not has", q(Thing::TAGS.has("tag1").not())),
        ("nested eq", q(f("profile.address.city").eq("Berlin"))),
        ("nested ne", q(f("profile.address.city").ne("Berlin"))),
        ("nested lt string", q(f("profile.address.city").lt("Z"))),
        ("nested gt number", q(f("profile.address.zip").gt(500))),
        ("nested float", q(f("profile.score").lte(0.5))),
        ("nested bool", q(f("profile.active").eq(true))),
        ("nested null", q(f("profile.address.city").is_null())),
        (
            "nested not null",
            q(f("profile.address.city").is_not_null()),
        ),
        (
            "nested starts_with",
            q(f("profile.bio").starts_with("bio a")),
        ),
        (
            "nested in",
            q(f("profile.address.zip").is_in([100.into(), 300.into()])),
        ),
        (
            "nested not_in",
            q(f("profile.address.zip").not_in([100.into(), 300.into()])),
        ),
        ("nested array has", q(f("profile.labels").has("l1"))),
        ("map value", q(f("attrs.k").gte(5))),
        (
            "nested sort",
            Query::all().sort(SortField::asc("profile.address.city")),
        ),
        (
            "nested sort desc",
            Query::all().sort(SortField::desc("profile.score")),
        ),
        (
            "limit offset",
            Query::all().sort(Thing::CODE.asc()).limit(3).offset(2),
        ),
        (
            "offset only",
            Query::all().sort(Thing::CODE.asc()).offset(5),
        ),
        (
            "type mismatch nested",
            q(f("profile.address.zip").eq("100")),
        ),
    ]
}

struct SortField;
impl SortField {
    fn asc(p: &'static str) -> persistence_core::SortKey {
        Filter::field(p).asc()
    }
    fn desc(p: &'static str) -> persistence_core::SortKey {
        Filter::field(p).desc()
    }
}

pub async fn seed(repo: &RelationalRepository<Thing>, n: u32) -> MemoryRepository<Thing> {
    repo.ensure_schema().await.expect("ensure_schema");
    repo.ensure_schema()
        .await
        .expect("ensure_schema is idempotent");
    let memory = MemoryRepository::<Thing>::new();
    let rows: Vec<Thing> = (0..n).map(thing).collect();
    assert_eq!(
        repo.insert_many(&rows).await.expect("insert_many"),
        u64::from(n)
    );
    memory.insert_many(&rows).await.expect("memory insert_many");
    memory
}

pub async fn same_answers_as_memory(repo: &RelationalRepository<Thing>) {
    let memory = seed(repo, 24).await;
    for (name, query) in queries() {
        let want = memory.find(&query).await.expect(name);
        let got = repo
            .find(&query)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(ids(&got), ids(&want), "query `{name}`");
        assert_eq!(got, want, "query `{name}` (values)");
        let n = repo.count(&query.filter).await.expect(name);
        let want_n = memory.count(&query.filter).await.expect(name);
        assert_eq!(n, want_n, "count `{name}`");
        assert_eq!(
            repo.exists(&query.filter).await.expect(name),
            want_n > 0,
            "exists `{name}`"
        );
        let streamed = persistence_core::repository::support::collect(repo.stream(&query))
            .await
            .expect(name);
        assert_eq!(ids(&streamed), ids(&want), "stream `{name}`");
    }
    // Keyset pages walk the same order.
    let q = Query::all().sort(Thing::NAME.desc()).limit(5);
    let mut cursor = None;
    let mut walked = Vec::new();
    loop {
        let page = repo.page(&q, cursor.as_ref()).await.expect("page");
        walked.extend(page.items);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want = memory
        .find(&Query::all().sort(Thing::NAME.desc()))
        .await
        .expect("memory");
    assert_eq!(ids(&walked), ids(&want));
}

pub async fn crud(repo: &RelationalRepository<Thing>) {
    repo.ensure_schema().await.expect("ensure_schema");
    let mut a = thing(1);
    a.created_at = Utc
        .timestamp_opt(1_700_000_000, 123_456_000)
        .single()
        .expect("ts");
    let stored = repo.insert(&a).await.expect("insert");
    assert_eq!(stored.version, 1);
    let got = repo.get(&a.id).await.expect("get").expect("present");
    assert_eq!(got, stored, "round trip of every type");

    // Duplicate id, unique, composite unique.
    let dup = repo.insert(&a).await.expect_err("duplicate id");
    assert_eq!(dup.kind(), &ErrorKind::Conflict(ConflictKind::DuplicateId));
    let mut b = thing(2);
    b.email = a.email.clone();
    let e = repo.insert(&b).await.expect_err("unique email");
    assert_eq!(
        e.kind(),
        &ErrorKind::Conflict(ConflictKind::Unique {
            constraint: Some("ux_things_email".into())
        })
    );
    let mut c = thing(3);
    c.tenant = a.tenant.clone();
    c.code = a.code;
    let e = repo.insert(&c).await.expect_err("composite unique");
    assert_eq!(
        e.kind(),
        &ErrorKind::Conflict(ConflictKind::Unique {
            constraint: Some("ux_things_tenant_code".into())
        })
    );

    // Optimistic locking.
    let mut edit = stored.clone();
    edit.name = Some("changed".into());
    let v2 = repo.update(&edit).await.expect("update");
    assert_eq!(v2.version, 2);
    let stale = repo.update(&edit).await.expect_err("stale");
    assert_eq!(
        stale.kind(),
        &ErrorKind::Conflict(ConflictKind::Version {
            expected: Some(1),
            actual: Some(2)
        })
    );
    let missing = repo.update(&thing(9)).await.expect_err("missing");
    assert!(missing.is_not_found());

    // Upsert.
    let up = repo.upsert(&v2).await.expect("upsert existing");
    assert_eq!(up.version, 3);
    let fresh = repo.upsert(&thing(4)).await.expect("upsert new");
    assert_eq!(fresh.version, 1);

    // get_many order and dedup.
    let many = repo
        .get_many(&[fresh.id, a.id, fresh.id, thing(7).id])
        .await
        .expect("get_many");
    assert_eq!(ids(&many), vec![fresh.id.as_u128(), a.id.as_u128()]);

    // Atomic insert_many: a duplicate in the batch leaves nothing behind.
    let batch = vec![thing(10), thing(11), thing(10)];
    let e = repo
        .insert_many(&batch)
        .await
        .expect_err("batch with duplicate");
    assert!(e.is_conflict(), "{e:?}");
    assert!(repo.get(&thing(10).id).await.expect("get").is_none());

    // Delete.
    assert!(repo.delete(&a.id).await.expect("delete"));
    assert!(!repo.delete(&a.id).await.expect("delete again"));
    assert_eq!(
        repo.delete_many(&Filter::all()).await.expect("delete_many"),
        1
    );
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 0);

    // Invalid input is refused before SQL.
    let bad = repo
        .find(&Query::filter(Filter::field("nope").eq(1)))
        .await
        .expect_err("unknown field");
    assert_eq!(bad.kind(), &ErrorKind::InvalidInput);
    let bad = repo
        .find(&Query::filter(
            Filter::field("profile.x\"; DROP TABLE things; --").eq(1),
        ))
        .await;
    assert!(bad.map(|v| v.is_empty()).unwrap_or(true));
}

pub async fn special_floats(repo: &RelationalRepository<Thing>, non_finite: bool) {
    repo.ensure_schema().await.expect("ensure_schema");
    let mut a = thing(1);
    a.score = -0.0;
    a.ratio = f32::INFINITY;
    let stored = repo.insert(&a).await.expect("insert");
    let got = repo.get(&a.id).await.expect("get").expect("row");
    assert_eq!(got.ratio, f32::INFINITY);
    if non_finite {
        assert!(got.score.is_sign_negative());
        let mut b = thing(2);
        b.score = f64::NAN;
        repo.insert(&b).await.expect("insert NaN");
        assert!(
            repo.get(&b.id)
                .await
                .expect("get")
                .expect("row")
                .score
                .is_nan()
        );
    }
    let _ = stored;
}
