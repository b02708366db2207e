//! The search-string syntax (PostgreSQL's `websearch_to_tsquery`): words
//! are AND-ed, `"a quoted phrase"` matches the words in sequence, `or`
//! between two items matches either, `-item` excludes. Every other
//! character only separates words, so no input is a syntax error.

use crate::entity::TextLanguage;
use crate::error::{Error, Result};

use super::tokenize::{Document, lexeme, words};

/// Longest search string accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 1024;

/// Most items (words, phrases) a search string may hold.
pub const MAX_ITEMS: usize = 32;

/// One item of a search: a word or a phrase, possibly excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    /// `-item`: the item must not occur.
    pub negated: bool,
    /// The lowercased words as written, from the first to the last word
    /// that is not a stop word (stop words inside a phrase kept).
    pub words: Vec<String>,
    /// The lexemes with their offset in the phrase (stop words dropped).
    pub terms: Vec<(String, usize)>,
}

/// A parsed search: every clause must match; a clause matches when any of
/// its atoms does. No clause at all (nothing but stop words or symbols):
/// matches nothing, as PostgreSQL's empty `tsquery`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedQuery {
    /// AND of ORs.
    pub clauses: Vec<Vec<Atom>>,
}

enum Token {
    Or,
    Item { negated: bool, text: String },
}

fn tokens(input: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut negated = false;
        if c == '-' {
            chars.next();
            negated = matches!(chars.peek(), Some(n) if !n.is_whitespace());
            if !negated {
                continue;
            }
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let text: String = chars.by_ref().take_while(|&c| c != '"').collect();
            out.push(Token::Item { negated, text });
            continue;
        }
        let mut text = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '"' {
                break;
            }
            text.push(c);
            chars.next();
        }
        if !negated && text.eq_ignore_ascii_case("or") {
            out.push(Token::Or);
        } else {
            out.push(Token::Item { negated, text });
        }
    }
    out
}

fn atom(language: TextLanguage, negated: bool, text: &str) -> Option<Atom> {
    let all: Vec<String> = words(text).collect();
    let mut terms = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    for (i, w) in all.iter().enumerate() {
        if let Some(l) = lexeme(language, w) {
            kept.push(i);
            terms.push((l, i));
        }
    }
    let (&first, &last) = (kept.first()?, kept.last()?);
    let terms = terms.into_iter().map(|(l, i)| (l, i - first)).collect();
    Some(Atom {
        negated,
        words: all[first..=last].to_vec(),
        terms,
    })
}

impl ParsedQuery {
    /// Parse `input` by the rules of the module docs for `language`.
    /// Too long a string, or too many items, is `InvalidInput`.
    pub fn parse(language: TextLanguage, input: &str) -> Result<ParsedQuery> {
        if input.len() > MAX_QUERY_LEN {
            return Err(Error::invalid_input(format!(
                "text search: the search string is longer than {MAX_QUERY_LEN} bytes"
            )));
        }
        let tokens = tokens(input);
        let items = tokens
            .iter()
            .filter(|t| matches!(t, Token::Item { .. }))
            .count();
        if items > MAX_ITEMS {
            return Err(Error::invalid_input(format!(
                "text search: the search string has more than {MAX_ITEMS} items"
            )));
        }
        let mut clauses: Vec<Vec<Atom>> = Vec::new();
        let mut join = false;
        let mut current: Vec<Atom> = Vec::new();
        for t in tokens {
            match t {
                Token::Or => join = !current.is_empty(),
                Token::Item { negated, text } => {
                    let Some(a) = atom(language, negated, &text) else {
                        continue;
                    };
                    if !join && !current.is_empty() {
                        clauses.push(std::mem::take(&mut current));
                    }
                    current.push(a);
                    join = false;
                }
            }
        }
        if !current.is_empty() {
            clauses.push(current);
        }
        Ok(ParsedQuery { clauses })
    }

    /// Every item of `items` required, each taken as written: no operator
    /// (`or`, `-`, quotes are characters like any other, which only
    /// separate words), no length limit beyond the caller's. An item of
    /// several words is a phrase; one without a word is left out.
    pub fn every<'a>(
        language: TextLanguage,
        items: impl IntoIterator<Item = &'a str>,
    ) -> ParsedQuery {
        ParsedQuery {
            clauses: items
                .into_iter()
                .filter_map(|text| atom(language, false, text))
                .map(|a| vec![a])
                .collect(),
        }
    }

    /// True when nothing can match (no clause).
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The atoms that are not excluded (what relevance is computed from).
    pub fn positive(&self) -> impl Iterator<Item = &Atom> {
        self.clauses.iter().flatten().filter(|a| !a.negated)
    }

    /// Whether the document matches.
    pub fn matches(&self, doc: &Document) -> bool {
        !self.clauses.is_empty()
            && self
                .clauses
                .iter()
                .all(|c| c.iter().any(|a| doc.has_phrase(&a.terms) != a.negated))
    }

    /// Relevance of a matching document: how often the lexemes of the
    /// positive atoms occur in it (term frequency).
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn score(&self, doc: &Document) -> f64 {
        self.positive()
            .flat_map(|a| a.terms.iter())
            .map(|(t, _)| doc.count(t) as f64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ParsedQuery {
        ParsedQuery::parse(TextLanguage::English, s).expect("parse")
    }

    fn shape(q: &ParsedQuery) -> String {
        q.clauses
            .iter()
            .map(|c| {
                c.iter()
                    .map(|a| {
                        let t: Vec<&str> = a.terms.iter().map(|(t, _)| t.as_str()).collect();
                        format!("{}{}", if a.negated { "!" } else { "" }, t.join("<->"))
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }

    #[test]
    fn every_item_required_without_operators() {
        let q = ParsedQuery::every(
            TextLanguage::Simple,
            ["or", "-rust", "\"don't\"", "the", "++"],
        );
        assert_eq!(shape(&q), "or & rust & don<->t & the");
        assert!(ParsedQuery::every(TextLanguage::Simple, ["--"]).is_empty());
    }

    #[test]
    fn websearch_syntax() {
        assert_eq!(shape(&p("running dogs")), "run & dog");
        assert_eq!(shape(&p("\"quick brown\" -fox")), "quick<->brown & !fox");
        assert_eq!(shape(&p("cat or dog bird")), "cat|dog & bird");
        assert_eq!(shape(&p("the or cat")), "cat");
        assert_eq!(shape(&p("or or cat or")), "cat");
        assert_eq!(shape(&p(")( dummy \\ query <->")), "dummi & queri");
        assert_eq!(shape(&p("'; DROP TABLE x; --")), "drop & tabl & x");
        assert!(p("the of and").is_empty());
        assert_eq!(
            p("\"the quick the fox\"").clauses[0][0].words,
            ["quick", "the", "fox"]
        );
        assert_eq!(
            p("\"quick the fox\"").clauses[0][0].terms,
            [("quick".to_string(), 0), ("fox".to_string(), 2)]
        );
        assert!(ParsedQuery::parse(TextLanguage::English, &"a ".repeat(600)).is_err());
        assert!(ParsedQuery::parse(TextLanguage::English, &"ab ".repeat(40)).is_err());
    }

    #[test]
    fn matching_and_score() {
        let d = Document::new(TextLanguage::English, ["Cats chase dogs; dogs bark"]);
        assert!(p("dog").matches(&d));
        assert!(p("cat -bird").matches(&d));
        assert!(!p("cat -bark").matches(&d));
        assert!(p("bird or bark").matches(&d));
        assert!(p("\"chasing dogs\"").matches(&d));
        assert!(!p("\"dogs chase\"").matches(&d));
        assert!(!p("the").matches(&d));
        assert!((p("dog cat").score(&d) - 3.0).abs() < f64::EPSILON);
    }
}
