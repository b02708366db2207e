//! `#[entity(belongs_to(Customer, key = customer_id, on_delete = cascade, name = "buyer"))]`,
//! `#[entity(has_many(Order, key = customer_id, name = "orders"))]` and
//! `#[entity(has_one(..))]` on the struct: parsed here, emitted as builder
//! calls, typed handles (`Order::CUSTOMER`, `Customer::ORDERS`) and
//! compile-time checks of the key type.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{LitStr, Path};

/// Which relation attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    BelongsTo,
    HasMany,
    HasOne,
}

/// A parsed relation attribute.
pub(crate) struct RelationAttr {
    kind: Kind,
    target: Path,
    key: syn::Ident,
    on_delete: &'static str,
    name: Option<LitStr>,
    span: Span,
}

/// Parse the inside of `belongs_to(..)` / `has_many(..)` / `has_one(..)`.
pub(crate) fn parse(meta: &ParseNestedMeta<'_>, kind: Kind) -> syn::Result<RelationAttr> {
    let span = meta.path.span();
    let (mut target, mut key, mut on_delete, mut name) = (None, None, "Restrict", None);
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("key") {
            key = Some(inner.value()?.parse::<syn::Ident>()?);
        } else if inner.path.is_ident("name") {
            name = Some(inner.value()?.parse::<LitStr>()?);
        } else if inner.path.is_ident("on_delete") {
            if kind != Kind::BelongsTo {
                return Err(inner.error("on_delete belongs on the child's belongs_to(..)"));
            }
            let id: syn::Ident = inner.value()?.parse()?;
            on_delete = match id.to_string().as_str() {
                "restrict" => "Restrict",
                "cascade" => "Cascade",
                "set_null" => "SetNull",
                _ => {
                    return Err(syn::Error::new(
                        id.span(),
                        "on_delete must be restrict, cascade or set_null",
                    ));
                }
            };
        } else if target.is_none() && !inner.input.peek(syn::Token![=]) {
            target = Some(inner.path.clone());
        } else {
            return Err(inner.error(
                "expected the related entity type first, then key = field, on_delete = restrict | cascade | set_null, name = \"..\"",
            ));
        }
        Ok(())
    })?;
    let target = target.ok_or_else(|| meta.error("name the related entity type first"))?;
    let key = key.ok_or_else(|| meta.error("give the key field: key = field"))?;
    if let Some(n) = &name {
        if !crate::is_identifier(&n.value()) {
            return Err(syn::Error::new(
                n.span(),
                "relation names are ASCII letters, digits and _",
            ));
        }
    }
    Ok(RelationAttr {
        kind,
        target,
        key,
        on_delete,
        name,
        span,
    })
}

fn last_ident(path: &Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}

/// The hidden handle a child generates per belongs_to key, which the
/// parent's `has_many` / `has_one` refers to.
fn fk_const(key: &syn::Ident) -> syn::Ident {
    format_ident!(
        "__FK_{}",
        key.to_string().trim_start_matches("r#").to_uppercase()
    )
}

impl RelationAttr {
    fn name(&self) -> String {
        self.name.as_ref().map_or_else(
            || {
                let base = crate::snake_case(&last_ident(&self.target));
                if self.kind == Kind::HasMany {
                    format!("{base}s")
                } else {
                    base
                }
            },
            LitStr::value,
        )
    }

    /// The builder call, the handles and the checks, for entity `entity`
    /// whose fields are `fields` (Rust ident, stored name, type).
    pub(crate) fn expand(
        &self,
        krate: &Path,
        entity: &syn::Ident,
        fields: &[(syn::Ident, String, syn::Type)],
    ) -> syn::Result<(TokenStream2, TokenStream2, TokenStream2)> {
        let name = self.name();
        let konst = format_ident!("{}", name.to_uppercase(), span = self.span);
        let target = &self.target;
        let doc =
            format!("Typed handle of the `{name}` relation (see `persistence_core::relation`).");
        if self.kind == Kind::BelongsTo {
            let Some((fi, stored, fty)) = fields
                .iter()
                .find(|(i, s, _)| *i == self.key || self.key == s)
            else {
                return Err(syn::Error::new(
                    self.key.span(),
                    format!("unknown key field `{}`", self.key),
                ));
            };
            let od = format_ident!("{}", self.on_delete);
            let fk = fk_const(fi);
            let check = quote_spanned!(fty.span()=>
                const _: fn() = || {
                    fn key_type<K: #krate::relation::ForeignKey<I>, I>() {}
                    key_type::<#fty, <#target as #krate::Entity>::Id>();
                };
            );
            let call = quote!(.belongs_to(#name, <#target as #krate::Entity>::meta, #stored, #krate::OnDelete::#od));
            let handles = quote! {
                #[doc = #doc]
                #[allow(dead_code)]
                pub const #konst: #krate::BelongsTo<#entity, #target, #fty> =
                    #krate::BelongsTo::new(#name, #stored, |e: &#entity| &e.#fi);
                #[doc(hidden)]
                #[allow(dead_code)]
                pub const #fk: #krate::BelongsTo<#entity, #target, #fty> = Self::#konst;
            };
            Ok((call, handles, check))
        } else {
            let fk = fk_const(&self.key);
            let many = self.kind == Kind::HasMany;
            let ty = if many {
                quote!(HasMany)
            } else {
                quote!(HasOne)
            };
            let call = quote!(.has(#name, <#target as #krate::Entity>::meta, <#target>::#fk.key_name(), #many));
            let handles = quote! {
                #[doc = #doc]
                #[allow(dead_code)]
                pub const #konst: #krate::#ty<#entity, #target> = #krate::#ty::new(
                    #name,
                    <#target>::#fk,
                    |c: &#target| <#target>::#fk.parent_id(c),
                );
            };
            Ok((call, handles, TokenStream2::new()))
        }
    }
}
