//! [`Pattern`]: an escape-safe `LIKE` pattern built from parts, the
//! case-folding rule ([`fold_case`]) and the reference matcher memory uses.
//!
//! A pattern is a list of literal text and wildcards. Literal text is kept
//! as given and every backend escapes it (`%`, `_`, `\` in SQL `LIKE`, regex
//! metacharacters in MongoDB, `*`, `?`, `[` in SQLite `GLOB`), so no user
//! string ever becomes a wildcard by accident.

/// One part of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternPart {
    /// Text that matches only itself (its characters are never wildcards).
    Literal(String),
    /// Any run of characters, also none (SQL `%`).
    Any,
    /// Exactly one character, a Unicode code point (SQL `_`).
    One,
}

/// An escape-safe pattern for [`StringField::like`](super::StringField::like):
/// `Pattern::new().literal("ab%").any().literal("x").one()` matches
/// `ab%` followed by anything, then `x` and one more character. The whole
/// value must match (the pattern is anchored at both ends).
///
/// [`Pattern::ignore_case`] makes it compare by the case-folding rule of the
/// [module docs](crate::filter).
///
/// ```
/// use persistence_core::{Field, Pattern, StringField};
/// # struct Product;
/// const SKU: Field<Product, String> = Field::new("sku");
/// // `50%` is literal text: only the `any()` is a wildcard.
/// let f = SKU.like(Pattern::new().literal("50%").any().literal("-").one());
/// assert!(Pattern::new().literal("50%").any().matches("50% off"));
/// assert!(!Pattern::new().literal("50%").any().matches("500"));
/// let _ = f;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pattern {
    parts: Vec<PatternPart>,
    ignore_case: bool,
}

impl Pattern {
    /// The empty pattern (matches only the empty string).
    pub fn new() -> Pattern {
        Pattern::default()
    }

    /// Append literal text (matched character for character).
    pub fn literal(mut self, text: impl AsRef<str>) -> Pattern {
        let text = text.as_ref();
        if text.is_empty() {
            return self;
        }
        match self.parts.last_mut() {
            Some(PatternPart::Literal(s)) => s.push_str(text),
            _ => self.parts.push(PatternPart::Literal(text.to_string())),
        }
        self
    }

    /// Append `Any`: any run of characters, also none.
    pub fn any(mut self) -> Pattern {
        // `%%` is `%`: keep one so every backend sees the same pattern.
        if self.parts.last() != Some(&PatternPart::Any) {
            self.parts.push(PatternPart::Any);
        }
        self
    }

    /// Append `One`: exactly one character.
    pub fn one(mut self) -> Pattern {
        self.parts.push(PatternPart::One);
        self
    }

    /// Compare ignoring case (by the rule in the [module docs](crate::filter)).
    pub fn ignore_case(mut self) -> Pattern {
        self.ignore_case = true;
        self
    }

    /// Whether the pattern compares ignoring case.
    pub fn is_ignore_case(&self) -> bool {
        self.ignore_case
    }

    /// The parts, in order (adjacent literals merged, no two `Any` in a row).
    pub fn parts(&self) -> &[PatternPart] {
        &self.parts
    }

    /// The literal text when the pattern has no wildcard (an equality test).
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [PatternPart::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Total length of the literal text in bytes (checked against the filter limits).
    pub fn literal_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                PatternPart::Literal(s) => s.len(),
                _ => 1,
            })
            .sum()
    }

    /// The pattern as SQL `LIKE` text with `\` as the escape character
    /// (use with `ESCAPE '\'`): `%`, `_` and `\` in literals are escaped.
    pub fn to_like(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                PatternPart::Literal(s) => {
                    for c in s.chars() {
                        if matches!(c, '%' | '_' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
                PatternPart::Any => out.push('%'),
                PatternPart::One => out.push('_'),
            }
        }
        out
    }

    /// Whether `value` matches (the reference semantics memory uses).
    pub fn matches(&self, value: &str) -> bool {
        let fold = |s: &str| -> Vec<char> {
            if self.ignore_case {
                fold_case(s).chars().collect()
            } else {
                s.chars().collect()
            }
        };
        let text = fold(value);
        let mut tokens: Vec<Token> = Vec::new();
        for p in &self.parts {
            match p {
                PatternPart::Literal(s) => tokens.extend(fold(s).into_iter().map(Token::Char)),
                PatternPart::Any => tokens.push(Token::Any),
                PatternPart::One => tokens.push(Token::One),
            }
        }
        wildcard_match(&tokens, &text)
    }
}

#[derive(Clone, Copy)]
enum Token {
    Char(char),
    Any,
    One,
}

/// Iterative wildcard matching with backtracking to the last `Any`
/// (linear memory, O(n·m) time at worst).
fn wildcard_match(pat: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..]
        .iter()
        .all(|x| matches!(x, Token::Any))
}

/// The case-folding rule of every ignore-case comparison: each character
/// replaced by its Unicode lowercase mapping, one character at a time (no
/// context, no language tailoring). See the [module docs](crate::filter).
pub fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_escapes_and_matches() {
        let p = Pattern::new().literal("ab%").any().any().literal("x").one();
        assert_eq!(p.to_like(), "ab\\%%x_");
        assert!(p.matches("ab%x1"));
        assert!(p.matches("ab%zzzx1"));
        assert!(!p.matches("abcx1"));
        assert!(!p.matches("ab%x"));
        let lit = Pattern::new().literal("a_b\\");
        assert_eq!(lit.to_like(), "a\\_b\\\\");
        assert_eq!(lit.as_literal(), Some("a_b\\"));
        assert!(lit.matches("a_b\\") && !lit.matches("axb\\"));
        let ic = Pattern::new().literal("ÉCOLE").any().ignore_case();
        assert!(ic.matches("école du soir"));
        assert!(!Pattern::new().literal("ÉCOLE").any().matches("école"));
        assert!(Pattern::new().any().matches(""));
        assert!(Pattern::new().matches("") && !Pattern::new().matches("a"));
        assert!(
            Pattern::new()
                .any()
                .literal("aab")
                .any()
                .matches("xaaaabyy")
        );
        assert_eq!(fold_case("STRAßE"), "straße");
    }
}
