//! The trait itself, with each `async fn` turned into a method returning
//! `impl Future + Send`, so implementations can run on multi-threaded runtimes.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::TraitItem;

use crate::model::Service;

/// The trait as the user wrote it, its methods returning `Send` futures.
///
/// Implementations still write `async fn`; the compiler then checks that each
/// of their futures is `Send`.
pub(super) fn generate(service: &Service) -> TokenStream {
    let mut item = service.item.clone();
    let methods = item.items.iter_mut().filter_map(|trait_item| match trait_item {
        TraitItem::Fn(method) => Some(method),
        _ => None,
    });
    for (method, model) in methods.zip(&service.methods) {
        let output = &model.output;
        method.sig.asyncness = None;
        method.sig.output = syn::parse_quote_spanned! {model.async_span=>
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        };
    }
    item.into_token_stream()
}
