//! Change streams: events for writes made by another task, resuming from a token.
mod common;

use std::time::Duration;

use common::with_store;
use futures_util::StreamExt as _;
use persistence_core::{Entity, Repository};
use persistence_mongo::ChangeKind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes")]
struct Note {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    version: i64,
    text: String,
}

/// Liveness bound for receiving an event (not a performance assertion).
const WITHIN: Duration = Duration::from_secs(20);

async fn next<S>(changes: &mut S) -> persistence_mongo::Change<Note>
where
    S: futures_util::Stream<Item = persistence_core::Result<persistence_mongo::Change<Note>>>
        + Unpin,
{
    tokio::time::timeout(WITHIN, changes.next())
        .await
        .expect("an event arrives")
        .expect("stream open")
        .expect("event decodes")
}

#[tokio::test]
async fn typed_events_and_resume() {
    with_store(|store| async move {
        let repo = store.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: change streams need a replica set");
            return;
        }
        let mut changes = repo.watch(None).await.expect("watch");
        let writer = repo.clone();
        let task = tokio::spawn(async move {
            let n = writer
                .insert(&Note {
                    id: 1,
                    version: 0,
                    text: "hi".into(),
                })
                .await
                .expect("insert");
            let mut n2 = n.clone();
            n2.text = "edited".into();
            writer.update(&n2).await.expect("update");
        });
        let first = next(&mut changes).await;
        assert_eq!(first.kind, ChangeKind::Insert);
        assert_eq!(first.id, Some(1));
        assert_eq!(first.entity.as_ref().map(|n| n.text.as_str()), Some("hi"));
        let second = next(&mut changes).await;
        assert_eq!(second.kind, ChangeKind::Update, "update $sets the fields");
        assert_eq!(second.entity.as_ref().map(|n| n.version), Some(2));
        task.await.expect("writer");
        // Deleted only now: an update event carries the document as it is
        // when the event is read (`updateLookup`), none once it is deleted.
        repo.delete(&1).await.expect("delete");
        let third = next(&mut changes).await;
        assert_eq!(third.kind, ChangeKind::Delete);
        assert_eq!(third.id, Some(1));
        assert!(third.entity.is_none());
        drop(changes);

        // Resume after the first event: the update and delete come again.
        let mut resumed = repo
            .watch(Some(first.resume_token.clone()))
            .await
            .expect("resume");
        let again = tokio::time::timeout(WITHIN, resumed.next())
            .await
            .expect("resumed event")
            .expect("open")
            .expect("decodes");
        assert_eq!(again.kind, ChangeKind::Update);
        assert_eq!(again.id, Some(1));
    })
    .await;
}
