//! `#[derive(Entity)]`, `#[derive(Embedded)]` and `#[derive(EntityEnum)]` for `persistence-core`.
//!
//! See the `persistence_core` crate docs for the attributes.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Type, parse_macro_input};

mod relation;
mod rename;
mod text;
mod vector;

/// Derive `persistence_core::Entity` plus typed field handles.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match entity(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Derive `persistence_core::Embedded` for a nested struct with named fields:
/// its stored shape (field names, types, which may be null or missing), used
/// by backends to describe nested documents (e.g. MongoDB's `$jsonSchema`).
#[proc_macro_derive(Embedded, attributes(entity))]
pub fn derive_embedded(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match embedded(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Derive `persistence_core::FieldKind` for a unit-only enum stored as its variant name.
#[proc_macro_derive(EntityEnum, attributes(entity))]
pub fn derive_entity_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match entity_enum(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct FieldInfo {
    ident: syn::Ident,
    ty: Type,
    stored: String,
    id: bool,
    version: bool,
    unique: bool,
    index: bool,
    ttl_secs: Option<u64>,
    option: bool,
    managed: Option<&'static str>,
    tenant: bool,
    vector: Option<vector::VectorAttr>,
    text: Option<text::TextAttr>,
    generated: bool,
    object_id: bool,
    /// The key serde writes the field under, when `stored` (the column /
    /// document key) differs from it (`#[entity(column)]`,
    /// `#[entity(rename_all)]`).
    serde_key: Option<String>,
}

fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `String` or `Option<String>` (by name: the builder checks the type class).
fn is_string_or_option(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if last.ident == "String" {
        return true;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if last.ident == "Option" => {
            matches!(args.args.first(), Some(syn::GenericArgument::Type(t)) if is_string_or_option(t))
        }
        _ => false,
    }
}

fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            s.ident == "Option" && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))
        }),
        _ => false,
    }
}

fn parse_ttl(lit: &LitStr) -> syn::Result<u64> {
    let s = lit.value();
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "ttl must look like \"30d\", \"12h\", \"15m\" or \"90s\"",
        )
    })?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(syn::Error::new(lit.span(), "ttl unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| syn::Error::new(lit.span(), "ttl too large"))
}

fn serde_rename(attrs: &[syn::Attribute]) -> syn::Result<Option<String>> {
    serde_field(attrs, "Entity").map(|(rename, _)| rename)
}

/// `rename = ".."` and whether `skip_serializing_if` is present; `derive`
/// names the derive in messages.
fn serde_field(attrs: &[syn::Attribute], derive: &str) -> syn::Result<(Option<String>, bool)> {
    let mut rename = None;
    let mut skip_if = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if meta.input.peek(syn::Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    rename = Some(lit.value());
                } else {
                    return Err(meta.error(format!("#[derive({derive})] supports only `rename = \"...\"`")));
                }
                return Ok(());
            }
            for unsupported in ["flatten", "skip", "skip_serializing", "skip_deserializing", "rename_all", "tag", "untagged"] {
                if meta.path.is_ident(unsupported) {
                    return Err(meta.error(format!(
                        "#[derive({derive})] does not support #[serde({unsupported})]: stored fields must match the struct"
                    )));
                }
            }
            if meta.path.is_ident("skip_serializing_if") {
                skip_if = true;
            }
            // Other serde attributes (default, with, ...) are fine; consume their value.
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
                let _: TokenStream2 = _content.parse()?;
            }
            Ok(())
        })?;
    }
    Ok((rename, skip_if))
}

fn entity(input: DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Entity)] does not support generic structs",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[derive(Entity)] needs a struct with named fields",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "#[derive(Entity)] needs a struct with named fields",
        ));
    };

    let mut logical = snake_case(&name.to_string());
    let mut krate: syn::Path = syn::parse_quote!(::persistence_core);
    let mut composites: Vec<(Vec<LitStr>, bool, Span)> = Vec::new();
    let mut relations: Vec<relation::RelationAttr> = Vec::new();
    let rename_all = rename::struct_rename_all(&input.attrs)?;
    let mut column_rule: Option<LitStr> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("entity")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                logical = lit.value();
                Ok(())
            } else if meta.path.is_ident("rename_all") {
                let lit: LitStr = meta.value()?.parse()?;
                rename::apply(&lit, "a_b")?;
                column_rule = Some(lit);
                Ok(())
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse()?;
                Ok(())
            } else if meta.path.is_ident("unique") || meta.path.is_ident("index") {
                let unique = meta.path.is_ident("unique");
                let span = meta.path.span();
                let mut names = Vec::new();
                meta.parse_nested_meta(|inner| {
                    let id = inner
                        .path
                        .get_ident()
                        .ok_or_else(|| inner.error("expected a field name"))?;
                    names.push(LitStr::new(&id.to_string(), id.span()));
                    Ok(())
                })?;
                if names.is_empty() {
                    return Err(meta.error("list at least one field"));
                }
                composites.push((names, unique, span));
                Ok(())
            } else if let Some(kind) = [
                ("belongs_to", relation::Kind::BelongsTo),
                ("has_many", relation::Kind::HasMany),
                ("has_one", relation::Kind::HasOne),
            ]
            .into_iter()
            .find_map(|(n, k)| meta.path.is_ident(n).then_some(k))
            {
                relations.push(relation::parse(&meta, kind)?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown entity attribute; expected name, rename_all, unique(..), index(..), belongs_to(..), has_many(..), has_one(..) or crate",
                ))
            }
        })?;
    }
    if !is_identifier(&logical) {
        return Err(syn::Error::new(
            Span::call_site(),
            "entity name must be ASCII letters, digits and _ (at most 63 bytes)",
        ));
    }

    let mut fields = Vec::new();
    for f in &named.named {
        let ident = f
            .ident
            .clone()
            .ok_or_else(|| syn::Error::new(f.span(), "unnamed field"))?;
        let plain = ident.to_string().trim_start_matches("r#").to_string();
        let stored = match (serde_rename(&f.attrs)?, &rename_all) {
            (Some(name), _) => name,
            (None, Some(rule)) => rename::apply(rule, &plain)?,
            (None, None) => plain.clone(),
        };
        let mut info = FieldInfo {
            stored,
            ident,
            ty: f.ty.clone(),
            id: false,
            version: false,
            unique: false,
            index: false,
            ttl_secs: None,
            option: is_option(&f.ty),
            managed: None,
            tenant: false,
            vector: None,
            text: None,
            generated: false,
            object_id: false,
            serde_key: None,
        };
        let mut column: Option<String> = None;
        for attr in f.attrs.iter().filter(|a| a.path().is_ident("entity")) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("id") {
                    info.id = true;
                } else if meta.path.is_ident("version") {
                    info.version = true;
                } else if meta.path.is_ident("unique") {
                    info.unique = true;
                } else if meta.path.is_ident("index") {
                    info.index = true;
                } else if let Some(role) = ["created_at", "updated_at", "soft_delete"]
                    .into_iter()
                    .find(|r| meta.path.is_ident(r))
                {
                    if info.managed.replace(role).is_some() {
                        return Err(meta.error("a field can have only one of created_at, updated_at and soft_delete"));
                    }
                } else if meta.path.is_ident("tenant") {
                    info.tenant = true;
                } else if meta.path.is_ident("generated") {
                    info.generated = true;
                } else if meta.path.is_ident("object_id") {
                    info.object_id = true;
                } else if meta.path.is_ident("column") {
                    let lit: LitStr = meta.value()?.parse()?;
                    column = Some(lit.value());
                } else if meta.path.is_ident("ttl") {
                    let lit: LitStr = meta.value()?.parse()?;
                    info.ttl_secs = Some(parse_ttl(&lit)?);
                } else if meta.path.is_ident("vector") {
                    info.vector = Some(vector::parse(&meta)?);
                } else if meta.path.is_ident("text_search") {
                    info.text = Some(text::parse(&meta)?);
                } else {
                    return Err(meta.error(
                        "unknown field attribute; expected id, version, unique, index, ttl, created_at, updated_at, soft_delete, tenant, generated, object_id, column, vector(..) or text_search",
                    ));
                }
                Ok(())
            })?;
        }
        // The column: `#[entity(column)]`, else the struct's
        // `#[entity(rename_all)]` rule on the Rust name, else serde's name.
        let column = match (column, &column_rule) {
            (Some(c), _) => Some(c),
            (None, Some(rule)) => Some(rename::apply(rule, &plain)?),
            (None, None) => None,
        };
        if let Some(c) = column.filter(|c| *c != info.stored) {
            info.serde_key = Some(std::mem::replace(&mut info.stored, c));
        }
        if !is_identifier(&info.stored) {
            return Err(syn::Error::new(
                f.span(),
                "stored field names must be ASCII letters, digits and _",
            ));
        }
        fields.push(info);
    }

    let ids: Vec<&FieldInfo> = fields.iter().filter(|f| f.id).collect();
    let id = match ids.as_slice() {
        [one] => *one,
        [] => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[derive(Entity)]: no field is marked #[entity(id)]",
            ));
        }
        [_, second, ..] => {
            return Err(syn::Error::new(
                second.ident.span(),
                "#[derive(Entity)]: only one field may be #[entity(id)]",
            ));
        }
    };
    if id.option {
        return Err(syn::Error::new(
            id.ty.span(),
            "the id field cannot be an Option",
        ));
    }
    let versions: Vec<&FieldInfo> = fields.iter().filter(|f| f.version).collect();
    if versions.len() > 1 {
        return Err(syn::Error::new(
            versions[1].ident.span(),
            "#[derive(Entity)]: only one field may be #[entity(version)]",
        ));
    }
    if let Some(v) = versions.first() {
        let is_i64 = matches!(&v.ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("i64"));
        if !is_i64 {
            return Err(syn::Error::new(
                v.ty.span(),
                "#[entity(version)] field must be of type i64",
            ));
        }
    }
    for role in ["created_at", "updated_at", "soft_delete"] {
        let marked: Vec<&FieldInfo> = fields.iter().filter(|f| f.managed == Some(role)).collect();
        if let Some(second) = marked.get(1) {
            return Err(syn::Error::new(
                second.ident.span(),
                format!("#[derive(Entity)]: only one field may be #[entity({role})]"),
            ));
        }
        if let Some(f) = marked.first() {
            if f.id || f.version {
                return Err(syn::Error::new(
                    f.ident.span(),
                    format!("#[entity({role})] cannot be the id or the version"),
                ));
            }
            if role == "soft_delete" && !f.option {
                return Err(syn::Error::new(
                    f.ty.span(),
                    "#[entity(soft_delete)] field must be an Option<DateTime<Utc>>",
                ));
            }
        }
    }
    let tenant_call = tenant_call(&fields)?;
    for (names, _, span) in &composites {
        for n in names {
            if !fields
                .iter()
                .any(|f| f.stored == n.value() || f.ident == n.value())
            {
                return Err(syn::Error::new(
                    *span,
                    format!("unknown field `{}` in index", n.value()),
                ));
            }
        }
    }

    let id_ident = &id.ident;
    let id_ty = &id.ty;
    let (version_get, version_set) = match versions.first() {
        Some(v) => {
            let vi = &v.ident;
            (
                quote!(::core::option::Option::Some(self.#vi)),
                quote!(self.#vi = version;),
            )
        }
        None => (
            quote!(::core::option::Option::None),
            quote!(let _ = version;),
        ),
    };

    let touch_body = fields
        .iter()
        .filter_map(|f| {
            let fi = &f.ident;
            match f.managed {
                Some("updated_at") => Some(quote_spanned!(f.ty.span()=> self.#fi = ::core::convert::From::from(now);)),
                Some("created_at") => Some(quote_spanned!(f.ty.span()=> if insert { self.#fi = ::core::convert::From::from(now); })),
                _ => None,
            }
        })
        .collect::<Vec<_>>();
    let touch = (!touch_body.is_empty()).then(|| {
        quote! {
            // `From::from` takes `DateTime<Utc>` and `Option<DateTime<Utc>>` fields alike.
            #[allow(clippy::useless_conversion)]
            fn touch(&mut self, now: #krate::__private::chrono::DateTime<#krate::__private::chrono::Utc>, insert: bool) {
                let _ = insert;
                #(#touch_body)*
            }
        }
    });
    let deleted_at = fields.iter().find(|f| f.managed == Some("soft_delete")).map(|f| {
        let fi = &f.ident;
        let read = quote_spanned!(f.ty.span()=> self.#fi);
        quote! {
            fn deleted_at(&self) -> ::core::option::Option<#krate::__private::chrono::DateTime<#krate::__private::chrono::Utc>> {
                #read
            }
        }
    });
    let managed_calls = fields.iter().filter_map(|f| {
        let stored = &f.stored;
        let role = match f.managed? {
            "created_at" => quote!(CreatedAt),
            "updated_at" => quote!(UpdatedAt),
            _ => quote!(SoftDelete),
        };
        Some(quote!(.managed(#krate::Managed::#role, #stored)))
    });
    let field_metas = fields.iter().map(|f| {
        let stored = &f.stored;
        let rust_name = f.ident.to_string();
        let ty = &f.ty;
        let (id, version, unique, index, option) = (f.id, f.version, f.unique, f.index, f.option);
        let ttl = match f.ttl_secs {
            Some(s) => quote!(#krate::__private::parse_duration_secs(#s)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            .field({
                let (ty, nullable) = (&#krate::__private::Probe::<#ty>::NEW).classify();
                #krate::FieldMeta {
                    name: #stored,
                    rust_name: #rust_name,
                    ty,
                    nullable: nullable || #option,
                    id: #id,
                    version: #version,
                    unique: #unique,
                    index: #index,
                    ttl: #ttl,
                }
            })
        }
    });
    let shape_calls = fields.iter().map(|f| {
        let stored = &f.stored;
        let ty = &f.ty;
        quote!(.shape(#stored, (&#krate::__private::Probe::<#ty>::NEW).shape()))
    });
    let vector_calls = fields
        .iter()
        .filter_map(|f| Some(f.vector.as_ref()?.call(&krate, &f.stored)));
    let text_calls = fields
        .iter()
        .filter_map(|f| Some(f.text.as_ref()?.call(&krate, &f.stored)));
    let generated_calls = generated_calls(&fields)?;
    let serde_key_calls = fields.iter().filter_map(|f| {
        let (stored, key) = (&f.stored, f.serde_key.as_ref()?);
        Some(quote!(.serde_key(#stored, #key)))
    });
    let composite_calls = composites.iter().map(|(names, unique, _)| {
        let stored: Vec<String> = names
            .iter()
            .map(|n| {
                fields
                    .iter()
                    .find(|f| f.ident == n.value())
                    .map_or_else(|| n.value(), |f| f.stored.clone())
            })
            .collect();
        quote!(.composite(&[#(#stored),*], #unique))
    });
    let field_list: Vec<(syn::Ident, String, Type)> = fields
        .iter()
        .map(|f| (f.ident.clone(), f.stored.clone(), f.ty.clone()))
        .collect();
    let mut relation_calls = Vec::new();
    let mut relation_items = Vec::new();
    let mut relation_checks = Vec::new();
    for r in &relations {
        let (call, items, check) = r.expand(&krate, name, &field_list)?;
        relation_calls.push(call);
        relation_items.push(items);
        relation_checks.push(check);
    }
    let handles = fields.iter().map(|f| {
        let konst = format_ident!(
            "{}",
            f.ident.to_string().trim_start_matches("r#").to_uppercase()
        );
        let ty = &f.ty;
        let stored = &f.stored;
        let doc = format!("Typed handle for the `{}` field.", f.ident);
        quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            pub const #konst: #krate::Field<#name, #ty> = #krate::Field::new(#stored);
        }
    });

    Ok(quote! {
        impl #krate::Entity for #name {
            type Id = #id_ty;
            fn meta() -> &'static #krate::EntityMeta {
                #[allow(unused_imports)]
                use #krate::__private::{NoShape as _, ViaEmbedded as _, ViaFieldKind as _, ViaSerde as _};
                static META: #krate::__private::OnceLock<#krate::EntityMeta> = #krate::__private::OnceLock::new();
                META.get_or_init(|| {
                    #krate::__private::build_meta(
                        #krate::EntityMeta::builder(#logical)
                            #(#field_metas)*
                            #(#shape_calls)*
                            #(#composite_calls)*
                            #(#managed_calls)*
                            #tenant_call
                            #(#vector_calls)*
                            #(#relation_calls)*
                            #(#text_calls)*
                            #(#generated_calls)*
                            #(#serde_key_calls)*
                    )
                })
            }
            fn id(&self) -> &Self::Id {
                &self.#id_ident
            }
            fn version(&self) -> ::core::option::Option<i64> {
                #version_get
            }
            fn set_version(&mut self, version: i64) {
                #version_set
            }
            #touch
            #deleted_at
        }
        impl #name {
            #(#handles)*
            #(#relation_items)*
        }
        #(#relation_checks)*
    })
}

/// The builder calls marking the `#[entity(generated)]` fields (filled by
/// the database): the id, or an `Option` field that is not the version or
/// a managed field.
fn generated_calls(fields: &[FieldInfo]) -> syn::Result<Vec<TokenStream2>> {
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| f.generated) {
        if !f.id && (!f.option || f.version || f.managed.is_some()) {
            return Err(syn::Error::new(
                f.ident.span(),
                "#[entity(generated)] must be on the id or on an Option field (not the version or a managed field)",
            ));
        }
        let stored = &f.stored;
        out.push(quote!(.generated(#stored)));
    }
    for f in fields.iter().filter(|f| f.object_id) {
        if !is_string_or_option(&f.ty) {
            return Err(syn::Error::new(
                f.ty.span(),
                "#[entity(object_id)] must be on a String or Option<String> field (the hex form)",
            ));
        }
        let stored = &f.stored;
        out.push(quote!(.object_id(#stored)));
    }
    Ok(out)
}

/// The builder call marking the `#[entity(tenant)]` field (row-level
/// tenancy), after checking there is at most one and it is a plain field.
fn tenant_call(fields: &[FieldInfo]) -> syn::Result<Option<TokenStream2>> {
    let marked: Vec<&FieldInfo> = fields.iter().filter(|f| f.tenant).collect();
    if let Some(second) = marked.get(1) {
        return Err(syn::Error::new(
            second.ident.span(),
            "#[derive(Entity)]: only one field may be #[entity(tenant)]",
        ));
    }
    let Some(f) = marked.first() else {
        return Ok(None);
    };
    if f.id || f.version || f.option || f.managed.is_some() {
        return Err(syn::Error::new(
            f.ident.span(),
            "#[entity(tenant)] must be a String, integer or Uuid field that is not optional, the id, the version or a managed field",
        ));
    }
    let stored = &f.stored;
    Ok(Some(quote!(.tenant(#stored))))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn entity_enum(input: DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[derive(EntityEnum)] needs a unit-only enum",
        ));
    };
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(
                v.span(),
                "#[derive(EntityEnum)] needs unit variants only",
            ));
        }
    }
    let mut krate: syn::Path = syn::parse_quote!(::persistence_core);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("entity")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse()?;
                Ok(())
            } else {
                Err(meta.error("unknown attribute; expected crate"))
            }
        })?;
    }
    Ok(quote! {
        impl #krate::FieldKind for #name {
            const TYPE: #krate::FieldType = #krate::FieldType::Scalar(#krate::ScalarType::Enum);
        }
        impl #krate::Embedded for #name {
            fn shape() -> #krate::Shape {
                #krate::Shape::Scalar(#krate::ScalarType::Enum)
            }
        }
    })
}

fn embedded(input: DeriveInput) -> syn::Result<TokenStream2> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Embedded)] does not support generic structs",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[derive(Embedded)] needs a struct with named fields",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "#[derive(Embedded)] needs a struct with named fields",
        ));
    };
    serde_field(&input.attrs, "Embedded")?;
    let mut krate: syn::Path = syn::parse_quote!(::persistence_core);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("entity")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = lit.parse()?;
                Ok(())
            } else {
                Err(meta.error("unknown attribute; expected crate"))
            }
        })?;
    }
    let mut nested = Vec::new();
    for f in &named.named {
        let ident = f
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new(f.span(), "unnamed field"))?;
        if let Some(attr) = f.attrs.iter().find(|a| a.path().is_ident("entity")) {
            return Err(syn::Error::new(
                attr.span(),
                "fields of #[derive(Embedded)] take no #[entity(..)] attributes",
            ));
        }
        let (rename, optional) = serde_field(&f.attrs, "Embedded")?;
        let stored =
            rename.unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_string());
        let ty = &f.ty;
        nested.push(quote! {
            #krate::NestedField {
                name: #stored,
                shape: (&#krate::__private::Probe::<#ty>::NEW)
                    .shape()
                    .unwrap_or(#krate::Shape::Any),
                optional: #optional,
            }
        });
    }
    Ok(quote! {
        impl #krate::Embedded for #name {
            fn shape() -> #krate::Shape {
                #[allow(unused_imports)]
                use #krate::__private::{NoShape as _, ViaEmbedded as _};
                let ::core::option::Option::Some(_depth) = #krate::__private::ShapeDepth::enter() else {
                    return #krate::Shape::Any;
                };
                #krate::Shape::Object(::std::vec![#(#nested),*])
            }
        }
    })
}
