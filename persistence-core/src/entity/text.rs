//! Text-search fields (`#[entity(text_search)]`, `#[entity(text_search(language = "simple"))]`):
//! which string fields a full-text query searches, and with which
//! [`TextLanguage`]. The rules themselves are in [`crate::text`].

use std::hash::{Hash, Hasher};

/// The text-search configuration of an entity: how words are normalized.
/// The names are PostgreSQL's text-search configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TextLanguage {
    /// `english`: lowercase, English stop words dropped, Snowball English
    /// stemming (`running` → `run`).
    #[default]
    English,
    /// `simple`: lowercase only, every word kept as it is.
    Simple,
}

impl TextLanguage {
    /// The configuration name (`english`, `simple`).
    pub fn name(self) -> &'static str {
        match self {
            TextLanguage::English => "english",
            TextLanguage::Simple => "simple",
        }
    }

    /// The language called `name`, if supported.
    pub fn from_name(name: &str) -> Option<TextLanguage> {
        match name {
            "english" => Some(TextLanguage::English),
            "simple" => Some(TextLanguage::Simple),
            _ => None,
        }
    }
}

/// The text-search fields of an entity (see [`crate::text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSearch {
    /// Indexes in [`EntityMeta::fields`](super::EntityMeta::fields), in field order.
    pub fields: Vec<usize>,
    /// Their stored names, same order.
    pub names: Vec<&'static str>,
    /// How words are normalized.
    pub language: TextLanguage,
}

impl TextSearch {
    /// Feed the declaration into the schema hash.
    pub(crate) fn hash_into<H: Hasher>(&self, h: &mut H) {
        ("text_search", self.language.name(), &self.names).hash(h);
    }
}
