//! Text-search fields (`#[entity(text_search)]`, `#[entity(text_search(language = "simple"))]`):
//! which string fields a full-text query searches, and with which
//! [`TextLanguage`]. The rules themselves are in [`crate::text`].

use std::hash::{Hash, Hasher};

use crate::error::{Error, Result};

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

/// Check the declared `(field, language)` pairs: string fields, one language.
pub(crate) fn text_search(
    entity: &str,
    fields: &[super::FieldMeta],
    declared: &[(&'static str, TextLanguage)],
) -> Result<Option<TextSearch>> {
    let Some(&(_, language)) = declared.first() else {
        return Ok(None);
    };
    let mut out = TextSearch {
        fields: Vec::new(),
        names: Vec::new(),
        language,
    };
    for &(name, lang) in declared {
        let Some(i) = fields.iter().position(|f| f.name == name) else {
            return Err(Error::config(format!(
                "{entity}: text_search names unknown field `{name}`"
            )));
        };
        let f = &fields[i];
        if f.id || !matches!(f.ty, super::FieldType::Scalar(super::ScalarType::String)) {
            return Err(Error::config(format!(
                "{entity}.{name}: a text_search field must be a String or Option<String>"
            )));
        }
        if lang != language {
            return Err(Error::config(format!(
                "{entity}.{name}: every text_search field must use the same language ({} vs {})",
                lang.name(),
                language.name()
            )));
        }
        if out.fields.contains(&i) {
            return Err(Error::config(format!(
                "{entity}.{name}: declared text_search twice"
            )));
        }
        out.fields.push(i);
    }
    out.fields.sort_unstable();
    out.names = out.fields.iter().map(|&i| fields[i].name).collect();
    Ok(Some(out))
}
