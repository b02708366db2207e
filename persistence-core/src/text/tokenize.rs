//! Words of a text: split, lowercased, stop words dropped and stemmed by
//! the entity's [`TextLanguage`] (the rules PostgreSQL's `english` /
//! `simple` configurations apply, see [`crate::text`]).

use crate::entity::TextLanguage;

/// PostgreSQL's `english.stop` list (the Snowball English stop words),
/// sorted for binary search.
const ENGLISH_STOP: [&str; 127] = [
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// True when `word` (lowercased) is a stop word of `language`.
pub fn is_stop_word(language: TextLanguage, word: &str) -> bool {
    match language {
        TextLanguage::English => ENGLISH_STOP.binary_search(&word).is_ok(),
        TextLanguage::Simple => false,
    }
}

/// The words of `text`: maximal runs of alphanumeric characters
/// (`char::is_alphanumeric`), lowercased; everything else separates words.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The normalized form (lexeme) of one lowercased word, or `None` for a
/// stop word.
pub fn lexeme(language: TextLanguage, word: &str) -> Option<String> {
    if is_stop_word(language, word) {
        return None;
    }
    Some(match language {
        TextLanguage::English => rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English)
            .stem(word)
            .into_owned(),
        TextLanguage::Simple => word.to_string(),
    })
}

/// A tokenized document: its lexemes with their positions (1-based, stop
/// words counted, as in a PostgreSQL `tsvector`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// `(lexeme, position)` in text order.
    pub lexemes: Vec<(String, usize)>,
}

impl Document {
    /// Tokenize `texts` as one text, joined by a space (as PostgreSQL's
    /// `to_tsvector(cfg, a || ' ' || b)`).
    pub fn new<'a>(language: TextLanguage, texts: impl IntoIterator<Item = &'a str>) -> Document {
        let mut lexemes = Vec::new();
        let mut pos = 0usize;
        for text in texts {
            for w in words(text) {
                pos += 1;
                if let Some(l) = lexeme(language, &w) {
                    lexemes.push((l, pos));
                }
            }
        }
        Document { lexemes }
    }

    /// How often `lexeme` occurs.
    pub fn count(&self, lexeme: &str) -> usize {
        self.lexemes.iter().filter(|(l, _)| l == lexeme).count()
    }

    /// True when the lexemes occur at positions `p + offsets[i]` for some `p`.
    pub fn has_phrase(&self, terms: &[(String, usize)]) -> bool {
        let Some((first, off0)) = terms.first() else {
            return false;
        };
        self.lexemes
            .iter()
            .filter(|(l, _)| l == first)
            .any(|(_, p)| {
                terms.iter().all(|(t, off)| {
                    let want = p + off - off0;
                    self.lexemes.iter().any(|(l, q)| *q == want && l == t)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_list_is_sorted_and_words_are_normalized() {
        assert!(ENGLISH_STOP.windows(2).all(|w| w[0] < w[1]));
        let d = Document::new(TextLanguage::English, ["The Running dogs", "JUMPED!"]);
        assert_eq!(
            d.lexemes,
            vec![
                ("run".to_string(), 2),
                ("dog".to_string(), 3),
                ("jump".to_string(), 4)
            ]
        );
        let s = Document::new(TextLanguage::Simple, ["The Running"]);
        assert_eq!(s.lexemes.len(), 2);
        assert!(d.has_phrase(&[("run".into(), 0), ("dog".into(), 1)]));
        assert!(!d.has_phrase(&[("dog".into(), 0), ("run".into(), 1)]));
    }
}
