//! `#[serde(rename_all = "..")]` on an entity struct: the stored (column /
//! document key) name of every field without its own `rename`, computed as
//! serde computes it, so the metadata names what serde writes.

use proc_macro2::TokenStream as TokenStream2;
use syn::LitStr;

/// The struct-level serde attributes of `#[derive(Entity)]`: the
/// `rename_all` rule, if any. Attributes that would make the stored fields
/// differ from the struct (`tag`, `untagged`, `flatten`, ...) are refused.
pub(crate) fn struct_rename_all(attrs: &[syn::Attribute]) -> syn::Result<Option<LitStr>> {
    let mut rule = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                if !meta.input.peek(syn::Token![=]) {
                    return Err(meta.error(
                        "#[derive(Entity)] supports only `rename_all = \"...\"` (one rule for both directions)",
                    ));
                }
                let lit: LitStr = meta.value()?.parse()?;
                apply(&lit, "a_b")?;
                rule = Some(lit);
                return Ok(());
            }
            for unsupported in ["tag", "untagged", "content", "transparent", "flatten", "remote", "from", "try_from", "into"] {
                if meta.path.is_ident(unsupported) {
                    return Err(meta.error(format!(
                        "#[derive(Entity)] does not support #[serde({unsupported})]: stored fields must match the struct"
                    )));
                }
            }
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: TokenStream2 = content.parse()?;
            }
            Ok(())
        })?;
    }
    Ok(rule)
}

/// Field name `field` (snake_case, as Rust fields are) under serde rule
/// `rule`.
pub(crate) fn apply(rule: &LitStr, field: &str) -> syn::Result<String> {
    let pascal = || {
        field
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<String>()
    };
    Ok(match rule.value().as_str() {
        "lowercase" | "snake_case" => field.to_ascii_lowercase(),
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let p = pascal();
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default()
        }
        "kebab-case" | "SCREAMING-KEBAB-CASE" => {
            return Err(syn::Error::new(
                rule.span(),
                "stored field names must be ASCII letters, digits and _: kebab-case cannot name a column",
            ));
        }
        other => {
            return Err(syn::Error::new(
                rule.span(),
                format!("unknown rename_all rule `{other}`"),
            ));
        }
    })
}
