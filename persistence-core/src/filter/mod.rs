//! The backend-neutral filter AST and typed field handles.
//!
//! # Semantics (every backend answers the same way; the conformance suite checks it)
//!
//! * **Null.** A field that is `None` (or a nested path that is absent) is *null*.
//!   `eq`, `lt`, `lte`, `gt`, `gte`, `in`, `starts_with`, `contains` never
//!   match null. `ne` and `not_in` are the exact negations of `eq` and `in`,
//!   so they *do* match null. `eq(None)` means `is_null`, `ne(None)` means
//!   `is_not_null`; ordering comparisons against null are invalid input.
//! * **Not.** `not(f)` matches exactly the rows `f` does not match (two-valued
//!   logic, unlike SQL's three-valued `NOT`).
//! * **Empty lists.** `in([])` matches nothing, `not_in([])` matches
//!   everything, `and([])` matches everything, `or([])` matches nothing.
//! * **Strings** compare by Unicode code point (= UTF-8 byte order), case
//!   sensitive, no locale collation. `starts_with` and `contains` are literal,
//!   case-sensitive substring tests: `%`, `_`, `*`, regex characters have no
//!   special meaning.
//! * **Ignoring case** (`eq_ignore_case`, `starts_with_ignore_case`,
//!   `contains_ignore_case`, [`Pattern::ignore_case`]): both sides are
//!   compared after replacing each character by its Unicode lowercase
//!   mapping, one character at a time, with no context and no language
//!   tailoring ([`fold_case`], Rust's `char::to_lowercase`): `É`/`é`,
//!   `Σ`/`σ`, `ΑΘΉΝΑ`/`αθήνα` match; `ß` stays `ß`, so `Straße` does *not*
//!   match `STRASSE` (that would be full case *folding*, which no SQL
//!   `lower()` does). Characters whose case folding differs from their
//!   lowercase (`ς` final sigma, `ſ` long s, …) compare unspecified:
//!   MongoDB's caseless regex folds them, `lower()` does not. Backends: memory in Rust; PostgreSQL with `lower(col)` on both
//!   sides (the database's `LC_CTYPE` must be a UTF-8 locale or ICU, as
//!   `C.UTF-8`/`en_US.UTF-8` are: under plain `C`, `lower()` folds ASCII
//!   only); MongoDB with an anchored `$regex` over the escaped text and the
//!   `i` option. SQLite's built-in `lower()`/`LIKE` fold ASCII letters
//!   only, so there `é` does not match `É`: backends like it report
//!   [`Capabilities::unicode_case_folding`](crate::Capabilities::unicode_case_folding)
//!   `false`, and only ASCII letters match across case.
//! * **Patterns** ([`Pattern`], `like`): literal parts match only
//!   themselves (`%`, `_`, `\`, `*`, regex characters included), `any()`
//!   any run of characters (also none), `one()` exactly one Unicode code
//!   point; the whole value must match. Null never matches.
//! * **Indexes.** On PostgreSQL, `eq_ignore_case` is `lower(col) = lower($1)`,
//!   served by a `lower(col)` expression index; `like`,
//!   `starts_with_ignore_case` and `contains_ignore_case` are
//!   `[lower(]col[)] LIKE $1 ESCAPE '\'`, served by a pg_trgm GIN index on
//!   the same expression (`gin (lower(col) gin_trgm_ops)`). On SQLite,
//!   case-sensitive `like` is `GLOB` and the ignore-case forms are
//!   `LIKE … ESCAPE '\'` (a `COLLATE NOCASE` index can serve a prefix).
//! * **Sort order:** null is lowest (first ascending, last descending);
//!   otherwise the same order as comparisons. Ties are broken by the id, ascending,
//!   so every query has a total, repeatable order.
//! * **Floats:** IEEE equality: `-0.0` equals `0.0` (for `eq`, `in`, `ne`,
//!   ordering comparisons and sorting: they are one value, ties broken by the
//!   id), as SQL and BSON compare. `NaN` compares unspecified (backends
//!   disagree); do not filter on it.
//! * **Arrays:** `contains` on a `Vec<T>` field matches rows whose array holds
//!   an element equal to the value.
//! * **Nested paths** (`profile.address.city`) address values inside JSON
//!   fields; they compare as JSON scalars (strings, numbers, booleans).
//!
//! # Limits
//!
//! Every filter is checked against [`FilterLimits`] once, in
//! [`Filter::checked`], before any backend sees it: nesting depth (default
//! 32), node count (default 1,000) and the total number of `in`/`not_in`
//! values (default 100,000). A filter beyond a limit is
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the
//! limit. The check walks the filter iteratively, so even a filter nested
//! 100,000 deep is refused without deep recursion; dropping such a filter
//! is iterative too. `Filter` has no serde `Deserialize`: build filters
//! from untrusted input with the builders (parse with a depth-limited
//! parser such as `serde_json`, which stops at 128 levels).
//!
//! The AST is in `ast.rs`, the limits and validation against metadata
//! ([`Filter::checked`]) in `check.rs`, the typed and untyped builders in
//! `field.rs`.

mod ast;
mod check;
mod field;
mod pattern;
mod scope;
mod tenant;

pub use ast::{CompareOp, FieldPath, Filter, Scope};
pub use check::FilterLimits;
pub use field::{Compatible, Field, StringField, UntypedField};
pub use pattern::{Pattern, PatternPart, fold_case};
