//! `resolve_duplicate` against the local server (it reads to find the
//! index behind a duplicate key the server's reply does not name).

use futures_util::FutureExt as _;
use persistence_core::conformance::entities::Note;
use persistence_core::conformance::services::{Service, unique_suffix, url};
use persistence_core::{ConflictKind, Error, ErrorKind, Repository as _};

use crate::MongoRepository;

#[tokio::test]
async fn a_deleted_document_does_not_name_a_live_only_index() {
    let Some(url) = url(Service::Mongo) else {
        return;
    };
    let client = mongodb::Client::with_uri_str(&url).await.expect("client");
    let db = client.database(&format!("u_{}", unique_suffix()));
    let repo = MongoRepository::<Note>::new(&db);
    // The database is dropped also when an assertion fails.
    let outcome = std::panic::AssertUnwindSafe(check(repo))
        .catch_unwind()
        .await;
    db.drop().await.expect("drop the test database");
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

async fn check(repo: MongoRepository<Note>) {
    repo.ensure_schema().await.expect("schema");
    let unnamed = || Error::unique_violation(None, "duplicate key");
    repo.insert(&Note::new(1, "taken", 0)).await.expect("live");
    let deleted = repo.insert(&Note::new(2, "gone", 0)).await.expect("insert");
    assert!(repo.delete(&deleted.id).await.expect("delete"));

    let (_, written) = MongoRepository::<Note>::document(
        &Note::new(3, "taken", 0),
        Some(1),
        persistence_core::lifecycle::now(),
        true,
    )
    .expect("doc");
    let named = repo.resolve_duplicate(unnamed(), &written, false).await;
    assert_eq!(
        named.kind(),
        &ErrorKind::Conflict(ConflictKind::Unique {
            constraint: Some("ux_conf_notes_slug".into())
        }),
        "a live document holds the slug: {named}"
    );
    let (_, written) = MongoRepository::<Note>::document(
        &Note::new(3, "gone", 0),
        Some(1),
        persistence_core::lifecycle::now(),
        true,
    )
    .expect("doc");
    let kept = repo.resolve_duplicate(unnamed(), &written, false).await;
    assert_eq!(
        kept.kind(),
        &ErrorKind::Conflict(ConflictKind::Unique { constraint: None }),
        "only a deleted document holds the slug, outside the index: {kept}"
    );
    let (_, written) = MongoRepository::<Note>::document(
        &Note::new(2, "new", 0),
        Some(1),
        persistence_core::lifecycle::now(),
        true,
    )
    .expect("doc");
    let id = repo.resolve_duplicate(unnamed(), &written, true).await;
    assert_eq!(
        id.kind(),
        &ErrorKind::Conflict(ConflictKind::DuplicateId),
        "the id of a deleted document is taken: {id}"
    );
}
