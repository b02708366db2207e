//! Change streams: a typed stream of the changes to one entity collection.
//!
//! [`MongoRepository::watch`] opens a change stream (`fullDocument:
//! updateLookup`, so updates carry the current entity) and yields
//! [`Change`]s. Every change carries its [`ResumeToken`]; pass the last one
//! processed to `watch` again to continue after it (the server keeps a
//! bounded history: the oplog on MongoDB). The driver also resumes on its own
//! after a transient network error. Change streams need a replica set.

use bson::Document;
use futures_util::StreamExt as _;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use mongodb::options::FullDocumentType;
use persistence_core::{BoxStream, Entity, Error, Result};

pub use mongodb::change_stream::event::ResumeToken;

use crate::codec::{from_bson, from_document};
use crate::error::map;
use crate::repository::MongoRepository;

/// What happened to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// Inserted.
    Insert,
    /// Updated in place (`$set` etc.; the repository's `update` and
    /// `upsert` `$set` the entity's fields, so fields other programs keep
    /// in the document stay).
    Update,
    /// Replaced (`replaceOne` by another program).
    Replace,
    /// Deleted.
    Delete,
    /// The collection or database went away; the stream ends after this.
    Invalidate,
    /// Any other event type, by its server name (`drop`, `rename`, ...).
    Other(String),
}

/// One change to an entity collection.
#[derive(Debug, Clone)]
pub struct Change<E: Entity> {
    /// What happened.
    pub kind: ChangeKind,
    /// The id of the changed entity, when the event names a document.
    pub id: Option<E::Id>,
    /// The entity after the change (inserts, replaces, and updates when it still exists).
    pub entity: Option<E>,
    /// Where to resume to receive the changes after this one.
    pub resume_token: ResumeToken,
}

fn decode<E: Entity>(ev: ChangeStreamEvent<Document>) -> Result<Change<E>> {
    let meta = E::meta();
    let kind = match ev.operation_type {
        OperationType::Insert => ChangeKind::Insert,
        OperationType::Update => ChangeKind::Update,
        OperationType::Replace => ChangeKind::Replace,
        OperationType::Delete => ChangeKind::Delete,
        OperationType::Invalidate => ChangeKind::Invalidate,
        OperationType::Drop => ChangeKind::Other("drop".into()),
        OperationType::Rename => ChangeKind::Other("rename".into()),
        OperationType::DropDatabase => ChangeKind::Other("dropDatabase".into()),
        OperationType::Other(s) => ChangeKind::Other(s),
        _ => ChangeKind::Other("unknown".into()),
    };
    let id = match ev.document_key.as_ref().and_then(|k| k.get("_id")) {
        Some(b) => {
            let v = from_bson(b, meta.id_field().ty)?;
            Some(
                serde_json::from_value::<E::Id>(v.to_json())
                    .map_err(|e| Error::decode(format!("{}: change event id: {e}", meta.name)))?,
            )
        }
        None => None,
    };
    let entity = ev
        .full_document
        .as_ref()
        .map(from_document::<E>)
        .transpose()?;
    Ok(Change {
        kind,
        id,
        entity,
        resume_token: ev.id,
    })
}

impl<E: Entity> MongoRepository<E> {
    /// Watch the collection's changes from now, or after `resume_after`.
    pub async fn watch(
        &self,
        resume_after: Option<ResumeToken>,
    ) -> Result<BoxStream<'static, Result<Change<E>>>> {
        let meta = E::meta();
        let stream = self
            .collection()
            .watch()
            .full_document(FullDocumentType::UpdateLookup)
            .resume_after(resume_after)
            .await
            .map_err(|e| map(e, meta).in_context(meta.name, "watch"))?;
        Ok(Box::pin(stream.map(move |ev| {
            ev.map_err(|e| map(e, meta).in_context(meta.name, "watch"))
                .and_then(decode::<E>)
        })))
    }
}
