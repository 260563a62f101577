//! Provider guards: Dubbo's `token`, `executes`, `tps` and `accesslog`
//! provider filters, as one tower service outside every other layer of an
//! export (a filter in Dubbo's words, like the user's provider layers).
//!
//! Each is a parameter of the provider URL (set on the [`Export`](crate::Export)
//! or with [`Export::param`](crate::Export::param)), and a provider-side
//! override rule may set or change it while the provider runs: the provider
//! watches the rules of its own services ([`Registry::rules`](rpc_registry::Registry::rules))
//! and applies the URL they make in place; counts survive a change of limit.
//!
//! * `token`: a call must carry the provider's token as its `token`
//!   attachment; consumers that find the provider through a registry send
//!   the one its URL publishes (per attempt, so each provider gets its own).
//!   A call without it, or with another, is refused before anything runs,
//!   with [`Status::UNAUTHENTICATED`] (not retryable): it bypassed the registry.
//! * `executes` (and `{method}.executes`): at most that many calls of a
//!   method run at once; the next is refused with [`Status::ServerOverloaded`]
//!   (`RESOURCE_EXHAUSTED`, marked as refused, on `tri`), not run, so a
//!   failover consumer sends it to another provider.
//! * `tps` and `tps.interval` (milliseconds, default 60 000): at most `tps`
//!   calls of the service per fixed window, which starts with the first call
//!   after the previous window ended (Dubbo's `StatItem`); refused likewise.
//! * `accesslog`: `true` (`tracing` events on target [`ACCESSLOG_TARGET`])
//!   or a file path (one line per call, appended by a writer task through a
//!   bounded queue: a call never waits for the disk; when the queue is full
//!   records are dropped, counted and warned about): caller, service,
//!   method, outcome, duration and time of every call, refusals included.
//!
//! The checks run in that order: a caller without the token takes nothing
//! from the limits. Every guard counts across the protocols an export is
//! served on (one provider, one count). With no guard set, a call pays one
//! lock-free load (`ArcSwap`) and a branch, no allocation.

pub(crate) mod accesslog;
mod limit;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use rpc_core::{BoxFuture, BoxInvoker, Invocation, Response, RpcError, ServiceDescriptor, Status, Url};
use tokio::time::Instant;

pub use accesslog::TARGET as ACCESSLOG_TARGET;
use accesslog::{AccessLog, AccessLogs, Record};
use limit::{Running, Window};

/// URL parameters of the guards (Dubbo's names).
pub mod keys {
    /// The token a caller must send as the `token` attachment.
    pub const TOKEN: &str = "token";
    /// Calls of each method running at once (`{method}.executes` for one method).
    pub const EXECUTES: &str = "executes";
    /// Calls of the service per window.
    pub const TPS: &str = "tps";
    /// The window of `tps`, in milliseconds.
    pub const TPS_INTERVAL: &str = "tps.interval";
    /// `true`, or the file to append one line per call to.
    pub const ACCESSLOG: &str = "accesslog";
}

/// Dubbo's default `tps.interval`.
pub const DEFAULT_TPS_INTERVAL: Duration = Duration::from_secs(60);

/// The token an export requires of its callers ([`Export::token`](crate::Export::token)).
#[derive(Clone, PartialEq, Eq)]
pub enum Token {
    /// A random UUID made when the provider starts (`token=true` in Dubbo).
    Random,
    /// This value.
    Fixed(String),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a secret: never in logs.
        match self {
            Token::Random => f.write_str("Random"),
            Token::Fixed(_) => f.write_str("Fixed(..)"),
        }
    }
}

impl Token {
    /// The token's value: a new random UUID for [`Token::Random`].
    pub(crate) fn value(&self) -> String {
        match self {
            Token::Random => random_uuid(),
            Token::Fixed(value) => value.clone(),
        }
    }

    /// What a `token` parameter means: `true` or `default` a random token,
    /// `false` or empty none, anything else itself.
    pub(crate) fn from_param(value: &str) -> Option<Token> {
        match value.trim() {
            "" | "false" => None,
            "true" | "default" => Some(Token::Random),
            _ => Some(Token::Fixed(value.to_string())),
        }
    }
}

/// A version-4 UUID, as Dubbo's `UUID.randomUUID()` makes tokens.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The guards in force, read from a provider URL.
#[derive(Default)]
struct Settings {
    token: Option<Box<str>>,
    executes: u32,
    method_executes: HashMap<Box<str>, u32>,
    tps: u64,
    tps_interval: Duration,
    accesslog: Option<AccessLog>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("token", &self.token.is_some())
            .field("executes", &self.executes)
            .field("method_executes", &self.method_executes)
            .field("tps", &self.tps)
            .field("tps_interval", &self.tps_interval)
            .field("accesslog", &self.accesslog.is_some())
            .finish()
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        let log = |s: &Settings| match &s.accesslog {
            None => None,
            Some(AccessLog::Tracing) => Some(None),
            Some(AccessLog::File(file)) => Some(Some(Arc::as_ptr(file))),
        };
        self.token == other.token
            && self.executes == other.executes
            && self.method_executes == other.method_executes
            && self.tps == other.tps
            && self.tps_interval == other.tps_interval
            && log(self) == log(other)
    }
}

impl Settings {
    /// The guards `url` sets; a value that does not parse is ignored, with a warning.
    fn of(url: &Url, logs: &AccessLogs) -> Settings {
        let service = url.interface().unwrap_or(url.path());
        let number = |key: &str| -> u64 {
            match url.param(key).map(str::trim) {
                None | Some("") => 0,
                Some(text) => text.parse().unwrap_or_else(|_| {
                    tracing::warn!(%service, parameter = key, value = text, "ignored: not a whole number");
                    0
                }),
            }
        };
        let mut method_executes = HashMap::new();
        for key in url.params().keys() {
            if let Some(method) = key.strip_suffix(".executes").filter(|m| !m.is_empty()) {
                method_executes.insert(method.into(), clamp(number(key)));
            }
        }
        let interval = number(keys::TPS_INTERVAL);
        Settings {
            token: url
                .param(keys::TOKEN)
                .filter(|t| !t.is_empty() && *t != "false")
                .map(Into::into),
            executes: clamp(number(keys::EXECUTES)),
            method_executes,
            tps: number(keys::TPS),
            tps_interval: if interval == 0 {
                DEFAULT_TPS_INTERVAL
            } else {
                Duration::from_millis(interval)
            },
            accesslog: url.param(keys::ACCESSLOG).and_then(|v| logs.of(v)),
        }
    }

    fn is_empty(&self) -> bool {
        self.token.is_none()
            && self.executes == 0
            && self.method_executes.is_empty()
            && self.tps == 0
            && self.accesslog.is_none()
    }

    fn executes(&self, method: &str) -> u32 {
        if self.method_executes.is_empty() {
            return self.executes;
        }
        self.method_executes.get(method).copied().unwrap_or(self.executes)
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The guards of one export: their settings (replaced when rules change)
/// and their counts (kept).
pub(crate) struct Guard {
    settings: ArcSwap<Settings>,
    running: HashMap<&'static str, Running>,
    window: Window,
    logs: AccessLogs,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("settings", &self.settings.load())
            .finish()
    }
}

impl Guard {
    /// The guards `url` sets, for the service `descriptor` describes.
    pub(crate) fn new(descriptor: &ServiceDescriptor, url: &Url, logs: &AccessLogs) -> Arc<Guard> {
        Arc::new(Guard {
            settings: ArcSwap::from_pointee(Settings::of(url, logs)),
            running: descriptor
                .methods
                .iter()
                .map(|m| (m.name, Running::default()))
                .collect(),
            window: Window::default(),
            logs: logs.clone(),
        })
    }

    /// Applies the guards `url` sets now (the provider URL as the rules in
    /// force make it); the counts stay. Returns whether anything changed.
    pub(crate) fn update(&self, url: &Url) -> bool {
        let settings = Settings::of(url, &self.logs);
        if **self.settings.load() == settings {
            return false;
        }
        tracing::info!(
            service = url.interface().unwrap_or_default(),
            guards = ?settings,
            "provider guards changed"
        );
        self.settings.store(Arc::new(settings));
        true
    }

    /// `inner` behind these guards. Always ready (it waits for `inner`'s
    /// readiness inside each call, as [`BoxInvoker::invoke`] does), and with
    /// no guard set a call costs a load and a branch, no allocation.
    pub(crate) fn wrap(self: &Arc<Self>, inner: BoxInvoker) -> BoxInvoker {
        BoxInvoker::always_ready(Guarded {
            inner: Arc::new(inner),
            guard: self.clone(),
        })
    }

    /// Refuses `invocation` if a guard says so; else what it holds while running.
    fn admit(
        &self,
        settings: &Settings,
        invocation: &Invocation,
        caller: &str,
    ) -> Result<Option<limit::Permit>, RpcError> {
        let method = invocation.method();
        if let Some(token) = &settings.token {
            let sent = invocation.attachment(keys::TOKEN);
            if !sent.is_some_and(|sent| same(sent.as_bytes(), token.as_bytes())) {
                let why = if sent.is_some() { "a wrong token" } else { "no token" };
                return Err(RpcError::remote(
                    Status::UNAUTHENTICATED,
                    format!(
                        "invalid token: forbid invoking {} method {method} from consumer {caller}: the call has {why} \
                         (consumers that find this provider through a registry send the token it publishes; \
                         a direct URL must carry it: rpc://host:port?token=...)",
                        invocation.service()
                    ),
                ));
            }
        }
        if settings.tps > 0 && !self.window.try_take(settings.tps, settings.tps_interval) {
            return Err(RpcError::remote(
                Status::ServerOverloaded,
                format!(
                    "{} exceeds its rate: more than {} calls in {} ms (tps={}, tps.interval={}); not run",
                    invocation.service(),
                    settings.tps,
                    settings.tps_interval.as_millis(),
                    settings.tps,
                    settings.tps_interval.as_millis()
                ),
            ));
        }
        let limit = settings.executes(method);
        if limit == 0 {
            return Ok(None);
        }
        let Some(running) = self.running.get(method) else {
            // Not a method of the service: the adapter answers so.
            return Ok(None);
        };
        match running.try_start(limit) {
            Some(permit) => Ok(Some(permit)),
            None => Err(RpcError::remote(
                Status::ServerOverloaded,
                format!(
                    "{method} of {} has {} calls running, its limit (executes={limit}); not run",
                    invocation.service(),
                    running.get()
                ),
            )),
        }
    }
}

/// Compares a sent token with the expected one in time independent of where they differ.
fn same(sent: &[u8], expected: &[u8]) -> bool {
    sent.len() == expected.len() && sent.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// An export's invoker behind its guards.
#[derive(Clone)]
struct Guarded {
    inner: Arc<BoxInvoker>,
    guard: Arc<Guard>,
}

impl tower::Service<Invocation> for Guarded {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let settings = self.guard.settings.load();
        if settings.is_empty() {
            return self.inner.invoke(invocation);
        }
        let started = Instant::now();
        let caller = invocation
            .remote_address()
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let log = settings
            .accesslog
            .clone()
            .map(|log| (log, invocation.service().to_string(), invocation.method().to_string()));
        let running = match self.guard.admit(&settings, &invocation, &caller) {
            Ok(permit) => {
                let call = self.inner.invoke(invocation);
                Ok(async move {
                    let result = call.await;
                    drop(permit);
                    result
                })
            }
            Err(refused) => Err(refused
                .with_service(invocation.service())
                .with_method(invocation.method())),
        };
        drop(settings);
        Box::pin(async move {
            let result = match running {
                Ok(call) => call.await,
                Err(refused) => Err(refused),
            };
            if let Some((log, service, method)) = log {
                let outcome = match &result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => match e.status() {
                        Some(status) => format!("status-{}", status.code()),
                        None => "error".to_string(),
                    },
                };
                log.record(&Record {
                    caller: &caller,
                    service: &service,
                    method: &method,
                    outcome: &outcome,
                    duration: started.elapsed(),
                });
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn settings_read_dubbo_parameters() {
        let url = Url::parse(
            "rpc://127.0.0.1:1/a.B?interface=a.B&token=s3cret&executes=4&sayHello.executes=2&tps=10&tps.interval=1000",
        )
        .unwrap();
        let settings = Settings::of(&url, &AccessLogs::default());
        assert_eq!(settings.token.as_deref(), Some("s3cret"));
        assert_eq!(settings.executes("sayHello"), 2);
        assert_eq!(settings.executes("other"), 4);
        assert_eq!((settings.tps, settings.tps_interval), (10, Duration::from_secs(1)));
        let none = Settings::of(
            &Url::parse("rpc://127.0.0.1:1/a.B?token=false&tps=x").unwrap(),
            &AccessLogs::default(),
        );
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(none.tps_interval, DEFAULT_TPS_INTERVAL);
    }

    #[test]
    fn tokens_are_random_uuids_or_fixed_and_never_printed() {
        let a = Token::Random.value();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_ne!(a, Token::Random.value());
        assert_eq!(Token::from_param("true"), Some(Token::Random));
        assert_eq!(Token::from_param("s3cret"), Some(Token::Fixed("s3cret".into())));
        assert_eq!(Token::from_param("false"), None);
        assert!(!format!("{:?}", Token::Fixed("s3cret".into())).contains("s3cret"));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
