//! `verify_schema` (issue 16, item 6) on MongoDB: a collection set up with
//! plain driver commands (the way another application would) is compared
//! with the entity: indexes (missing, unique flag) and the validator
//! (missing, different), each with its exact line; nothing is changed.
mod common;

use bson::{Document, doc};
use common::with_store;
use persistence_core::{DifferenceKind, Entity, Repository, SchemaReport};
use persistence_mongo::MongoStore;
use persistence_mongo::schema::json_schema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "patrons")]
struct Patron {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    #[entity(index)]
    city: String,
    note: Option<String>,
}

/// The validator, indexes and options of `patrons`, to check nothing changed.
async fn snapshot(store: &MongoStore) -> (Vec<Document>, Vec<Document>) {
    let db = store.database();
    let batch = |reply: Document| -> Vec<Document> {
        reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
            .unwrap_or_default()
    };
    let colls = db
        .run_command(doc! { "listCollections": 1, "filter": { "name": "patrons" } })
        .await
        .expect("listCollections");
    let indexes = match db.run_command(doc! { "listIndexes": "patrons" }).await {
        Ok(r) => batch(r),
        Err(_) => Vec::new(),
    };
    let mut indexes = indexes;
    indexes.sort_by_key(|d| d.get_str("name").unwrap_or_default().to_string());
    (batch(colls), indexes)
}

/// Another application's `patrons`: `validator` if given, then `indexes`.
async fn theirs(store: &MongoStore, validator: Option<Document>, indexes: Vec<Document>) {
    let db = store.database();
    let mut create = doc! { "create": "patrons" };
    if let Some(v) = validator {
        create.insert("validator", v);
    }
    db.run_command(create).await.expect("create");
    if !indexes.is_empty() {
        db.run_command(doc! { "createIndexes": "patrons", "indexes": indexes })
            .await
            .expect("createIndexes");
    }
}

fn email_unique() -> Document {
    doc! { "key": { "email": 1 }, "name": "ux_patrons_email", "unique": true,
    "partialFilterExpression": { "email": { "$type": "string" } } }
}

fn city_index() -> Document {
    doc! { "key": { "city": 1 }, "name": "ix_patrons_city" }
}

async fn verify(store: &MongoStore) -> SchemaReport {
    let before = snapshot(store).await;
    let report = store
        .repository::<Patron>()
        .verify_schema()
        .await
        .expect("verify");
    assert_eq!(
        before,
        snapshot(store).await,
        "verify_schema changed nothing"
    );
    report
}

/// The lines of the report, the namespace written `{ns}`; "cannot verify"
/// warnings (a server without some command) are left out and printed.
fn lines(store: &MongoStore, report: &SchemaReport) -> Vec<String> {
    let ns = format!("{}.patrons", store.database().name());
    for d in report.of_kind(DifferenceKind::Unverifiable) {
        eprintln!("this server: {d}");
    }
    report
        .differences
        .iter()
        .filter(|d| d.kind != DifferenceKind::Unverifiable)
        .map(|d| d.to_string().replace(&ns, "{ns}"))
        .collect()
}

#[tokio::test]
async fn a_matching_collection_made_by_plain_commands_verifies() {
    with_store(|store| async move {
        let schema = json_schema(Patron::meta());
        theirs(&store, Some(schema), vec![email_unique(), city_index()]).await;
        let report = verify(&store).await;
        assert!(report.is_ok(), "{report}");
        assert_eq!(lines(&store, &report), Vec::<String>::new());
    })
    .await;
}

#[tokio::test]
async fn the_librarys_own_collection_verifies_and_a_missing_one_is_reported() {
    with_store(|store| async move {
        let report = verify(&store).await;
        assert_eq!(
            lines(&store, &report),
            ["error: missing table: {ns}: expected a collection for entity `patrons`, found none"]
        );
        let names = store
            .database()
            .list_collection_names()
            .await
            .expect("list");
        assert!(
            !names.iter().any(|n| n == "patrons"),
            "not created: {names:?}"
        );
        store
            .repository::<Patron>()
            .ensure_schema()
            .await
            .expect("ensure");
        let report = verify(&store).await;
        assert!(report.is_ok(), "{report}");
        assert_eq!(lines(&store, &report), Vec::<String>::new());
    })
    .await;
}

#[tokio::test]
async fn a_missing_index() {
    with_store(|store| async move {
        let schema = json_schema(Patron::meta());
        theirs(&store, Some(schema), vec![email_unique()]).await;
        let report = verify(&store).await;
        assert!(
            report.is_ok(),
            "a missing plain index is a warning: {report}"
        );
        assert_eq!(
            lines(&store, &report),
            ["warning: missing index: {ns} ix_patrons_city: expected { \"city\": 1 }, found none"]
        );
    })
    .await;
}

#[tokio::test]
async fn a_unique_index_that_is_not_unique() {
    with_store(|store| async move {
        let schema = json_schema(Patron::meta());
        let mut email = email_unique();
        email.remove("unique");
        theirs(&store, Some(schema), vec![email, city_index()]).await;
        let report = verify(&store).await;
        assert!(!report.is_ok());
        assert_eq!(
            lines(&store, &report),
            [
                "error: unique differs: {ns} ux_patrons_email: expected { \"email\": 1 } unique \
              partial { \"email\": { \"$type\": \"string\" } }, found { \"email\": 1 } \
              partial { \"email\": { \"$type\": \"string\" } }"
            ]
        );
        // And a unique index where the entity declares a plain one.
        let mut city = city_index();
        city.insert("unique", true);
        store
            .database()
            .collection::<Document>("patrons")
            .drop()
            .await
            .expect("drop our own test collection");
        theirs(
            &store,
            Some(json_schema(Patron::meta())),
            vec![email_unique(), city],
        )
        .await;
        let report = verify(&store).await;
        assert_eq!(
            lines(&store, &report),
            [
                "error: index differs: {ns} ix_patrons_city: expected { \"city\": 1 }, \
              found { \"city\": 1 } unique"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_or_different_validator() {
    with_store(|store| async move {
        theirs(&store, None, vec![email_unique(), city_index()]).await;
        let report = verify(&store).await;
        assert!(report.is_ok(), "a missing validator is a warning: {report}");
        assert_eq!(
            lines(&store, &report),
            [
                "warning: missing validator: {ns} validator: expected the $jsonSchema generated \
              from the entity, found none"
            ]
        );
        store
            .database()
            .collection::<Document>("patrons")
            .drop()
            .await
            .expect("drop our own test collection");
        let mut schema = json_schema(Patron::meta());
        schema
            .get_document_mut("$jsonSchema")
            .and_then(|s| s.get_document_mut("properties"))
            .and_then(|p| p.get_document_mut("city"))
            .expect("city property")
            .insert("bsonType", "int");
        theirs(&store, Some(schema), vec![email_unique(), city_index()]).await;
        let report = verify(&store).await;
        assert!(!report.is_ok());
        assert_eq!(
            lines(&store, &report),
            [
                "error: validator differs: {ns} validator: expected the $jsonSchema generated \
              from the entity, found `$jsonSchema.properties.city.bsonType` = \"int\" \
              (expected \"string\")"
            ]
        );
    })
    .await;
}

/// A view of that name is not a collection the repository can write to.
#[tokio::test]
async fn a_view_is_not_the_collection() {
    with_store(|store| async move {
        let db = store.database();
        db.run_command(doc! { "create": "elsewhere" }).await.expect("create");
        if let Err(e) = db
            .run_command(doc! { "create": "patrons", "viewOn": "elsewhere", "pipeline": [] })
            .await
        {
            eprintln!("SKIPPED: this server has no views ({e})");
            return;
        }
        let report = verify(&store).await;
        assert_eq!(
            lines(&store, &report),
            ["error: missing table: {ns}: expected a collection for entity `patrons`, found a view"]
        );
    })
    .await;
}
