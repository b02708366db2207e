//! Vector fields on PostgreSQL with pgvector, and without it.
//!
//! A vector field (`#[entity(vector(dim = N, ..))]` on a `Vec<f32>`) is an
//! ordinary array field: a `jsonb` array on PostgreSQL, JSON text on SQLite,
//! read and written like every other field. What differs is `find_nearest`:
//!
//! * **pgvector** (the `vector` extension is installed in the database;
//!   the store looks it up once, in `connect`): `ensure_schema` adds a
//!   stored generated column `"<field>__vector" vector(N)` computed from the
//!   array (`("<field>")::text::vector(N)`), so every write path (insert,
//!   upsert, patch, `COPY`) keeps it current without knowing about it, and
//!   the ANN index on it (`USING hnsw (.. vector_cosine_ops) WITH (m, ef_construction)`
//!   or `USING ivfflat (..) WITH (lists)`), both `IF NOT EXISTS`.
//!   `find_nearest` is then one `SELECT .. ORDER BY col <=> $1 LIMIT k`
//!   the index answers (approximate; `Capabilities::approximate_nearest`).
//!   With a filter, an `ef_search`, or `k` above pgvector's default
//!   `hnsw.ef_search` (40), the statement runs in a transaction that first
//!   sets `hnsw.ef_search` (at least `k`) and `hnsw.iterative_scan =
//!   strict_order` (IVFFlat: `ivfflat.probes` and `relaxed_order`) locally,
//!   so the index keeps scanning until `k` rows pass the filter: pre-filter
//!   results, as the exact backends give.
//! * **without the extension** (the machine's plain PostgreSQL, SQLite):
//!   exact brute force: the rows matching the filter are read and ranked in
//!   the client ([`persistence_core::vector::rank_exact`]). Correct, `O(rows)`.
//!
//! The extension is never created by the library (`CREATE EXTENSION` needs
//! rights, and the schema it lands in would be dropped with a test schema):
//! install it once per database (`scripts/services` does for its server).
//! Its type and operators are always schema-qualified, so the session's
//! `search_path` does not matter.

use persistence_core::entity::VectorField;
use persistence_core::{Metric, VectorIndex};
use sea_orm::{DbErr, Statement};

use persistence_core::names::SchemaPolicy;
use persistence_core::{EntityMeta, Result};

use crate::error::map_db_err;
use crate::query::{Dialect, bounded, quote};
use crate::schema::{self, TableInfo};
use crate::store::conn::Conn;

/// The schema of the installed `vector` extension, if any.
pub(crate) async fn lookup<C: Conn>(c: &C) -> std::result::Result<Option<String>, DbErr> {
    let row = c
        .row(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'",
        ))
        .await?;
    row.map(|r| r.try_get_by_index::<String>(0)).transpose()
}

/// The generated `vector(N)` column of a vector field (unquoted).
pub(crate) fn column(field: &str) -> String {
    bounded(format!("{field}__vector"))
}

/// The ANN index of a vector field (unquoted; schema-scoped like the table).
pub(crate) fn index_name(entity: &str, field: &str) -> String {
    bounded(format!("vx_{entity}_{field}"))
}

/// `"ext".vector` with the extension's schema.
pub(crate) fn vector_type(ext: &str) -> String {
    format!("{}.vector", quote(ext))
}

/// The distance operator of `metric`, schema-qualified.
pub(crate) fn operator(ext: &str, metric: Metric) -> String {
    let op = match metric {
        Metric::Cosine => "<=>",
        Metric::L2 => "<->",
        Metric::InnerProduct => "<#>",
    };
    format!("OPERATOR({}.{op})", quote(ext))
}

fn opclass(ext: &str, metric: Metric) -> String {
    let ops = match metric {
        Metric::Cosine => "vector_cosine_ops",
        Metric::L2 => "vector_l2_ops",
        Metric::InnerProduct => "vector_ip_ops",
    };
    format!("{}.{ops}", quote(ext))
}

/// The DDL of one vector field on table `qualified`: the generated column,
/// then its index (none for [`VectorIndex::None`]). Idempotent.
pub(crate) fn ddl(ext: &str, entity: &str, qualified: &str, v: &VectorField) -> Vec<String> {
    let ty = format!("{}({})", vector_type(ext), v.spec.dim);
    let col = quote(&column(v.name));
    let mut out = vec![format!(
        "ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {col} {ty} \
         GENERATED ALWAYS AS ((({})::text)::{ty}) STORED",
        quote(v.name)
    )];
    let name = quote(&index_name(entity, v.name));
    let ops = opclass(ext, v.spec.metric);
    match v.spec.index {
        VectorIndex::None => {}
        VectorIndex::Hnsw { m, ef_construction } => out.push(format!(
            "CREATE INDEX IF NOT EXISTS {name} ON {qualified} USING hnsw ({col} {ops}) \
             WITH (m = {m}, ef_construction = {ef_construction})"
        )),
        VectorIndex::IvfFlat { lists } => out.push(format!(
            "CREATE INDEX IF NOT EXISTS {name} ON {qualified} USING ivfflat ({col} {ops}) \
             WITH (lists = {lists})"
        )),
    }
    out
}

/// The pgvector columns and ANN indexes of `meta`'s vector fields (see
/// [`crate::vector`]), on a table the library owns; a table it does not own
/// is left alone like its other indexes (unless `SchemaPolicy::Adopt`,
/// which marked it in `schema::ensure`).
pub(crate) async fn ensure_vectors<C: Conn>(
    c: &C,
    table: &TableInfo,
    meta: &'static EntityMeta,
    ext: &str,
    policy: SchemaPolicy,
) -> Result<()> {
    let err = |e: DbErr| map_db_err(e, &table.names).in_context(meta.name, "ensure_schema");
    if policy == SchemaPolicy::VerifyOnly
        || schema::table_owner(c, table, meta, Dialect::Postgres)
            .await
            .map_err(err)?
            != schema::Owner::Managed
    {
        return Ok(());
    }
    for v in &meta.vectors {
        for sql in ddl(ext, meta.name, &table.qualified, v) {
            schema::ddl(c, &sql).await.map_err(err)?;
        }
    }
    Ok(())
}

/// pgvector's text form of a vector: `[1,2.5,3]` (finite components, checked before).
pub(crate) fn literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

/// pgvector's default `hnsw.ef_search`.
pub(crate) const DEFAULT_EF_SEARCH: u32 = 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_within_63_bytes() {
        assert_eq!(column("emb"), "emb__vector");
        let long = "a".repeat(60);
        assert_eq!(column(&long).len(), 63);
        assert_ne!(column(&long), column(&"a".repeat(61)));
        assert_eq!(literal(&[1.0, 2.5, -0.125]), "[1,2.5,-0.125]");
    }
}
