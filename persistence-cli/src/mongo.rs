//! Introspection of MongoDB collections: a sample of each collection's
//! documents (the first `sample` by `_id`, 100 by default, so the output is
//! the same every run), its `$jsonSchema` validator and its indexes.
//!
//! * **Fields**: the validator's `properties` first (in its order), then
//!   keys seen in the sample (in order of first appearance). A field is an
//!   `Option` when the validator does not require it, or, without a
//!   validator entry, when a sampled document lacks it or holds null.
//! * **Types**: the validator's `bsonType` when it names one, else the
//!   types seen: `objectId` a `String` with `#[entity(object_id)]`,
//!   `string`, `int` `i32`, `long` (or int and long) `i64`, `double` (or
//!   with integers) `f64`, `decimal` `Decimal`, `bool`, `date`
//!   `DateTime<Utc>`, UUID binary `Uuid`, other binary `Vec<u8>`, arrays
//!   of one scalar type `Vec<_>`, sub-documents and mixed types
//!   `serde_json::Value`.
//! * **Id**: `_id`; an ObjectId or UUID id is `generated` (the repository
//!   makes a new one on insert when it is unset).
//! * **Indexes**: ascending key indexes, unique or not, become `index` /
//!   `unique` (the entity declares ascending keys only); descending, text,
//!   geo, hashed, TTL and partial indexes (but the library's own "field is
//!   set" partial uniques) are notes. MongoDB declares no references: no
//!   relations are generated.
//! * Arrays seen only empty are `Vec<String>`.

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use persistence_core::{Error, Result};
use persistence_mongo::MongoStore;
use persistence_mongo::error::map_plain;

use crate::model::{Column, ColumnType, Index, Schema, Table};

/// Documents sampled per collection unless `--sample` says otherwise.
pub const DEFAULT_SAMPLE: usize = 100;

/// What was seen of one key.
#[derive(Default)]
struct Seen {
    types: Vec<&'static str>,
    /// Element types of arrays.
    items: Vec<&'static str>,
    /// Documents that had it (not null).
    present: usize,
}

fn first_batch(reply: &Document) -> Vec<Document> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map(|b| b.iter().filter_map(|d| d.as_document().cloned()).collect())
        .unwrap_or_default()
}

/// The collections of the store's database (all, or those named in `only`).
pub async fn introspect(
    store: &MongoStore,
    only: &[String],
    sample: Option<usize>,
) -> Result<Schema> {
    let db = store.database();
    let mut names: Vec<String> = db
        .list_collection_names()
        .await
        .map_err(map_plain)?
        .into_iter()
        .filter(|n| !n.starts_with("system."))
        .collect();
    names.sort();
    for t in only {
        if !names.contains(t) {
            return Err(Error::invalid_input(format!(
                "no collection `{t}` in database `{}`",
                db.name()
            )));
        }
    }
    if !only.is_empty() {
        names.retain(|n| only.contains(n));
    }
    let limit = sample.unwrap_or(DEFAULT_SAMPLE);
    let mut out = Schema::default();
    for name in names {
        out.tables.push(collection(store, &name, limit).await?);
    }
    Ok(out)
}

async fn collection(store: &MongoStore, name: &str, limit: usize) -> Result<Table> {
    let db = store.database();
    let info = db
        .run_command(doc! { "listCollections": 1, "filter": { "name": name } })
        .await
        .map_err(map_plain)?;
    let schema = first_batch(&info)
        .into_iter()
        .next()
        .and_then(|c| c.get_document("options").ok().cloned())
        .and_then(|o| o.get_document("validator").ok().cloned())
        .and_then(|v| v.get_document("$jsonSchema").ok().cloned());
    let docs: Vec<Document> = db
        .collection::<Document>(name)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .await
        .map_err(map_plain)?
        .try_collect()
        .await
        .map_err(map_plain)?;
    let mut order: Vec<String> = vec!["_id".into()];
    let (mut properties, mut required) = (Document::new(), Vec::new());
    if let Some(s) = &schema {
        properties = s.get_document("properties").cloned().unwrap_or_default();
        required = s
            .get_array("required")
            .map(|a| {
                a.iter()
                    .filter_map(Bson::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        order.extend(properties.keys().filter(|k| *k != "_id").cloned());
    }
    let mut seen: Vec<(String, Seen)> = Vec::new();
    for d in &docs {
        for (k, v) in d {
            if !order.contains(k) {
                order.push(k.clone());
            }
            let i = match seen.iter().position(|(n, _)| n == k) {
                Some(i) => i,
                None => {
                    seen.push((k.clone(), Seen::default()));
                    seen.len() - 1
                }
            };
            let s = &mut seen[i].1;
            if matches!(v, Bson::Null) {
                continue;
            }
            s.present += 1;
            push(&mut s.types, alias(v));
            if let Bson::Array(items) = v {
                for item in items {
                    push(&mut s.items, alias(item));
                }
            }
        }
    }
    let mut t = Table {
        name: name.to_string(),
        columns: Vec::new(),
        primary_key: vec!["_id".into()],
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        notes: Vec::new(),
    };
    if docs.is_empty() && schema.is_none() {
        t.notes
            .push("empty and without a validator: only `_id` is known".into());
    }
    for key in order {
        let observed = seen.iter().find(|(n, _)| *n == key).map(|(_, s)| s);
        let declared = properties.get_document(&key).ok();
        let mut types: Vec<&'static str> = Vec::new();
        let mut items: Vec<&'static str> = Vec::new();
        let mut nullable = false;
        if let Some(p) = declared {
            for a in bson_types(p.get("bsonType")) {
                if a == "null" {
                    nullable = true;
                } else {
                    push(&mut types, a);
                }
            }
            if let Ok(i) = p.get_document("items") {
                for a in bson_types(i.get("bsonType")) {
                    push(&mut items, a);
                }
            }
            let optional = !required.contains(&key);
            if optional && !nullable && !types.is_empty() {
                t.notes.push(format!(
                    "`{key}`: optional in the validator but null is not among its types; \
                     the entity writes null for None, which the validator refuses: set it"
                ));
            }
            nullable |= optional;
        }
        if types.is_empty() {
            if let Some(s) = observed {
                types = s.types.clone();
                if items.is_empty() {
                    items = s.items.clone();
                }
            }
        }
        if declared.is_none() || types.is_empty() {
            nullable |= observed.is_none_or(|s| s.present < docs.len());
        }
        let ty = type_of(&types, &items);
        let native = if types.is_empty() {
            "unknown".to_string()
        } else {
            types.join(" | ")
        };
        let is_id = key == "_id";
        let object_id = types == ["objectId"];
        t.columns.push(Column {
            generated: is_id && (object_id || ty == ColumnType::Uuid),
            nullable: nullable && !is_id,
            object_id,
            blocks_inserts: false,
            ty: match ty {
                ColumnType::Unsupported(_) if types.is_empty() => ColumnType::Json,
                other => other,
            },
            native,
            name: key,
        });
    }
    let indexes = db
        .run_command(doc! { "listIndexes": name })
        .await
        .map(|r| first_batch(&r))
        .unwrap_or_default();
    for ix in indexes {
        let index_name = ix.get_str("name").unwrap_or_default().to_string();
        let Ok(key) = ix.get_document("key") else {
            continue;
        };
        let columns: Vec<String> = key.keys().cloned().collect();
        if columns == ["_id"] {
            continue;
        }
        let plain = key
            .values()
            .all(|v| matches!(v, Bson::Int32(1) | Bson::Int64(1)) || *v == Bson::Double(1.0))
            && columns.iter().all(|c| t.column(c).is_some());
        let unique = ix.get_bool("unique").unwrap_or(false);
        let partial = ix.get_document("partialFilterExpression").ok();
        // The library's own unique indexes are partial on "the field is set"
        // ({field: {$type: ..}}): that is what `unique` means for it.
        let library_partial = partial.is_none_or(|p| {
            p.iter().all(|(k, v)| {
                columns.contains(k) && v.as_document().is_some_and(|d| d.contains_key("$type"))
            })
        });
        if plain && library_partial && !ix.contains_key("expireAfterSeconds") {
            t.indexes.push(Index {
                name: index_name,
                columns,
                unique,
            });
        } else {
            let mut what = format!("{index_name} {key}");
            if unique {
                what.push_str(" unique");
            }
            if let Some(p) = partial {
                what.push_str(&format!(" partial {p}"));
            }
            t.notes.push(format!(
                "index not declared (the entity has no way to say it): {what}"
            ));
        }
    }
    Ok(t)
}

fn push(v: &mut Vec<&'static str>, a: &'static str) {
    if !v.contains(&a) {
        v.push(a);
    }
}

/// `bsonType` as a list (a string or an array of strings).
fn bson_types(b: Option<&Bson>) -> Vec<&'static str> {
    let one = |s: &str| -> &'static str {
        match s {
            "objectId" => "objectId",
            "string" => "string",
            "int" => "int",
            "long" => "long",
            "double" => "double",
            "decimal" => "decimal",
            "bool" => "bool",
            "date" => "date",
            "binData" => "binData",
            "array" => "array",
            "object" => "object",
            "null" => "null",
            _ => "other",
        }
    };
    match b {
        Some(Bson::String(s)) => vec![one(s)],
        Some(Bson::Array(a)) => a.iter().filter_map(Bson::as_str).map(one).collect(),
        _ => Vec::new(),
    }
}

/// The `bsonType` alias of a value (UUID binary as `uuid`).
fn alias(v: &Bson) -> &'static str {
    match v {
        Bson::ObjectId(_) => "objectId",
        Bson::String(_) => "string",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Double(_) => "double",
        Bson::Decimal128(_) => "decimal",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Binary(b) if b.subtype == BinarySubtype::Uuid => "uuid",
        Bson::Binary(_) => "binData",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Null => "null",
        _ => "other",
    }
}

/// The field type for the types seen (or declared).
fn type_of(types: &[&str], items: &[&str]) -> ColumnType {
    let scalar = |t: &[&str]| -> Option<ColumnType> {
        let all = |set: &[&str]| !t.is_empty() && t.iter().all(|x| set.contains(x));
        Some(match t {
            ["objectId"] | ["string"] => ColumnType::String,
            ["int"] => ColumnType::I32,
            ["decimal"] => ColumnType::Decimal,
            ["bool"] => ColumnType::Bool,
            ["date"] => ColumnType::DateTime,
            ["uuid"] => ColumnType::Uuid,
            ["binData"] => ColumnType::Bytes,
            _ if all(&["int", "long"]) => ColumnType::I64,
            _ if all(&["int", "long", "double"]) => ColumnType::F64,
            _ => return None,
        })
    };
    match types {
        [] => ColumnType::Unsupported("no values".into()),
        ["array"] => match scalar(items) {
            Some(ColumnType::Bytes) | None if !items.is_empty() => ColumnType::Json,
            Some(inner) => ColumnType::Array(Box::new(inner)),
            None => ColumnType::Array(Box::new(ColumnType::String)),
        },
        ["object"] => ColumnType::Json,
        t => scalar(t).unwrap_or(ColumnType::Json),
    }
}
