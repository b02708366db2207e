//! Filter/Query → SQL: the [`Dialect`], SQL text with bound parameters
//! ([`Sql`]), the column type mapping; the translation of filters and sort
//! keys is in [`translate`].
//!
//! Everything here writes identifiers only from entity metadata (validated by
//! `persistence_core::entity::validate_identifier`) or validated schema names,
//! always double-quoted; every value goes through [`Sql::bind`].

use std::fmt::Write as _;
use std::hash::{Hash as _, Hasher as _};

use persistence_core::entity::StableHasher;
use persistence_core::{Error, FieldType, Result, ScalarType};
use sea_orm::{DbBackend, Statement, Value as SV};

pub(crate) mod facts;
pub(crate) mod native;
pub(crate) mod translate;

/// The SQL dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL (12 or newer).
    Postgres,
    /// SQLite (3.38 or newer; the bundled library is used).
    Sqlite,
}

impl Dialect {
    /// The name reported in `Capabilities` (`postgres`, `sqlite`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Dialect::Postgres => DbBackend::Postgres,
            Dialect::Sqlite => DbBackend::Sqlite,
        }
    }
    pub(crate) fn t(self) -> &'static str {
        match self {
            Dialect::Postgres => "TRUE",
            Dialect::Sqlite => "1",
        }
    }
    pub(crate) fn f(self) -> &'static str {
        match self {
            Dialect::Postgres => "FALSE",
            Dialect::Sqlite => "0",
        }
    }
    /// The largest number of bind parameters one statement may carry (with margin).
    #[cfg(feature = "postgres")]
    pub(crate) fn max_binds(self) -> usize {
        match self {
            // The wire protocol counts parameters in an i16/u16: 65,535.
            Dialect::Postgres => 65_000,
            // SQLITE_MAX_VARIABLE_NUMBER defaults to 32,766 since 3.32.
            Dialect::Sqlite => 32_000,
        }
    }
}

/// Double-quote an identifier (identifiers are validated before they get here;
/// quotes are doubled anyway).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A derived identifier (generated column, index, FTS table) of at most 63
/// bytes, PostgreSQL's limit: `name` itself, or its head plus a stable hash
/// of the whole (so two long names that share a head still differ).
pub(crate) fn bounded(name: String) -> String {
    if name.len() <= 63 {
        return name;
    }
    let mut h = StableHasher::default();
    name.hash(&mut h);
    let hash = format!("_{:016x}", h.finish());
    let mut cut = 63 - hash.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}", &name[..cut])
}

/// SQL text plus its bound values.
pub(crate) struct Sql {
    pub(crate) text: String,
    binds: Vec<SV>,
    pub(crate) dialect: Dialect,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Sql {
            text: String::with_capacity(256),
            binds: Vec::new(),
            dialect,
        }
    }
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    pub(crate) fn ident(&mut self, name: &str) -> &mut Self {
        self.text.push_str(&quote(name));
        self
    }
    pub(crate) fn bind(&mut self, v: SV) -> &mut Self {
        self.binds.push(v);
        match self.dialect {
            Dialect::Postgres => {
                let _ = write!(self.text, "${}", self.binds.len());
            }
            Dialect::Sqlite => self.text.push('?'),
        }
        self
    }
    pub(crate) fn into_statement(self) -> Statement {
        Statement::from_sql_and_values(self.dialect.backend(), self.text, self.binds)
    }
}

/// The column type of a field.
pub(crate) fn column_type(dialect: Dialect, ty: FieldType) -> Result<&'static str> {
    use ScalarType as S;
    Ok(match (dialect, ty) {
        (Dialect::Postgres, FieldType::Json | FieldType::Array(_)) => "jsonb",
        (Dialect::Sqlite, FieldType::Json | FieldType::Array(_)) => "TEXT",
        (Dialect::Postgres, FieldType::Scalar(s)) => match s {
            S::String | S::Enum => "text",
            S::Bool => "boolean",
            S::I16 => "smallint",
            S::I32 => "integer",
            S::I64 => "bigint",
            S::F32 => "real",
            S::F64 => "double precision",
            S::Uuid => "uuid",
            S::DateTime => "timestamptz",
            S::Date => "date",
            S::Decimal => "numeric",
            S::Bytes => "bytea",
            other => return Err(unsupported(other)),
        },
        (Dialect::Sqlite, FieldType::Scalar(s)) => match s {
            S::String | S::Enum | S::Uuid | S::DateTime | S::Date | S::Decimal => "TEXT",
            S::Bool | S::I16 | S::I32 | S::I64 => "INTEGER",
            S::F32 | S::F64 => "REAL",
            S::Bytes => "BLOB",
            other => return Err(unsupported(other)),
        },
    })
}

/// No column type (and no binding) for scalar type `s`.
pub(crate) fn unsupported(s: ScalarType) -> Error {
    Error::unsupported(format!("no column type for {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn bounded_names_fit_postgres_and_stay_distinct() {
        assert_eq!(bounded("short".into()), "short");
        let exact = "a".repeat(63);
        assert_eq!(bounded(exact.clone()), exact);
        let long = bounded("a".repeat(64));
        assert_eq!(long.len(), 63);
        assert_ne!(long, bounded("a".repeat(65)), "same head, other name");
        assert_eq!(long, bounded("a".repeat(64)), "stable");
        // The cut never splits a character ('é' is two bytes; byte 46 is
        // inside one here): it steps back to the character's start.
        let wide = bounded(format!("a{}", "é".repeat(40)));
        assert_eq!(wide.len(), 62);
        assert!(wide.starts_with(&format!("a{}_", "é".repeat(22))), "{wide}");
    }
}
