//! Full-text search over `#[entity(text_search)]` fields (issue #17).
//!
//! Declare one or more `String` fields searchable (`#[entity(text_search)]`,
//! or `#[entity(text_search(language = "simple"))]`; one language per
//! entity), then search them:
//!
//! ```ignore
//! let hits: Vec<(Article, f64)> = articles
//!     .search_text("\"vector search\" postgres -mongo")
//!     .filter(Article::LANG.eq("en"))
//!     .limit(10)
//!     .await?;
//! // or as a filter that composes with any other:
//! let rows = articles.find(&Query::filter(
//!     Filter::matches_text("postgres").and(Article::YEAR.gte(2020)))).await?;
//! ```
//!
//! **The rules, written once here** and applied by every backend:
//! * **Search strings** follow PostgreSQL's `websearch_to_tsquery`
//!   ([`ParsedQuery`]): words are AND-ed, `"a phrase"` needs its words in
//!   sequence, `or` between two items accepts either, `-item` excludes.
//!   Any other character only separates words: no input is a syntax
//!   error, and the string is never passed to a query language as it is
//!   (SQLite gets a `MATCH` expression rebuilt from the parsed words,
//!   bound as a parameter; PostgreSQL gets the string as a bound
//!   parameter of `websearch_to_tsquery`; MongoDB's fallback escapes each
//!   word in its `$regex`). At most [`MAX_QUERY_LEN`] bytes and
//!   [`MAX_ITEMS`] items (`InvalidInput` beyond).
//! * **Words** ([`Document`]): maximal runs of letters and digits,
//!   lowercased; the fields are searched as one text (joined by a space).
//!   Language `english` drops PostgreSQL's English stop words (from the
//!   text and the query: a query of stop words only matches nothing) and
//!   stems with Snowball English (`running` → `run`, `databases` →
//!   `databas`); `simple` keeps every word as it is.
//! * **Results** of [`TextQuery`] are `(entity, score)` pairs, most
//!   relevant first, ties by id; only matching rows, filtered by the
//!   query's filter (pre-filter), at most `limit`. Scores are relevance
//!   values comparable within one answer only: `ts_rank` on PostgreSQL,
//!   `-bm25()` on SQLite, the term frequency ([`ParsedQuery::score`]) on
//!   memory and MongoDB.
//!
//! **Backends.** Memory applies these rules directly. PostgreSQL: a
//! generated `tsvector` column plus GIN index on tables the library
//! creates, `to_tsvector` computed in the query on tables it did not
//! create; Snowball English is PostgreSQL's `english` stemmer. SQLite: an
//! FTS5 table kept by triggers; its `porter` tokenizer is the original
//! Porter stemmer, which differs from Snowball English on some words
//! (`generously`, `fairly`, words ending in `-li`/`-ly`): match sets can
//! differ there. MongoDB: `$text` needs a text index, which some servers
//! refuse (the test server answers code 67); there, and for
//! `Filter::matches_text` everywhere, each word is an escaped,
//! case-insensitive substring (`$regex`) of the fields: no stemming (`run`
//! does not find `ran` but does find `running`), stop words still dropped,
//! phrases as words separated by non-word characters. Where the index
//! exists, `find_text` uses `$text` (MongoDB's stemmer and stop words).
//! MongoDB reports [`Capabilities::native_text_search`](crate::Capabilities)
//! `false` either way, and [`Capabilities::text_index`](crate::Capabilities)
//! says whether the index answers.
//!
//! Known differences between PostgreSQL and the rules (none in the
//! conformance corpus): PostgreSQL's parser keeps some tokens whole
//! (`foo-bar` also yields `foo-bar`, e-mail addresses, URLs, version
//! numbers); FTS5 phrases do not span two fields, and match stop words
//! inside a phrase literally where PostgreSQL accepts any word.

use crate::entity::{Entity, EntityMeta, TextSearch};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::value::{Record, Value};

mod ext;
mod fallback;
mod parse;
mod tokenize;

pub use ext::{SearchText, TextSearchExt};
pub use parse::{Atom, MAX_ITEMS, MAX_QUERY_LEN, ParsedQuery};
pub use tokenize::{Document, is_stop_word, lexeme, words};

/// Largest `limit` a text query accepts.
pub const MAX_LIMIT: usize = 1000;

/// Default `limit` of a text query.
pub const DEFAULT_LIMIT: usize = 100;

/// A full-text query: the rows matching `filter` and the search string
/// `text`, most relevant first. Build it with [`TextSearchExt::search_text`]
/// or [`TextQuery::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct TextQuery {
    /// The search string (websearch syntax, see the module docs).
    pub text: String,
    /// Which rows are candidates (pre-filter).
    pub filter: Filter,
    /// How many rows at most.
    pub limit: usize,
}

/// A validated [`TextQuery`].
#[derive(Debug, Clone)]
pub struct CheckedText<'q> {
    /// The query.
    pub query: &'q TextQuery,
    /// The entity's text-search fields.
    pub fields: &'static TextSearch,
    /// The parsed search string.
    pub parsed: ParsedQuery,
    /// The filter after [`Filter::checked`] (scopes applied).
    pub filter: Filter,
}

/// The entity's text-search declaration, or `InvalidInput`.
pub fn text_fields(meta: &'static EntityMeta) -> Result<&'static TextSearch> {
    meta.text.as_ref().ok_or_else(|| {
        Error::invalid_input(format!(
            "{} has no #[entity(text_search)] field to search",
            meta.name
        ))
    })
}

impl TextQuery {
    /// The first [`DEFAULT_LIMIT`] rows matching `text`.
    pub fn new(text: impl Into<String>) -> TextQuery {
        TextQuery {
            text: text.into(),
            filter: Filter::all(),
            limit: DEFAULT_LIMIT,
        }
    }

    /// Only rows matching `filter` are candidates.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> TextQuery {
        self.filter = filter;
        self
    }

    /// At most `limit` rows (`1..=`[`MAX_LIMIT`]).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> TextQuery {
        self.limit = limit;
        self
    }

    /// Validate against the entity: text-search fields declared, limit in
    /// range, search string parsed, filter checked.
    pub fn checked(&self, meta: &'static EntityMeta) -> Result<CheckedText<'_>> {
        let fields = text_fields(meta)?;
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(Error::invalid_input(format!(
                "text search: limit must be 1..={MAX_LIMIT}, not {}",
                self.limit
            )));
        }
        let parsed = ParsedQuery::parse(fields.language, &self.text)?;
        let filter = self.filter.checked(meta)?;
        Ok(CheckedText {
            query: self,
            fields,
            parsed,
            filter,
        })
    }
}

/// The searched text of a record: its text-search fields, tokenized.
pub fn document(record: &Record, fields: &TextSearch) -> Document {
    Document::new(
        fields.language,
        fields.fields.iter().filter_map(|&i| match record.get(i) {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }),
    )
}

/// The searched text of a record for the substring rules: its text-search
/// fields joined by a space (null fields skipped).
pub fn joined_text(record: &Record, fields: &TextSearch) -> String {
    joined(record, &fields.fields)
}

/// The string values of `record` at `fields` (indexes in
/// [`EntityMeta::fields`]) joined by a space (null fields skipped).
fn joined(record: &Record, fields: &[usize]) -> String {
    fields
        .iter()
        .filter_map(|&i| match record.get(i) {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rank rows that already match the search by the substring rules
/// ([`ParsedQuery::score_substring`]): most occurrences first, ties by
/// id, at most `limit`. MongoDB's fallback ranks its `$regex` matches so.
pub fn rank_substring<E: Entity>(
    rows: impl IntoIterator<Item = E>,
    q: &CheckedText<'_>,
) -> Result<Vec<(E, f64)>> {
    rank_substring_in(rows, &q.parsed, &q.fields.fields, q.query.limit)
}

/// [`rank_substring`] over any string fields of `E` (`fields`: indexes in
/// [`EntityMeta::fields`]), not only its text-search ones: what the
/// manager's plain text search sources rank by.
pub fn rank_substring_in<E: Entity>(
    rows: impl IntoIterator<Item = E>,
    parsed: &ParsedQuery,
    fields: &[usize],
    limit: usize,
) -> Result<Vec<(E, f64)>> {
    let id = E::meta().id_index;
    let mut scored: Vec<(f64, Value, E)> = Vec::new();
    for row in rows {
        let mut record = Record::from_entity(&row)?;
        let score = parsed.score_substring(&joined(&record, fields));
        let key = std::mem::replace(&mut record.values[id], Value::Null);
        scored.push((score, key, row));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.total_cmp(&b.1)));
    scored.truncate(limit);
    Ok(scored.into_iter().map(|(s, _, e)| (e, s)).collect())
}

/// Rank candidate rows (already filtered by the query's filter, not yet by
/// its search string): keep the matching ones, most relevant first
/// ([`ParsedQuery::score`]), ties by id, at most `limit`. The brute-force
/// path of backends without an index.
pub fn rank_exact<E: Entity>(
    rows: impl IntoIterator<Item = E>,
    q: &CheckedText<'_>,
) -> Result<Vec<(E, f64)>> {
    let id = E::meta().id_index;
    let mut scored: Vec<(f64, Value, E)> = Vec::new();
    for row in rows {
        let mut record = Record::from_entity(&row)?;
        let doc = document(&record, q.fields);
        if !q.parsed.matches(&doc) {
            continue;
        }
        let key = std::mem::replace(&mut record.values[id], Value::Null);
        scored.push((q.parsed.score(&doc), key, row));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.total_cmp(&b.1)));
    scored.truncate(q.query.limit);
    Ok(scored.into_iter().map(|(s, _, e)| (e, s)).collect())
}
