//! The substring semantics of backends without a text index
//! ([`Capabilities::native_text_search`](crate::Capabilities) `false`,
//! MongoDB's fallback): each atom's words, as written (stop words at its
//! ends dropped, none stemmed), must occur case-insensitively as a
//! substring of the fields, the words of a phrase separated by at least
//! one character that is not a letter or digit. The backend matches with
//! an escaped `$regex`; this is the reference it is tested against, and
//! the score it ranks by.

use super::ParsedQuery;
use super::parse::Atom;

/// The text lowercased with every run of non-alphanumeric characters made
/// one space, between spaces.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut gap = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            gap = false;
        } else if !gap {
            out.push(' ');
            gap = true;
        }
    }
    if !gap {
        out.push(' ');
    }
    out
}

fn occurrences(norm: &str, atom: &Atom) -> usize {
    norm.matches(atom.words.join(" ").as_str()).count()
}

impl ParsedQuery {
    /// Whether `text` matches by substring semantics (module docs).
    pub fn matches_substring(&self, text: &str) -> bool {
        let norm = normalize(text);
        !self.clauses.is_empty()
            && self
                .clauses
                .iter()
                .all(|c| c.iter().any(|a| (occurrences(&norm, a) > 0) != a.negated))
    }

    /// Relevance by substring semantics: the occurrences of the positive atoms.
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn score_substring(&self, text: &str) -> f64 {
        let norm = normalize(text);
        self.positive().map(|a| occurrences(&norm, a) as f64).sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::entity::TextLanguage;

    use super::*;

    #[test]
    fn substrings_without_stemming() {
        let p = |s| ParsedQuery::parse(TextLanguage::English, s).expect("parse");
        let t = "Running dogs; the DOG-house";
        assert!(p("run").matches_substring(t));
        assert!(p("\"dog house\"").matches_substring(t));
        assert!(!p("ran").matches_substring(t));
        assert!(!p("dogs -house").matches_substring(t));
        assert!((p("dog").score_substring(t) - 2.0).abs() < f64::EPSILON);
    }
}
