//! [`Url`]: Dubbo's service URL, `protocol://host:port/path?key=value&...`.
//!
//! Providers publish one URL per export; consumers read them back from the
//! registry. Parsing is lenient, because other implementations write shorter
//! URLs (the Python Dubbo writes `tri://127.0.0.1:50051?service=org.example.Greeter`):
//! [`Url::interface`] looks at the `interface` parameter, then the path, then the
//! `service` parameter.
//!
//! Registry node names hold the whole URL percent-encoded as Java's
//! `URLEncoder` does ([`Url::encode`] / [`Url::decode`]), so Dubbo's tools read
//! ours and we read theirs.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters escaped inside a parameter key or value (so the query still splits).
const QUERY_COMPONENT: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Characters escaped in the path.
const PATH_COMPONENT: &AsciiSet = &QUERY_COMPONENT.add(b'?');

/// What Java's `URLEncoder` leaves alone: alphanumerics and `.-*_`.
const NODE_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'*').remove(b'_');

/// Well-known parameter names.
pub mod keys {
    /// The interface name.
    pub const INTERFACE: &str = "interface";
    /// The service name written by some implementations instead of `interface`.
    pub const SERVICE: &str = "service";
    /// Service version.
    pub const VERSION: &str = "version";
    /// Service group.
    pub const GROUP: &str = "group";
    /// Comma-separated wire method names.
    pub const METHODS: &str = "methods";
    /// Application name.
    pub const APPLICATION: &str = "application";
    /// `provider` or `consumer`.
    pub const SIDE: &str = "side";
    /// Load-balancing weight.
    pub const WEIGHT: &str = "weight";
    /// Payload serialization name.
    pub const SERIALIZATION: &str = "serialization";
    /// Serializations a provider reads, most preferred first (Dubbo 3.2:
    /// `prefer.serialization=fastjson2,hessian2`).
    pub const PREFER_SERIALIZATION: &str = "prefer.serialization";
    /// Registration time, milliseconds since the Unix epoch.
    pub const TIMESTAMP: &str = "timestamp";
    /// Default timeout in milliseconds.
    pub const TIMEOUT: &str = "timeout";
    /// Whether the provider is disabled.
    pub const DISABLED: &str = "disabled";
}

/// A Dubbo-style URL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Url {
    protocol: String,
    host: String,
    port: u16,
    backups: Vec<String>,
    path: String,
    params: BTreeMap<String, String>,
}

/// A string could not be parsed as a [`Url`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL `{input}`: {reason}")]
pub struct UrlError {
    input: String,
    reason: String,
}

impl UrlError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        // Keep hostile inputs from flooding logs: the reason quotes parts of
        // the input too.
        UrlError {
            input: clip(input, 256),
            reason: clip(&reason.into(), 512),
        }
    }
}

/// `text`, cut to at most `max` bytes (at a character boundary) with `...`.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

impl Url {
    /// `protocol://host:port` with no path or parameters.
    pub fn new(protocol: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Url {
            protocol: protocol.into().to_ascii_lowercase(),
            host: host.into(),
            port,
            backups: Vec::new(),
            path: String::new(),
            params: BTreeMap::new(),
        }
    }

    /// Parses `protocol://[user@]host[:port][,host:port...][/path][?query]`.
    ///
    /// Addresses that name neither a host nor a port are skipped, so the
    /// text of any parsed URL parses back to it.
    pub fn parse(input: &str) -> Result<Url, UrlError> {
        let s = input.trim();
        let (protocol, rest) = s
            .split_once("://")
            .ok_or_else(|| UrlError::new(input, "missing `protocol://`"))?;
        if protocol.is_empty()
            || !protocol.starts_with(|c: char| c.is_ascii_alphabetic())
            || !protocol.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(UrlError::new(input, format!("invalid protocol `{protocol}`")));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        // Drop user info: registries may carry credentials, which we do not keep in the URL.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        // An address naming neither host nor port (``, `:0`, `[]`) is skipped:
        // written back, it would be empty and so read as no address at all.
        let mut addresses = Vec::new();
        for address in authority.split(',').filter(|a| !a.is_empty()) {
            let (h, p) = split_host_port(address).map_err(|reason| UrlError::new(input, reason))?;
            if !h.is_empty() || p != 0 {
                addresses.push((h, p));
            }
        }
        let mut addresses = addresses.into_iter();
        let (host, port) = addresses.next().unwrap_or_default();
        let backups = addresses.map(|(h, p)| join_host_port(&h, p)).collect();
        let path = decode_component(path).map_err(|reason| UrlError::new(input, reason))?;
        let mut params = BTreeMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode_component(k).map_err(|reason| UrlError::new(input, reason))?;
            let v = decode_component(v).map_err(|reason| UrlError::new(input, reason))?;
            if !k.is_empty() {
                params.insert(k, v);
            }
        }
        Ok(Url {
            protocol: protocol.to_ascii_lowercase(),
            host,
            port,
            backups,
            path,
            params,
        })
    }

    /// Parses a registry node name: the whole URL percent-encoded (Java `URLEncoder` style).
    pub fn decode(node_name: &str) -> Result<Url, UrlError> {
        let plus_as_space = node_name.replace('+', " ");
        let decoded = percent_decode_str(&plus_as_space)
            .decode_utf8()
            .map_err(|_| UrlError::new(node_name, "not UTF-8 after percent-decoding"))?;
        Url::parse(&decoded)
    }

    /// The registry node name for this URL (the inverse of [`Url::decode`]).
    pub fn encode(&self) -> String {
        utf8_percent_encode(&self.to_string(), NODE_NAME).to_string()
    }

    /// The protocol, lowercase (`rpc`, `tri`, `zookeeper`, ...).
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The host of the first address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port of the first address (0 when absent).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` of the first address (IPv6 hosts in brackets).
    pub fn address(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Every address, the first one first (`zookeeper://h1:1,h2:2` has two).
    pub fn addresses(&self) -> Vec<String> {
        std::iter::once(self.address())
            .chain(self.backups.iter().cloned())
            .collect()
    }

    /// The path without its leading `/` (normally the interface name).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets the path.
    pub fn set_path(&mut self, path: impl Into<String>) {
        self.path = path.into().trim_start_matches('/').to_string();
    }

    /// Returns `self` with the path set.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.set_path(path);
        self
    }

    /// The parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The parameter `key` parsed as a `T`; `None` when absent or unparsable.
    pub fn param_parsed<T: FromStr>(&self, key: &str) -> Option<T> {
        self.param(key).and_then(|v| v.trim().parse().ok())
    }

    /// All parameters, sorted by key.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Sets the parameter `key`.
    pub fn set_param(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.params.insert(key.into(), value.into());
    }

    /// Returns `self` with the parameter `key` set.
    pub fn with_param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_param(key, value);
        self
    }

    /// Removes the parameter `key`.
    pub fn remove_param(&mut self, key: &str) -> Option<String> {
        self.params.remove(key)
    }

    /// This URL for logs: a secret parameter (`token`, a provider's guard)
    /// shows as `***`. Display it instead of the URL wherever it is logged.
    pub fn redacted(&self) -> std::borrow::Cow<'_, Url> {
        match self.params.get("token") {
            Some(_) => std::borrow::Cow::Owned(self.clone().with_param("token", "***")),
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// The interface: the `interface` parameter, else the path, else the `service` parameter.
    pub fn interface(&self) -> Option<&str> {
        self.param(keys::INTERFACE)
            .filter(|s| !s.is_empty())
            .or(Some(self.path.as_str()).filter(|s| !s.is_empty()))
            .or(self.param(keys::SERVICE).filter(|s| !s.is_empty()))
    }

    /// The `version` parameter, if non-empty.
    pub fn version(&self) -> Option<&str> {
        self.param(keys::VERSION).filter(|s| !s.is_empty())
    }

    /// The `group` parameter, if non-empty.
    pub fn group(&self) -> Option<&str> {
        self.param(keys::GROUP).filter(|s| !s.is_empty())
    }
}

fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed `[` in address `{address}`"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected `{after}` after IPv6 address")),
        }
    } else {
        match address.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port `{p}` in address `{address}`"))?,
        None => 0,
    };
    if host.chars().any(|c| c.is_whitespace() || "/?#@[]".contains(c)) {
        return Err(format!("invalid host `{host}`"));
    }
    Ok((host.to_string(), port))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn decode_component(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("`{s}` is not UTF-8 after percent-decoding"))
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.protocol)?;
        if self.port != 0 {
            f.write_str(&join_host_port(&self.host, self.port))?;
        } else if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        for backup in &self.backups {
            write!(f, ",{backup}")?;
        }
        if !self.path.is_empty() {
            write!(f, "/{}", utf8_percent_encode(&self.path, PATH_COMPONENT))?;
        }
        let mut sep = '?';
        for (k, v) in &self.params {
            write!(
                f,
                "{sep}{}={}",
                utf8_percent_encode(k, QUERY_COMPONENT),
                utf8_percent_encode(v, QUERY_COMPONENT)
            )?;
            sep = '&';
        }
        Ok(())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({self})")
    }
}

impl FromStr for Url {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Url, UrlError> {
        Url::parse(s)
    }
}

impl serde::Serialize for Url {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Url {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
        let s = String::deserialize(deserializer)?;
        Url::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_dubbo_provider_url() {
        let s = "tri://10.0.0.5:50051/org.example.Greeter?application=greeter-provider&interface=org.example.Greeter\
                 &methods=sayHello,placeOrder&version=1.0.0&side=provider&weight=100&timestamp=1732460000000\
                 &serialization=json";
        let url = Url::parse(s).unwrap();
        assert_eq!(url.protocol(), "tri");
        assert_eq!(url.address(), "10.0.0.5:50051");
        assert_eq!(url.path(), "org.example.Greeter");
        assert_eq!(url.interface(), Some("org.example.Greeter"));
        assert_eq!(url.param("methods"), Some("sayHello,placeOrder"));
        assert_eq!(url.param_parsed::<u32>("weight"), Some(100));
        assert_eq!((url.version(), url.group()), (Some("1.0.0"), None));
    }

    #[test]
    fn parses_the_python_dubbo_short_form() {
        let url = Url::parse("tri://127.0.0.1:50051?service=org.example.Greeter").unwrap();
        assert_eq!(url.interface(), Some("org.example.Greeter"));
        assert_eq!(url.version(), None);
        assert_eq!(url.port(), 50051);
    }

    #[test]
    fn parses_ensembles_chroot_and_ipv6() {
        let url = Url::parse("zookeeper://h1:2181,h2:2182,[::1]:2183/tenant-a").unwrap();
        assert_eq!(url.addresses(), vec!["h1:2181", "h2:2182", "[::1]:2183"]);
        assert_eq!(url.path(), "tenant-a");
        let url = Url::parse("rpc://[::1]:20880").unwrap();
        assert_eq!(url.host(), "::1");
        assert_eq!(url.to_string(), "rpc://[::1]:20880");
        assert_eq!(Url::parse("memory://").unwrap().address(), ":0");
        assert_eq!(Url::parse("memory://name").unwrap().to_string(), "memory://name");
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in [
            "",
            "no-scheme",
            "://x",
            "1rpc://h:1",
            "rpc://h:99999",
            "rpc://h:x",
            "rpc://[::1",
            "rpc://a b:1",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid URL"), "{err}");
        }
        assert!(Url::decode("%FF%FE").is_err());
    }

    #[test]
    fn an_address_naming_nothing_is_skipped_like_an_empty_one() {
        // Found by the `url` fuzz target (its input is the last one): `:0`
        // was kept as an empty first address, written back as nothing
        // (`rpc://,b:1`), which reads as `b:1`: a different URL.
        for (text, address) in [
            ("rpc://:0,b:1", "b:1"),
            ("rpc://[],b:1", "b:1"),
            ("rpc://,b:1", "b:1"),
            ("rpc://b:1,:0", "b:1"),
            ("t://6094,@,@,,,:0,,0y2He%26", "0y2He%26:0"),
        ] {
            let url = Url::parse(text).unwrap();
            assert_eq!(url.addresses(), vec![address], "{text}");
            assert_eq!(Url::parse(&url.to_string()).unwrap(), url, "{text}");
            assert_eq!(Url::decode(&url.encode()).unwrap(), url, "{text}");
        }
        assert_eq!(Url::parse("memory://:0").unwrap(), Url::parse("memory://").unwrap());
    }

    #[test]
    fn node_names_decode_java_encoded_urls() {
        // As Java's URLEncoder writes it: ':' '/' '?' '=' '&' ',' escaped, space as '+'.
        let node = "dubbo%3A%2F%2F192.168.1.2%3A20880%2Fcom.foo.Bar%3Fanyhost%3Dtrue%26methods%3Da%2Cb%26note%3Dx+y";
        let url = Url::decode(node).unwrap();
        assert_eq!(url.protocol(), "dubbo");
        assert_eq!(url.interface(), Some("com.foo.Bar"));
        assert_eq!(url.param("methods"), Some("a,b"));
        assert_eq!(url.param("note"), Some("x y"));
        assert!(!url.encode().contains(['/', ':', '?', '&', '=']));
    }

    fn arb_url() -> impl Strategy<Value = Url> {
        (
            "[a-z][a-z0-9+.-]{0,8}",
            "[a-zA-Z0-9.-]{1,20}|[0-9a-f:]{2,10}",
            any::<u16>(),
            proptest::collection::vec("[a-zA-Z0-9.-]{1,12}:[0-9]{1,5}", 0..3),
            "\\PC{0,20}",
            proptest::collection::btree_map("\\PC{1,10}", "\\PC{0,20}", 0..6),
        )
            .prop_filter_map("ports must fit", |(protocol, host, port, backups, path, params)| {
                let backups: Option<Vec<String>> = backups
                    .into_iter()
                    .map(|b| {
                        let (h, p) = b.split_once(':')?;
                        Some(join_host_port(h, p.parse().ok()?))
                    })
                    .collect();
                let host = if host.contains(':') && !host.contains("::") {
                    host.replace(':', "")
                } else {
                    host
                };
                let mut url = Url::new(protocol, host, port);
                url.backups = backups?;
                url.set_path(path);
                for (k, v) in params {
                    url.set_param(k, v);
                }
                Some(url)
            })
    }

    proptest! {
        #[test]
        fn display_parse_round_trips(url in arb_url()) {
            let text = url.to_string();
            let back = Url::parse(&text).unwrap();
            prop_assert_eq!(back, url);
        }

        #[test]
        fn node_name_round_trips(url in arb_url()) {
            let node = url.encode();
            prop_assert!(!node.contains('/'));
            prop_assert_eq!(Url::decode(&node).unwrap(), url);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = Url::parse(&s);
            let _ = Url::decode(&s);
        }
    }

    /// Defect (found by the url fuzz target's review): the reason quoted the
    /// host, port or path whole, so a hostile input flooded logs anyway.
    #[test]
    fn errors_quote_hostile_inputs_only_in_part() {
        let host = "h".repeat(100_000);
        let error = Url::parse(&format!("rpc://{host}:notaport/a.B"))
            .unwrap_err()
            .to_string();
        assert!(error.len() < 1_000, "{} bytes", error.len());
    }
}
