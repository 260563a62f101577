//! Routing: which providers a reference may call at all.
//!
//! Applied by the [`Directory`](crate::Directory) whenever the provider set
//! changes, so calls never pay for it:
//!
//! * interface, version and group select providers exactly; `*` as the
//!   reference's version or group matches any (a provider without a version
//!   matches only a reference without one);
//! * a provider whose URL says `disabled=true` is never picked;
//! * protocols: a provider whose protocol the consumer does not speak is left
//!   out by [`Connect`](crate::Connect), which makes no endpoint for it.

use rpc_core::url::keys;
use rpc_core::{ServiceKey, Url};

/// Whether the provider at `url` serves the reference `key`.
///
/// A provider URL without a version serves references to version 1.0.0 as
/// well as references without one: Dubbo implementations of other languages
/// (the Python one) leave 1.0.0, their default, unsaid.
pub fn accepts(key: &ServiceKey, url: &Url) -> bool {
    let version_matches =
        selects(key.version(), url.version()) || (url.version().is_none() && key.version() == Some(DEFAULT_VERSION));
    url.interface() == Some(key.interface())
        && version_matches
        && selects(key.group(), url.group())
        && url.param(keys::DISABLED) != Some("true")
}

/// The version other implementations leave out of their URLs.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// Whether a reference's `wanted` version or group selects a provider's `offered` one.
pub fn selects(wanted: Option<&str>, offered: Option<&str>) -> bool {
    wanted == Some("*") || wanted == offered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn versions_and_groups_select_exactly() {
        let key = ServiceKey::new("a.B", Some("1.0.0"), Some("g"));
        assert!(accepts(&key, &url("rpc://h:1/a.B?version=1.0.0&group=g")));
        assert!(!accepts(&key, &url("rpc://h:1/a.B?version=1.0.1&group=g")));
        assert!(!accepts(&key, &url("rpc://h:1/a.B?version=1.0.0")));
        assert!(!accepts(&key, &url("rpc://h:1/a.C?version=1.0.0&group=g")));
        let bare = ServiceKey::new("a.B", None, None);
        assert!(accepts(&bare, &url("rpc://h:1/a.B")));
        assert!(!accepts(&bare, &url("rpc://h:1/a.B?version=1.0.0")));
        // The Python implementation's URLs say no version and mean 1.0.0.
        let v1 = ServiceKey::new("a.B", Some("1.0.0"), None);
        assert!(accepts(&v1, &url("tri://127.0.0.1:50051?service=a.B")));
        let v2 = ServiceKey::new("a.B", Some("2.0.0"), None);
        assert!(!accepts(&v2, &url("tri://127.0.0.1:50051?service=a.B")));
    }

    #[test]
    fn star_matches_any() {
        let key = ServiceKey::new("a.B", Some("*"), Some("*"));
        assert!(accepts(&key, &url("rpc://h:1/a.B")));
        assert!(accepts(&key, &url("rpc://h:1/a.B?version=2.0.0&group=x")));
    }

    #[test]
    fn disabled_providers_are_never_picked() {
        let key = ServiceKey::new("a.B", None, None);
        assert!(!accepts(&key, &url("rpc://h:1/a.B?disabled=true")));
        assert!(accepts(&key, &url("rpc://h:1/a.B?disabled=false")));
    }
}
