//! `#[entity(vector(dim = 384, metric = cosine, hnsw(m = 16, ef_construction = 64)))]`
//! on a field: parsed here, emitted as a `.vector(..)` call on the metadata builder.

use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::LitInt;
use syn::meta::ParseNestedMeta;

/// A parsed vector declaration.
pub(crate) struct VectorAttr {
    dim: u32,
    metric: &'static str,
    index: Index,
}

enum Index {
    Default,
    None,
    Hnsw { m: u16, ef_construction: u16 },
    IvfFlat { lists: u32 },
}

fn int<T: std::str::FromStr>(meta: &ParseNestedMeta<'_>) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    let lit: LitInt = meta.value()?.parse()?;
    lit.base10_parse()
}

/// Parse the inside of `vector(..)`.
pub(crate) fn parse(meta: &ParseNestedMeta<'_>) -> syn::Result<VectorAttr> {
    let (mut dim, mut metric, mut index) = (None, None, Index::Default);
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("dim") {
            dim = Some(int::<u32>(&inner)?);
        } else if inner.path.is_ident("metric") {
            let id: syn::Ident = inner.value()?.parse()?;
            metric = Some(match id.to_string().as_str() {
                "cosine" => "Cosine",
                "l2" => "L2",
                "inner_product" => "InnerProduct",
                _ => {
                    return Err(syn::Error::new(
                        id.span(),
                        "metric must be cosine, l2 or inner_product",
                    ));
                }
            });
        } else if inner.path.is_ident("hnsw") {
            let (mut m, mut ef) = (16u16, 64u16);
            if inner.input.peek(syn::token::Paren) {
                inner.parse_nested_meta(|p| {
                    if p.path.is_ident("m") {
                        m = int(&p)?;
                    } else if p.path.is_ident("ef_construction") {
                        ef = int(&p)?;
                    } else {
                        return Err(p.error("expected m or ef_construction"));
                    }
                    Ok(())
                })?;
            }
            index = Index::Hnsw {
                m,
                ef_construction: ef,
            };
        } else if inner.path.is_ident("ivfflat") {
            let mut lists = 100u32;
            if inner.input.peek(syn::token::Paren) {
                inner.parse_nested_meta(|p| {
                    if p.path.is_ident("lists") {
                        lists = int(&p)?;
                        Ok(())
                    } else {
                        Err(p.error("expected lists"))
                    }
                })?;
            }
            index = Index::IvfFlat { lists };
        } else if inner.path.is_ident("no_index") {
            index = Index::None;
        } else {
            return Err(inner.error(
                "expected dim = N, metric = cosine | l2 | inner_product, hnsw(m, ef_construction), ivfflat(lists) or no_index",
            ));
        }
        Ok(())
    })?;
    let dim = dim.ok_or_else(|| meta.error("vector(..) needs dim = N"))?;
    let metric = metric
        .ok_or_else(|| meta.error("vector(..) needs metric = cosine | l2 | inner_product"))?;
    Ok(VectorAttr { dim, metric, index })
}

impl VectorAttr {
    /// The `.vector(stored, spec)` builder call.
    pub(crate) fn call(&self, krate: &syn::Path, stored: &str) -> TokenStream2 {
        let dim = self.dim;
        let metric = syn::Ident::new(self.metric, proc_macro2::Span::call_site());
        let spec = quote!(#krate::VectorSpec::new(#dim, #krate::Metric::#metric));
        let spec = match self.index {
            Index::Default => spec,
            Index::None => quote!(#spec.with_index(#krate::VectorIndex::None)),
            Index::Hnsw { m, ef_construction } => quote!(#spec.with_index(
                #krate::VectorIndex::Hnsw { m: #m, ef_construction: #ef_construction }
            )),
            Index::IvfFlat { lists } => {
                quote!(#spec.with_index(#krate::VectorIndex::IvfFlat { lists: #lists }))
            }
        };
        quote!(.vector(#stored, #spec))
    }
}
