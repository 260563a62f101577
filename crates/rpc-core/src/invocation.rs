//! [`Invocation`]: one call as it flows through every layer, and [`ServiceKey`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::serialization::Serialization;
use crate::url::Url;

/// Identifies an exported service: interface, version and group.
///
/// Displayed as Dubbo does: `group/interface:version`, omitting what is unset.
/// Cheap to clone: one shared allocation, one reference count per clone
/// (every call clones its key a few times on the way to the wire).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
struct KeyParts {
    interface: Box<str>,
    version: Option<Box<str>>,
    group: Option<Box<str>>,
}

impl ServiceKey {
    /// A key. Empty strings for version or group mean "unset".
    pub fn new(interface: &str, version: Option<&str>, group: Option<&str>) -> Self {
        let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(Box::from);
        ServiceKey(Arc::new(KeyParts {
            interface: Box::from(interface),
            version: non_empty(version),
            group: non_empty(group),
        }))
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.0.interface
    }

    /// The version, if set.
    pub fn version(&self) -> Option<&str> {
        self.0.version.as_deref()
    }

    /// The group, if set.
    pub fn group(&self) -> Option<&str> {
        self.0.group.as_deref()
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(group) = self.group() {
            write!(f, "{group}/")?;
        }
        f.write_str(self.interface())?;
        if let Some(version) = self.version() {
            write!(f, ":{version}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceKey({self})")
    }
}

/// String key/value pairs that travel with a call (trace context, token, ...).
pub type Attachments = BTreeMap<String, String>;

/// The attachments of a call that has none.
static NO_ATTACHMENTS: Attachments = BTreeMap::new();

/// A method name: the `&'static str` of a generated descriptor (no
/// allocation per call), or a shared name decoded from the wire. Cheap to clone.
#[derive(Clone)]
pub struct MethodName(NameRepr);

#[derive(Clone)]
enum NameRepr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl MethodName {
    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            NameRepr::Static(s) => s,
            NameRepr::Shared(s) => s,
        }
    }
}

impl std::ops::Deref for MethodName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for MethodName {
    fn from(name: &'static str) -> Self {
        MethodName(NameRepr::Static(name))
    }
}

impl From<String> for MethodName {
    fn from(name: String) -> Self {
        MethodName(NameRepr::Shared(Arc::from(name)))
    }
}

impl From<Arc<str>> for MethodName {
    fn from(name: Arc<str>) -> Self {
        MethodName(NameRepr::Shared(name))
    }
}

impl PartialEq for MethodName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MethodName {}

impl std::hash::Hash for MethodName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One remote call: target service, method, encoded arguments, attachments
/// and deadline; on the consumer, once a provider is picked for an attempt,
/// that provider.
///
/// Arguments are encoded once, by the stub, into [`Bytes`]: cloning an
/// invocation for a retry, a fork or a broadcast copies no payload.
#[derive(Clone, Debug)]
pub struct Invocation {
    service: ServiceKey,
    method: MethodName,
    args: Bytes,
    serialization: Serialization,
    /// `None` when there are none: most calls carry none, and this saves an allocation each.
    attachments: Option<Arc<Attachments>>,
    deadline: Option<Instant>,
    /// When the call began, if a layer noted it (see [`Invocation::started`]).
    started: Option<Instant>,
    hash_key: Option<u64>,
    /// Consumer side: the provider of this attempt.
    provider: Option<Arc<Url>>,
    /// Provider side: the caller's socket address.
    remote_address: Option<SocketAddr>,
    /// The method's Java parameter descriptors (`dubbo` requests name them).
    java_types: &'static str,
    /// The arguments in a second serialization, for providers that cannot
    /// read the first (Java's `dubbo://` beside ours in one provider set).
    alternate: Option<Arc<(Serialization, Bytes)>>,
}

impl Invocation {
    /// A call of `method` on `service` with arguments already encoded with `serialization`.
    pub fn new(service: ServiceKey, method: impl Into<MethodName>, args: Bytes, serialization: Serialization) -> Self {
        Invocation {
            service,
            method: method.into(),
            args,
            serialization,
            attachments: None,
            deadline: None,
            started: None,
            hash_key: None,
            provider: None,
            remote_address: None,
            java_types: "",
            alternate: None,
        }
    }

    /// Turns this call into a call of `method` with `args` encoded with
    /// `serialization`, keeping its service, attachments, deadline and
    /// caller (what a generic `$invoke` becomes on the provider).
    pub(crate) fn retarget(&mut self, method: MethodName, args: Bytes, serialization: Serialization) {
        self.method = method;
        self.args = args;
        self.serialization = serialization;
        self.alternate = None;
        self.java_types = "";
    }

    /// Also carries the arguments encoded with `serialization`, for the
    /// providers that read only that one (set by the stub when the provider
    /// set is mixed).
    pub fn set_alternate(&mut self, serialization: Serialization, args: Bytes) {
        self.alternate = Some(Arc::new((serialization, args)));
    }

    /// The serialization of the alternate arguments, if the call has them.
    pub fn alternate_serialization(&self) -> Option<Serialization> {
        self.alternate.as_ref().map(|alternate| alternate.0)
    }

    /// Makes the alternate arguments the call's (the previous ones become the
    /// alternate); false, changing nothing, when there are none.
    pub fn switch_to_alternate(&mut self) -> bool {
        let Some(alternate) = self.alternate.take() else {
            return false;
        };
        let (serialization, args) = (*alternate).clone();
        self.alternate = Some(Arc::new((self.serialization, std::mem::replace(&mut self.args, args))));
        self.serialization = serialization;
        true
    }

    /// The method's Java parameter types as JVM descriptors
    /// ([`MethodDescriptor::java_types`](crate::MethodDescriptor::java_types)),
    /// which a `dubbo://` request names; empty when unknown or none.
    pub fn java_types(&self) -> &'static str {
        self.java_types
    }

    /// Sets the Java parameter types (the stub does, from the method's descriptor).
    pub fn set_java_types(&mut self, java_types: &'static str) {
        self.java_types = java_types;
    }

    /// The target service.
    pub fn service(&self) -> &ServiceKey {
        &self.service
    }

    /// Addresses the call to `service` (a wildcard reference resolved to the
    /// version and group of the chosen provider).
    pub fn set_service(&mut self, service: ServiceKey) {
        self.service = service;
    }

    /// The wire method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The wire method name, to keep past the invocation (cheap to clone).
    pub fn method_name(&self) -> &MethodName {
        &self.method
    }

    /// The encoded arguments (a tuple of the method's parameters).
    pub fn args(&self) -> &Bytes {
        &self.args
    }

    /// How the arguments are encoded, and how the response must be.
    pub fn serialization(&self) -> Serialization {
        self.serialization
    }

    /// The attachments.
    pub fn attachments(&self) -> &Attachments {
        self.attachments.as_deref().unwrap_or(&NO_ATTACHMENTS)
    }

    /// The attachment `key`.
    pub fn attachment(&self, key: &str) -> Option<&str> {
        self.attachments().get(key).map(String::as_str)
    }

    /// Sets an attachment (copying the map only if it is shared).
    pub fn set_attachment(&mut self, key: impl Into<String>, value: impl Into<String>) {
        Arc::make_mut(self.attachments.get_or_insert_with(Arc::default)).insert(key.into(), value.into());
    }

    /// Replaces all attachments.
    pub fn set_attachments(&mut self, attachments: Attachments) {
        self.attachments = (!attachments.is_empty()).then(|| Arc::new(attachments));
    }

    /// When the caller stops waiting, across all attempts.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sets the deadline.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// When the call began, if a layer noted it: on a consumer, the
    /// observer that times calls for metrics; on a provider, the native
    /// server when a request arrives with a timeout. Layers below time the
    /// call or set its deadline from it instead of reading the clock again.
    /// Never sent.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Notes when the call began (see [`started`](Self::started)).
    pub fn set_started(&mut self, started: Option<Instant>) {
        self.started = started;
    }

    /// The deadline `timeout` after the call [`started`](Self::started) (from
    /// now when no layer noted it); none when it lies beyond what the clock
    /// can represent.
    pub fn deadline_after(&self, timeout: std::time::Duration) -> Option<Instant> {
        match self.started {
            Some(started) => started.checked_add(timeout),
            None => deadline_after(timeout),
        }
    }

    /// The hash of the arguments consistent hashing keys on, when the stub
    /// computed one (see [`Stub::with_argument_hashing`](crate::Stub::with_argument_hashing)).
    pub fn hash_key(&self) -> Option<u64> {
        self.hash_key
    }

    /// Sets the consistent-hashing key.
    pub fn set_hash_key(&mut self, key: Option<u64>) {
        self.hash_key = key;
    }

    /// On the consumer, the registry URL of the provider this attempt goes
    /// to: set by the cluster after picking it, so the layers around each
    /// attempt (`attempt_layer`) see it. `None` above the cluster.
    pub fn provider(&self) -> Option<&Url> {
        self.provider.as_deref()
    }

    /// Sets the provider of this attempt.
    pub fn set_provider(&mut self, provider: Option<Arc<Url>>) {
        self.provider = provider;
    }

    /// On the provider, the socket address of the caller that sent this call,
    /// as the server's connection saw it (a proxy's, if one is in between).
    /// Every protocol's server sets it on every invocation it decodes, so
    /// provider-side layers can see who is calling. `None` on the consumer's
    /// side and for invocations made by hand.
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.remote_address
    }

    /// Sets the caller's address (servers do, for each invocation they decode).
    pub fn set_remote_address(&mut self, address: Option<SocketAddr>) {
        self.remote_address = address;
    }
}

/// The deadline `timeout` from now; none when it lies beyond what the clock
/// can represent (`Duration::MAX` means "no deadline", not a panic).
pub fn deadline_after(timeout: std::time::Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_displays_like_dubbo() {
        assert_eq!(
            ServiceKey::new("a.B", Some("1.0.0"), Some("g")).to_string(),
            "g/a.B:1.0.0"
        );
        assert_eq!(ServiceKey::new("a.B", Some(""), None).to_string(), "a.B");
    }

    #[test]
    fn cloning_shares_the_payload() {
        let inv = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::from(vec![1u8; 1024]),
            Serialization::Bincode,
        );
        let copy = inv.clone();
        assert_eq!(copy.args().as_ptr(), inv.args().as_ptr());
    }

    #[test]
    fn the_remote_address_is_unset_until_a_server_sets_it() {
        let mut inv = Invocation::new(
            ServiceKey::new("a.B", None, None),
            "m",
            Bytes::new(),
            Serialization::Json,
        );
        assert_eq!(inv.remote_address(), None);
        let peer: SocketAddr = "192.0.2.7:40123".parse().unwrap();
        inv.set_remote_address(Some(peer));
        assert_eq!(inv.remote_address(), Some(peer));
        assert_eq!(inv.clone().remote_address(), Some(peer));
    }
}
