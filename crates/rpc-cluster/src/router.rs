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
pub fn accepts(key: &ServiceKey, url: &Url) -> bool {
    url.interface() == Some(key.interface())
        && selects(key.version(), url.version())
        && selects(key.group(), url.group())
        && url.param(keys::DISABLED) != Some("true")
}

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
