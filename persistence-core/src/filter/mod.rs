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

pub use ast::{CompareOp, FieldPath, Filter};
pub use check::FilterLimits;
pub use field::{Compatible, Field, StringField, UntypedField};
