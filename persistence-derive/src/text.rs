//! `#[entity(text_search)]` / `#[entity(text_search(language = "simple"))]`
//! on a `String` field: parsed here, emitted as a `.text_search(..)` call
//! on the metadata builder (which checks the field type and that every
//! text-search field uses one language).

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::LitStr;
use syn::meta::ParseNestedMeta;

/// A parsed text-search declaration: the language variant name.
pub(crate) struct TextAttr {
    language: &'static str,
}

/// Parse `text_search` or `text_search(language = "..")`.
pub(crate) fn parse(meta: &ParseNestedMeta<'_>) -> syn::Result<TextAttr> {
    let mut language = "English";
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            if inner.path.is_ident("language") {
                let lit: LitStr = inner.value()?.parse()?;
                language = match lit.value().as_str() {
                    "english" => "English",
                    "simple" => "Simple",
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "text_search language must be \"english\" or \"simple\"",
                        ));
                    }
                };
                Ok(())
            } else {
                Err(inner.error("expected language = \"english\" or \"simple\""))
            }
        })?;
    }
    Ok(TextAttr { language })
}

impl TextAttr {
    /// The builder call for the field stored as `stored`.
    pub(crate) fn call(&self, krate: &syn::Path, stored: &str) -> TokenStream2 {
        let lang = format_ident!("{}", self.language);
        quote!(.text_search(#stored, #krate::TextLanguage::#lang))
    }
}
