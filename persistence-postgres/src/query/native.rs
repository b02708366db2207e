//! Columns of PostgreSQL's own types that are not the crate's mapping of
//! their field (tables the library did not create): which ones the library
//! can still read and write, and how.
//!
//! The crate maps each field to one column type (`column_type`). A table
//! made by someone else may hold the same data in another native type:
//! `integer` or `numeric(12,2)` for an `i64` / `f64` field, `varchar(200)` or
//! a native enum for a `String` / `#[derive(EntityEnum)]` field, `text[]` for
//! a `Vec<String>`, `json` for a JSON field, `timestamp` for a
//! `DateTime<Utc>`. Such a column is **adapted** ([`Adapt`]):
//!
//! * read as the crate's type: `"c"::bigint`, `"c"::text`, `to_jsonb("c")`
//!   (in the select list, and in a sub-select the filters and sort keys
//!   of reads run on, so a native enum compares and sorts by its name, as
//!   everywhere else);
//! * written through an explicit cast to the column's type, named from
//!   the catalog (`$1::"shop"."mood"`, `$2::numeric`); an array field is
//!   bound as a `text[]` and cast (`$3::text[]`).
//!
//! Types the crate maps to exactly (`varchar(n)` and `char(n)` for text
//! fields, `numeric(p, s)` for decimals included) need nothing. Which
//! native types a field accepts is [`adaptable`]; `verify_schema` reports
//! only the others as type mismatches.

use persistence_core::{FieldMeta, FieldType, ScalarType};

use crate::query::quote;

/// `character varying(20)` → `character varying`,
/// `timestamp(3) with time zone` → `timestamp with time zone`.
pub(crate) fn without_modifiers(ty: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in ty.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether live PostgreSQL type `have` (`format_type`) is the crate's own
/// type `want` for a field of type `ty` (modifiers aside; `varchar(n)` and
/// `char(n)` count as `text` for text fields).
pub(crate) fn same_type(ty: FieldType, want: &str, have: &str) -> bool {
    let base = without_modifiers(have);
    let want = if want == "timestamptz" {
        "timestamp with time zone"
    } else {
        want
    };
    let textual = matches!(ty, FieldType::Scalar(ScalarType::String | ScalarType::Enum))
        && matches!(base.as_str(), "character varying" | "character");
    base == want || textual
}

/// Whether a field of type `ty` can live in a column of another native
/// type `have` of `pg_type.typcategory` `category`, read and written
/// through casts (see the module docs).
pub(crate) fn adaptable(ty: FieldType, have: &str, category: &str) -> bool {
    use ScalarType as S;
    let base = without_modifiers(have);
    match ty {
        // An integer column no wider than the field: every stored value
        // reads back (a wider one could hold values the field cannot).
        FieldType::Scalar(s @ (S::I16 | S::I32 | S::I64)) => {
            let field = match s {
                S::I16 => 2,
                S::I32 => 4,
                _ => 8,
            };
            let column = match base.as_str() {
                "smallint" => 2,
                "integer" => 4,
                "bigint" => 8,
                _ => return false,
            };
            column <= field
        }
        FieldType::Scalar(S::F64 | S::Decimal) => category == "N",
        // Strings, enums (`E`), and types with a text form a program keeps as a string.
        FieldType::Scalar(S::String | S::Enum) => matches!(category, "S" | "E"),
        FieldType::Scalar(S::Bool) => category == "B",
        FieldType::Scalar(S::DateTime) => {
            matches!(base.as_str(), "timestamp without time zone" | "date")
        }
        FieldType::Scalar(S::Date) => {
            matches!(
                base.as_str(),
                "timestamp without time zone" | "timestamp with time zone"
            )
        }
        FieldType::Array(_) => category == "A" || base == "json",
        FieldType::Json => base == "json",
        _ => false,
    }
}

/// How one adapted column is read and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adapt {
    /// The expression reading the column as the crate's type (`{col}` is
    /// the quoted column).
    read: String,
    /// The type a written value is cast to (the column's own type, schema
    /// qualified when it is not a built-in one).
    pub(crate) cast: String,
    /// Bind the (array) value as a `text[]` before the cast.
    pub(crate) text_array: bool,
}

impl Adapt {
    /// The adaptation of field `f` (crate type `want`) stored in a column
    /// of type `have` (`format_type`), category `category`, cast name
    /// `cast`; `None` when the column is the crate's own type or cannot be
    /// adapted (then reads and writes fail as they would without this).
    pub(crate) fn of(
        f: &FieldMeta,
        want: &str,
        have: &str,
        category: &str,
        cast: &str,
    ) -> Option<Adapt> {
        if same_type(f.ty, want, have) || !adaptable(f.ty, have, category) {
            return None;
        }
        let col = quote(f.name);
        let (read, text_array) = match f.ty {
            FieldType::Array(_) if category == "A" => (format!("to_jsonb({col})"), true),
            FieldType::Array(_) | FieldType::Json => (format!("{col}::jsonb"), false),
            _ => (format!("{col}::{want}"), false),
        };
        Some(Adapt {
            read,
            cast: cast.to_string(),
            text_array,
        })
    }
}

/// The adapted columns of one table, with the SQL built from them once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adapted {
    /// Per field (in `meta.fields` order): its adaptation, if any.
    pub(crate) fields: Vec<Option<Adapt>>,
    /// The select list: `"a", "b"::bigint AS "b", ...` (for `RETURNING`).
    pub(crate) read_list: String,
    /// What reads select from: `(SELECT <read_list> FROM <table>) AS "<entity>"`.
    pub(crate) source: String,
}

impl Adapted {
    /// `None` when no field needs adapting (the common case: nothing changes).
    pub(crate) fn new(
        names: &[&str],
        fields: Vec<Option<Adapt>>,
        qualified: &str,
        alias: &str,
    ) -> Option<Adapted> {
        if fields.iter().all(Option::is_none) {
            return None;
        }
        let read_list = names
            .iter()
            .zip(&fields)
            .map(|(n, a)| match a {
                Some(a) => format!("{} AS {}", a.read, quote(n)),
                None => quote(n),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let source = format!("(SELECT {read_list} FROM {qualified}) AS {}", quote(alias));
        Some(Adapted {
            fields,
            read_list,
            source,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(name: &'static str, ty: FieldType) -> FieldMeta {
        FieldMeta {
            name,
            rust_name: name,
            ty,
            nullable: false,
            id: false,
            version: false,
            unique: false,
            index: false,
            ttl: None,
        }
    }

    #[test]
    fn native_types_are_read_and_written_through_casts() {
        let s = |t| FieldType::Scalar(t);
        let price = field("price", s(ScalarType::F64));
        let a = Adapt::of(&price, "double precision", "numeric(12,2)", "N", "numeric").unwrap();
        assert_eq!(
            (a.read.as_str(), a.cast.as_str()),
            ("\"price\"::double precision", "numeric")
        );
        let mood = field("mood", s(ScalarType::Enum));
        let a = Adapt::of(&mood, "text", "shop.mood", "E", "\"shop\".\"mood\"").unwrap();
        assert_eq!(a.read, "\"mood\"::text");
        let tags = field("tags", FieldType::Array(ScalarType::String));
        let a = Adapt::of(&tags, "jsonb", "text[]", "A", "text[]").unwrap();
        assert_eq!(
            (a.read.as_str(), a.text_array),
            ("to_jsonb(\"tags\")", true)
        );
        // The crate's own types (modifiers aside) need nothing.
        let name = field("name", s(ScalarType::String));
        assert!(Adapt::of(&name, "text", "character varying(200)", "S", "x").is_none());
        let d = field("d", s(ScalarType::Decimal));
        assert!(Adapt::of(&d, "numeric", "numeric(12,2)", "N", "numeric").is_none());
        // What cannot hold the field is left alone (and reported by verify_schema).
        assert!(Adapt::of(&name, "text", "integer", "N", "integer").is_none());
        assert!(!adaptable(s(ScalarType::I64), "double precision", "N"));
        assert!(adaptable(s(ScalarType::I64), "integer", "N"));
        assert!(
            !adaptable(s(ScalarType::I32), "bigint", "N"),
            "wider than the field"
        );
    }

    #[test]
    fn nothing_adapted_changes_nothing() {
        assert!(Adapted::new(&["a"], vec![None], "\"t\"", "t").is_none());
        let tags = field("tags", FieldType::Array(ScalarType::String));
        let a = Adapt::of(&tags, "jsonb", "text[]", "A", "text[]");
        let ad = Adapted::new(&["id", "tags"], vec![None, a], "\"s\".\"t\"", "t").unwrap();
        assert_eq!(ad.read_list, "\"id\", to_jsonb(\"tags\") AS \"tags\"");
        assert_eq!(
            ad.source,
            "(SELECT \"id\", to_jsonb(\"tags\") AS \"tags\" FROM \"s\".\"t\") AS \"t\""
        );
    }
}
