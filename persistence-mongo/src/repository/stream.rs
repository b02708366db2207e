//! `stream` of [`MongoRepository`].

use futures_util::{StreamExt as _, TryStreamExt as _};
use persistence_core::{BoxStream, Entity, Error, Query, Result};

use super::MongoRepository;
use crate::codec::from_document;

impl<E: Entity> MongoRepository<E> {
    /// `stream`: a server cursor read as it goes (inside a transaction, the
    /// whole result first: the shared session is locked per operation).
    pub(super) fn stream_docs<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        let meta = E::meta();
        let planned = query
            .checked(meta)
            .and_then(|q| self.find_action(&q).map(|(f, s)| (q, f, s)))
            .map_err(|e| e.in_context(meta.name, "stream"));
        let (q, filter, sort) = match planned {
            Ok(p) => p,
            Err(e) => return Box::pin(futures_util::stream::once(async move { Err(e) })),
        };
        if q.limit == Some(0) {
            return Box::pin(futures_util::stream::empty());
        }
        let coll = self.coll.clone();
        let max_time = self.max_time;
        let limit = q.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        if let Some(session) = self.session.clone() {
            // Inside a transaction the session is shared and locked per
            // operation, so the result is read completely, then streamed.
            let read = async move {
                let mut guard = session.lock().await;
                let mut find = coll.find(filter).sort(sort).skip(q.offset);
                if let Some(t) = max_time {
                    find = find.max_time(t);
                }
                if let Some(l) = limit {
                    find = find.limit(l);
                }
                let mut cursor = find
                    .session(&mut *guard)
                    .await
                    .map_err(|e| crate::error::map_in(e, meta, "stream"))?;
                let mut out = Vec::new();
                while let Some(d) = cursor.next(&mut guard).await {
                    let d = d.map_err(|e| crate::error::map_in(e, meta, "stream"))?;
                    out.push(from_document::<E>(&d));
                }
                Ok::<_, Error>(futures_util::stream::iter(out))
            };
            return Box::pin(futures_util::stream::once(read).try_flatten());
        }
        let open = async move {
            let mut find = coll.find(filter).sort(sort);
            if let Some(t) = max_time {
                find = find.max_time(t);
            }
            if q.offset > 0 {
                find = find.skip(q.offset);
            }
            if let Some(l) = limit {
                find = find.limit(l);
            }
            let cursor = find
                .await
                .map_err(|e| crate::error::map_in(e, meta, "stream"))?;
            Ok::<_, Error>(cursor.map(move |d| {
                d.map_err(|e| crate::error::map_in(e, meta, "stream"))
                    .and_then(|d| from_document::<E>(&d))
            }))
        };
        Box::pin(futures_util::stream::once(open).try_flatten())
    }
}
