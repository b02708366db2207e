//! The filter AST: [`Filter`], its operators and field paths, the
//! combinators (`and`, `or`, `not`), and the iterative `Clone` and `Drop`
//! that keep arbitrarily deep filters off the stack.

use std::borrow::Cow;

use crate::value::Value;

use super::pattern::Pattern;

/// A dotted field path (`email`, `profile.address.city`).
pub type FieldPath = Cow<'static, str>;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=` (matches null)
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// Which rows of a soft-deletable entity a filter sees (see `filter/scope.rs`
/// and [`crate::lifecycle`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Rows whose soft-delete field is null (the default).
    #[default]
    Live,
    /// Every row, deleted or not.
    WithDeleted,
    /// Only soft-deleted rows.
    OnlyDeleted,
}

/// A filter over an entity's fields.
///
/// Cloning and dropping a filter are iterative (no recursion however deep
/// it is), so a filter refused for its depth can be handled on any thread.
#[derive(Debug, PartialEq)]
pub enum Filter {
    /// All must match (`And(vec![])` matches everything).
    And(Vec<Filter>),
    /// Any must match (`Or(vec![])` matches nothing).
    Or(Vec<Filter>),
    /// Exactly the rows the inner filter does not match.
    Not(Box<Filter>),
    /// Compare a field with a value.
    Compare {
        /// Field path.
        field: FieldPath,
        /// Operator.
        op: CompareOp,
        /// Value (normalized to the field's type by [`Filter::checked`]).
        value: Value,
    },
    /// Field equals one of the values.
    In {
        /// Field path.
        field: FieldPath,
        /// Candidates.
        values: Vec<Value>,
    },
    /// Field equals none of the values (null matches).
    NotIn {
        /// Field path.
        field: FieldPath,
        /// Excluded values.
        values: Vec<Value>,
    },
    /// Field is null / absent.
    IsNull(FieldPath),
    /// Field is not null.
    IsNotNull(FieldPath),
    /// String field starts with a literal prefix.
    StartsWith {
        /// Field path.
        field: FieldPath,
        /// Prefix (literal).
        prefix: String,
    },
    /// String field contains a literal substring.
    Contains {
        /// Field path.
        field: FieldPath,
        /// Substring (literal).
        substring: String,
    },
    /// String field matches an escape-safe pattern, optionally ignoring
    /// case (`like`, and the `*_ignore_case` operators, which build one).
    Like {
        /// Field path.
        field: FieldPath,
        /// The pattern.
        pattern: Pattern,
    },
    /// Array field holds an element equal to the value.
    ArrayContains {
        /// Field path.
        field: FieldPath,
        /// Element.
        value: Value,
    },
    /// The entity's `#[entity(text_search)]` fields match this search
    /// string (websearch syntax; see [`crate::text`]).
    MatchesText(String),
    /// A soft-delete scope marker (see [`Scope`]): matches
    /// every row. [`Filter::checked`] turns the scope into a condition on the
    /// soft-delete field and keeps the marker first in its result.
    Scope(Scope),
    /// A filter that could not be built (e.g. a value failed to serialize);
    /// checking it yields `InvalidInput` with this message.
    Invalid(String),
}

impl Default for Filter {
    fn default() -> Self {
        Filter::all()
    }
}

impl Filter {
    /// Move the boxed/listed children out (leaving this node childless).
    fn take_children(&mut self, into: &mut Vec<Filter>) {
        match self {
            Filter::And(fs) | Filter::Or(fs) => into.append(fs),
            Filter::Not(f) if f.has_children() => into.push(std::mem::take(&mut **f)),
            _ => {}
        }
    }

    /// True when dropping this node would recurse (it holds other nodes).
    fn has_children(&self) -> bool {
        match self {
            Filter::And(fs) | Filter::Or(fs) => !fs.is_empty(),
            Filter::Not(_) => true,
            _ => false,
        }
    }
}

impl Clone for Filter {
    fn clone(&self) -> Self {
        enum Step<'a> {
            Visit(&'a Filter),
            And(usize),
            Or(usize),
            Not,
        }
        let mut work = vec![Step::Visit(self)];
        let mut out: Vec<Filter> = Vec::new();
        while let Some(step) = work.pop() {
            match step {
                Step::Visit(f) => match f {
                    Filter::And(fs) | Filter::Or(fs) => {
                        work.push(if matches!(f, Filter::And(_)) {
                            Step::And(fs.len())
                        } else {
                            Step::Or(fs.len())
                        });
                        work.extend(fs.iter().rev().map(Step::Visit));
                    }
                    Filter::Not(g) => {
                        work.push(Step::Not);
                        work.push(Step::Visit(g));
                    }
                    leaf => out.push(leaf.clone_leaf()),
                },
                Step::And(n) | Step::Or(n) => {
                    let items = out.split_off(out.len().saturating_sub(n));
                    out.push(if matches!(step, Step::And(_)) {
                        Filter::And(items)
                    } else {
                        Filter::Or(items)
                    });
                }
                Step::Not => {
                    let inner = out.pop().unwrap_or_default();
                    out.push(Filter::Not(Box::new(inner)));
                }
            }
        }
        out.pop().unwrap_or_default()
    }
}

impl Filter {
    /// Clone a node without children (`and`/`or`/`not` become empty `and`).
    fn clone_leaf(&self) -> Filter {
        match self {
            Filter::And(_) | Filter::Or(_) | Filter::Not(_) => Filter::all(),
            Filter::Compare { field, op, value } => Filter::Compare {
                field: field.clone(),
                op: *op,
                value: value.clone(),
            },
            Filter::In { field, values } => Filter::In {
                field: field.clone(),
                values: values.clone(),
            },
            Filter::NotIn { field, values } => Filter::NotIn {
                field: field.clone(),
                values: values.clone(),
            },
            Filter::IsNull(f) => Filter::IsNull(f.clone()),
            Filter::IsNotNull(f) => Filter::IsNotNull(f.clone()),
            Filter::StartsWith { field, prefix } => Filter::StartsWith {
                field: field.clone(),
                prefix: prefix.clone(),
            },
            Filter::Contains { field, substring } => Filter::Contains {
                field: field.clone(),
                substring: substring.clone(),
            },
            Filter::ArrayContains { field, value } => Filter::ArrayContains {
                field: field.clone(),
                value: value.clone(),
            },
            Filter::Like { field, pattern } => Filter::Like {
                field: field.clone(),
                pattern: pattern.clone(),
            },
            Filter::Invalid(m) => Filter::Invalid(m.clone()),
            Filter::Scope(s) => Filter::Scope(*s),
            Filter::MatchesText(q) => Filter::MatchesText(q.clone()),
        }
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        // Flat filters (the common case) drop without allocating.
        let deep = match self {
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(Filter::has_children),
            Filter::Not(f) => f.has_children(),
            _ => false,
        };
        if !deep {
            return;
        }
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut f) = stack.pop() {
            f.take_children(&mut stack);
            // `f` is now childless (or holds only leaves): dropping it does not recurse deeply.
        }
    }
}

impl Filter {
    /// Matches everything.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }
    /// Matches nothing.
    pub fn none() -> Filter {
        Filter::Or(Vec::new())
    }
    /// Rows whose `#[entity(text_search)]` fields match the search string
    /// `query` (`"a phrase" word -excluded x or y`; see [`crate::text`]).
    /// Composes with every other filter.
    pub fn matches_text(query: impl Into<String>) -> Filter {
        Filter::MatchesText(query.into())
    }
    /// True for `And([])`.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::And(v) if v.is_empty())
    }

    /// Both.
    pub fn and(mut self, mut other: Filter) -> Filter {
        match (&mut self, &mut other) {
            (Filter::And(a), Filter::And(b)) => {
                a.append(b);
                self
            }
            (Filter::And(a), _) => {
                a.push(other);
                self
            }
            (_, Filter::And(b)) => {
                b.insert(0, self);
                other
            }
            _ => Filter::And(vec![self, other]),
        }
    }
    /// Either.
    pub fn or(mut self, mut other: Filter) -> Filter {
        match (&mut self, &mut other) {
            (Filter::Or(a), Filter::Or(b)) => {
                a.append(b);
                self
            }
            (Filter::Or(a), _) => {
                a.push(other);
                self
            }
            _ => Filter::Or(vec![self, other]),
        }
    }

    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }
}
