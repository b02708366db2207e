//! Full-text search on MongoDB (the rules are
//! [`persistence_core::text`]'s).
//!
//! MongoDB's `$text` needs a text index, and not every server has one:
//! the test server (SecantusDB) refuses it (`createIndexes` answers code
//! 67, `CannotCreateIndex`, "text indexes are not supported").
//! `ensure_schema` tries to create the index (`tx_<entity>` over the
//! text-search fields, `language_override` set to a name no entity field
//! has) on a collection the library owns; code 67 means "no text index",
//! any other error is reported. A collection it does not own uses an
//! existing index of that name. The answer is remembered and reported as
//! [`Capabilities::text_index`](persistence_core::Capabilities).
//!
//! * **With the index**, `find_text` of a search without `or` runs one
//!   aggregation: `$match` of the pre-filter plus `$text` (every atom a
//!   quoted phrase, `-` before the excluded ones, so MongoDB AND-s them),
//!   ranked by `textScore`, ties by `_id`. MongoDB applies its own
//!   stemmer and stop-word list there.
//! * **Otherwise** (no index, a search with `or`, and always for
//!   `Filter::matches_text`, because MongoDB allows `$text` only once at
//!   the top level of a query): the **substring fallback**. Each atom of
//!   the parsed search is an escaped, case-insensitive `$regex` of its
//!   words over each field (a phrase's words separated by at least one
//!   character that is neither letter nor digit), `-atom` its `$nor`;
//!   `find_text` ranks the matching documents in the client by their
//!   occurrence count ([`ParsedQuery::score_substring`]). Words only hold
//!   letters and digits and are escaped anyway, so no regex
//!   metacharacter of the search string reaches the server.
//!
//! Either way [`Capabilities::native_text_search`](persistence_core::Capabilities)
//! is `false`: neither follows the word rules of [`persistence_core::text`].

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use persistence_core::entity::TextSearch;
use persistence_core::names::SchemaPolicy;
use persistence_core::text::{CheckedText, ParsedQuery};
use persistence_core::{Entity, EntityMeta, Error, Result, TextLanguage};

use crate::codec::{from_document, stored_name};
use crate::error::{map, server_code};
use crate::query::to_query;
use crate::schema::{collection_marker, has_marker};

/// `createIndexes` refused: "text indexes are not supported" (code 67).
const CANNOT_CREATE_INDEX: i32 = 67;

/// The score field `find_text`'s aggregation adds.
const SCORE: &str = "__score";

/// The name of the library's text index of an entity.
fn index_name(meta: &EntityMeta) -> String {
    format!("tx_{}", meta.name)
}

/// MongoDB's name of a language (`none`: no stop words, no stemming).
fn mongo_language(language: TextLanguage) -> &'static str {
    match language {
        TextLanguage::English => "english",
        TextLanguage::Simple => "none",
    }
}

/// The text index model of the entity's text-search fields.
fn index_model(meta: &EntityMeta, ts: &TextSearch) -> IndexModel {
    let mut keys = Document::new();
    for &i in &ts.fields {
        keys.insert(stored_name(meta, i), "text");
    }
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .name(index_name(meta))
                .default_language(mongo_language(ts.language).to_string())
                .language_override("__text_language".to_string())
                .build(),
        )
        .build()
}

/// Ensure the text index (module docs): `true` when `$text` can be used.
pub(crate) async fn ensure_text_index(
    coll: &Collection<Document>,
    meta: &EntityMeta,
    policy: SchemaPolicy,
) -> Result<bool> {
    let Some(ts) = &meta.text else {
        return Ok(false);
    };
    let op = |e| map(e, meta).with_operation("ensure_schema");
    let db = coll.client().database(coll.namespace().db.as_str());
    let owned = policy != SchemaPolicy::VerifyOnly
        && has_marker(&db, &collection_marker(coll.name()))
            .await
            .map_err(|e| e.with_operation("ensure_schema"))?;
    if owned {
        return match coll.create_index(index_model(meta, ts)).await {
            Ok(_) => Ok(true),
            Err(e) if server_code(&e) == Some(CANNOT_CREATE_INDEX) => {
                tracing::debug!(
                    entity = meta.name,
                    "no text index on this server: text search uses the $regex fallback"
                );
                Ok(false)
            }
            Err(e) => Err(op(e)),
        };
    }
    let name = index_name(meta);
    let existing: Vec<IndexModel> = coll
        .list_indexes()
        .await
        .map_err(op)?
        .try_collect()
        .await
        .map_err(op)?;
    Ok(existing
        .iter()
        .any(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name.as_str())))
}

/// The `$text` aggregation of `find_text` (`None`: the search has `or`,
/// or no positive word, so the fallback answers it).
pub(crate) fn text_pipeline(
    meta: &EntityMeta,
    q: &CheckedText<'_>,
) -> Result<Option<Vec<Document>>> {
    let Some(search) = text_search_string(&q.parsed) else {
        return Ok(None);
    };
    let mut matched = to_query(meta, &q.filter)?;
    matched.insert(
        "$text",
        doc! { "$search": search, "$language": mongo_language(q.fields.language) },
    );
    let limit = i64::try_from(q.query.limit).unwrap_or(i64::MAX);
    Ok(Some(vec![
        doc! { "$match": matched },
        doc! { "$addFields": { SCORE: { "$meta": "textScore" } } },
        doc! { "$sort": { SCORE: -1, "_id": 1 } },
        doc! { "$limit": limit },
    ]))
}

/// Decode the documents of [`text_pipeline`] into `(entity, score)`.
pub(crate) fn decode_scored<E: Entity>(docs: Vec<Document>) -> Result<Vec<(E, f64)>> {
    docs.into_iter()
        .map(|mut d| {
            let score = match d.remove(SCORE) {
                Some(Bson::Double(s)) => s,
                other => {
                    return Err(Error::decode(format!("textScore: {other:?}")));
                }
            };
            Ok((from_document::<E>(&d)?, score))
        })
        .collect()
}

/// The `$search` string of a search without `or`: every atom a quoted
/// phrase (`-` before excluded ones), which `$text` AND-s.
pub(crate) fn text_search_string(q: &ParsedQuery) -> Option<String> {
    if q.clauses.iter().any(|c| c.len() != 1) || q.positive().next().is_none() {
        return None;
    }
    Some(
        q.clauses
            .iter()
            .flatten()
            .map(|a| {
                format!(
                    "{}\"{}\"",
                    if a.negated { "-" } else { "" },
                    a.words.join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `find_text` by the substring fallback: the documents matching the
/// pre-filter and the search, ranked in the client.
pub(crate) async fn find_text_fallback<E, R>(
    repo: &R,
    query: &persistence_core::TextQuery,
) -> Result<Vec<(E, f64)>>
where
    E: persistence_core::Entity,
    R: persistence_core::Repository<E>,
{
    let q = query.checked(E::meta())?;
    if q.parsed.is_empty() {
        return Ok(Vec::new());
    }
    let filter = query
        .filter
        .clone()
        .and(persistence_core::Filter::MatchesText(query.text.clone()));
    let rows = repo.find(&persistence_core::Query::filter(filter)).await?;
    persistence_core::text::rank_substring(rows, &q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{GAP, atom_regex};

    #[test]
    fn searches_become_escaped_regexes_and_quoted_phrases() {
        let q = ParsedQuery::parse(TextLanguage::English, ".* (ab+)+$ \"x y\" -z").expect("parse");
        assert_eq!(atom_regex(&q.clauses[0][0].words), "ab");
        assert_eq!(atom_regex(&q.clauses[1][0].words), format!("x{GAP}y"));
        assert_eq!(
            text_search_string(&q).as_deref(),
            Some("\"ab\" \"x y\" -\"z\"")
        );
        let or = ParsedQuery::parse(TextLanguage::English, "ab or cd").expect("parse");
        assert_eq!(text_search_string(&or), None);
        let neg = ParsedQuery::parse(TextLanguage::English, "-ab").expect("parse");
        assert_eq!(text_search_string(&neg), None);
    }
}
