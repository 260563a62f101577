//! The `key = value` arguments of `#[service(...)]` and of `#[rpc(...)]` on methods.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Lit, LitStr, Meta, Path, Token};

use crate::duration::{parse_duration, parse_millis};
use crate::errors::Errors;
use crate::naming::{check_method_name, check_service_name, suggest};

/// The name of the method attribute.
pub(crate) const METHOD_ATTR: &str = "rpc";

/// Keys of `#[service(...)]`.
const SERVICE_KEYS: &[&str] = &["interface", "version", "group", "crate"];

/// Keys of `#[rpc(...)]`.
const METHOD_KEYS: &[&str] = &["timeout", "retries", "idempotent", "name"];

/// One `key = value` argument.
struct Pair {
    key: Ident,
    value: Expr,
}

/// The arguments of `#[service(...)]`.
pub(crate) struct ServiceArgs {
    /// The path generated code names the framework by (`::rpc` unless `crate = "..."`).
    pub(crate) krate: Path,
    /// `interface = "..."`.
    pub(crate) interface: Option<String>,
    /// `version = "..."`.
    pub(crate) version: Option<String>,
    /// `group = "..."`.
    pub(crate) group: Option<String>,
}

impl ServiceArgs {
    /// Parses the tokens inside `#[service(...)]`, recording misuse in `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = ServiceArgs {
            krate: syn::parse_quote!(::rpc),
            interface: None,
            version: None,
            group: None,
        };
        let pairs = checked_pairs(parse_pairs(tokens, errors), "service", SERVICE_KEYS, errors);
        for pair in pairs {
            let result = args.set(&pair);
            errors.take(result);
        }
        args
    }

    fn set(&mut self, pair: &Pair) -> syn::Result<()> {
        let key = pair.key.to_string();
        let lit = expect_str(pair)?;
        if key == "crate" {
            self.krate = lit
                .parse()
                .map_err(|_| syn::Error::new(lit.span(), "`crate` must be a path, such as \"::rpc\""))?;
            return Ok(());
        }
        let value = lit.value();
        check_service_name(&key, &value).map_err(|message| syn::Error::new(lit.span(), message))?;
        match key.as_str() {
            "interface" => self.interface = Some(value),
            "version" => self.version = Some(value),
            _ => self.group = Some(value),
        }
        Ok(())
    }
}

/// The arguments of `#[rpc(...)]` on a method.
#[derive(Default)]
pub(crate) struct MethodArgs {
    /// `name = "..."`: the wire name, with its literal (for spans).
    pub(crate) name: Option<LitStr>,
    /// `timeout = ...`, in milliseconds.
    pub(crate) timeout_ms: Option<u64>,
    /// `retries = N`.
    pub(crate) retries: Option<u32>,
    /// `idempotent = bool`.
    pub(crate) idempotent: Option<bool>,
}

impl MethodArgs {
    /// Parses every `#[rpc(...)]` among `attrs`, recording misuse in `errors`.
    pub(crate) fn from_attrs(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut raw = Vec::new();
        for attr in attrs.iter().filter(|attr| is_method_attr(attr)) {
            match &attr.meta {
                Meta::List(list) => raw.extend(parse_pairs(list.tokens.clone(), errors)),
                other => errors.spanned(
                    other,
                    "expected `#[rpc(key = value, ...)]` with keys `timeout`, `retries`, `idempotent`, `name`",
                ),
            }
        }
        let mut args = MethodArgs::default();
        for pair in checked_pairs(raw, METHOD_ATTR, METHOD_KEYS, errors) {
            let result = args.set(&pair);
            errors.take(result);
        }
        args
    }

    fn set(&mut self, pair: &Pair) -> syn::Result<()> {
        match pair.key.to_string().as_str() {
            "timeout" => self.timeout_ms = Some(expect_duration(pair)?),
            "retries" => self.retries = Some(expect_int(pair)?),
            "idempotent" => self.idempotent = Some(expect_bool(pair)?),
            _ => {
                let lit = expect_str(pair)?;
                check_method_name(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message))?;
                self.name = Some(lit);
            }
        }
        Ok(())
    }
}

/// Whether `attr` is our `#[rpc(...)]`.
pub(crate) fn is_method_attr(attr: &Attribute) -> bool {
    attr.path().is_ident(METHOD_ATTR)
}

/// Parses `key = value, ...`, keeping the well-formed pairs.
fn parse_pairs(tokens: TokenStream, errors: &mut Errors) -> Vec<Pair> {
    let Some(metas) = errors.take(Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)) else {
        return Vec::new();
    };
    metas
        .into_iter()
        .filter_map(|meta| errors.take(pair_of(meta)))
        .collect()
}

fn pair_of(meta: Meta) -> syn::Result<Pair> {
    let Meta::NameValue(name_value) = meta else {
        let path = meta.path();
        let shown = path.get_ident().map_or_else(|| "key".to_string(), Ident::to_string);
        return Err(syn::Error::new_spanned(meta, format!("expected `{shown} = value`")));
    };
    match name_value.path.get_ident() {
        Some(key) => Ok(Pair {
            key: key.clone(),
            value: name_value.value,
        }),
        None => Err(syn::Error::new_spanned(
            name_value.path,
            "expected a key such as `version`, not a path",
        )),
    }
}

/// Drops (and reports) unknown and repeated keys.
fn checked_pairs(pairs: Vec<Pair>, attr: &str, known: &[&str], errors: &mut Errors) -> Vec<Pair> {
    let mut seen: Vec<String> = Vec::new();
    let mut kept = Vec::new();
    for pair in pairs {
        let key = pair.key.to_string();
        if !known.contains(&key.as_str()) {
            errors.spanned(&pair.key, unknown_key_message(&key, attr, known));
        } else if seen.contains(&key) {
            errors.spanned(&pair.key, format!("`{key}` is set twice; keep one"));
        } else {
            seen.push(key);
            kept.push(pair);
        }
    }
    kept
}

fn unknown_key_message(key: &str, attr: &str, known: &[&str]) -> String {
    let expected = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    let hint = suggest(key, known)
        .map(|k| format!("did you mean `{k}`? "))
        .unwrap_or_default();
    format!("unknown key `{key}` in #[{attr}(...)]; {hint}expected one of {expected}")
}

/// The literal `expr` is, looking through invisible groups (from `macro_rules!`).
fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(lit) => Some(&lit.lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

fn expect_str(pair: &Pair) -> syn::Result<LitStr> {
    match literal(&pair.value) {
        Some(Lit::Str(lit)) => Ok(lit.clone()),
        _ => Err(value_error(pair, "a string literal, such as \"...\"")),
    }
}

fn expect_int(pair: &Pair) -> syn::Result<u32> {
    match literal(&pair.value) {
        Some(Lit::Int(lit)) if lit.suffix().is_empty() => lit.base10_parse(),
        _ => Err(value_error(pair, "a whole number, such as 2")),
    }
}

fn expect_bool(pair: &Pair) -> syn::Result<bool> {
    match literal(&pair.value) {
        Some(Lit::Bool(lit)) => Ok(lit.value),
        _ => Err(value_error(pair, "`true` or `false`")),
    }
}

/// `timeout = "300ms"`, `timeout = 300` (milliseconds).
fn expect_duration(pair: &Pair) -> syn::Result<u64> {
    let (parsed, span) = match literal(&pair.value) {
        Some(Lit::Str(lit)) => (parse_duration(&lit.value()), lit.span()),
        Some(Lit::Int(lit)) if lit.suffix().is_empty() => (parse_millis(lit.base10_digits()), lit.span()),
        _ => return Err(value_error(pair, "a duration such as \"300ms\", \"2s\" or \"1m\"")),
    };
    parsed.map_err(|message| syn::Error::new(span, format!("invalid `timeout`: {message}")))
}

fn value_error(pair: &Pair, expected: &str) -> syn::Error {
    syn::Error::new_spanned(&pair.value, format!("`{}` expects {expected}", pair.key))
}
