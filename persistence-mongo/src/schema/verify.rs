//! `verify_schema` on MongoDB: the collection, its indexes and its
//! validator compared with the entity metadata (and the repository's
//! declared partial indexes and validation settings), read with
//! `listCollections` and `listIndexes` only. A server that refuses one of
//! them (SecantusDB lacks some) gives a "cannot verify" warning for that
//! part instead of an error. Severities: see [`persistence_core::drift`].
//!
//! Indexes are matched by name, else by keys (another application's name
//! for the same index). A unique index that is missing or differs (keys,
//! unique flag, partial filter) is an error, as is a live unique index
//! where the entity declares a plain one (it rejects documents the entity
//! allows); a missing or different plain index or TTL is a warning. A
//! missing validator is a warning; a validator that differs from the
//! generated one is an error (it may reject the entity's documents), with
//! the first differing path; a different level or action is a warning.

use bson::{Bson, Document, doc};
use mongodb::{Collection, IndexModel};
use persistence_core::drift::{Difference, DifferenceKind as K, SchemaReport, Severity};
use persistence_core::{EntityMeta, Result};

use crate::error::map_in;

use super::index::{PartialIndex, index_model};
use super::validator::{Validation, json_schema, validation_fields};

const OP: &str = "verify_schema";

/// The first batch of a cursor command's answer (`Ok(None)`: the server
/// refused the command, with its message).
async fn first_batch(
    db: &mongodb::Database,
    cmd: Document,
    meta: &EntityMeta,
) -> Result<std::result::Result<Vec<Document>, String>> {
    match db.run_command(cmd).await {
        Ok(reply) => Ok(Ok(reply
            .get_document("cursor")
            .ok()
            .and_then(|c| c.get_array("firstBatch").ok())
            .map(|b| b.iter().filter_map(Bson::as_document).cloned().collect())
            .unwrap_or_default())),
        Err(e) if matches!(*e.kind, mongodb::error::ErrorKind::Command(_)) => {
            Ok(Err(crate::error::map_plain(e).message().to_string()))
        }
        Err(e) => Err(map_in(e, meta, OP)),
    }
}

/// `verify_schema` of one collection.
pub(crate) async fn verify(
    coll: &Collection<Document>,
    meta: &EntityMeta,
    validation: Option<&Validation>,
    partial: &[PartialIndex],
) -> Result<SchemaReport> {
    let target = coll.namespace().to_string();
    let mut report = SchemaReport::new(meta.name, target.clone());
    let db = coll.client().database(coll.namespace().db.as_str());
    let cannot = |what: &str, why: String| {
        Difference::new(K::Unverifiable, &target, what, "a server that answers", why)
    };
    let listed = first_batch(
        &db,
        doc! { "listCollections": 1, "filter": { "name": coll.name() } },
        meta,
    )
    .await?;
    match listed {
        Err(why) => report.push(cannot("collection and validator", why)),
        Ok(found) => {
            let Some(spec) = found.into_iter().next() else {
                report.push(Difference::new(
                    K::MissingTable,
                    &target,
                    "",
                    format!("a collection for entity `{}`", meta.name),
                    "none",
                ));
                return Ok(report);
            };
            if spec.get_str("type") == Ok("view") {
                report.push(Difference::new(
                    K::MissingTable,
                    &target,
                    "",
                    format!("a collection for entity `{}`", meta.name),
                    "a view",
                ));
                return Ok(report);
            }
            if let Some(v) = validation {
                let options = spec.get_document("options").cloned().unwrap_or_default();
                validator_differences(&mut report, meta, v, &options);
            }
        }
    }
    let indexes = first_batch(&db, doc! { "listIndexes": coll.name() }, meta).await?;
    match indexes {
        Err(why) => report.push(cannot("indexes", why)),
        Ok(live) => {
            let mut wanted = Vec::new();
            for ix in &meta.indexes {
                wanted.push((ix.name.clone(), index_model(meta, ix)?));
            }
            for p in partial {
                wanted.push((p.name().to_string(), p.model(meta)?));
            }
            for (name, want) in &wanted {
                if let Some(d) = index_difference(&target, name, want, &live) {
                    report.push(d);
                }
            }
        }
    }
    Ok(report.sorted())
}

/// An index as compared: keys, unique, partial filter, TTL in seconds.
#[derive(Debug, PartialEq)]
struct Shape {
    keys: Document,
    unique: bool,
    partial: Option<Document>,
    ttl: Option<i64>,
}

impl Shape {
    fn of_model(m: &IndexModel) -> Shape {
        let o = m.options.clone().unwrap_or_default();
        Shape {
            keys: m.keys.clone(),
            unique: o.unique.unwrap_or(false),
            partial: o.partial_filter_expression,
            ttl: o
                .expire_after
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }

    fn of_live(d: &Document) -> Shape {
        Shape {
            keys: d.get_document("key").cloned().unwrap_or_default(),
            unique: d.get_bool("unique").unwrap_or(false),
            partial: d.get_document("partialFilterExpression").ok().cloned(),
            ttl: d.get("expireAfterSeconds").and_then(number),
        }
    }

    fn same_keys(&self, other: &Shape) -> bool {
        first_difference(
            "",
            &Bson::from(self.keys.clone()),
            &Bson::from(other.keys.clone()),
        )
        .is_none()
            && self.keys.keys().eq(other.keys.keys())
    }

    fn same_partial(&self, other: &Shape) -> bool {
        let as_bson = |p: &Option<Document>| p.clone().map_or(Bson::Null, Bson::from);
        first_difference("", &as_bson(&self.partial), &as_bson(&other.partial)).is_none()
    }

    fn describe(&self) -> String {
        let mut s = self.keys.to_string();
        if self.unique {
            s.push_str(" unique");
        }
        if let Some(p) = &self.partial {
            s.push_str(&format!(" partial {p}"));
        }
        if let Some(t) = self.ttl {
            s.push_str(&format!(" ttl {t}s"));
        }
        s
    }
}

fn number(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        // Whole seconds as a double; fractions are truncated.
        Bson::Double(f) if f.is_finite() => Some(f.trunc() as i64),
        _ => None,
    }
}

/// A number of any BSON numeric type, as a float (for comparing values).
fn numeric(b: &Bson) -> Option<f64> {
    match b {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    }
}

fn index_difference(
    target: &str,
    name: &str,
    want: &IndexModel,
    live: &[Document],
) -> Option<Difference> {
    let want = Shape::of_model(want);
    let shapes: Vec<(Option<&str>, Shape)> = live
        .iter()
        .map(|d| (d.get_str("name").ok(), Shape::of_live(d)))
        .collect();
    let found = shapes
        .iter()
        .find(|(n, _)| *n == Some(name))
        .or_else(|| shapes.iter().find(|(_, s)| s.same_keys(&want)));
    let Some((_, have)) = found else {
        let kind = if want.unique {
            K::MissingUnique
        } else {
            K::MissingIndex
        };
        return Some(Difference::new(kind, target, name, want.describe(), "none"));
    };
    let structural =
        !have.same_keys(&want) || have.unique != want.unique || !have.same_partial(&want);
    if !structural && have.ttl == want.ttl {
        return None;
    }
    let (kind, severity) = if want.unique {
        let s = if structural {
            Severity::Error
        } else {
            Severity::Warning
        };
        (K::UniqueDiffers, s)
    } else if have.unique {
        (K::IndexDiffers, Severity::Error)
    } else {
        (K::IndexDiffers, Severity::Warning)
    };
    Some(Difference::new(kind, target, name, want.describe(), have.describe()).severity(severity))
}

fn validator_differences(
    report: &mut SchemaReport,
    meta: &EntityMeta,
    v: &Validation,
    options: &Document,
) {
    let target = report.target.clone();
    let want = json_schema(meta);
    match options.get_document("validator") {
        Err(_) => report.push(Difference::new(
            K::ValidatorMissing,
            &target,
            "validator",
            "the $jsonSchema generated from the entity",
            "none",
        )),
        Ok(have) => {
            if let Some(diff) = first_difference("", &Bson::from(want), &Bson::from(have.clone())) {
                report.push(Difference::new(
                    K::ValidatorDiffers,
                    &target,
                    "validator",
                    "the $jsonSchema generated from the entity",
                    diff,
                ));
            }
        }
    }
    for (key, want) in validation_fields(v) {
        // The server's defaults apply when the option is absent.
        let default = if key == "validationLevel" {
            "strict"
        } else {
            "error"
        };
        let have = options.get_str(&key).unwrap_or(default);
        if want.as_str() != Some(have) {
            report.push(
                Difference::new(
                    K::ValidatorDiffers,
                    &target,
                    key,
                    want.as_str().unwrap_or_default().to_string(),
                    have,
                )
                .severity(Severity::Warning),
            );
        }
    }
}

/// Where `have` first differs from `want` (numbers compared by value, key
/// order ignored), in words: `` `path`: expected X, found Y ``.
fn first_difference(path: &str, want: &Bson, have: &Bson) -> Option<String> {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (want, have) {
        (Bson::Document(w), Bson::Document(h)) => {
            for (k, wv) in w {
                match h.get(k) {
                    None => return Some(format!("`{}` missing (expected {wv})", at(k))),
                    Some(hv) => {
                        if let Some(d) = first_difference(&at(k), wv, hv) {
                            return Some(d);
                        }
                    }
                }
            }
            h.keys()
                .find(|k| !w.contains_key(*k))
                .map(|k| format!("`{}` not expected", at(k)))
        }
        (Bson::Array(w), Bson::Array(h)) => {
            if w.len() != h.len() {
                return Some(format!("`{path}` = {have} (expected {want})"));
            }
            w.iter()
                .zip(h)
                .enumerate()
                .find_map(|(i, (a, b))| first_difference(&at(&i.to_string()), a, b))
        }
        _ => {
            let same = match (numeric(want), numeric(have)) {
                (Some(a), Some(b)) => a == b,
                _ => want == have,
            };
            (!same).then(|| format!("`{path}` = {have} (expected {want})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_difference;
    use bson::{Bson, doc};

    #[test]
    fn validators_compare_by_value() {
        let want = Bson::from(doc! { "a": { "bsonType": "long", "minimum": 1_i32 }, "r": ["a"] });
        let same = Bson::from(doc! { "r": ["a"], "a": { "minimum": 1_i64, "bsonType": "long" } });
        assert_eq!(first_difference("", &want, &same), None);
        let other = Bson::from(doc! { "a": { "bsonType": "int", "minimum": 1_i32 }, "r": ["a"] });
        assert_eq!(
            first_difference("", &want, &other).as_deref(),
            Some("`a.bsonType` = \"int\" (expected \"long\")")
        );
        let extra =
            Bson::from(doc! { "a": { "bsonType": "long", "minimum": 1_i32 }, "r": ["a"], "x": 1 });
        assert_eq!(
            first_difference("", &want, &extra).as_deref(),
            Some("`x` not expected")
        );
    }
}
