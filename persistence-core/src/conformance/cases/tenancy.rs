//! Row-level tenancy (see [`crate::tenant`]): through a tenant handle no
//! call reads, writes, counts, pages, streams or deletes another tenant's
//! rows; a filter naming another tenant is refused; a call without a tenant
//! context is refused. Through the cache levels too: a tenant never gets
//! another tenant's cached entry (or cached absence).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use futures_util::StreamExt as _;

use super::support::*;
use crate::aggregate::GroupBy;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::{ConflictKind, ErrorKind};
use crate::filter::Filter;
use crate::query::Query;
use crate::repository::{Repository, SharedRepository};
use crate::tenant::{TenantExt as _, TenantScoped};
use crate::update::{Guard, Update};
use crate::value::Value;

type Scoped<E> = TenantScoped<SharedRepository<E>>;

/// One table of tickets seen by tenants `a` and `b`: ids 1..=3 are `a`'s
/// (rank = id), 11..=13 `b`'s (rank = id - 10), codes `c{rank}` in both.
async fn tickets<B: Backend>(b: &B) -> (SharedRepository<Ticket>, Scoped<Ticket>, Scoped<Ticket>) {
    let shared: SharedRepository<Ticket> = Arc::new(b.repo::<Ticket>().await);
    let ta = shared.clone().for_tenant("a").unwrap();
    let tb = shared.clone().for_tenant("b").unwrap();
    let mine = |base: i64| -> Vec<Ticket> {
        (1..=3)
            .map(|r| Ticket::new(base + r, &format!("c{r}"), r))
            .collect()
    };
    assert_eq!(ta.insert_many(&mine(0)).await.unwrap(), 3);
    assert_eq!(tb.insert_many(&mine(10)).await.unwrap(), 3);
    (shared, ta, tb)
}

fn ids(ts: &[Ticket]) -> Vec<i64> {
    ts.iter().map(|t| t.id).collect()
}

pub async fn tenancy_insert_sets_the_tenant_and_refuses_another<B: Backend>(b: &B) {
    let (_, ta, _) = tickets(b).await;
    let stored = ta.insert(&Ticket::new(4, "c4", 4)).await.unwrap();
    assert_eq!(stored.tenant, "a", "insert fills the tenant in");
    assert_eq!(ta.get(&4).await.unwrap(), Some(stored));
    let mut foreign = Ticket::new(5, "c5", 5);
    foreign.tenant = "b".into();
    assert_invalid(ta.insert(&foreign).await, "insert of another tenant's row");
    assert_invalid(
        ta.insert_many(&[Ticket::new(6, "c6", 6), foreign.clone()])
            .await,
        "insert_many with another tenant's row",
    );
    assert_invalid(ta.upsert(&foreign).await, "upsert of another tenant's row");
    foreign.tenant = "a".into();
    assert_eq!(
        ta.insert(&foreign).await.unwrap().tenant,
        "a",
        "its own tenant is fine"
    );
    // The same code in two tenants; twice in one is a conflict.
    assert_conflict(ta.insert(&Ticket::new(7, "c1", 1)).await, "code twice in a");
}

pub async fn tenancy_reads_see_only_the_tenants_rows<B: Backend>(b: &B) {
    let (_, ta, tb) = tickets(b).await;
    // Absent first for b (a cache must not keep that absence for a), then a.
    assert_eq!(tb.get(&1).await.unwrap(), None, "get of a's row by b");
    assert_eq!(
        ta.get(&1).await.unwrap().map(|t| t.tenant),
        Some("a".into())
    );
    assert_eq!(
        tb.get(&1).await.unwrap(),
        None,
        "get by b after a cached it"
    );
    assert_eq!(
        ids(&tb.get_many(&[1, 11, 2, 12]).await.unwrap()),
        vec![11, 12]
    );
    assert_eq!(ids(&ta.find(&Query::all()).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(
        ids(&tb.find(&Query::all()).await.unwrap()),
        vec![11, 12, 13]
    );
    assert_eq!(
        tb.find_one(&Query::filter(Ticket::ID.lt(10)))
            .await
            .unwrap(),
        None,
        "find_one"
    );
    assert_eq!(ta.count(&Filter::all()).await.unwrap(), 3, "count");
    assert_eq!(
        ta.count(&Ticket::CODE.eq("c1")).await.unwrap(),
        1,
        "count by code"
    );
    assert!(!ta.exists(&Ticket::ID.eq(11)).await.unwrap(), "exists");
    let streamed: Vec<i64> = tb
        .stream(&Query::all())
        .map(|r| r.unwrap().id)
        .collect()
        .await;
    assert_eq!(streamed, vec![11, 12, 13], "stream");
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = ta
            .page(&Query::all().limit(2), cursor.as_ref())
            .await
            .unwrap();
        paged.extend(ids(&page.items));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, vec![1, 2, 3], "page");
    let selected = tb.select(&Query::all(), &["id", "tenant"]).await.unwrap();
    assert_eq!(selected.len(), 3, "select: {selected:?}");
    let tenants = tb.distinct("tenant", &Filter::all()).await.unwrap();
    assert_eq!(tenants, vec![Value::String("b".into())], "distinct");
    let counted = ta
        .aggregate(&Filter::all(), &GroupBy::new().count())
        .await
        .unwrap();
    let count = match &counted[..] {
        [Value::Object(o)] => o.get("count").cloned(),
        _ => None,
    };
    assert_eq!(count, Some(Value::I64(3)), "aggregate: {counted:?}");
}

pub async fn tenancy_writes_never_reach_another_tenant<B: Backend>(b: &B) {
    let (_, ta, tb) = tickets(b).await;
    // b's row 11 through a's handle: nothing happens.
    let mut other = tb.get(&11).await.unwrap().unwrap();
    other.tenant = String::new();
    let e = ta.update(&other).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::NotFound, "update: {e}");
    assert_eq!(
        assert_conflict(ta.upsert(&other).await, "upsert of b's id"),
        ConflictKind::DuplicateId
    );
    assert!(!ta.delete(&11).await.unwrap(), "delete");
    let e = ta
        .patch(&11, &Update::new().set(Ticket::RANK, 99), &Guard::none())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::NotFound, "patch: {e}");
    let set = Update::new().set(Ticket::RANK, 50);
    assert_eq!(
        ta.update_where(&Filter::all(), &set).await.unwrap(),
        3,
        "update_where"
    );
    assert_eq!(
        ta.find_one_and_delete(&Query::filter(Ticket::ID.gt(10)))
            .await
            .unwrap(),
        None,
        "find_one_and_delete"
    );
    assert_eq!(
        ta.delete_many(&Ticket::RANK.eq(50)).await.unwrap(),
        3,
        "delete_many"
    );
    assert_eq!(ta.purge(&Filter::all()).await.unwrap(), 0, "purge");
    // b's rows are untouched.
    let rows = tb.find(&Query::all()).await.unwrap();
    assert_eq!(ids(&rows), vec![11, 12, 13]);
    assert!(
        rows.iter().all(|t| t.rank < 10 && t.version == 1),
        "{rows:?}"
    );
    // a's own rows: the same calls work.
    let mine = ta.insert(&Ticket::new(4, "c4", 4)).await.unwrap();
    let updated = ta.update(&mine).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(
        ta.upsert(&Ticket::new(5, "c5", 5)).await.unwrap().tenant,
        "a"
    );
    assert_eq!(
        ta.upsert(&updated).await.unwrap().version,
        3,
        "upsert overwrites"
    );
    let popped = ta.find_one_and_delete(&Query::all()).await.unwrap();
    assert_eq!(popped.map(|t| t.id), Some(4));
    assert!(ta.delete(&5).await.unwrap());
    assert_eq!(tb.count(&Filter::all()).await.unwrap(), 3);
}

pub async fn tenancy_filters_cannot_choose_the_tenant<B: Backend>(b: &B) {
    let (_, ta, _) = tickets(b).await;
    for f in [
        Ticket::TENANT.eq("b"),
        Ticket::TENANT.ne("a"),
        Ticket::TENANT.is_in(["a", "b"]),
        Ticket::ID.eq(1).or(Ticket::TENANT.eq("b")),
        Ticket::TENANT.eq("a").not(),
    ] {
        let e = ta.find(&Query::filter(f.clone())).await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{f:?}: {e}");
        assert!(e.to_string().contains("tenant"), "names the field: {e}");
        assert_invalid(ta.count(&f).await, "count");
        assert_invalid(ta.delete_many(&f).await, "delete_many");
        assert_invalid(
            ta.update_where(&f, &Update::new().set(Ticket::RANK, 1))
                .await,
            "update_where",
        );
    }
    // Its own tenant, as a plain conjunct, is allowed (and changes nothing).
    assert_eq!(ta.count(&Ticket::TENANT.eq("a")).await.unwrap(), 3);
    // No update moves a row to another tenant.
    assert_invalid(
        ta.update_where(&Filter::all(), &Update::new().set(Ticket::TENANT, "b"))
            .await,
        "update_where setting the tenant",
    );
    assert_invalid(
        ta.patch(&1, &Update::new().set(Ticket::TENANT, "b"), &Guard::none())
            .await,
        "patch setting the tenant",
    );
}

pub async fn tenancy_without_a_context_is_refused<B: Backend>(b: &B) {
    let (plain, _, _) = tickets(b).await;
    assert_invalid(plain.get(&1).await, "get");
    assert_invalid(plain.insert(&Ticket::new(9, "c9", 9)).await, "insert");
    assert_invalid(plain.find(&Query::all()).await, "find");
    assert_invalid(plain.count(&Filter::all()).await, "count");
    assert_invalid(plain.delete(&1).await, "delete");
    assert_invalid(plain.delete_many(&Filter::all()).await, "delete_many");
    assert_invalid(
        plain
            .update_where(&Filter::all(), &Update::new().set(Ticket::RANK, 1))
            .await,
        "update_where",
    );
    let first = plain.stream(&Query::all()).next().await;
    assert!(
        matches!(&first, Some(Err(e)) if e.kind() == &ErrorKind::InvalidInput),
        "stream: {first:?}"
    );
}

pub async fn tenancy_with_soft_delete<B: Backend>(b: &B) {
    let shared: SharedRepository<Memo> = Arc::new(b.repo::<Memo>().await);
    let (m1, m2) = (
        shared.clone().for_tenant(1_i64).unwrap(),
        shared.clone().for_tenant(2_i64).unwrap(),
    );
    m1.insert(&Memo::new(1, "one")).await.unwrap();
    m2.insert(&Memo::new(2, "two")).await.unwrap();
    assert!(!m2.delete(&1).await.unwrap(), "b cannot delete a's memo");
    assert!(m1.delete(&1).await.unwrap());
    assert_eq!(m1.count(&Filter::all()).await.unwrap(), 0, "deleted");
    assert_eq!(m1.count(&Filter::all().with_deleted()).await.unwrap(), 1);
    assert_eq!(m2.count(&Filter::all().with_deleted()).await.unwrap(), 1);
    assert_eq!(m2.purge(&Filter::all().only_deleted()).await.unwrap(), 0);
    assert_eq!(m1.purge(&Filter::all().only_deleted()).await.unwrap(), 1);
    assert_eq!(m2.get(&2).await.unwrap().map(|m| m.org), Some(2));
}
