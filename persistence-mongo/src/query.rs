//! The core [`Filter`] AST → a MongoDB query document.
//!
//! Safety: every value is converted to a BSON value ([`crate::codec::to_bson`])
//! and placed under an operator this module chose, so a user value such as
//! `{"$gt": ""}` or `"$where"` is only ever compared literally. Field names
//! come from the entity metadata; nested segments were validated by
//! [`EntityMeta::resolve_path`] (no `$`, no empty segment, no NUL or `.`).
//! `starts_with`/`contains` and `like` patterns escape every regex
//! metacharacter of their literal text ([`pattern_regex`]).
//!
//! Semantics follow the reference backend (`persistence_core::memory`):
//! * Top-level scalar fields have one stored BSON type, so the native
//!   operators already behave like the reference (type bracketing keeps
//!   null out of `$lt`/`$gt`/`$eq`, `$ne`/`$nin` match null).
//! * Inside JSON fields the reference resolves a path through objects only
//!   and never compares arrays element-wise, while MongoDB traverses arrays.
//!   Every prefix of a nested path is therefore required to be a non-array
//!   sub-document, and the addressed value to be a non-array, before an
//!   operator is applied; negations (`ne`, `not_in`, `not`, `is_null`) are
//!   `$nor` of the positive form, so they are exact two-valued complements.
//!
//! `-0.0` equals `0.0` in MongoDB as in the reference (IEEE equality).
//! Known differences to the reference, all outside what the conformance
//! suite fixes: `NaN` sorts below every number in MongoDB (above, in the reference);
//! sorting on a nested path that holds an array uses MongoDB's rule (the
//! smallest element ascending, the largest descending) where the reference
//! compares the array as a whole; objects inside JSON fields compare in
//! stored key order (which is sorted, as the reference's).

use bson::{Bson, Document, doc};
use persistence_core::entity::TextSearch;
use persistence_core::filter::{CompareOp, Pattern, PatternPart};
use persistence_core::query::{Direction, SortKey};
use persistence_core::text::ParsedQuery;
use persistence_core::{EntityMeta, FieldType, Filter, Result, Value};

use crate::codec::{stored_name, to_bson};

/// A resolved path: the stored dotted key, its type, the stored prefixes of a nested path.
struct Path {
    key: String,
    ty: FieldType,
    /// `Json`-typed path (the field itself or inside it): needs array guards.
    json: bool,
    /// Stored keys of every proper prefix that must be a (non-array) sub-document.
    prefixes: Vec<String>,
    /// An `#[entity(object_id)]` field: values compare as ObjectIds.
    object_id: bool,
}

fn path(meta: &EntityMeta, p: &str) -> Result<Path> {
    let r = meta.resolve_path(p)?;
    let mut key = stored_name(meta, r.index).to_string();
    let mut prefixes = Vec::with_capacity(r.rest.len());
    for seg in &r.rest {
        prefixes.push(key.clone());
        key.push('.');
        key.push_str(seg);
    }
    let ty = r.ty(meta);
    Ok(Path {
        key,
        ty,
        json: ty == FieldType::Json,
        prefixes,
        object_id: r.rest.is_empty() && meta.object_ids.contains(&r.index),
    })
}

/// The conjunction of `parts`, merged into one document when that is
/// equivalent (the form index selection handles best): disjoint keys, or the
/// same field with disjoint operators (`{a: {$gte: 1}}`, `{a: {$lte: 5}}`).
/// Anything else stays `{ $and: [...] }`.
fn all_of(parts: Vec<Document>) -> Document {
    match parts.len() {
        0 => return Document::new(),
        1 => return parts.into_iter().next().unwrap_or_default(),
        _ => {}
    }
    let operators = |d: &Document| d.keys().all(|k| k.starts_with('$'));
    let mut merged = Document::new();
    for part in &parts {
        for (k, v) in part {
            match (merged.get_mut(k), v) {
                (None, _) => {
                    merged.insert(k.clone(), v.clone());
                }
                (Some(Bson::Document(have)), Bson::Document(add))
                    if !k.starts_with('$')
                        && operators(have)
                        && operators(add)
                        && add.keys().all(|op| !have.contains_key(op)) =>
                {
                    have.extend(add.clone());
                }
                _ => return doc! { "$and": parts },
            }
        }
    }
    merged
}

fn nor(d: Document) -> Document {
    doc! { "$nor": [d] }
}

/// Matches no document.
pub(crate) fn nothing() -> Document {
    doc! { "_id": { "$in": [] } }
}

impl Path {
    fn value(&self, v: &Value) -> Result<Bson> {
        match v {
            Value::String(hex) if self.object_id => crate::codec::object_id(hex),
            v => to_bson(v, self.ty),
        }
    }

    /// Guards making a JSON path resolve like the reference: every prefix is
    /// a sub-document (not an array of them).
    fn guards(&self) -> Vec<Document> {
        self.prefixes
            .iter()
            .map(|p| doc! { p.clone(): { "$type": "object", "$not": { "$type": "array" } } })
            .collect()
    }

    /// `{key: {op...}}` with, on JSON paths, the prefix guards and a non-array leaf.
    fn leaf(&self, mut ops: Document) -> Document {
        if !self.json {
            return doc! { self.key.clone(): ops };
        }
        ops.insert("$not", doc! { "$type": "array" });
        let mut parts = self.guards();
        parts.push(doc! { self.key.clone(): ops });
        all_of(parts)
    }

    fn is_not_null(&self) -> Document {
        if !self.json {
            return doc! { self.key.clone(): { "$ne": Bson::Null } };
        }
        let mut parts = self.guards();
        parts.push(doc! { "$or": [
            { self.key.clone(): { "$type": "array" } },
            { self.key.clone(): { "$exists": true, "$not": { "$type": "null" } } },
        ] });
        all_of(parts)
    }
}

/// Translate a *checked* filter (see [`Filter::checked`]).
pub fn to_query(meta: &EntityMeta, filter: &Filter) -> Result<Document> {
    Ok(match filter {
        Filter::And(fs) => all_of(
            fs.iter()
                .map(|f| to_query(meta, f))
                .collect::<Result<_>>()?,
        ),
        Filter::Or(fs) => match fs.len() {
            0 => nothing(),
            1 => to_query(meta, &fs[0])?,
            _ => {
                let parts: Vec<Document> = fs
                    .iter()
                    .map(|f| to_query(meta, f))
                    .collect::<Result<_>>()?;
                doc! { "$or": parts }
            }
        },
        Filter::Not(f) => nor(to_query(meta, f)?),
        Filter::Compare { field, op, value } => {
            let p = path(meta, field)?;
            let v = p.value(value)?;
            let name = match op {
                CompareOp::Eq | CompareOp::Ne => "$eq",
                CompareOp::Lt => "$lt",
                CompareOp::Lte => "$lte",
                CompareOp::Gt => "$gt",
                CompareOp::Gte => "$gte",
            };
            match (op, p.json) {
                (CompareOp::Ne, false) => doc! { p.key: { "$ne": v } },
                (CompareOp::Ne, true) => nor(p.leaf(doc! { "$eq": v })),
                _ => p.leaf(doc! { name: v }),
            }
        }
        Filter::In { field, values } => {
            if values.is_empty() {
                return Ok(nothing());
            }
            let p = path(meta, field)?;
            let vs: Vec<Bson> = values.iter().map(|v| p.value(v)).collect::<Result<_>>()?;
            p.leaf(doc! { "$in": vs })
        }
        Filter::NotIn { field, values } => {
            if values.is_empty() {
                return Ok(Document::new());
            }
            let p = path(meta, field)?;
            let vs: Vec<Bson> = values.iter().map(|v| p.value(v)).collect::<Result<_>>()?;
            if p.json {
                nor(p.leaf(doc! { "$in": vs }))
            } else {
                doc! { p.key: { "$nin": vs } }
            }
        }
        Filter::IsNull(field) => {
            let p = path(meta, field)?;
            if p.json {
                nor(p.is_not_null())
            } else {
                doc! { p.key: { "$eq": Bson::Null } }
            }
        }
        Filter::IsNotNull(field) => path(meta, field)?.is_not_null(),
        Filter::StartsWith { field, prefix } => {
            let p = path(meta, field)?;
            p.leaf(doc! { "$type": "string", "$regex": format!("^{}", regex_escape(prefix)) })
        }
        Filter::Contains { field, substring } => {
            let p = path(meta, field)?;
            p.leaf(doc! { "$type": "string", "$regex": regex_escape(substring) })
        }
        Filter::Like { field, pattern } => {
            let p = path(meta, field)?;
            if let (Some(lit), false) = (pattern.as_literal(), pattern.is_ignore_case()) {
                return Ok(p.leaf(doc! { "$eq": lit }));
            }
            let options = if pattern.is_ignore_case() { "i" } else { "" };
            p.leaf(doc! {
                "$type": "string",
                "$regex": pattern_regex(pattern),
                "$options": options,
            })
        }
        Filter::ArrayContains { field, value } => {
            let p = path(meta, field)?;
            let elem = match p.ty {
                FieldType::Array(s) => FieldType::Scalar(s),
                other => other,
            };
            let v = to_bson(value, elem)?;
            let cond = doc! { p.key.clone(): { "$elemMatch": { "$eq": v } } };
            if p.json {
                let mut parts = p.guards();
                parts.push(cond);
                all_of(parts)
            } else {
                cond
            }
        }
        Filter::MatchesText(text) => matches_text(meta, text)?,
        // The condition it stands for is next to it in a checked filter.
        Filter::Scope(_) => Document::new(),
        Filter::Invalid(msg) => {
            return Err(persistence_core::Error::invalid_input(msg.clone()));
        }
    })
}

/// Escape a literal for a PCRE pattern: every ASCII character that is not a
/// letter or digit is backslash-escaped (always literal in PCRE), NUL becomes `\x00`.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c == '\0' {
            out.push_str("\\x00");
        } else if c.is_ascii() && !c.is_ascii_alphanumeric() && !c.is_ascii_control() && c != ' ' {
            out.push('\\');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// An escape-safe [`Pattern`] as an anchored regex: literal parts escaped
/// by [`regex_escape`], `any()` as `[\s\S]*` and `one()` as `[\s\S]`
/// (any code point, newlines too, without relying on the `s` option), and
/// the end anchored by `(?![\s\S])` (`$` would also match before a final
/// newline; PCRE's `\z` is not Python's). With the `i` option for
/// ignore-case patterns: PCRE's (and the test server's) caseless matching
/// folds Unicode letters one character at a time.
pub fn pattern_regex(pattern: &Pattern) -> String {
    let mut out = String::from("^");
    for part in pattern.parts() {
        match part {
            PatternPart::Literal(s) => out.push_str(&regex_escape(s)),
            PatternPart::Any => out.push_str("[\\s\\S]*"),
            PatternPart::One => out.push_str("[\\s\\S]"),
        }
    }
    out.push_str("(?![\\s\\S])");
    out
}

/// The sort document of a checked query (nulls sort lowest in MongoDB too).
pub fn to_sort(meta: &EntityMeta, sort: &[SortKey]) -> Result<Document> {
    let mut d = Document::new();
    for k in sort {
        let p = path(meta, &k.field)?;
        let dir = match k.direction {
            Direction::Asc => 1,
            Direction::Desc => -1,
        };
        d.insert(p.key, dir);
    }
    Ok(d)
}

/// Between the words of a phrase: one or more non-letter, non-digit characters.
pub(crate) const GAP: &str = "[\\W_]+";

/// The `$regex` of an atom's words.
pub(crate) fn atom_regex(words: &[String]) -> String {
    words
        .iter()
        .map(|w| regex_escape(w))
        .collect::<Vec<_>>()
        .join(GAP)
}

/// The query document of a parsed search over the text-search fields
/// (`None`: nothing can match).
pub(crate) fn regex_query(meta: &EntityMeta, ts: &TextSearch, q: &ParsedQuery) -> Option<Document> {
    if q.is_empty() {
        return None;
    }
    let clauses: Vec<Document> = q
        .clauses
        .iter()
        .map(|c| {
            let atoms: Vec<Document> = c
                .iter()
                .map(|a| {
                    let re = atom_regex(&a.words);
                    let any: Vec<Document> = ts
                        .fields
                        .iter()
                        .map(|&i| {
                            doc! { stored_name(meta, i): { "$regex": re.clone(), "$options": "i" } }
                        })
                        .collect();
                    if a.negated {
                        doc! { "$nor": any }
                    } else {
                        doc! { "$or": any }
                    }
                })
                .collect();
            doc! { "$or": atoms }
        })
        .collect();
    Some(doc! { "$and": clauses })
}

/// `matches_text` of the entity: the substring query, or `InvalidInput`.
pub(crate) fn matches_text(meta: &EntityMeta, text: &str) -> Result<Document> {
    let ts = meta.text.as_ref().ok_or_else(|| {
        persistence_core::Error::invalid_input(format!(
            "matches_text: {} has no #[entity(text_search)] field",
            meta.name
        ))
    })?;
    let q = ParsedQuery::parse(ts.language, text)?;
    Ok(regex_query(meta, ts, &q).unwrap_or_else(nothing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conjunctions_merge_only_when_equivalent() {
        let merged = all_of(vec![
            doc! { "a": { "$gte": 1 } },
            doc! { "a": { "$lte": 5 } },
            doc! { "b": 2 },
        ]);
        assert_eq!(merged, doc! { "a": { "$gte": 1, "$lte": 5 }, "b": 2 });
        let kept = all_of(vec![doc! { "a": { "$ne": 1 } }, doc! { "a": { "$ne": 2 } }]);
        assert_eq!(
            kept,
            doc! { "$and": [{ "a": { "$ne": 1 } }, { "a": { "$ne": 2 } }] }
        );
        let kept = all_of(vec![doc! { "a": 1 }, doc! { "a": { "$lt": 2 } }]);
        assert!(kept.contains_key("$and"));
        let kept = all_of(vec![
            doc! { "$or": [{ "a": 1 }] },
            doc! { "$or": [{ "b": 1 }] },
        ]);
        assert!(kept.contains_key("$and"));
    }

    #[test]
    fn escapes_metacharacters() {
        assert_eq!(regex_escape("a.b*c"), "a\\.b\\*c");
        assert_eq!(
            regex_escape("^$\\[](){}|?+"),
            "\\^\\$\\\\\\[\\]\\(\\)\\{\\}\\|\\?\\+"
        );
        assert_eq!(regex_escape("é x\0"), "é x\\x00");
        let p = Pattern::new().literal("a%_\\").any().literal(".").one();
        assert_eq!(
            pattern_regex(&p),
            "^a\\%\\_\\\\[\\s\\S]*\\.[\\s\\S](?![\\s\\S])"
        );
    }
}
