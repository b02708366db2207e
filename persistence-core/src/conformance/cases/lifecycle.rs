//! Managed timestamps and soft delete (see [`crate::lifecycle`]): what the
//! repository sets, which rows reads see, `restore`, `purge`, and unique
//! constraints that ignore deleted rows.
#![allow(clippy::unwrap_used, clippy::nonminimal_bool, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;

use super::support::*;
use crate::aggregate::GroupBy;
use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::error::{ConflictKind, ErrorKind};
use crate::filter::Filter;
use crate::lifecycle::{self, SoftDeleteExt as _};
use crate::query::Query;
use crate::repository::Repository;
use crate::update::{Guard, Update};
use crate::value::Value;

/// The clock reading before a write: managed times are at or after it.
fn before() -> DateTime<Utc> {
    lifecycle::now()
}

fn assert_between(t: DateTime<Utc>, lo: DateTime<Utc>, what: &str) {
    let hi = Utc::now();
    assert!(lo <= t && t <= hi, "{what}: {t} is not within [{lo}, {hi}]");
}

/// Let the millisecond clock move on, so a later write's time differs.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// `n` live notes, ids `1..=n`, slug `s{id}`, rank `id % 3`.
async fn notes<B: Backend>(b: &B, n: i64) -> B::Repo<Note> {
    let repo = b.repo::<Note>().await;
    let batch: Vec<Note> = (1..=n)
        .map(|i| Note::new(i, &format!("s{i}"), i % 3))
        .collect();
    assert_eq!(repo.insert_many(&batch).await.unwrap(), n as u64);
    repo
}

fn ids(notes: &[Note]) -> Vec<i64> {
    notes.iter().map(|n| n.id).collect()
}

pub async fn lifecycle_insert_sets_both_timestamps<B: Backend>(b: &B) {
    let repo = b.repo::<Note>().await;
    let lo = before();
    let stored = repo.insert(&Note::new(1, "a", 0)).await.unwrap();
    assert_between(stored.created_at, lo, "created_at");
    assert_eq!(stored.created_at, stored.updated_at, "one time per call");
    assert_eq!(stored.deleted_at, None);
    assert_eq!(
        repo.get(&1).await.unwrap(),
        Some(stored),
        "get returns what insert did"
    );
    let lo = before();
    repo.insert_many(&[Note::new(2, "b", 0), Note::new(3, "c", 0)])
        .await
        .unwrap();
    let mut times = Vec::new();
    for id in [2, 3] {
        let n = repo.get(&id).await.unwrap().unwrap();
        assert_between(n.created_at, lo, "insert_many created_at");
        assert_eq!(n.created_at, n.updated_at);
        times.push(n.created_at);
    }
    assert_eq!(times[0], times[1], "one time per insert_many call");
}

pub async fn lifecycle_update_moves_updated_at_keeps_created_at<B: Backend>(b: &B) {
    let repo = b.repo::<Note>().await;
    let first = repo.insert(&Note::new(1, "a", 0)).await.unwrap();
    tick().await;
    let mut changed = first.clone();
    changed.rank = 7;
    changed.created_at = DateTime::<Utc>::UNIX_EPOCH;
    let lo = before();
    let stored = repo.update(&changed).await.unwrap();
    assert_eq!(stored.created_at, first.created_at, "created_at is kept");
    assert_between(stored.updated_at, lo, "updated_at");
    assert!(stored.updated_at > first.updated_at);
    assert_eq!((stored.rank, stored.version), (7, 2));
    assert_eq!(repo.get(&1).await.unwrap(), Some(stored), "as stored");
}

pub async fn lifecycle_upsert_sets_created_at_once<B: Backend>(b: &B) {
    let repo = b.repo::<Note>().await;
    let lo = before();
    let first = repo.upsert(&Note::new(1, "a", 0)).await.unwrap();
    assert_between(first.created_at, lo, "an inserting upsert sets created_at");
    assert_eq!(first.created_at, first.updated_at);
    tick().await;
    let lo = before();
    let again = repo.upsert(&Note::new(1, "a", 5)).await.unwrap();
    assert_eq!(
        again.created_at, first.created_at,
        "an overwriting upsert keeps it"
    );
    assert_between(again.updated_at, lo, "updated_at");
    assert_eq!(again.rank, 5);
    assert_eq!(repo.get(&1).await.unwrap(), Some(again));
}

pub async fn lifecycle_patch_and_update_where_move_updated_at<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 4).await;
    let old = repo.get(&1).await.unwrap().unwrap();
    tick().await;
    let lo = before();
    let patched = repo
        .patch(&1, &Update::new().inc(Note::RANK, 10), &Guard::none())
        .await
        .unwrap();
    assert_eq!(patched.created_at, old.created_at);
    assert_between(patched.updated_at, lo, "patch updated_at");
    assert_eq!(repo.get(&1).await.unwrap(), Some(patched));
    let lo = before();
    let n = repo
        .update_where(&Note::ID.gte(2), &Update::new().set(Note::RANK, 9))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let rows = repo.find(&Query::filter(Note::ID.gte(2))).await.unwrap();
    for r in &rows {
        assert_between(r.updated_at, lo, "update_where updated_at");
        assert_eq!(r.updated_at, rows[0].updated_at, "one time per statement");
        assert!(r.created_at < r.updated_at, "created_at is kept");
    }
    // An update that sets updated_at itself keeps the caller's value.
    let mine = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    let set = repo
        .patch(
            &1,
            &Update::new().set(Note::UPDATED_AT, mine),
            &Guard::none(),
        )
        .await
        .unwrap();
    assert_eq!(set.updated_at, mine);
}

pub async fn lifecycle_deleted_rows_are_invisible_to_reads<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 5).await;
    // Read first (a cache would hold it now).
    assert!(repo.get(&2).await.unwrap().is_some());
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 5);
    assert!(repo.delete(&2).await.unwrap(), "a live row is deleted");
    assert!(repo.get(&2).await.unwrap().is_none(), "get");
    assert_eq!(
        ids(&repo.get_many(&[1, 2, 3]).await.unwrap()),
        vec![1, 3],
        "get_many"
    );
    assert_eq!(
        ids(&repo.find(&Query::all()).await.unwrap()),
        vec![1, 3, 4, 5],
        "find"
    );
    assert!(
        repo.find_one(&Query::filter(Note::ID.eq(2)))
            .await
            .unwrap()
            .is_none(),
        "find_one"
    );
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 4, "count");
    assert!(!repo.exists(&Note::SLUG.eq("s2")).await.unwrap(), "exists");
    let streamed: Vec<i64> = repo
        .stream(&Query::all())
        .map(|r| r.unwrap().id)
        .collect()
        .await;
    assert_eq!(streamed, vec![1, 3, 4, 5], "stream");
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = repo
            .page(&Query::all().limit(2), cursor.as_ref())
            .await
            .unwrap();
        paged.extend(ids(&page.items));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(paged, vec![1, 3, 4, 5], "page");
    let selected = repo.select(&Query::all(), &["slug"]).await.unwrap();
    assert_eq!(selected.len(), 4, "select: {selected:?}");
    let slugs = repo.distinct("slug", &Filter::all()).await.unwrap();
    assert!(
        !slugs.contains(&Value::String("s2".into())),
        "distinct: {slugs:?}"
    );
    let counted = repo
        .aggregate(&Filter::all(), &GroupBy::new().count())
        .await
        .unwrap();
    assert_eq!(counted.len(), 1);
    let count = match &counted[0] {
        Value::Object(o) => o.get("count").cloned(),
        _ => None,
    };
    assert_eq!(count, Some(Value::I64(4)), "aggregate: {counted:?}");
    // Reading deleted rows on purpose does not make them visible to `get`.
    assert_eq!(
        repo.find(&Query::all().with_deleted()).await.unwrap().len(),
        5
    );
    assert!(
        repo.get(&2).await.unwrap().is_none(),
        "get after with_deleted"
    );
}

pub async fn lifecycle_delete_sets_the_field_once<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 2).await;
    let lo = before();
    assert!(repo.delete(&1).await.unwrap());
    assert!(!repo.delete(&1).await.unwrap(), "already deleted");
    assert!(!repo.delete(&99).await.unwrap(), "missing");
    let gone = repo.find(&Query::all().only_deleted()).await.unwrap();
    assert_eq!(ids(&gone), vec![1]);
    let d = gone[0].deleted_at.expect("deleted_at set");
    assert_between(d, lo, "deleted_at");
    assert_eq!(gone[0].version, 2, "the delete bumped the version once");
    assert!(gone[0].updated_at >= lo, "and moved updated_at");
    assert_eq!(repo.count(&Filter::all().only_deleted()).await.unwrap(), 1);
    assert_eq!(repo.count(&Filter::all().with_deleted()).await.unwrap(), 2);
    assert_eq!(
        ids(&repo.find(&Query::all().with_deleted()).await.unwrap()),
        vec![1, 2]
    );
}

pub async fn lifecycle_delete_many_soft_deletes_live_rows<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 6).await;
    // rank = id % 3: ids 1, 4 have rank 1.
    assert_eq!(repo.delete_many(&Note::RANK.eq(1)).await.unwrap(), 2);
    assert_eq!(
        repo.delete_many(&Note::RANK.eq(1)).await.unwrap(),
        0,
        "already deleted"
    );
    let deleted = repo.find(&Query::all().only_deleted()).await.unwrap();
    assert_eq!(ids(&deleted), vec![1, 4]);
    let first = deleted[0].deleted_at;
    tick().await;
    // Even with the scope widened, rows already deleted keep their time.
    assert_eq!(
        repo.delete_many(&Filter::all().with_deleted())
            .await
            .unwrap(),
        4
    );
    let again = repo.find(&Query::all().only_deleted()).await.unwrap();
    assert_eq!(again.len(), 6);
    assert_eq!(again[0].deleted_at, first);
}

pub async fn lifecycle_restore_undeletes<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 2).await;
    assert!(repo.delete(&1).await.unwrap());
    assert!(repo.restore(&1).await.unwrap(), "a deleted row is restored");
    let back = repo.get(&1).await.unwrap().expect("visible again");
    assert_eq!(back.deleted_at, None);
    assert_eq!(back.version, 3, "delete and restore each bump the version");
    assert!(
        !repo.restore(&1).await.unwrap(),
        "a live row is not restored"
    );
    assert!(!repo.restore(&99).await.unwrap(), "nor a missing one");
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 2);
    // Entities without soft delete have nothing to restore.
    let people = b.repo::<Person>().await;
    assert_invalid(people.restore(&1).await, "restore on Person");
}

pub async fn lifecycle_purge_removes_for_good<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 4).await;
    assert!(repo.delete(&1).await.unwrap());
    assert!(repo.delete(&2).await.unwrap());
    assert_eq!(
        repo.purge(&Filter::all().only_deleted()).await.unwrap(),
        2,
        "empty the trash"
    );
    assert_eq!(repo.count(&Filter::all().with_deleted()).await.unwrap(), 2);
    assert!(!repo.restore(&1).await.unwrap(), "purged rows are gone");
    assert!(repo.delete(&3).await.unwrap());
    // Without a scope, purge reaches deleted and live rows alike.
    assert_eq!(repo.purge(&Note::ID.gte(3)).await.unwrap(), 2);
    assert_eq!(repo.count(&Filter::all().with_deleted()).await.unwrap(), 0);
    // On entities without soft delete, purge is delete_many.
    let people = people::<B>(b, 3).await;
    assert_eq!(people.purge(&Person::ID.lte(2)).await.unwrap(), 2);
    assert_eq!(people.count(&Filter::all()).await.unwrap(), 1);
}

pub async fn lifecycle_unique_ignores_deleted_rows<B: Backend>(b: &B) {
    let repo = b.repo::<Note>().await;
    repo.insert(&Note::new(1, "same", 0)).await.unwrap();
    let c = assert_conflict(
        repo.insert(&Note::new(2, "same", 0)).await,
        "live duplicate",
    );
    assert!(matches!(c, ConflictKind::Unique { .. }), "{c:?}");
    assert!(repo.delete(&1).await.unwrap());
    repo.insert(&Note::new(2, "same", 0))
        .await
        .expect("a deleted row does not hold its unique value");
    // Restoring the first would make two live rows share the value.
    let c = assert_conflict(repo.restore(&1).await, "restore into a duplicate");
    assert_eq!(
        c,
        ConflictKind::Unique {
            constraint: Some("ux_conf_notes_slug".into())
        },
        "names the index"
    );
    assert!(
        repo.get(&1).await.unwrap().is_none(),
        "the failed restore changed nothing"
    );
    // The id of a deleted row stays taken.
    let c = assert_conflict(repo.insert(&Note::new(1, "other", 0)).await, "deleted id");
    assert_eq!(c, ConflictKind::DuplicateId);
}

pub async fn lifecycle_writes_skip_deleted_rows<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 3).await;
    assert!(repo.delete(&1).await.unwrap());
    let e = repo
        .patch(&1, &Update::new().inc(Note::RANK, 1), &Guard::none())
        .await
        .unwrap_err();
    assert_eq!(
        kind(&e),
        &ErrorKind::NotFound,
        "patch of a deleted row: {e}"
    );
    let e = repo
        .patch(
            &1,
            &Update::new().inc(Note::RANK, 1),
            &Guard::when(Note::RANK.gte(0)),
        )
        .await
        .unwrap_err();
    assert_eq!(
        kind(&e),
        &ErrorKind::NotFound,
        "guarded patch of a deleted row: {e}"
    );
    let n = repo
        .update_where(&Filter::all(), &Update::new().set(Note::RANK, 5))
        .await
        .unwrap();
    assert_eq!(n, 2, "update_where reaches live rows only");
    let deleted = repo.find(&Query::all().only_deleted()).await.unwrap();
    assert_eq!(deleted[0].rank, 1, "the deleted row is untouched");
    // A patch may reach deleted rows when its guard says so.
    let fixed = repo
        .patch(
            &1,
            &Update::new().set(Note::RANK, 8),
            &Guard::when(Filter::all().only_deleted()),
        )
        .await
        .unwrap();
    assert_eq!(fixed.rank, 8);
    assert!(fixed.deleted_at.is_some(), "still deleted");
}

pub async fn lifecycle_pop_soft_deletes<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 3).await;
    let q = Query::all().sort(Note::ID.desc());
    let got = repo.find_one_and_delete(&q).await.unwrap().expect("a row");
    assert_eq!(got.id, 3);
    assert!(got.deleted_at.is_some(), "returned as stored: deleted");
    assert!(repo.get(&3).await.unwrap().is_none());
    assert_eq!(repo.count(&Filter::all().with_deleted()).await.unwrap(), 3);
    let next = repo.find_one_and_delete(&q).await.unwrap().expect("a row");
    assert_eq!(next.id, 2, "deleted rows are not popped again");
}

pub async fn lifecycle_concurrent_pops_are_distinct<B: Backend>(b: &B) {
    let repo = Arc::new(notes::<B>(b, 16).await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            repo.find_one_and_delete(&Query::all()).await.unwrap()
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        let got = t.await.unwrap().expect("one row per pop");
        assert!(seen.insert(got.id), "row {} popped twice", got.id);
    }
    assert_eq!(seen.len(), 16);
    assert_eq!(repo.count(&Filter::all()).await.unwrap(), 0);
}

pub async fn lifecycle_scope_must_cover_the_whole_filter<B: Backend>(b: &B) {
    let repo = notes::<B>(b, 2).await;
    let inside_or = Note::ID.eq(1).or(Filter::all().with_deleted());
    assert_invalid(
        repo.find(&Query::filter(inside_or)).await,
        "scope inside or",
    );
    let both = Filter::all().with_deleted().only_deleted();
    assert_invalid(repo.count(&both).await, "two scopes");
    let people = b.repo::<Person>().await;
    assert_invalid(
        people.find(&Query::all().only_deleted()).await,
        "only_deleted without soft delete",
    );
    assert!(
        people
            .find(&Query::all().with_deleted())
            .await
            .unwrap()
            .is_empty(),
        "with_deleted without soft delete reads as usual"
    );
}
