//! Code generation: from the checked [`Service`] model to the trait, the
//! client stub and the server adapter.

mod client;
mod descriptor;
mod server;
mod trait_def;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Item;

use crate::args::ServiceArgs;
use crate::errors::Errors;
use crate::model::Service;

/// Expands `#[service(attr)] item`.
///
/// On misuse, emits the trait as written (so code using it does not fail with
/// unrelated errors) followed by every error found.
pub(crate) fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = ServiceArgs::parse(attr, &mut errors);
    let item_trait = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Trait(item_trait)) => item_trait,
        Ok(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[service] applies to a trait, such as `pub trait Greeter { async fn say_hello(&self, name: String) -> String; }`",
            ));
            return with_errors(item, errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, errors);
        }
    };
    let service = Service::new(args, item_trait, &mut errors);
    if errors.count() > 0 {
        let item = &service.item;
        return with_errors(quote!(#item), errors);
    }
    generate(&service)
}

fn with_errors(item: TokenStream, errors: Errors) -> TokenStream {
    let errors = errors.into_compile_errors();
    quote!(#item #errors)
}

fn generate(service: &Service) -> TokenStream {
    let trait_def = trait_def::generate(service);
    let client = client::generate(service);
    let server = server::generate(service);
    quote! {
        #trait_def
        #client
        #server
    }
}

/// The type arguments travel as: a tuple `(A, B,)`, or for no arguments an
/// empty array (`[]` in JSON, nothing in bincode), so every argument list is a
/// JSON array.
fn args_type(method: &crate::model::Method) -> TokenStream {
    if method.params.is_empty() {
        return quote!([(); 0]);
    }
    let types = method.params.iter().map(|param| &param.ty);
    quote!((#(#types,)*))
}

/// The value of [`args_type`] built from the method's parameters.
fn args_value(method: &crate::model::Method) -> TokenStream {
    if method.params.is_empty() {
        return quote!([(); 0]);
    }
    let names = method.params.iter().map(|param| &param.ident);
    quote!((#(#names,)*))
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::{ToTokens, quote};
    use syn::{File, Item, TraitItem};

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        super::service(attr, item).to_string()
    }

    fn items(attr: TokenStream, item: TokenStream) -> Vec<Item> {
        let output = super::service(attr, item);
        syn::parse2::<File>(output).unwrap().items
    }

    #[test]
    fn a_trait_expands_to_the_trait_a_client_and_a_server() {
        let items = items(
            quote!(crate = "::rpc_core"),
            quote! {
                pub trait Greeter {
                    /// Greets.
                    async fn say_hello(&self, name: String) -> String;
                    #[rpc(timeout = "300ms")]
                    async fn ping(&self);
                }
            },
        );
        let Some(Item::Trait(greeter)) = items.first() else {
            panic!("no trait first: {items:?}")
        };
        for item in &greeter.items {
            let TraitItem::Fn(method) = item else {
                panic!("not a method")
            };
            assert!(method.sig.asyncness.is_none());
            assert!(method.attrs.iter().all(|attr| !attr.path().is_ident("rpc")));
            let output = method.sig.output.to_token_stream().to_string();
            assert!(output.contains(":: core :: future :: Future"), "{output}");
            assert!(output.contains(":: core :: marker :: Send"), "{output}");
        }
        let structs: Vec<String> = items
            .iter()
            .filter_map(|item| match item {
                Item::Struct(s) => Some(s.ident.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(structs, ["GreeterClient", "GreeterServer"]);
    }

    #[test]
    fn descriptors_carry_wire_names_and_settings() {
        let output = expand(
            quote!(
                crate = "::rpc_core",
                interface = "org.example.Greeter",
                version = "1.0.0"
            ),
            quote! {
                trait Greeter {
                    #[rpc(timeout = "2s", retries = 0, idempotent = false, name = "hello")]
                    async fn say_hello(&self, name: String) -> String;
                    async fn get_http_url(&self) -> String;
                }
            },
        );
        assert!(output.contains(r#"ServiceDescriptor :: new ("org.example.Greeter") . with_version ("1.0.0")"#));
        assert!(
            output.contains(r#"MethodDescriptor :: new ("hello" , "say_hello")"#),
            "{output}"
        );
        assert!(output.contains(r#"("timeout" , "2000")"#), "{output}");
        assert!(output.contains(r#"("retries" , "0")"#), "{output}");
        assert!(output.contains(r#"("idempotent" , "false")"#), "{output}");
        assert!(
            output.contains(r#"MethodDescriptor :: new ("getHttpUrl" , "get_http_url")"#),
            "{output}"
        );
    }

    #[test]
    fn cluster_settings_become_canonical_params_through_the_crate_path() {
        let output = expand(
            quote!(crate = "::my::rpc"),
            quote! {
                trait Greeter {
                    #[rpc(cluster = "Fail_Fast", loadbalance = "consistent-hash", hash_arguments = [1, 0])]
                    #[rpc(forks = 3, actives = 10, attempt_timeout = "2s")]
                    async fn say_hello(&self, name: String, lang: String) -> String;
                }
            },
        );
        for expected in [
            r#":: my :: rpc :: __private :: MethodDescriptor :: new ("sayHello" , "say_hello")"#,
            r#". with_params (& [("attempt.timeout" , "2000") , ("cluster" , "failfast") , ("loadbalance" , "consistenthash") , ("forks" , "3") , ("actives" , "10") , ("hash.arguments" , "0,1")])"#,
        ] {
            assert!(output.contains(expected), "{expected} in {output}");
        }
        assert!(!output.contains("compile_error"), "{output}");
    }

    /// Prints a formatted expansion: `cargo test -p rpc-macros show_expansion -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints an expansion for reading"]
    fn show_expansion() {
        let output = super::service(
            quote!(interface = "org.example.Greeter", version = "1.0.0"),
            quote! {
                pub trait Greeter {
                    /// Greets `name`.
                    async fn say_hello(&self, name: String) -> String;
                    #[rpc(timeout = "300ms", retries = 0)]
                    async fn place_order(&self, order: Order, qty: u32) -> Result<OrderId, OrderError>;
                }
            },
        );
        println!("{output}");
    }

    #[test]
    fn the_default_crate_path_is_the_facade() {
        let output = expand(
            quote!(),
            quote!(
                trait Greeter {
                    async fn ping(&self);
                }
            ),
        );
        assert!(output.contains(":: rpc :: __private :: ServiceDescriptor"), "{output}");
        assert!(!output.contains("rpc_core"), "{output}");
    }

    #[test]
    fn every_misuse_is_reported_and_the_trait_kept() {
        let output = expand(
            quote!(foo = 1),
            quote! {
                trait Greeter<T> {
                    fn not_async(&self);
                    async fn by_value(self);
                    #[rpc(tmeout = "1s")]
                    async fn typo(&self);
                }
            },
        );
        assert_eq!(output.matches("compile_error").count(), 5, "{output}");
        assert!(output.starts_with("trait Greeter < T >"), "{output}");
        assert!(!output.contains("# [rpc"), "{output}");
    }

    #[test]
    fn a_trait_using_t_gets_another_impl_parameter() {
        let output = expand(
            quote!(),
            quote!(
                trait T {
                    async fn get(&self) -> u8;
                }
            ),
        );
        assert!(
            output.contains("impl < __RpcImpl > :: rpc :: __private :: ServiceHandler for TServer < __RpcImpl >"),
            "{output}"
        );
    }
}
