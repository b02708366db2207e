//! Managed timestamps and soft delete on MongoDB beyond the conformance
//! cases: the partial unique index over live documents (as listed by the
//! server, and enforced), the stored documents, the writes inside a
//! transaction, and increments of deleted documents.
mod common;

use bson::{Bson, doc};
use chrono::{DateTime, Utc};
use common::with_store;
use futures_util::TryStreamExt as _;
use persistence_core::conformance::entities::Note;
use persistence_core::{
    ConflictKind, ErrorKind, Filter, Guard, Repository, SoftDeleteExt as _, Update,
};

#[tokio::test]
async fn note_unique_index_is_partial_over_live_documents() {
    with_store(|store| async move {
        let repo = store.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        repo.ensure_schema()
            .await
            .expect("schema again: the existing index is the declared one");
        let ixs: Vec<mongodb::IndexModel> = repo
            .collection()
            .list_indexes()
            .await
            .expect("list")
            .try_collect()
            .await
            .expect("collect");
        let ux = ixs
            .iter()
            .find(|m| {
                m.options.as_ref().and_then(|o| o.name.as_deref()) == Some("ux_conf_notes_slug")
            })
            .unwrap_or_else(|| panic!("ux_conf_notes_slug missing in {ixs:?}"));
        assert_eq!(ux.keys, doc! { "slug": 1 });
        let opts = ux.options.clone().unwrap_or_default();
        assert_eq!(opts.unique, Some(true));
        assert_eq!(
            opts.partial_filter_expression,
            Some(doc! { "slug": { "$type": "string" }, "deleted_at": { "$type": "null" } }),
            "{ux:?}"
        );

        // Enforced by the server, not only by the repository: a live
        // duplicate is refused, a duplicate of a deleted document is not.
        let raw = repo.collection();
        let note = |id: i64, deleted: Option<bson::DateTime>| {
            doc! { "_id": id, "slug": "same", "rank": 0_i64, "created_at": bson::DateTime::now(),
            "updated_at": bson::DateTime::now(),
            "deleted_at": deleted.map_or(Bson::Null, Bson::DateTime), "version": 1_i64 }
        };
        raw.insert_one(note(1, None)).await.expect("first live");
        let e = raw
            .insert_one(note(2, None))
            .await
            .expect_err("live duplicate");
        assert_eq!(persistence_mongo::error::server_code(&e), Some(11000));
        raw.insert_one(note(3, Some(bson::DateTime::now())))
            .await
            .expect("a deleted duplicate is not indexed");
        // Through the repository the conflict names the index.
        let err = repo
            .restore(&3)
            .await
            .expect_err("restoring into a live duplicate");
        assert_eq!(
            err.kind(),
            &ErrorKind::Conflict(ConflictKind::Unique {
                constraint: Some("ux_conf_notes_slug".into())
            }),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn stored_documents_hold_the_managed_fields() {
    with_store(|store| async move {
        let repo = store.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        let stored = repo.insert(&Note::new(1, "a", 0)).await.expect("insert");
        assert_ne!(stored.created_at, DateTime::<Utc>::UNIX_EPOCH);
        let raw = repo
            .collection()
            .find_one(doc! { "_id": 1_i64 })
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(
            raw.get("deleted_at"),
            Some(&Bson::Null),
            "an explicit null: {raw}"
        );
        assert_eq!(
            raw.get_datetime("created_at")
                .expect("created_at")
                .timestamp_millis(),
            stored.created_at.timestamp_millis()
        );
        assert!(repo.delete(&1).await.expect("delete"));
        // Deleted documents stay in the collection, outside get's reach.
        assert!(repo.get(&1).await.expect("get").is_none());
        assert!(repo.get_many(&[1]).await.expect("get_many").is_empty());
        let raw = repo
            .collection()
            .find_one(doc! { "_id": 1_i64 })
            .await
            .expect("find")
            .expect("still stored");
        assert!(
            matches!(raw.get("deleted_at"), Some(Bson::DateTime(_))),
            "{raw}"
        );
        assert!(repo.restore(&1).await.expect("restore"));
        let raw = repo
            .collection()
            .find_one(doc! { "_id": 1_i64 })
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(
            raw.get("deleted_at"),
            Some(&Bson::Null),
            "restored to null, not removed"
        );
        // The same update twice (what a repeat after a lost answer looks
        // like): the second finds its own result, whatever its clock says.
        let live = repo.get(&1).await.expect("get").expect("live");
        let mut changed = live.clone();
        changed.rank = 4;
        let first = repo.update(&changed).await.expect("update");
        let again = repo
            .update(&changed)
            .await
            .expect("repeat of an applied update");
        assert_eq!(again, first);
        changed.rank = 5;
        let err = repo
            .update(&changed)
            .await
            .expect_err("stale, other content");
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Conflict(ConflictKind::Version { .. })
            ),
            "{err}"
        );
        let err = repo
            .update(&Note::new(9, "z", 0))
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), &ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test]
async fn lifecycle_inside_a_transaction() {
    with_store(|store| async move {
        let repo = store.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        let first = repo.insert(&Note::new(1, "a", 0)).await.expect("insert");
        let (updated, upserted) = store
            .transaction(|tx| async move {
                let r = tx.repository::<Note>();
                let mut n = r.get(&1).await?.expect("visible in the transaction");
                n.rank = 3;
                n.created_at = DateTime::<Utc>::UNIX_EPOCH;
                let updated = r.update(&n).await?;
                let upserted = r.upsert(&Note::new(2, "b", 1)).await?;
                assert!(r.delete(&2).await?, "soft delete inside");
                assert!(r.get(&2).await?.is_none(), "invisible inside");
                assert!(r.restore(&2).await?, "restore inside");
                assert!(r.delete(&2).await?);
                Ok((updated, upserted))
            })
            .await
            .expect("commit");
        assert_eq!(
            updated.created_at, first.created_at,
            "update kept created_at"
        );
        assert!(updated.updated_at >= first.updated_at);
        assert_eq!(
            upserted.created_at, upserted.updated_at,
            "an inserting upsert"
        );
        assert_eq!(repo.get(&1).await.expect("get"), Some(updated));
        assert!(
            repo.get(&2).await.expect("get").is_none(),
            "deleted at commit"
        );
        assert_eq!(
            repo.count(&Filter::all().only_deleted())
                .await
                .expect("count"),
            1
        );
        let gone = repo
            .find(&persistence_core::Query::all().only_deleted())
            .await
            .expect("find");
        assert_eq!(gone[0].version, 4, "upsert, delete, restore, delete");
    })
    .await;
}

#[tokio::test]
async fn increments_reach_deleted_documents_when_asked() {
    with_store(|store| async move {
        let repo = store.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        for i in 1..=3 {
            repo.insert(&Note::new(i, &format!("s{i}"), 10))
                .await
                .expect("insert");
        }
        assert!(repo.delete(&1).await.expect("delete"));
        assert!(repo.delete(&2).await.expect("delete"));
        // The overflow guard of an integer increment is about values only:
        // it does not narrow the scope the filter or guard names.
        let inc = Update::new().inc(Note::RANK, 5);
        let patched = repo
            .patch(&1, &inc, &Guard::when(Filter::all().only_deleted()))
            .await
            .expect("patch of a deleted note, asked for");
        assert_eq!(patched.rank, 15);
        assert!(patched.deleted_at.is_some());
        let err = repo
            .patch(&1, &inc, &Guard::none())
            .await
            .expect_err("a deleted note is out of a plain patch's reach");
        assert_eq!(err.kind(), &ErrorKind::NotFound);
        let n = repo
            .update_where(&Filter::all().only_deleted(), &inc)
            .await
            .expect("update_where of deleted notes");
        assert_eq!(n, 2);
        let n = repo
            .update_where(&Filter::all(), &inc)
            .await
            .expect("update_where of live notes");
        assert_eq!(n, 1);
        let all = repo
            .find(&persistence_core::Query::all().with_deleted())
            .await
            .expect("find");
        let ranks: Vec<i64> = all.iter().map(|n| n.rank).collect();
        assert_eq!(ranks, vec![20, 15, 15]);
        // An increment that would overflow is still refused, deleted or not.
        let big = Update::new().inc(Note::RANK, i64::MAX);
        let err = repo
            .patch(&1, &big, &Guard::when(Filter::all().only_deleted()))
            .await
            .expect_err("overflow");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    })
    .await;
}

/// Without a version: created_at kept by update and by an overwriting
/// upsert (the `$setOnInsert` path without `$inc`).
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, persistence_core::Entity,
)]
#[entity(name = "memos")]
struct Memo {
    #[entity(id)]
    id: i64,
    body: String,
    #[entity(created_at)]
    created_at: DateTime<Utc>,
    #[entity(updated_at)]
    updated_at: DateTime<Utc>,
}

/// Only `updated_at`: the plain `replaceOne` paths.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, persistence_core::Entity,
)]
#[entity(name = "ticks")]
struct Tick {
    #[entity(id)]
    id: i64,
    n: i64,
    #[entity(updated_at)]
    updated_at: Option<DateTime<Utc>>,
}

fn memo(id: i64, body: &str) -> Memo {
    Memo {
        id,
        body: body.into(),
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    }
}

#[tokio::test]
async fn unversioned_entities_keep_created_at() {
    with_store(|store| async move {
        let repo = store.repository::<Memo>();
        repo.ensure_schema().await.expect("schema");
        let first = repo.upsert(&memo(1, "a")).await.expect("inserting upsert");
        assert_ne!(first.created_at, DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(first.created_at, first.updated_at);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let again = repo
            .upsert(&memo(1, "b"))
            .await
            .expect("overwriting upsert");
        assert_eq!(
            (again.created_at, again.body.as_str()),
            (first.created_at, "b")
        );
        assert!(again.updated_at > first.updated_at);
        let updated = repo.update(&memo(1, "c")).await.expect("update");
        assert_eq!(
            (updated.created_at, updated.body.as_str()),
            (first.created_at, "c")
        );
        assert_eq!(repo.get(&1).await.expect("get"), Some(updated));
        let err = repo.update(&memo(2, "x")).await.expect_err("missing");
        assert_eq!(err.kind(), &ErrorKind::NotFound);

        let ticks = store.repository::<Tick>();
        ticks.ensure_schema().await.expect("schema");
        let t = Tick {
            id: 1,
            n: 0,
            updated_at: None,
        };
        let inserted = ticks.insert(&t).await.expect("insert");
        assert!(inserted.updated_at.is_some());
        let upserted = ticks
            .upsert(&Tick { n: 1, ..t.clone() })
            .await
            .expect("upsert");
        assert!(upserted.updated_at >= inserted.updated_at);
        assert_eq!(ticks.get(&1).await.expect("get"), Some(upserted));
        let updated = ticks.update(&Tick { n: 2, ..t }).await.expect("update");
        assert_eq!(ticks.get(&1).await.expect("get"), Some(updated));
    })
    .await;
}
