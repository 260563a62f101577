//! The `ServiceDescriptor` and `MethodDescriptor` constants.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;

use crate::model::{Method, Service};

/// A `ServiceDescriptor` expression whose methods are `methods` (a
/// `&'static [MethodDescriptor]` expression).
pub(super) fn service_descriptor(service: &Service, methods: &TokenStream) -> TokenStream {
    let krate = &service.krate;
    let interface = &service.interface;
    let version = service.version.iter();
    let group = service.group.iter();
    quote! {
        #krate::ServiceDescriptor::new(#interface)
            #(.with_version(#version))*
            #(.with_group(#group))*
            .with_methods(#methods)
    }
}

/// The `MethodDescriptor` expressions of every method, in declaration order.
pub(super) fn method_descriptors(service: &Service) -> Vec<TokenStream> {
    service
        .methods
        .iter()
        .map(|method| method_descriptor(service, method))
        .collect()
}

fn method_descriptor(service: &Service, method: &Method) -> TokenStream {
    let krate = &service.krate;
    let wire_name = &method.wire_name;
    let rust_name = method.ident.unraw().to_string();
    let config = &method.config;
    let settings: Vec<TokenStream> = [
        config
            .timeout_ms
            .map(|ms| quote!(.with_timeout(::core::time::Duration::from_millis(#ms)))),
        config
            .attempt_timeout_ms
            .map(|ms| quote!(.with_attempt_timeout(::core::time::Duration::from_millis(#ms)))),
        config.retries.map(|retries| quote!(.with_retries(#retries))),
        config
            .idempotent
            .map(|idempotent| quote!(.with_idempotent(#idempotent))),
        config
            .cluster
            .as_ref()
            .map(|variant| quote!(.with_cluster(#krate::ClusterPolicy::#variant))),
        config
            .loadbalance
            .as_ref()
            .map(|variant| quote!(.with_loadbalance(#krate::LoadBalancer::#variant))),
        config.forks.map(|forks| quote!(.with_forks(#forks))),
        config.actives.map(|actives| quote!(.with_actives(#actives))),
        config.hash_arguments.as_ref().map(|positions| {
            let positions = positions.iter().map(|position| position.index);
            quote!(.with_hash_arguments(&[#(#positions),*]))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let with_config = (!settings.is_empty()).then(|| quote!(.with_config(#krate::MethodConfig::new() #(#settings)*)));
    quote!(#krate::MethodDescriptor::new(#wire_name, #rust_name) #with_config)
}
