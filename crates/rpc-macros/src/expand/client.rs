//! `{Trait}Client`: the typed consumer stub.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Type, TypePath};

use super::args_value;
use super::descriptor::{method_descriptors, service_descriptor};
use crate::model::{Method, Service};

/// The client struct, its descriptor constants, its methods and its
/// `ServiceClient` implementation.
pub(super) fn generate(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let vis = &service.item.vis;
    let client = service.client_ident();
    let methods_const = quote!(Self::__RPC_METHODS);
    let descriptor = service_descriptor(service, &methods_const);
    let method_descriptors = method_descriptors(service);
    let methods = service
        .methods
        .iter()
        .enumerate()
        .map(|(index, method)| client_method(service, index, method));
    let struct_doc = format!(
        " The consumer stub of [`{}`]: one method per trait method, each sending the call through the \
         framework and returning the decoded reply, or an `RpcError`.",
        service.item.ident
    );
    let descriptor_doc = format!(
        " The static description of `{}`: interface, version, group, and each method's wire name and settings.",
        service.interface
    );
    quote! {
        #[doc = #struct_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #[allow(dead_code)]
        #vis struct #client {
            stub: #krate::__private::Stub,
        }

        #[allow(dead_code)]
        impl #client {
            #[doc = #descriptor_doc]
            #vis const DESCRIPTOR: &'static #krate::__private::ServiceDescriptor = &#descriptor;

            const __RPC_METHODS: &'static [#krate::__private::MethodDescriptor] = &[#(#method_descriptors),*];

            #(#methods)*
        }

        impl #krate::__private::ServiceClient for #client {
            const DESCRIPTOR: &'static #krate::__private::ServiceDescriptor = #client::DESCRIPTOR;

            fn from_stub(stub: #krate::__private::Stub) -> Self {
                #client { stub }
            }

            fn stub(&self) -> &#krate::__private::Stub {
                &self.stub
            }
        }
    }
}

fn client_method(service: &Service, index: usize, method: &Method) -> TokenStream {
    let krate = &service.krate;
    let vis = &service.item.vis;
    let ident = &method.ident;
    let output = &method.output;
    let params = method.params.iter().map(|param| {
        let (name, ty) = (&param.ident, &param.ty);
        quote!(#name: #ty)
    });
    let args = args_value(method);
    let docs = client_docs(service, method);
    quote! {
        #docs
        #vis fn #ident(&self, #(#params),*)
            -> impl ::core::future::Future<Output = ::core::result::Result<#output, #krate::__private::RpcError>>
                + ::core::marker::Send + 'static + use<>
        {
            self.stub.call(&Self::__RPC_METHODS[#index], &#args)
        }
    }
}

/// The trait method's docs, then what the client adds: how it fails.
fn client_docs(service: &Service, method: &Method) -> TokenStream {
    let user_docs = &method.docs;
    let has_docs = user_docs.iter().any(|attr| attr.path().is_ident("doc"));
    let summary = (!has_docs).then(|| {
        let line = format!(
            " Calls `{}` on a provider of `{}`.",
            method.wire_name, service.interface
        );
        quote!(#[doc = #line])
    });
    let business = returns_result(&method.output)
        .then(|| quote!(#[doc = " The method's own error is not an `RpcError`: it arrives as the inner `Err`."]));
    quote! {
        #(#user_docs)*
        #summary
        #[doc = ""]
        #[doc = " # Errors"]
        #[doc = ""]
        #[doc = " Fails with `RpcError` when the framework cannot complete the call (no provider, timeout,"]
        #[doc = " connection lost, provider-side failure); `RpcError::outcome` tells whether it may have run."]
        #business
    }
}

/// Whether `ty` looks like a `Result<T, E>`.
fn returns_result(ty: &Type) -> bool {
    match ty {
        Type::Path(TypePath { qself: None, path }) => {
            path.segments.last().is_some_and(|segment| segment.ident == "Result")
        }
        Type::Group(group) => returns_result(&group.elem),
        _ => false,
    }
}
