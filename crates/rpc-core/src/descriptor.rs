//! Static descriptions of a service and its methods, emitted by `#[service]`.

use std::time::Duration;

/// Per-method settings declared with `#[rpc(...)]` on a trait method, or set on
/// a reference. `None` means "not set here": the next level decides
/// (method > reference > consumer defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodConfig {
    /// How long a call may take, end to end, across all attempts.
    pub timeout: Option<Duration>,
    /// Extra attempts after the first (failover); `Some(0)` disables retries.
    pub retries: Option<u32>,
    /// Whether running the method twice is harmless. Calls whose outcome is
    /// unknown (timeout, connection lost after sending) are retried only when
    /// this is true. `None` means the default: idempotent, as in Dubbo.
    pub idempotent: Option<bool>,
}

impl MethodConfig {
    /// Nothing set.
    pub const fn new() -> Self {
        MethodConfig {
            timeout: None,
            retries: None,
            idempotent: None,
        }
    }

    /// Sets the timeout.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the number of retries.
    pub const fn with_retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Sets idempotence.
    pub const fn with_idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// `self` where set, `fallback` elsewhere.
    pub const fn or(self, fallback: MethodConfig) -> MethodConfig {
        MethodConfig {
            timeout: match self.timeout {
                Some(t) => Some(t),
                None => fallback.timeout,
            },
            retries: match self.retries {
                Some(r) => Some(r),
                None => fallback.retries,
            },
            idempotent: match self.idempotent {
                Some(i) => Some(i),
                None => fallback.idempotent,
            },
        }
    }

    /// Whether unknown-outcome failures may be retried: explicitly idempotent, or
    /// unset and not `retries = 0`.
    pub const fn is_idempotent(&self) -> bool {
        match self.idempotent {
            Some(i) => i,
            None => true,
        }
    }
}

/// One method of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodDescriptor {
    /// The wire name (lowerCamelCase of the Rust name unless overridden).
    pub name: &'static str,
    /// The Rust name.
    pub rust_name: &'static str,
    /// Settings declared on the method.
    pub config: MethodConfig,
}

impl MethodDescriptor {
    /// A method with no settings.
    pub const fn new(name: &'static str, rust_name: &'static str) -> Self {
        MethodDescriptor {
            name,
            rust_name,
            config: MethodConfig::new(),
        }
    }

    /// Sets the method's settings.
    pub const fn with_config(mut self, config: MethodConfig) -> Self {
        self.config = config;
        self
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
