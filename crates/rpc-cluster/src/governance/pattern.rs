//! Value patterns of condition rules, compiled once: Dubbo's glob (`*`,
//! `prefix*`, `*suffix`, `pre*fix`), numeric ranges (`1~10`, `~10`, `10~`)
//! and `$key` references to the consumer's own URL (resolved when the rule
//! is compiled, since the consumer's URL does not change).

use rpc_core::Url;

/// One compiled value pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Pattern {
    /// `*`: any value.
    Any,
    /// A literal.
    Exact(Box<str>),
    /// `prefix*`.
    Prefix(Box<str>),
    /// `*suffix`.
    Suffix(Box<str>),
    /// `pre*suf`.
    Infix(Box<str>, Box<str>),
    /// `lo~hi` (inclusive; either side may be open): numbers only.
    Range(Option<f64>, Option<f64>),
}

impl Pattern {
    /// Compiles `text`; a `$key` is replaced by the consumer URL's value of
    /// `key` (`host`, `application`, `address`, `port`, `protocol` or a parameter).
    pub(crate) fn compile(text: &str, consumer: &Url) -> Pattern {
        if let Some(key) = text.strip_prefix('$') {
            let value = url_value(consumer, key).unwrap_or_default();
            return Pattern::Exact(value.into());
        }
        if text == "*" {
            return Pattern::Any;
        }
        if let Some((lo, hi)) = text.split_once('~') {
            let bound = |s: &str| s.trim().parse::<f64>().ok();
            let (l, h) = (bound(lo), bound(hi));
            let lo_ok = lo.trim().is_empty() || l.is_some();
            let hi_ok = hi.trim().is_empty() || h.is_some();
            if lo_ok && hi_ok && (l.is_some() || h.is_some()) {
                return Pattern::Range(l, h);
            }
        }
        match text.find('*') {
            None => Pattern::Exact(text.into()),
            Some(0) => Pattern::Suffix(text[1..].into()),
            Some(i) if i == text.len() - 1 => Pattern::Prefix(text[..i].into()),
            Some(i) => Pattern::Infix(text[..i].into(), text[i + 1..].into()),
        }
    }

    /// Whether `value` matches.
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => **s == *value,
            Pattern::Prefix(p) => value.starts_with(&**p),
            Pattern::Suffix(s) => value.ends_with(&**s),
            Pattern::Infix(p, s) => {
                value.len() >= p.len() + s.len() && value.starts_with(&**p) && value.ends_with(&**s)
            }
            Pattern::Range(lo, hi) => match value.trim().parse::<f64>() {
                Ok(v) => lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi),
                Err(_) => false,
            },
        }
    }
}

/// The value of `key` in `url` as condition rules read it: `host`,
/// `address` (`host:port`), `port` and `protocol` from the URL itself,
/// anything else from its parameters.
pub(crate) fn url_value<'a>(url: &'a Url, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    match key {
        "host" => Some(Cow::Borrowed(url.host())),
        "address" => Some(Cow::Owned(url.address())),
        "port" => Some(Cow::Owned(url.port().to_string())),
        "protocol" => Some(Cow::Borrowed(url.protocol())),
        "interface" | "service" => url.interface().map(Cow::Borrowed),
        _ => url.param(key).map(Cow::Borrowed),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn compile(s: &str) -> Pattern {
        Pattern::compile(s, &Url::parse("consumer://10.0.0.7/a.B?application=shop").unwrap())
    }

    #[test]
    fn globs_ranges_and_references() {
        assert!(compile("*").matches("anything"));
        assert!(compile("10.20.*").matches("10.20.153.10"));
        assert!(!compile("10.20.*").matches("10.21.153.10"));
        assert!(compile("*Service").matches("FooService"));
        assert!(compile("find*Order").matches("findBigOrder"));
        assert!(!compile("find*Order").matches("findBig"));
        assert!(compile("sayHello").matches("sayHello"));
        assert!(!compile("sayHello").matches("sayHelloAgain"));
        assert!(compile("1~10").matches("10"));
        assert!(compile("1~10").matches("1.5"));
        assert!(!compile("1~10").matches("11"));
        assert!(!compile("1~10").matches("abc"));
        assert!(compile("~10").matches("-4"));
        assert!(compile("100~").matches("250"));
        assert_eq!(compile("a~b"), Pattern::Exact("a~b".into()));
        assert!(compile("$host").matches("10.0.0.7"));
        assert!(compile("$application").matches("shop"));
        assert!(!compile("$missing").matches("x"));
    }
}
