//! Static descriptions of a service and its methods, emitted by `#[service]`.
//!
//! A method's declared settings (`#[rpc(timeout = "300ms", retries = 0)]`)
//! travel as Dubbo-style parameters ([`MethodDescriptor::params`]): core names
//! no cluster concept, so it carries them as text, the way a registry URL
//! carries a provider's; `rpc-cluster` reads them (and says which key and
//! value it cannot read) when a reference is built. The macro has already
//! checked every value at compile time.

/// One method of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodDescriptor {
    /// The wire name (lowerCamelCase of the Rust name unless overridden).
    pub name: &'static str,
    /// The Rust name.
    pub rust_name: &'static str,
    /// Settings declared on the method, as `(key, value)` parameters with
    /// Dubbo's names where one exists: `timeout` and `attempt.timeout` in
    /// milliseconds, `retries`, `idempotent` (`true`/`false`), `cluster`,
    /// `loadbalance`, `forks`, `actives`, and `hash.arguments` (positions,
    /// comma-separated: `0,2`). Keys appear at most once.
    pub params: &'static [(&'static str, &'static str)],
    /// The Java parameter types, as the JVM descriptors of each argument in
    /// order (`Ljava/lang/String;J` for `(String, i64)`; empty for none):
    /// what a `dubbo://` request names so that a Java provider finds the
    /// overload. `#[service]` derives it from the Rust types (see the
    /// `#[rpc(java_types = "...")]` override).
    pub java_types: &'static str,
}

impl MethodDescriptor {
    /// A method with no settings.
    pub const fn new(name: &'static str, rust_name: &'static str) -> Self {
        MethodDescriptor {
            name,
            rust_name,
            params: &[],
            java_types: "",
        }
    }

    /// Sets the Java parameter descriptors (see [`java_types`](Self::java_types)).
    pub const fn with_java_types(mut self, java_types: &'static str) -> Self {
        self.java_types = java_types;
        self
    }

    /// Sets the method's declared settings (see [`params`](Self::params)).
    pub const fn with_params(mut self, params: &'static [(&'static str, &'static str)]) -> Self {
        self.params = params;
        self
    }

    /// The declared value of parameter `key`, if any.
    pub fn param(&self, key: &str) -> Option<&'static str> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// A service: its interface name, default version and group, and methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// The interface name, e.g. `org.example.Greeter`.
    pub interface: &'static str,
    /// The version declared on the trait, if any.
    pub version: Option<&'static str>,
    /// The group declared on the trait, if any.
    pub group: Option<&'static str>,
    /// The methods, in declaration order.
    pub methods: &'static [MethodDescriptor],
}

impl ServiceDescriptor {
    /// A service with no version, group or methods.
    pub const fn new(interface: &'static str) -> Self {
        ServiceDescriptor {
            interface,
            version: None,
            group: None,
            methods: &[],
        }
    }

    /// Sets the default version.
    pub const fn with_version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the default group.
    pub const fn with_group(mut self, group: &'static str) -> Self {
        self.group = Some(group);
        self
    }

    /// Sets the methods.
    pub const fn with_methods(mut self, methods: &'static [MethodDescriptor]) -> Self {
        self.methods = methods;
        self
    }

    /// The method with wire name `name`.
    pub fn method(&self, name: &str) -> Option<&'static MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// The wire names of all methods, comma-separated (the `methods` URL parameter).
    pub fn method_names(&self) -> String {
        self.methods.iter().map(|m| m.name).collect::<Vec<_>>().join(",")
    }
}
