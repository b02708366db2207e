//! Queries: filter, sort, limit/offset, and keyset (cursor) pagination.
//!
//! Keyset pagination is implemented once, here, in terms of the filter AST:
//! [`Query::keyset`] turns a query plus a [`Cursor`] into an ordinary query
//! whose filter selects the rows after the cursor. Every backend therefore
//! pages the same way, and a cursor is stable under concurrent inserts: rows
//! inserted before the cursor position are not seen, rows after it are, and
//! no row is returned twice.

use std::hash::{Hash, Hasher};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::entity::{Entity, EntityMeta, FieldType};
use crate::error::{Error, Result};
use crate::filter::{CompareOp, FieldPath, Filter};
use crate::value::{Record, Value};

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending (null first).
    Asc,
    /// Descending (null last).
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SortKey {
    /// Field path.
    pub field: FieldPath,
    /// Direction.
    pub direction: Direction,
}

/// A query: filter, sort keys, limit and offset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// The filter (`Filter::all()` by default).
    pub filter: Filter,
    /// Sort keys, most significant first. The id is always appended as the final tie-breaker.
    pub sort: Vec<SortKey>,
    /// At most this many results (for `page`: the page size).
    pub limit: Option<u64>,
    /// Skip this many results.
    pub offset: u64,
}

/// Default page size for [`crate::Repository::page`] when the query has no limit.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest accepted page size / limit for pages.
pub const MAX_PAGE_SIZE: u64 = 10_000;

impl Query {
    /// Everything.
    pub fn all() -> Query {
        Query::default()
    }
    /// Rows matching `filter`.
    pub fn filter(filter: Filter) -> Query {
        Query {
            filter,
            ..Query::default()
        }
    }
    /// Add a sort key (call again for secondary keys).
    pub fn sort(mut self, key: SortKey) -> Query {
        self.sort.push(key);
        self
    }
    /// Limit the number of results.
    pub fn limit(mut self, limit: u64) -> Query {
        self.limit = Some(limit);
        self
    }
    /// Skip results.
    pub fn offset(mut self, offset: u64) -> Query {
        self.offset = offset;
        self
    }
    /// See soft-deleted rows too (see [`Filter::with_deleted`]).
    pub fn with_deleted(mut self) -> Query {
        self.filter = std::mem::take(&mut self.filter).with_deleted();
        self
    }
    /// See only soft-deleted rows (see [`Filter::only_deleted`]).
    pub fn only_deleted(mut self) -> Query {
        self.filter = std::mem::take(&mut self.filter).only_deleted();
        self
    }
    /// Narrow the filter.
    pub fn and(mut self, filter: Filter) -> Query {
        self.filter = std::mem::take(&mut self.filter).and(filter);
        self
    }

    /// Validate against the entity and normalize: filter checked, sort paths
    /// checked, the id appended as final ascending tie-breaker (unless already a key).
    pub fn checked(&self, meta: &EntityMeta) -> Result<Query> {
        let filter = self.filter.checked(meta)?;
        let mut sort = Vec::with_capacity(self.sort.len() + 1);
        for k in &self.sort {
            let r = meta.resolve_path(&k.field)?;
            if matches!(r.ty(meta), FieldType::Array(_))
                || (r.rest.is_empty() && r.ty(meta) == FieldType::Json)
            {
                return Err(Error::invalid_input(format!(
                    "cannot sort on `{}`: arrays and whole JSON fields have no order",
                    k.field
                )));
            }
            if !sort.iter().any(|s: &SortKey| s.field == k.field) {
                sort.push(k.clone());
            }
        }
        let id = meta.id_field().name;
        if !sort.iter().any(|s| s.field == id) {
            sort.push(SortKey {
                field: FieldPath::Borrowed(id),
                direction: Direction::Asc,
            });
        }
        Ok(Query {
            filter,
            sort,
            limit: self.limit,
            offset: self.offset,
        })
    }

    /// Plan one page: a checked query selecting `limit + 1` rows after `cursor`.
    /// Returns the query and the page size. Used by [`crate::Repository::page`].
    pub fn keyset(&self, meta: &EntityMeta, cursor: Option<&Cursor>) -> Result<(Query, u64)> {
        if self.offset != 0 {
            return Err(Error::invalid_input(
                "page() uses cursors; offset must be 0",
            ));
        }
        let size = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(Error::invalid_input(format!(
                "page size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        let mut q = self.checked(meta)?;
        if let Some(c) = cursor {
            let after = c.decode(meta, &q.sort)?;
            q.filter = q.filter.and(after);
        }
        q.limit = Some(size + 1);
        Ok((q, size))
    }
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<E> {
    /// The rows of this page.
    pub items: Vec<E>,
    /// The cursor to pass for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// An opaque position in a sorted result: the last row's sort-key values.
/// Safe to hand to clients (URL-safe base64); a tampered or mismatched cursor
/// is rejected with `InvalidInput`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// Wrap a token received from a client.
    pub fn from_token(token: impl Into<String>) -> Cursor {
        Cursor(token.into())
    }
    /// The token to send to a client.
    pub fn token(&self) -> &str {
        &self.0
    }

    /// The cursor after `last` for a checked query's sort keys.
    pub fn after<E: Entity>(last: &E, sort: &[SortKey]) -> Result<Cursor> {
        let meta = E::meta();
        let record = Record::from_entity(last)?;
        let mut values = Vec::with_capacity(sort.len());
        for k in sort {
            let path = meta.resolve_path(&k.field)?;
            values.push(record.get_path(meta, &path).to_json());
        }
        let body = serde_json::json!({ "s": sort_fingerprint(sort), "v": values });
        Ok(Cursor(URL_SAFE_NO_PAD.encode(body.to_string())))
    }

    /// Decode into the filter selecting rows strictly after this position.
    fn decode(&self, meta: &EntityMeta, sort: &[SortKey]) -> Result<Filter> {
        let bad = || Error::invalid_input("invalid or expired page cursor");
        if self.0.len() > 64 * 1024 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| bad())?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if body.get("s").and_then(serde_json::Value::as_u64) != Some(sort_fingerprint(sort)) {
            return Err(Error::invalid_input(
                "page cursor belongs to a different sort order",
            ));
        }
        let Some(values) = body.get("v").and_then(serde_json::Value::as_array) else {
            return Err(bad());
        };
        if values.len() != sort.len() {
            return Err(bad());
        }
        let mut typed = Vec::with_capacity(values.len());
        for (k, v) in sort.iter().zip(values) {
            let ty = meta.resolve_path(&k.field)?.ty(meta);
            let v = Value::from_json(v.clone());
            let v = if ty == FieldType::Json {
                v
            } else {
                v.normalize(ty).map_err(|_| bad())?
            };
            typed.push(v);
        }
        // after(k1..kn) = OR_i ( k1 = v1 AND ... AND k(i-1) = v(i-1) AND k_i beyond v_i )
        let mut alternatives = Vec::with_capacity(sort.len());
        for i in 0..sort.len() {
            let mut conj: Vec<Filter> = (0..i)
                .map(|j| equal_to(&sort[j].field, &typed[j]))
                .collect();
            conj.push(beyond(&sort[i], &typed[i]));
            alternatives.push(Filter::And(conj));
        }
        Ok(Filter::Or(alternatives))
    }
}

fn equal_to(field: &FieldPath, v: &Value) -> Filter {
    if v.is_null() {
        Filter::IsNull(field.clone())
    } else {
        Filter::Compare {
            field: field.clone(),
            op: CompareOp::Eq,
            value: v.clone(),
        }
    }
}

/// Rows strictly after `v` in the key's direction (null is lowest).
fn beyond(key: &SortKey, v: &Value) -> Filter {
    let field = key.field.clone();
    match (key.direction, v.is_null()) {
        (Direction::Asc, true) => Filter::IsNotNull(field),
        (Direction::Asc, false) => Filter::Compare {
            field,
            op: CompareOp::Gt,
            value: v.clone(),
        },
        (Direction::Desc, true) => Filter::none(),
        (Direction::Desc, false) => Filter::Or(vec![
            Filter::Compare {
                field: field.clone(),
                op: CompareOp::Lt,
                value: v.clone(),
            },
            Filter::IsNull(field),
        ]),
    }
}

fn sort_fingerprint(sort: &[SortKey]) -> u64 {
    let mut h = crate::entity::StableHasher::default();
    sort.hash(&mut h);
    // Keep within JSON's exact integer range.
    h.finish() >> 11
}

/// Finish a page from `limit + 1` fetched rows.
pub fn finish_page<E: Entity>(mut rows: Vec<E>, size: u64, sort: &[SortKey]) -> Result<Page<E>> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let next = if rows.len() > size {
        rows.truncate(size);
        match rows.last() {
            Some(last) => Some(Cursor::after(last, sort)?),
            None => None,
        }
    } else {
        None
    };
    Ok(Page { items: rows, next })
}
