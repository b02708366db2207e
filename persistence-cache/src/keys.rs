//! Cache keys.
//!
//! Every key of an entity type starts with
//! `{prefix}:{{prefix}:{entity}:{schema_version}}:` — the base, written
//! `…` below — so a change of the entity's stored shape (and so of
//! [`EntityMeta::schema_version`]) makes every older entry unreachable,
//! tenants/apps never share keys, and every key starts with `{prefix}:`
//! (ACL key patterns, `SCAN`). The part in braces is a Redis Cluster *hash
//! tag*: an entity type's entries, query results and tokens share one slot
//! (so one node), which keeps every lookup one `MGET`, every store one
//! script and every invalidation one pipeline on a cluster too. A key built
//! from the base (`…:{anything}`) lands in that slot as well. On a single
//! server the braces mean nothing.
//!
//! * entity: `…:{id}` (tenant entities: `…:@{tenant hash}:{id}`). Integer and UUID ids
//!   are written as is; string ids when short (≤ 100 bytes) and made only of
//!   `[A-Za-z0-9_.@-]`, otherwise as `#` + 32 hex digits of their SHA-256
//!   (so a key never holds `:` from user data and stays bounded).
//! * query results: `…:?{op}:{hash}`, the hash
//!   being 128 bits of SHA-256 over a canonical binary encoding of the
//!   *checked* (validated, normalized) query.
//! * generation tokens: `…:!gen` (replaced by every write) and `…:!epoch`
//!   (replaced by `delete_many` and by a reset after an outage).
//! * tags: `{prefix}:!tag:{{prefix}:{tag}}` (a Redis set of keys) and its
//!   token `{prefix}:!tagv:{{prefix}:{tag}}` (one slot per tag), tagged values
//!   under `{prefix}:!val:{key}` (a slot of their own); see [`crate::tags`].
//! * leases (see `crate::lease`): the entry key + `:!lease`, so a lease
//!   lives next to (and in the hash slot of) the entry it guards.
//! * sessions: see `sessions`.

use std::fmt::Write as _;

#[cfg(feature = "redis")]
use persistence_core::Error;
use persistence_core::filter::{FieldPath, PatternPart};
use persistence_core::names::{self, NameKind};
use persistence_core::{
    CompareOp, Direction, EntityMeta, Filter, NearestQuery, Query, Result, TextQuery, Value,
};
use sha2::{Digest, Sha256};

/// Longest accepted prefix.
pub const MAX_PREFIX_LEN: usize = 64;
const MAX_RAW_ID: usize = 100;

/// Check a key prefix with [`persistence_core::names`] ([`NameKind::KeyPrefix`]:
/// 1..=64 bytes of `[A-Za-z0-9_.-]`, not a reserved namespace name such as
/// `admin` or `public`): a `Config` error naming the prefix.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    names::validate_config(NameKind::KeyPrefix, prefix, "cache prefix")
}

/// Check a name inside the prefix's namespace (a session store): the
/// spelling of a key prefix, no reserved names (they only matter at the top).
#[cfg(feature = "redis")]
pub(crate) fn validate_part(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_PREFIX_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Error::config(format!(
            "{what} must be 1..=64 bytes of ASCII letters, digits, `_`, `-`, `.`"
        )));
    }
    Ok(())
}

/// Hex of the first 16 bytes of SHA-256.
pub(crate) fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(32);
    for b in &digest[..16] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The key builder of one entity type.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    base: String,
    /// Tenant entity: entity keys carry the tenant (see [`Keys::entity`]).
    tenant: bool,
    #[cfg(feature = "redis")]
    gen_key: String,
    #[cfg(feature = "redis")]
    epoch_key: String,
}

/// The query operations whose results are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryOp {
    Find,
    FindUnordered,
    FindOne,
    Count,
    Exists,
    Nearest,
    Text,
}

impl QueryOp {
    fn name(self) -> &'static str {
        match self {
            QueryOp::Find => "find",
            QueryOp::FindUnordered => "findu",
            QueryOp::FindOne => "one",
            QueryOp::Count => "count",
            QueryOp::Exists => "exists",
            QueryOp::Nearest => "near",
            QueryOp::Text => "text",
        }
    }
}

impl Keys {
    pub(crate) fn new(prefix: &str, meta: &EntityMeta) -> Keys {
        Keys {
            tenant: meta.tenant.is_some(),
            ..Keys::named(prefix, meta.name, meta.schema_version)
        }
    }

    fn named(prefix: &str, entity: &str, schema_version: u64) -> Keys {
        let base = format!("{prefix}:{{{prefix}:{entity}:{schema_version}}}");
        Keys {
            #[cfg(feature = "redis")]
            gen_key: format!("{base}:!gen"),
            #[cfg(feature = "redis")]
            epoch_key: format!("{base}:!epoch"),
            base,
            tenant: false,
        }
    }

    /// The key of the entity with this (normalized) id; for a tenant entity
    /// (row-level tenancy) `…:@{hash of the tenant}:{id}`, so two tenants
    /// never share an entry (or a cached absence).
    pub(crate) fn entity(&self, id: &Value) -> String {
        let mut k = String::with_capacity(self.base.len() + 24);
        k.push_str(&self.base);
        k.push(':');
        if let Some(t) = self
            .tenant
            .then(persistence_core::tenant::current)
            .flatten()
        {
            let _ = write!(k, "@{}:", short_hash(&crate::codec::canonical_value(&t)));
        }
        match id {
            Value::I64(i) => {
                let _ = write!(k, "{i}");
            }
            Value::Uuid(u) => {
                let _ = write!(k, "{}", u.hyphenated());
            }
            Value::String(s) if is_plain(s) => k.push_str(s),
            Value::String(s) => {
                k.push('#');
                k.push_str(&short_hash(s.as_bytes()));
            }
            other => {
                k.push('#');
                k.push_str(&short_hash(&crate::codec::canonical_value(other)));
            }
        }
        k
    }

    /// The key of a cached query result (`query` must be checked).
    pub(crate) fn query(&self, op: QueryOp, query: &Query) -> String {
        let mut bytes = Vec::with_capacity(64);
        encode_query(query, &mut bytes);
        format!("{}:?{}:{}", self.base, op.name(), short_hash(&bytes))
    }

    /// The key of a cached nearest query (`filter` is its checked filter).
    pub(crate) fn nearest(&self, query: &NearestQuery, filter: &Filter) -> String {
        let mut bytes = Vec::with_capacity(64 + 4 * query.vector.len());
        encode_filter(filter, &mut bytes);
        put_len(&mut bytes, query.field.len());
        bytes.extend_from_slice(query.field.as_bytes());
        put_len(&mut bytes, query.vector.len());
        for x in &query.vector {
            bytes.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        put_len(&mut bytes, query.k);
        bytes.extend_from_slice(&query.ef_search.unwrap_or(0).to_le_bytes());
        format!(
            "{}:?{}:{}",
            self.base,
            QueryOp::Nearest.name(),
            short_hash(&bytes)
        )
    }

    /// The key of a cached text search (`filter` is its checked filter).
    pub(crate) fn text(&self, query: &TextQuery, filter: &Filter) -> String {
        let mut bytes = Vec::with_capacity(64 + query.text.len());
        encode_filter(filter, &mut bytes);
        put_str(&mut bytes, &query.text);
        put_len(&mut bytes, query.limit);
        format!(
            "{}:?{}:{}",
            self.base,
            QueryOp::Text.name(),
            short_hash(&bytes)
        )
    }

    /// The key of a cached count/exists (`filter` must be checked).
    pub(crate) fn filter(&self, op: QueryOp, filter: &Filter) -> String {
        let mut bytes = Vec::with_capacity(64);
        encode_filter(filter, &mut bytes);
        format!("{}:?{}:{}", self.base, op.name(), short_hash(&bytes))
    }

    /// `{prefix}:{{prefix}:{entity}:{schema_version}}` (see the module docs).
    #[cfg(feature = "redis")]
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The lease key of the entry `key` (an entity or query key of this type).
    #[cfg(feature = "redis")]
    #[allow(clippy::unused_self)]
    pub(crate) fn lease(&self, key: &str) -> String {
        format!("{key}:!lease")
    }

    #[cfg(feature = "redis")]
    pub(crate) fn gen_key(&self) -> &str {
        &self.gen_key
    }

    #[cfg(feature = "redis")]
    pub(crate) fn epoch_key(&self) -> &str {
        &self.epoch_key
    }
}

/// A user-supplied key part: as is when short and plain, else `#` + hash.
#[cfg(feature = "redis")]
pub(crate) fn key_part(s: &str) -> String {
    if is_plain(s) {
        s.to_string()
    } else {
        format!("#{}", short_hash(s.as_bytes()))
    }
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_RAW_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_path(out: &mut Vec<u8>, p: &FieldPath) {
    put_str(out, p);
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let b = crate::codec::canonical_value(v);
    put_len(out, b.len());
    out.extend_from_slice(&b);
}

fn op_byte(op: CompareOp) -> u8 {
    match op {
        CompareOp::Eq => 0,
        CompareOp::Ne => 1,
        CompareOp::Lt => 2,
        CompareOp::Lte => 3,
        CompareOp::Gt => 4,
        CompareOp::Gte => 5,
    }
}

/// A canonical, injective binary form of a filter (lengths prefix every
/// variable part, so distinct filters never encode alike).
fn encode_filter(f: &Filter, out: &mut Vec<u8>) {
    match f {
        Filter::And(fs) | Filter::Or(fs) => {
            out.push(if matches!(f, Filter::And(_)) { 1 } else { 2 });
            put_len(out, fs.len());
            for x in fs {
                encode_filter(x, out);
            }
        }
        Filter::Not(x) => {
            out.push(3);
            encode_filter(x, out);
        }
        Filter::Compare { field, op, value } => {
            out.push(4);
            put_path(out, field);
            out.push(op_byte(*op));
            put_value(out, value);
        }
        Filter::In { field, values } | Filter::NotIn { field, values } => {
            out.push(if matches!(f, Filter::In { .. }) { 5 } else { 6 });
            put_path(out, field);
            put_len(out, values.len());
            for v in values {
                put_value(out, v);
            }
        }
        Filter::IsNull(p) => {
            out.push(7);
            put_path(out, p);
        }
        Filter::IsNotNull(p) => {
            out.push(8);
            put_path(out, p);
        }
        Filter::StartsWith { field, prefix } => {
            out.push(9);
            put_path(out, field);
            put_str(out, prefix);
        }
        Filter::Contains { field, substring } => {
            out.push(10);
            put_path(out, field);
            put_str(out, substring);
        }
        Filter::ArrayContains { field, value } => {
            out.push(11);
            put_path(out, field);
            put_value(out, value);
        }
        Filter::Invalid(m) => {
            out.push(12);
            put_str(out, m);
        }
        Filter::Scope(s) => {
            out.push(14);
            out.push(*s as u8);
        }
        Filter::MatchesText(q) => {
            out.push(15);
            put_str(out, q);
        }
        Filter::Like { field, pattern } => {
            out.push(13);
            put_path(out, field);
            out.push(u8::from(pattern.is_ignore_case()));
            put_len(out, pattern.parts().len());
            for part in pattern.parts() {
                match part {
                    PatternPart::Literal(s) => {
                        out.push(0);
                        put_str(out, s);
                    }
                    PatternPart::Any => out.push(1),
                    PatternPart::One => out.push(2),
                }
            }
        }
    }
}

fn encode_query(q: &Query, out: &mut Vec<u8>) {
    encode_filter(&q.filter, out);
    put_len(out, q.sort.len());
    for k in &q.sort {
        put_path(out, &k.field);
        out.push(match k.direction {
            Direction::Asc => 0,
            Direction::Desc => 1,
        });
    }
    match q.limit {
        Some(l) => {
            out.push(1);
            out.extend_from_slice(&l.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&q.offset.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_ids() {
        assert!(is_plain("alice@x.io"));
        assert!(!is_plain("a:b"));
        assert!(!is_plain(""));
        assert!(!is_plain(&"x".repeat(101)));
        assert!(validate_prefix("app-1.tenant_2").is_ok());
        assert!(validate_prefix("a:b").is_err());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("admin").is_err());
        assert!(validate_prefix("x\"; FLUSHALL").is_err());
        #[cfg(feature = "redis")]
        assert!(validate_part("session store name", "admin").is_ok());
    }

    #[test]
    fn an_entity_types_keys_share_a_hash_tag() {
        let k = Keys::named("app", "users", 3);
        let tag = |key: &str| {
            let open = key.find('{').expect("a hash tag");
            let close = open + key[open..].find('}').expect("closed");
            key[open + 1..close].to_string()
        };
        let entity = k.entity(&Value::I64(7));
        assert_eq!(entity, "app:{app:users:3}:7");
        let query = k.filter(QueryOp::Count, &Filter::field("a").eq(1));
        assert!(query.starts_with("app:"));
        for key in [query, k.entity(&Value::String("a:b".into()))] {
            assert_eq!(tag(&key), "app:users:3");
        }
        #[cfg(feature = "redis")]
        for key in [k.gen_key(), k.epoch_key(), k.base()] {
            assert_eq!(tag(key), "app:users:3");
        }
    }

    #[test]
    fn distinct_filters_distinct_bytes() {
        let a = Filter::field("a").eq("x:y");
        let b = Filter::field("a:x").eq("y");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        encode_filter(&a, &mut x);
        encode_filter(&b, &mut y);
        assert_ne!(x, y);
    }
}
