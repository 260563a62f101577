//! The `key = value` arguments of `#[service(...)]` and of `#[rpc(...)]` on methods.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Lit, LitStr, Meta, Path, Token};

use crate::duration::{parse_duration, parse_millis};
use crate::errors::Errors;
use crate::naming::{check_method_name, check_service_name, suggest};
use crate::policy::{CLUSTER_POLICY, LOAD_BALANCER, NamedEnum};

/// The name of the method attribute.
pub(crate) const METHOD_ATTR: &str = "rpc";

/// Keys of `#[service(...)]`.
const SERVICE_KEYS: &[&str] = &["interface", "version", "group", "crate"];

/// Keys of `#[rpc(...)]`.
const METHOD_KEYS: &[&str] = &[
    "timeout",
    "attempt_timeout",
    "retries",
    "idempotent",
    "name",
    "cluster",
    "loadbalance",
    "forks",
    "actives",
    "hash_arguments",
    "java_types",
];

/// The highest argument position `hash_arguments` can name (`ArgumentMask` is 32 bits).
const MAX_HASH_POSITION: u8 = 31;

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
    /// `attempt_timeout = ...`, in milliseconds.
    pub(crate) attempt_timeout_ms: Option<u64>,
    /// `cluster = "..."`: the policy's canonical name.
    pub(crate) cluster: Option<&'static str>,
    /// `loadbalance = "..."`: the balancer's canonical name.
    pub(crate) loadbalance: Option<&'static str>,
    /// `forks = N` (at least 1).
    pub(crate) forks: Option<u32>,
    /// `actives = N` (0: no limit).
    pub(crate) actives: Option<u32>,
    /// `hash_arguments = [i, ...]`: distinct positions, each at most 31; whether
    /// the method has that many arguments is checked with its signature.
    pub(crate) hash_arguments: Option<Vec<ArgPosition>>,
    /// `java_types = "..."`: the Java parameter descriptors, checked for form
    /// here and against the parameter count with the signature.
    pub(crate) java_types: Option<LitStr>,
}

/// One argument position of `hash_arguments`, with its literal's span.
pub(crate) struct ArgPosition {
    /// The position, counting from 0 after `&self`.
    pub(crate) index: u8,
    /// Where it is written.
    pub(crate) span: Span,
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
                    format!(
                        "expected `#[rpc(key = value, ...)]` with keys {}",
                        key_list(METHOD_KEYS)
                    ),
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
            "attempt_timeout" => self.attempt_timeout_ms = Some(expect_duration(pair)?),
            "retries" => self.retries = Some(expect_int(pair)?),
            "idempotent" => self.idempotent = Some(expect_bool(pair)?),
            "cluster" => self.cluster = Some(expect_named(pair, &CLUSTER_POLICY, ("loadbalance", &LOAD_BALANCER))?),
            "loadbalance" => self.loadbalance = Some(expect_named(pair, &LOAD_BALANCER, ("cluster", &CLUSTER_POLICY))?),
            "forks" => self.forks = Some(expect_forks(pair)?),
            "actives" => self.actives = Some(expect_int(pair)?),
            "hash_arguments" => self.hash_arguments = Some(expect_positions(pair)?),
            "java_types" => {
                let lit = expect_str(pair)?;
                crate::java::split_descriptors(&lit.value()).map_err(|why| {
                    syn::Error::new(
                        lit.span(),
                        format!(
                            "`java_types` must be JVM parameter descriptors such as \"Ljava/lang/String;J\": {why}"
                        ),
                    )
                })?;
                self.java_types = Some(lit);
            }
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
    let hint = suggest(key, known)
        .map(|k| format!("did you mean `{k}`? "))
        .unwrap_or_default();
    format!(
        "unknown key `{key}` in #[{attr}(...)]; {hint}expected one of {}",
        key_list(known)
    )
}

/// "`a`, `b`, `c`".
fn key_list(keys: &[&str]) -> String {
    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
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

/// `timeout = "300ms"`, `timeout = 300` (milliseconds); also `attempt_timeout`.
fn expect_duration(pair: &Pair) -> syn::Result<u64> {
    let (parsed, span) = match literal(&pair.value) {
        Some(Lit::Str(lit)) => (parse_duration(&lit.value()), lit.span()),
        Some(Lit::Int(lit)) if lit.suffix().is_empty() => (parse_millis(lit.base10_digits()), lit.span()),
        _ => return Err(value_error(pair, "a duration such as \"300ms\", \"2s\" or \"1m\"")),
    };
    parsed.map_err(|message| syn::Error::new(span, format!("invalid `{}`: {message}", pair.key)))
}

/// `cluster = "failfast"`, `loadbalance = "leastactive"`: the variant of
/// `named`. A name of the `other` key's enum gets a pointer to that key.
fn expect_named(pair: &Pair, named: &NamedEnum, (other_key, other): (&str, &NamedEnum)) -> syn::Result<&'static str> {
    let lit = expect_str(pair)?;
    let text = lit.value();
    let Some(canonical) = named.canonical(&text) else {
        let elsewhere = other
            .canonical(&text)
            .map(|_| format!("that is a {}, set with `{other_key} = \"{text}\"`", other.what));
        return Err(syn::Error::new(lit.span(), named.unknown_message(&text, elsewhere)));
    };
    Ok(canonical)
}

/// `forks = N`, N ≥ 1.
fn expect_forks(pair: &Pair) -> syn::Result<u32> {
    match expect_int(pair)? {
        0 => Err(syn::Error::new_spanned(
            &pair.value,
            "`forks = 0` would call no provider; the forking policy needs at least 1",
        )),
        forks => Ok(forks),
    }
}

/// `hash_arguments = [0, 2]`: distinct argument positions, 0 to 31. Reports
/// every bad element at once.
fn expect_positions(pair: &Pair) -> syn::Result<Vec<ArgPosition>> {
    const EXPECTED: &str = "an array of argument positions counted from 0 after `&self`, such as [0, 2]";
    let Some(array) = array(&pair.value) else {
        return Err(value_error(pair, EXPECTED));
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            "`hash_arguments` needs at least one argument position, such as [0]; remove the key to hash the \
             first argument (the default)",
        ));
    }
    let mut positions: Vec<ArgPosition> = Vec::new();
    let mut problems = Errors::default();
    for element in &array.elems {
        let index = match literal(element) {
            Some(Lit::Int(lit)) if lit.suffix().is_empty() => lit.base10_parse::<u64>().ok(),
            _ => {
                problems.spanned(element, format!("`hash_arguments` expects {EXPECTED}"));
                continue;
            }
        };
        let Some(index) = index
            .and_then(|i| u8::try_from(i).ok())
            .filter(|i| *i <= MAX_HASH_POSITION)
        else {
            problems.spanned(
                element,
                format!(
                    "`hash_arguments` positions go from 0 to {MAX_HASH_POSITION}: at most the first {} \
                     arguments can be hashed",
                    MAX_HASH_POSITION + 1
                ),
            );
            continue;
        };
        if positions.iter().any(|seen| seen.index == index) {
            problems.spanned(element, format!("argument position {index} is listed twice; keep one"));
            continue;
        }
        positions.push(ArgPosition {
            index,
            span: element.span(),
        });
    }
    match problems.into_error() {
        Some(error) => Err(error),
        None => Ok(positions),
    }
}

/// The array `expr` is, looking through invisible groups.
fn array(expr: &Expr) -> Option<&syn::ExprArray> {
    match expr {
        Expr::Array(array) => Some(array),
        Expr::Group(group) => array(&group.expr),
        _ => None,
    }
}

fn value_error(pair: &Pair, expected: &str) -> syn::Error {
    syn::Error::new_spanned(&pair.value, format!("`{}` expects {expected}", pair.key))
}
