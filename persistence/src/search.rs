//! One search across stores ([`Persistence::search`](crate::Persistence::search)):
//! every registered source (an entity in a named database, searchable by a
//! vector field and/or text fields) is asked **concurrently**, each with its
//! own timeout inside the request's deadline, and the call returns by the
//! deadline with what arrived: per source its hits and a status
//! ([`SourceStatus`]: `ok`, `timed_out`, `failed` with the error kind, or
//! `skipped` when its database's circuit breaker is open or it cannot answer
//! the request). One store down is a status, never an error of the call.
//!
//! ```ignore
//! p.register_search(Searchable::<Book>::new("main").vector(Book::EMBEDDING)).await?;
//! p.register_search(Searchable::<Review>::new("catalog").text(&["title", "body"])).await?;
//! let res = p.search(&SearchRequest::text("machine learning")
//!     .vector(embed("machine learning"))
//!     .deadline(Duration::from_millis(300))).await?;
//! for hit in &res.merged { /* reciprocal-rank fusion across sources */ }
//! let books: Vec<(Book, f64)> = res.hits("main.books")?;
//! ```
//!
//! **Ranking.** A vector source answers [`nearest`](persistence_core::NearestExt::nearest)
//! (score: the distance, smaller is nearer); a text source matches rows
//! holding every word of the text (case-insensitive substring, in any of
//! its fields) and ranks them by how often the words occur (score: that
//! count, larger is better), among the first [`TEXT_CANDIDATES`]× its limit
//! matching rows; a full-text source ([`Searchable::full_text`]) answers
//! the entity's text search (websearch syntax, the backend's relevance,
//! larger is better). A source with both answers the vector when the request
//! has one. Sources' scores are not comparable, so the merged list uses
//! **reciprocal-rank fusion**: a hit's merged score is Σ 1 / (60 + rank)
//! over the sources that returned it (rank from 1; the same row returned
//! by two sources of the same entity and database, e.g. a text and a
//! vector source, adds up), ordered by that score, ties by source order of
//! registration, then rank.
//!
//! **Through the cache and the metrics.** Sources use the manager's
//! repositories (`repo_in`), so a repeated search within the cache's TTL is
//! answered from L1/L2 where the database has a cache, and each source's
//! time is recorded in [`SEARCH_DURATION`](crate::layer::metric_names::SEARCH_DURATION)
//! labelled by source and status.

use std::collections::BTreeMap;
use std::time::Duration;

use persistence_core::text::ParsedQuery;
use persistence_core::vector::VectorFieldName;
use persistence_core::{Entity, Error, ErrorKind, Result, TextLanguage};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default hits per source.
pub const DEFAULT_LIMIT: usize = 10;
/// Default deadline of a search.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);
/// Most hits a source may be asked for.
pub const MAX_LIMIT: usize = 1000;
/// A text source reads up to this many times its limit of matching rows
/// and ranks those.
pub const TEXT_CANDIDATES: usize = 5;
/// Most words of a search text.
pub const MAX_WORDS: usize = 16;
/// Longest search text (bytes).
pub const MAX_TEXT_LEN: usize = 1024;
/// The constant of reciprocal-rank fusion (as in Cormack et al., 2009).
pub const RRF_K: f64 = 60.0;

/// A source of [`Persistence::search`](crate::Persistence::search): entity
/// `E` in a named database, searchable by a vector field and/or text fields.
#[derive(Debug, Clone)]
pub struct Searchable<E> {
    pub(crate) database: String,
    pub(crate) name: Option<String>,
    pub(crate) vector: Option<String>,
    pub(crate) text: Vec<String>,
    pub(crate) full_text: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) limit: usize,
    _entity: std::marker::PhantomData<fn() -> E>,
}

impl<E: Entity> Searchable<E> {
    /// `E` in database `database`; named `<database>.<entity>` unless
    /// [`name`](Self::name) says otherwise.
    pub fn new(database: impl Into<String>) -> Self {
        Searchable {
            database: database.into(),
            name: None,
            vector: None,
            text: Vec::new(),
            full_text: false,
            timeout: None,
            limit: DEFAULT_LIMIT,
            _entity: std::marker::PhantomData,
        }
    }

    /// The source's name in requests and results.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Search by nearest neighbours of this vector field.
    #[must_use]
    pub fn vector(mut self, field: impl VectorFieldName<E>) -> Self {
        self.vector = Some(field.vector_field_name());
        self
    }

    /// Search text in these string fields (stored names).
    #[must_use]
    pub fn text(mut self, fields: &[&str]) -> Self {
        self.text = fields.iter().map(|f| (*f).to_string()).collect();
        self
    }

    /// Search text with the entity's full-text search (its
    /// `#[entity(text_search)]` fields, [`find_text`](persistence_core::Repository::find_text)):
    /// the request's text in websearch syntax, ranked by the backend
    /// (`ts_rank`, FTS5's bm25, term frequency); takes the place of
    /// [`text`](Self::text).
    #[must_use]
    pub fn full_text(mut self) -> Self {
        self.full_text = true;
        self
    }

    /// This source's own timeout (the request's deadline still bounds it).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Hits when the request names no limit for this source (default 10).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The source's name.
    pub fn source_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}.{}", self.database, E::meta().name))
    }

    /// Check the declaration against `E`'s metadata.
    pub(crate) fn checked(&self) -> Result<()> {
        let meta = E::meta();
        let name = self.source_name();
        if name.is_empty() || name.len() > 128 {
            return Err(Error::invalid_input(
                "a search source's name must be 1 to 128 bytes",
            ));
        }
        if self.vector.is_none() && self.text.is_empty() && !self.full_text {
            return Err(Error::invalid_input(format!(
                "search source `{name}`: give it a vector field, text fields or full_text"
            )));
        }
        if self.full_text {
            persistence_core::text::text_fields(meta).map_err(|e| {
                Error::invalid_input(format!("search source `{name}`: {}", e.message()))
            })?;
        }
        if let Some(v) = &self.vector {
            if meta.vector(v).is_none() {
                return Err(Error::invalid_input(format!(
                    "search source `{name}`: `{v}` is not a vector field of {}",
                    meta.name
                )));
            }
        }
        for f in &self.text {
            let Some(field) = meta.fields.iter().find(|x| x.name == *f) else {
                return Err(Error::invalid_input(format!(
                    "search source `{name}`: {} has no field `{f}`",
                    meta.name
                )));
            };
            if field.ty != persistence_core::FieldType::Scalar(persistence_core::ScalarType::String)
            {
                return Err(Error::invalid_input(format!(
                    "search source `{name}`: text field `{f}` of {} is not a string",
                    meta.name
                )));
            }
        }
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(Error::invalid_input(format!(
                "search source `{name}`: limit must be 1..={MAX_LIMIT}"
            )));
        }
        Ok(())
    }
}

/// What to search for, where, and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Text to find in text sources.
    pub text: Option<String>,
    /// A query vector for vector sources.
    pub vector: Option<Vec<f32>>,
    /// Hits per source by name (others: the source's own limit).
    pub limits: BTreeMap<String, usize>,
    /// Only these sources (`None`: all registered).
    pub sources: Option<Vec<String>>,
    /// The call returns by then (default 1 s).
    pub deadline: Duration,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            text: None,
            vector: None,
            limits: BTreeMap::new(),
            sources: None,
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl SearchRequest {
    /// Search for `text`.
    pub fn text(text: impl Into<String>) -> Self {
        SearchRequest {
            text: Some(text.into()),
            ..SearchRequest::default()
        }
    }

    /// Search by a query vector.
    pub fn by_vector(vector: Vec<f32>) -> Self {
        SearchRequest {
            vector: Some(vector),
            ..SearchRequest::default()
        }
    }

    /// Also search by a query vector.
    #[must_use]
    pub fn vector(mut self, vector: Vec<f32>) -> Self {
        self.vector = Some(vector);
        self
    }

    /// Return by `deadline` from the call.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// At most `limit` hits from `source`.
    #[must_use]
    pub fn limit(mut self, source: impl Into<String>, limit: usize) -> Self {
        self.limits.insert(source.into(), limit);
        self
    }

    /// Only ask these sources.
    #[must_use]
    pub fn only(mut self, sources: &[&str]) -> Self {
        self.sources = Some(sources.iter().map(|s| (*s).to_string()).collect());
        self
    }

    /// The words of the text, lower-cased (checked: 1..=16 words, at most 1 KiB).
    pub(crate) fn words(&self) -> Result<Option<Vec<String>>> {
        let Some(text) = &self.text else {
            return Ok(None);
        };
        if text.len() > MAX_TEXT_LEN {
            return Err(Error::invalid_input(format!(
                "search text is longer than {MAX_TEXT_LEN} bytes"
            )));
        }
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() {
            return Err(Error::invalid_input("search text has no words"));
        }
        if words.len() > MAX_WORDS {
            return Err(Error::invalid_input(format!(
                "search text has more than {MAX_WORDS} words"
            )));
        }
        Ok(Some(words))
    }

    /// Checked before any source is asked.
    pub(crate) fn check(&self) -> Result<()> {
        if self.text.is_none() && self.vector.is_none() {
            return Err(Error::invalid_input("a search needs a text or a vector"));
        }
        if self.deadline.is_zero() || self.deadline > Duration::from_secs(600) {
            return Err(Error::invalid_input(
                "search deadline must be within (0, 600 s]",
            ));
        }
        if let Some((s, l)) = self
            .limits
            .iter()
            .find(|(_, l)| **l == 0 || **l > MAX_LIMIT)
        {
            return Err(Error::invalid_input(format!(
                "search limit of `{s}` must be 1..={MAX_LIMIT}, not {l}"
            )));
        }
        self.words().map(|_| ())
    }
}

/// Why a source was not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its database's circuit breaker is open.
    BreakerOpen,
    /// It searches by vector and the request has none, or by text and the
    /// request has no text.
    NotApplicable,
}

/// How one source fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum SourceStatus {
    /// It answered in time.
    Ok,
    /// Its timeout or the deadline passed first (its query was cancelled).
    TimedOut,
    /// It failed with an error of this kind (the message is in
    /// [`SourceHits::error`]; in JSON the kind's snake-case name).
    #[serde(serialize_with = "kind_name")]
    Failed(ErrorKind),
    /// It was not asked.
    Skipped(SkipReason),
}

impl SourceStatus {
    /// `ok`, `timed_out`, `failed` or `skipped` (the metric label).
    pub fn label(&self) -> &'static str {
        match self {
            SourceStatus::Ok => "ok",
            SourceStatus::TimedOut => "timed_out",
            SourceStatus::Failed(_) => "failed",
            SourceStatus::Skipped(_) => "skipped",
        }
    }
}

fn kind_name<S: serde::Serializer>(kind: &ErrorKind, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(persistence_core::layer::metric_names::error_label(
        &Error::new(kind.clone(), ""),
    ))
}

/// One hit of one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The row's id, as JSON.
    pub id: serde_json::Value,
    /// Rank within the source, from 1.
    pub rank: usize,
    /// The source's score: a distance for vector sources (smaller is
    /// nearer), the count of word occurrences for text sources.
    pub score: f64,
    /// The entity, as JSON.
    pub document: serde_json::Value,
}

/// What one source returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHits {
    /// The source's name.
    pub source: String,
    /// Its database.
    pub database: String,
    /// Its entity's logical name.
    pub entity: &'static str,
    /// `vector` or `text`: how it was asked (`None` when skipped).
    pub mode: Option<&'static str>,
    /// How it fared.
    pub status: SourceStatus,
    /// The error's message when it failed.
    pub error: Option<String>,
    /// Its hits in rank order (empty unless `ok`).
    pub hits: Vec<Hit>,
    /// Time it took (up to its timeout), milliseconds.
    pub elapsed_ms: f64,
}

/// One hit of the merged ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergedHit {
    /// The first source (in registration order) that returned it.
    pub source: String,
    /// The row's id.
    pub id: serde_json::Value,
    /// Reciprocal-rank fusion score (larger is better).
    pub score: f64,
    /// The entity, as JSON.
    pub document: serde_json::Value,
}

/// The answer of [`Persistence::search`](crate::Persistence::search).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResults {
    /// Every registered (or requested) source, in registration order.
    pub sources: Vec<SourceHits>,
    /// All hits of the sources that answered, by reciprocal-rank fusion.
    pub merged: Vec<MergedHit>,
    /// Time the call took, milliseconds.
    pub elapsed_ms: f64,
}

impl SearchResults {
    /// One source's result.
    pub fn source(&self, name: &str) -> Option<&SourceHits> {
        self.sources.iter().find(|s| s.source == name)
    }

    /// One source's hits as entities with their scores (`NotFound` for an
    /// unknown source; `Decode` when `E` is not the source's entity).
    pub fn hits<E: Entity + DeserializeOwned>(&self, source: &str) -> Result<Vec<(E, f64)>> {
        let s = self.source(source).ok_or_else(|| {
            Error::not_found(format!("no search source `{source}` in the results"))
        })?;
        s.hits
            .iter()
            .map(|h| {
                serde_json::from_value::<E>(h.document.clone())
                    .map(|e| (e, h.score))
                    .map_err(|e| {
                        Error::decode(format!("search source `{source}` ({}): {e}", s.entity))
                    })
            })
            .collect()
    }

    /// Whether every asked source answered.
    pub fn complete(&self) -> bool {
        self.sources.iter().all(|s| {
            matches!(
                s.status,
                SourceStatus::Ok | SourceStatus::Skipped(SkipReason::NotApplicable)
            )
        })
    }
}

/// Reciprocal-rank fusion of the sources' hits (see the module docs).
pub(crate) fn fuse(sources: &[SourceHits]) -> Vec<MergedHit> {
    // Key: database, entity, id (as JSON text).
    let mut merged: Vec<MergedHit> = Vec::new();
    let mut at: BTreeMap<(String, &'static str, String), usize> = BTreeMap::new();
    for s in sources.iter().filter(|s| s.status == SourceStatus::Ok) {
        for h in &s.hits {
            let key = (s.database.clone(), s.entity, h.id.to_string());
            let add = 1.0 / (RRF_K + h.rank as f64);
            match at.get(&key) {
                Some(&i) => merged[i].score += add,
                None => {
                    at.insert(key, merged.len());
                    merged.push(MergedHit {
                        source: s.source.clone(),
                        id: h.id.clone(),
                        score: add,
                        document: h.document.clone(),
                    });
                }
            }
        }
    }
    // Stable: equal scores keep source order, then rank.
    merged.sort_by(|a, b| b.score.total_cmp(&a.score));
    merged
}

/// The text rule of a text source: every word of the text required, each
/// taken as written (`simple`: no stop words, no stemming; a word with
/// inner punctuation is a phrase), scored by the substring rules of
/// [`persistence_core::text`] (how often the words occur in the fields).
pub(crate) fn text_rule(words: &[String]) -> ParsedQuery {
    ParsedQuery::every(TextLanguage::Simple, words.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, entity: &'static str, ids: &[i64]) -> SourceHits {
        SourceHits {
            source: name.into(),
            database: "db".into(),
            entity,
            mode: Some("text"),
            status: SourceStatus::Ok,
            error: None,
            hits: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Hit {
                    id: (*id).into(),
                    rank: i + 1,
                    score: 0.0,
                    document: serde_json::json!({ "id": id }),
                })
                .collect(),
            elapsed_ms: 0.0,
        }
    }

    #[test]
    fn fusion_adds_ranks_of_the_same_row_and_keeps_ties_in_source_order() {
        let a = src("a", "books", &[1, 2, 3]);
        let b = src("b", "books", &[3, 4]);
        let c = src("c", "reviews", &[1]);
        let m = fuse(&[a, b, c]);
        let order: Vec<(String, i64)> = m
            .iter()
            .map(|h| (h.source.clone(), h.id.as_i64().unwrap_or_default()))
            .collect();
        // books 3: 1/63 + 1/61 beats books 1 (1/61), which ties reviews 1
        // (1/61, later source).
        assert_eq!(
            order,
            [
                ("a".to_string(), 3),
                ("a".to_string(), 1),
                ("c".to_string(), 1),
                ("a".to_string(), 2),
                ("b".to_string(), 4),
            ]
        );
        assert!((m[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-12);
    }

    #[test]
    fn text_rule_needs_every_word_and_counts_occurrences() {
        let w = vec!["rust".to_string(), "async".to_string()];
        let q = text_rule(&w);
        assert!(q.matches_substring("Async Rust rust in practice"));
        assert!(!q.matches_substring("Rust only"));
        assert_eq!(q.score_substring("Async Rust rust in practice"), 3.0);
        // Words are taken as written: `or` and `-x` are words, not operators.
        let q = text_rule(&["or".to_string(), "-x".to_string()]);
        assert!(q.matches_substring("this or x"));
        assert!(!q.matches_substring("this x"));
    }

    #[test]
    fn requests_are_checked() {
        assert!(SearchRequest::default().check().is_err());
        assert!(SearchRequest::text("   ").check().is_err());
        assert!(SearchRequest::text("a ".repeat(17)).check().is_err());
        assert!(SearchRequest::text("x".repeat(2000)).check().is_err());
        assert!(SearchRequest::text("ok").limit("s", 0).check().is_err());
        assert!(
            SearchRequest::text("ok")
                .deadline(Duration::ZERO)
                .check()
                .is_err()
        );
        assert!(SearchRequest::text("ok").check().is_ok());
    }
}
