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
        #krate::__private::ServiceDescriptor::new(#interface)
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

/// A method's descriptor; its declared settings become Dubbo-style
/// `(key, value)` parameters, each value already checked and written in the
/// form `rpc-cluster` parses (milliseconds, canonical names, `0,2`).
fn method_descriptor(service: &Service, method: &Method) -> TokenStream {
    let krate = &service.krate;
    let wire_name = &method.wire_name;
    let rust_name = method.ident.unraw().to_string();
    let config = &method.config;
    let params: Vec<(&str, String)> = [
        config.timeout_ms.map(|ms| ("timeout", ms.to_string())),
        config.attempt_timeout_ms.map(|ms| ("attempt.timeout", ms.to_string())),
        config.retries.map(|retries| ("retries", retries.to_string())),
        config
            .idempotent
            .map(|idempotent| ("idempotent", idempotent.to_string())),
        config.cluster.map(|name| ("cluster", name.to_string())),
        config.loadbalance.map(|name| ("loadbalance", name.to_string())),
        config.forks.map(|forks| ("forks", forks.to_string())),
        config.actives.map(|actives| ("actives", actives.to_string())),
        config.hash_arguments.as_ref().map(|positions| {
            // A set: written in ascending order, whatever the declaration's.
            let mut positions: Vec<u8> = positions.iter().map(|position| position.index).collect();
            positions.sort_unstable();
            let positions: Vec<String> = positions.iter().map(u8::to_string).collect();
            ("hash.arguments", positions.join(","))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let with_params = (!params.is_empty()).then(|| {
        let params = params.iter().map(|(key, value)| quote!((#key, #value)));
        quote!(.with_params(&[#(#params),*]))
    });
    let java_types = match &config.java_types {
        Some(lit) => lit.value(),
        None => {
            let package = crate::java::package_of(&service.interface);
            method
                .params
                .iter()
                .map(|param| crate::java::descriptor_of(&param.ty, &package))
                .collect()
        }
    };
    let with_java_types = (!java_types.is_empty()).then(|| quote!(.with_java_types(#java_types)));
    quote!(#krate::__private::MethodDescriptor::new(#wire_name, #rust_name) #with_params #with_java_types)
}
