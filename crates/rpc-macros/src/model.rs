//! The checked model of a `#[service]` trait: what the generators work from.
//!
//! Building it validates everything the generated code relies on, reporting
//! each misuse at the user's own tokens.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::{
    Attribute, FnArg, Ident, ItemTrait, Pat, Path, Receiver, ReturnType, Signature, TraitItem, TraitItemFn, Type,
};

use crate::args::{MethodArgs, ServiceArgs, is_method_attr};
use crate::errors::Errors;
use crate::naming::{check_method_name, lower_camel_case};

/// A `#[service]` trait.
pub(crate) struct Service {
    /// The path generated code names the framework by.
    pub(crate) krate: Path,
    /// The interface name (the trait's name unless `interface = "..."`).
    pub(crate) interface: String,
    /// The declared version.
    pub(crate) version: Option<String>,
    /// The declared group.
    pub(crate) group: Option<String>,
    /// The trait as written, without our `#[rpc(...)]` attributes.
    pub(crate) item: ItemTrait,
    /// The methods, in declaration order.
    pub(crate) methods: Vec<Method>,
}

/// One method of the service.
pub(crate) struct Method {
    /// The Rust name.
    pub(crate) ident: Ident,
    /// The wire name.
    pub(crate) wire_name: String,
    /// What `#[rpc(...)]` declared.
    pub(crate) config: MethodArgs,
    /// The parameters after `&self`.
    pub(crate) params: Vec<Param>,
    /// The return type (`()` when none is written).
    pub(crate) output: Type,
    /// The `async` keyword, where errors about the returned future point.
    pub(crate) async_span: Span,
    /// The method's doc comments and `#[deprecated]`, for the client method.
    pub(crate) docs: Vec<Attribute>,
}

/// A parameter: `name: Type`.
pub(crate) struct Param {
    /// Its name.
    pub(crate) ident: Ident,
    /// Its type.
    pub(crate) ty: Type,
}

impl Service {
    /// Checks `item` and builds the model, recording every misuse in `errors`.
    ///
    /// The returned model is only meaningful when `errors` stays empty; its
    /// `item` (without `#[rpc]` attributes) is always usable.
    pub(crate) fn new(args: ServiceArgs, mut item: ItemTrait, errors: &mut Errors) -> Service {
        check_trait_header(&item, errors);
        let methods: Vec<Method> = item
            .items
            .iter()
            .filter_map(|trait_item| method_of(trait_item, errors))
            .collect();
        check_unique_wire_names(&methods, errors);
        sanitize(&mut item);
        Service {
            krate: args.krate,
            interface: args.interface.unwrap_or_else(|| item.ident.unraw().to_string()),
            version: args.version,
            group: args.group,
            item,
            methods,
        }
    }

    /// `{Trait}Server`.
    pub(crate) fn server_ident(&self) -> Ident {
        Ident::new(&format!("{}Server", self.item.ident.unraw()), self.item.ident.span())
    }

    /// `{Trait}Client`.
    pub(crate) fn client_ident(&self) -> Ident {
        Ident::new(&format!("{}Client", self.item.ident.unraw()), self.item.ident.span())
    }
}

/// Removes our `#[rpc(...)]` attributes, which rustc would not know, and
/// replaces argument patterns (reported as errors) with `_`, so that the trait
/// re-emitted after an error draws no further errors from rustc.
fn sanitize(item: &mut ItemTrait) {
    item.attrs.retain(|attr| !is_method_attr(attr));
    let methods = item.items.iter_mut().filter_map(|trait_item| match trait_item {
        TraitItem::Fn(method) => Some(method),
        _ => None,
    });
    for method in methods {
        method.attrs.retain(|attr| !is_method_attr(attr));
        for input in &mut method.sig.inputs {
            if let FnArg::Typed(typed) = input {
                if plain_name(&typed.pat).is_none() {
                    *typed.pat = syn::parse_quote!(_);
                }
            }
        }
    }
}

fn check_trait_header(item: &ItemTrait, errors: &mut Errors) {
    for attr in item.attrs.iter().filter(|attr| is_method_attr(attr)) {
        errors.spanned(
            attr,
            "#[rpc(...)] goes on methods; put service-wide settings in #[service(...)]",
        );
    }
    if !item.generics.params.is_empty() {
        errors.spanned(
            &item.generics,
            "a #[service] trait cannot have generic parameters or lifetimes: a service has one fixed wire \
             interface; use concrete types",
        );
    }
    if let Some(where_clause) = &item.generics.where_clause {
        errors.spanned(
            where_clause,
            "a #[service] trait cannot have a `where` clause; remove it",
        );
    }
}

fn method_of(trait_item: &TraitItem, errors: &mut Errors) -> Option<Method> {
    let TraitItem::Fn(method) = trait_item else {
        errors.spanned(
            trait_item,
            "a #[service] trait can only contain `async fn` methods; move consts, types and macros out of it",
        );
        return None;
    };
    let before = errors.count();
    let config = MethodArgs::from_attrs(&method.attrs, errors);
    check_method_attrs(&method.attrs, errors);
    check_signature(&method.sig, errors);
    check_receiver(&method.sig, errors);
    let params = params_of(&method.sig, errors);
    check_hash_arguments(&method.sig, &config, errors);
    check_java_types(&method.sig, &config, errors);
    let output = output_of(&method.sig, errors);
    check_no_body(method, errors);
    let wire_name = wire_name_of(&method.sig.ident, &config, errors);
    (errors.count() == before).then(|| Method {
        ident: method.sig.ident.clone(),
        wire_name,
        config,
        params,
        output,
        async_span: method
            .sig
            .asyncness
            .map_or_else(|| method.sig.ident.span(), |token| token.span),
        docs: method.attrs.iter().filter(|attr| is_doc_like(attr)).cloned().collect(),
    })
}

fn is_doc_like(attr: &Attribute) -> bool {
    attr.path().is_ident("doc") || attr.path().is_ident("deprecated")
}

fn check_method_attrs(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("cfg")) {
        errors.spanned(
            attr,
            "#[cfg] on a service method is not supported: the method list is part of the wire \
             interface; put the cfg on the whole trait instead",
        );
    }
}

fn check_signature(sig: &Signature, errors: &mut Errors) {
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        let fn_token = &sig.fn_token;
        errors.spanned(
            quote!(#fn_token #name),
            format!("service methods must be `async`: write `async fn {name}(...)`"),
        );
    }
    if let Some(constness) = &sig.constness {
        errors.spanned(constness, "service methods cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(unsafety, "service methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "service methods cannot declare an ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "service methods cannot be variadic");
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            "service methods cannot have generic parameters or lifetimes: arguments are decoded from the \
             wire into concrete types",
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(where_clause, "service methods cannot have a `where` clause; remove it");
    }
}

fn check_receiver(sig: &Signature, errors: &mut Errors) {
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => check_shared_self(receiver, errors),
        Some(FnArg::Typed(first)) => errors.spanned(
            first,
            "service methods take `&self` as their first parameter; add `&self` before this one",
        ),
        None => {
            let ident = &sig.ident;
            errors.spanned(
                ident,
                format!("service methods take `&self`: write `fn {ident}(&self)`"),
            );
        }
    }
}

fn check_shared_self(receiver: &Receiver, errors: &mut Errors) {
    const WHY: &str = "service methods take `&self`: a provider runs many calls on one shared instance at once";
    if receiver.colon_token.is_some() {
        errors.spanned(receiver, format!("{WHY}; write `&self`"));
        return;
    }
    match (&receiver.reference, &receiver.mutability) {
        (None, _) => errors.spanned(receiver, format!("{WHY}; write `&self` instead of `self`")),
        (Some(_), Some(_)) => errors.spanned(
            receiver,
            format!("{WHY}, so it cannot be `&mut self`; write `&self` and use interior mutability (a Mutex, atomics)"),
        ),
        (Some((_, Some(lifetime))), None) => {
            errors.spanned(lifetime, "service methods cannot name lifetimes: write `&self`")
        }
        (Some((_, None)), None) => {}
    }
}

fn params_of(sig: &Signature, errors: &mut Errors) -> Vec<Param> {
    // Without a receiver, the first parameter was already reported.
    let skip = usize::from(matches!(sig.inputs.first(), Some(FnArg::Typed(_))));
    let typed = sig.inputs.iter().skip(skip).filter_map(|input| match input {
        FnArg::Typed(typed) => Some(typed),
        FnArg::Receiver(_) => None,
    });
    typed
        .filter_map(|param| {
            check_wire_type(&param.ty, "argument", errors);
            match plain_name(&param.pat) {
                Some(ident) => Some(Param {
                    ident: ident.clone(),
                    ty: (*param.ty).clone(),
                }),
                None => {
                    errors.spanned(
                        &param.pat,
                        "service method arguments must be plain names, such as `order: Order`, not patterns",
                    );
                    None
                }
            }
        })
        .collect()
}

/// The name a parameter pattern binds, if it is just a name (no `mut`, `ref`
/// or destructuring).
fn plain_name(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.mutability.is_none() && pat.subpat.is_none() => Some(&pat.ident),
        _ => None,
    }
}

fn output_of(sig: &Signature, errors: &mut Errors) -> Type {
    match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            check_wire_type(ty, "return", errors);
            (**ty).clone()
        }
    }
}

fn check_no_body(method: &TraitItemFn, errors: &mut Errors) {
    if let Some(body) = &method.default {
        errors.spanned(
            body,
            "service methods cannot have a default body: end the declaration with `;` and write the body \
             in your `impl`",
        );
    }
}

/// Checks that values of `ty` can travel: owned, concrete, and not `Self`.
fn check_wire_type(ty: &Type, what: &str, errors: &mut Errors) {
    if let Type::Reference(_) = ty {
        errors.spanned(ty, reference_message(what));
        return;
    }
    if let Some((tokens, message)) = find_unsupported(ty.to_token_stream(), what) {
        errors.spanned(tokens, message);
    }
}

fn reference_message(what: &str) -> String {
    format!(
        "{what} types cannot be references: values are encoded on the wire and decoded into owned values; use \
         an owned type such as `String` or `Vec<T>`"
    )
}

/// The first token of `tokens` that a wire type cannot contain: a reference,
/// a lifetime, `impl Trait` or `Self`; and what to say about it.
fn find_unsupported(tokens: TokenStream, what: &str) -> Option<(TokenStream, String)> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (index, token) in tokens.iter().enumerate() {
        let found = match token {
            TokenTree::Group(group) => find_unsupported(group.stream(), what),
            TokenTree::Punct(punct) if punct.as_char() == '&' => {
                Some((token.to_token_stream(), reference_message(what)))
            }
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                let lifetime = tokens.iter().skip(index).take(2).cloned().collect();
                Some((
                    lifetime,
                    format!("{what} types cannot contain lifetimes: use owned types"),
                ))
            }
            TokenTree::Ident(ident) if ident == "impl" => Some((
                token.to_token_stream(),
                format!("{what} types cannot use `impl Trait`: name a concrete type"),
            )),
            TokenTree::Ident(ident) if ident == "Self" => Some((
                token.to_token_stream(),
                format!("{what} types cannot mention `Self`: name the type itself"),
            )),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Checks that every `hash_arguments` position names an argument.
/// `java_types` names one descriptor per argument.
fn check_java_types(sig: &Signature, config: &MethodArgs, errors: &mut Errors) {
    let Some(lit) = &config.java_types else {
        return;
    };
    let count = sig
        .inputs
        .iter()
        .filter(|input| matches!(input, FnArg::Typed(_)))
        .count();
    let value = lit.value();
    if let Ok(types) = crate::java::split_descriptors(&value)
        && types.len() != count
    {
        errors.spanned(
            lit,
            format!(
                "`java_types` names {} parameter type(s) ({}) but `{}` has {count} argument(s) besides `&self`",
                types.len(),
                types.join(" "),
                sig.ident
            ),
        );
    }
}

fn check_hash_arguments(sig: &Signature, config: &MethodArgs, errors: &mut Errors) {
    let Some(positions) = &config.hash_arguments else {
        return;
    };
    let count = sig
        .inputs
        .iter()
        .filter(|input| matches!(input, FnArg::Typed(_)))
        .count();
    let ident = &sig.ident;
    let arguments = match count {
        0 => format!("`{ident}` takes no arguments besides `&self`"),
        1 => format!("`{ident}` has 1 argument besides `&self`, at position 0"),
        n => format!(
            "`{ident}` has {n} arguments besides `&self`, at positions 0 to {}",
            n - 1
        ),
    };
    for position in positions.iter().filter(|position| usize::from(position.index) >= count) {
        errors.push(syn::Error::new(
            position.span,
            format!(
                "`hash_arguments` position {} is out of range: {arguments}",
                position.index
            ),
        ));
    }
}

fn wire_name_of(ident: &Ident, config: &MethodArgs, errors: &mut Errors) -> String {
    if let Some(name) = &config.name {
        return name.value();
    }
    let derived = lower_camel_case(&ident.unraw().to_string());
    if let Err(problem) = check_method_name(&derived) {
        errors.spanned(
            ident,
            format!("cannot derive a wire name from `{ident}` ({problem}); set one with #[rpc(name = \"...\")]"),
        );
    }
    derived
}

fn check_unique_wire_names(methods: &[Method], errors: &mut Errors) {
    for (index, method) in methods.iter().enumerate() {
        let earlier = methods[..index]
            .iter()
            .find(|other| other.wire_name == method.wire_name);
        if let Some(earlier) = earlier {
            let span = method
                .config
                .name
                .as_ref()
                .map_or_else(|| method.ident.span(), |lit| lit.span());
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{}` and `{}` both have the wire name `{}`; give one another name with #[rpc(name = \"...\")]",
                    earlier.ident, method.ident, method.wire_name
                ),
            ));
        }
    }
}
