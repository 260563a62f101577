//! `{Trait}Server<T>`: the provider adapter around an implementation.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};

use super::args_type;
use crate::model::{Method, Service};

/// The server struct, its constructors, `Clone`, `Debug` and its
/// `ServiceHandler` implementation.
pub(super) fn generate(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let vis = &service.item.vis;
    let trait_ident = &service.item.ident;
    let server = service.server_ident();
    let client = service.client_ident();
    let server_name = server.to_string();
    let interface = &service.interface;
    let doc = format!(
        " Serves an implementation of [`{trait_ident}`]: decodes each call's arguments, runs the method and \
         encodes its return value. Export it with a provider, e.g. `{server}::new(my_impl)`."
    );
    let param = impl_param(service);
    let arms = service.methods.iter().map(|method| call_arm(service, &param, method));
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #vis struct #server<T> {
            inner: ::std::sync::Arc<T>,
        }

        #[allow(dead_code)]
        impl<T> #server<T> {
            /// Serves `inner`.
            #vis fn new(inner: T) -> Self {
                #server { inner: ::std::sync::Arc::new(inner) }
            }

            /// Serves an implementation that is already shared.
            #vis fn from_arc(inner: ::std::sync::Arc<T>) -> Self {
                #server { inner }
            }
        }

        impl<T> ::core::clone::Clone for #server<T> {
            fn clone(&self) -> Self {
                #server { inner: <::std::sync::Arc<T> as ::core::clone::Clone>::clone(&self.inner) }
            }
        }

        impl<T> ::core::fmt::Debug for #server<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#server_name).field("interface", &#interface).finish_non_exhaustive()
            }
        }

        impl<#param> #krate::__private::ServiceHandler for #server<#param>
        where
            #param: #trait_ident + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            fn descriptor(&self) -> &'static #krate::__private::ServiceDescriptor {
                #client::DESCRIPTOR
            }

            #[allow(deprecated)]
            fn call(
                &self,
                invocation: #krate::__private::Invocation,
            ) -> #krate::__private::BoxFuture<::core::result::Result<#krate::__private::Response, #krate::__private::RpcError>> {
                match invocation.method() {
                    #(#arms)*
                    _ => ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Err(
                        #krate::__private::handler::unknown_method(#client::DESCRIPTOR, &invocation),
                    ))),
                }
            }
        }
    }
}

/// `"wireName" => decode, call, encode`.
fn call_arm(service: &Service, param: &Ident, method: &Method) -> TokenStream {
    let krate = &service.krate;
    let trait_ident = &service.item.ident;
    let ident = &method.ident;
    let wire_name = &method.wire_name;
    let args_type = args_type(method);
    let decode = quote!(#krate::__private::handler::decode_args::<#args_type>(&invocation)?);
    let decode = if method.params.is_empty() {
        quote!(#decode;)
    } else {
        quote!(let args = #decode;)
    };
    let args = (0..method.params.len()).map(syn::Index::from);
    quote! {
        #wire_name => {
            let inner = <::std::sync::Arc<#param> as ::core::clone::Clone>::clone(&self.inner);
            ::std::boxed::Box::pin(async move {
                #decode
                let reply = <#param as #trait_ident>::#ident(&*inner, #(args.#args),*).await;
                #krate::__private::handler::encode_reply(&invocation, &reply)
            })
        }
    }
}

/// The implementation's type parameter: `T`, unless the trait already uses
/// that name for something else.
fn impl_param(service: &Service) -> Ident {
    let tokens = service.item.to_token_stream();
    let name = if mentions(tokens, "T") { "__RpcImpl" } else { "T" };
    Ident::new(name, Span::call_site())
}

fn mentions(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == name,
        TokenTree::Group(group) => mentions(group.stream(), name),
        _ => false,
    })
}
