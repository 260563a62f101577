//! [`Endpoint`]: one provider as the cluster sees it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use rpc_core::invocation::deadline_after;
use rpc_core::protocol::Health;
use rpc_core::url::keys;
use rpc_core::{BoxInvoker, ErrorKind, Invocation, Outcome, Response, RpcError, Serialization, ServiceKey, Url};

use crate::config::MethodConfig;
use crate::loadbalance::{Candidate, Stats, Weighting};
use crate::settings::Settings;

/// One provider: its URL, the service that sends calls to it, whether it can
/// take calls now, and the call statistics the balancers read.
///
/// Cloning is cheap and shares the connection and the statistics.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    url: Arc<Url>,
    /// What the hot path reads of `url`, worked out once per URL.
    profile: Profile,
    invoker: BoxInvoker,
    health: Arc<dyn Fn() -> Health + Send + Sync>,
    stats: Arc<Stats>,
    /// The invoker itself ends every call by the invocation's deadline.
    enforces_deadline: bool,
    /// The invoker has layers around the channel (attempt layers), which
    /// are told the provider of each attempt.
    layered: bool,
    /// What the outlier detector may do with the provider's channel.
    probe: Option<Arc<dyn Probe>>,
}

/// What the cluster's outlier detector may do with a provider's channel
/// beyond sending calls. The native protocol's channel implements it.
pub trait Probe: Send + Sync + 'static {
    /// Fails the calls waiting for this provider's answers now (outcome
    /// unknown), keeping the connection; returns how many.
    fn abandon_in_flight(&self, reason: &str) -> usize;

    /// Whether the provider answers a protocol-level ping within `timeout`.
    fn ping(&self, timeout: std::time::Duration) -> rpc_core::BoxFuture<bool>;
}

/// What calls read of a provider URL, parsed once instead of per call.
#[derive(Debug)]
struct Profile {
    address: Arc<str>,
    weighting: Weighting,
    identity: u64,
    /// The provider process: one process exporting several protocols
    /// registers one URL per protocol, and these share it (see [`process_of`]).
    process: u64,
    /// Interface-level timeout and load balancer the URL publishes.
    published: MethodConfig,
    /// Whether the URL has method-level parameters (`sayHello.timeout=`).
    method_params: bool,
    /// The serializations the provider reads (see [`accepted`]).
    accepts: u8,
    /// The provider's `token`, sent with every attempt (Dubbo's token guard).
    token: Option<Arc<str>>,
}

impl Profile {
    fn of(url: &Url) -> Profile {
        Profile {
            address: url.address().into(),
            weighting: Weighting::of(url),
            identity: crate::loadbalance::identity(url),
            process: process_of(url),
            published: crate::settings::provider_defaults(url, ""),
            method_params: url
                .params()
                .keys()
                .any(|k| k.contains('.') && k != keys::PREFER_SERIALIZATION),
            accepts: accepted(url),
            token: url
                .param(TOKEN)
                .filter(|t| !t.is_empty() && *t != "false")
                .map(Into::into),
        }
    }
}

/// The serializations a provider URL says it reads, as a mask
/// ([`Serialization::mask`]): those of `prefer.serialization` (Dubbo 3.2) and
/// `serialization` that this consumer speaks over the URL's protocol
/// (Hessian2 on `dubbo`, and only Hessian2 there, and on `tri` in Java's
/// wrapper form; never on `rpc`); when it lists none, JSON on
/// `tri` (what gRPC and Dubbo peers of other languages exchange) and every one
/// on `rpc` (our own protocol). A provider listing only serializations we do
/// not speak reads none of ours: 0.
fn accepted(url: &Url) -> u8 {
    let listed: Vec<&str> = url
        .param(keys::PREFER_SERIALIZATION)
        .into_iter()
        .flat_map(|list| list.split(','))
        .chain(url.param(keys::SERIALIZATION))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if listed.is_empty() {
        return match url.protocol() {
            "tri" => Serialization::Json.bit(),
            "dubbo" => Serialization::Hessian2.bit(),
            _ => Serialization::mask(Serialization::ALL),
        };
    }
    let listed = Serialization::mask(listed.into_iter().filter_map(Serialization::from_name));
    // Hessian2 travels over `dubbo`, which carries nothing else, and over
    // `tri` in Java's wrapper form (a Java provider's `tri://` URL lists
    // `hessian2`); not over `rpc`.
    match url.protocol() {
        "dubbo" => listed & Serialization::Hessian2.bit(),
        "tri" => listed,
        _ => listed & !Serialization::Hessian2.bit(),
    }
}

/// URL parameter and attachment: the token a provider requires of its
/// callers (Dubbo's `token`). A provider URL that has one (as its registry
/// publishes it, or a direct URL `rpc://host:port?token=...`) has it sent as
/// the `token` attachment of every attempt to that provider.
pub const TOKEN: &str = "token";

/// URL parameter: the identity of the running provider that registered the
/// URL, the same in every URL it registers (one per protocol and service).
pub const INSTANCE: &str = "instance";

/// The provider identity of a URL, the same for every URL one provider
/// process registers: its host and [`INSTANCE`] parameter (our providers
/// publish one), else its host and `pid` parameter (Dubbo's providers of
/// other languages publish one), else its host and `application` (Java Dubbo 3
/// registers neither: its `dubbo://` and `tri://` URLs share only host and
/// application), else its address.
///
/// Two pid-less processes of one application on one host are therefore taken
/// for one provider: failover does not retry one after the other, and an
/// ejection holds both out. Java Dubbo publishes nothing that tells them apart
/// (each URL's `timestamp` is its own), and one host usually runs one instance.
fn process_of(url: &Url) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    let pid = url
        .param("pid")
        .map(str::trim)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match (url.param(INSTANCE).filter(|i| !i.is_empty()), pid) {
        (Some(instance), _) => ("instance", url.host(), instance).hash(&mut hasher),
        (None, Some(pid)) => ("pid", url.host(), pid).hash(&mut hasher),
        (None, None) => match url.param("application").filter(|a| !a.is_empty()) {
            Some(application) => ("application", url.host(), application).hash(&mut hasher),
            None => ("address", url.host(), url.port()).hash(&mut hasher),
        },
    }
    hasher.finish()
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.inner.url)
            .field("health", &(self.inner.health)())
            .field("active", &self.inner.stats.active())
            .finish()
    }
}

impl Endpoint {
    /// An endpoint for `url` sending through `invoker`; `available` says
    /// whether it can take calls now (false while its connection is failing).
    pub fn new(url: Url, invoker: BoxInvoker, available: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self::with_health(url, invoker, move || {
            if available() {
                Health::Ready
            } else {
                Health::Unavailable
            }
        })
    }

    /// An endpoint for `url` sending through `invoker`, whose `health` says
    /// whether it takes calls now (see [`Health`]): the channel's own.
    pub fn with_health(url: Url, invoker: BoxInvoker, health: impl Fn() -> Health + Send + Sync + 'static) -> Self {
        Endpoint {
            inner: Arc::new(Inner {
                profile: Profile::of(&url),
                url: Arc::new(url),
                invoker,
                health: Arc::new(health),
                stats: Arc::default(),
                enforces_deadline: false,
                layered: false,
                probe: None,
            }),
        }
    }

    /// Declares that the invoker ends every call by the invocation's
    /// deadline itself (the native and `tri` channels do), so the endpoint
    /// sets no timer of its own: one timer per attempt instead of two.
    pub fn with_invoker_enforcing_deadlines(self) -> Self {
        let mut inner = self.sharing((*self.inner.url).clone());
        inner.enforces_deadline = true;
        Endpoint { inner: Arc::new(inner) }
    }

    /// This endpoint sending through `wrap(its service)`: the same provider,
    /// health and statistics, its calls going through layers first.
    pub fn map_invoker(self, wrap: impl FnOnce(BoxInvoker) -> BoxInvoker) -> Self {
        let mut inner = self.sharing((*self.inner.url).clone());
        inner.invoker = wrap(inner.invoker);
        inner.layered = true;
        Endpoint { inner: Arc::new(inner) }
    }

    /// Lets the outlier detector abandon the calls of a stalled provider and
    /// ping it before taking it back (see [`Probe`]).
    pub fn with_probe(self, probe: Arc<dyn Probe>) -> Self {
        let mut inner = self.sharing((*self.inner.url).clone());
        inner.probe = Some(probe);
        Endpoint { inner: Arc::new(inner) }
    }

    /// The provider's channel controls, if it has any (see [`Probe`]).
    pub fn probe(&self) -> Option<&Arc<dyn Probe>> {
        self.inner.probe.as_ref()
    }

    /// The same provider under an updated URL (weight, parameters): the
    /// connection and statistics are kept.
    pub fn with_url(&self, url: Url) -> Self {
        Endpoint {
            inner: Arc::new(self.sharing(url)),
        }
    }

    /// An endpoint's parts for `url`, sharing this one's connection and statistics.
    fn sharing(&self, url: Url) -> Inner {
        Inner {
            profile: Profile::of(&url),
            url: Arc::new(url),
            invoker: self.inner.invoker.clone(),
            health: self.inner.health.clone(),
            stats: self.inner.stats.clone(),
            enforces_deadline: self.inner.enforces_deadline,
            layered: self.inner.layered,
            probe: self.inner.probe.clone(),
        }
    }

    /// What the provider URL publishes for `method`: its timeout and load
    /// balancer, method-level parameters over interface-level ones (see
    /// [`provider_defaults`](crate::settings::provider_defaults)); parsed once
    /// per URL unless it has method-level parameters.
    pub fn published(&self, method: &str) -> MethodConfig {
        if self.inner.profile.method_params {
            crate::settings::provider_defaults(&self.inner.url, method)
        } else {
            self.inner.profile.published
        }
    }

    /// The provider URL.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// `host:port` of the provider.
    pub fn address(&self) -> &str {
        &self.inner.profile.address
    }

    /// What a balancer sees of this provider.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            url: &self.inner.url,
            stats: &self.inner.stats,
            weighting: self.inner.profile.weighting,
            identity: self.inner.profile.identity,
        }
    }

    /// The service that sends calls to this provider.
    pub fn invoker(&self) -> &BoxInvoker {
        &self.inner.invoker
    }

    /// Whether the endpoint can take calls now.
    pub fn is_available(&self) -> bool {
        self.health() == Health::Ready
    }

    /// Whether the endpoint takes calls now, and if not, why: its channel's
    /// health, and [`Health::Unavailable`] while the outlier detector holds
    /// it out of rotation.
    pub fn health(&self) -> Health {
        match (self.inner.health)() {
            Health::Ready if self.inner.stats.is_ejected() => Health::Unavailable,
            health => health,
        }
    }

    /// Whether the provider reads `serialization` (from what its URL lists).
    pub fn accepts(&self, serialization: Serialization) -> bool {
        self.inner.profile.accepts & serialization.bit() != 0
    }

    /// The serializations the provider reads, as a mask ([`Serialization::mask`]).
    pub fn accepted_serializations(&self) -> u8 {
        self.inner.profile.accepts
    }

    /// The identity of the provider process serving this endpoint.
    pub(crate) fn process(&self) -> u64 {
        self.inner.profile.process
    }

    /// Whether `other` is served by the same provider process (one process
    /// registers a URL per protocol it exports): the same host and
    /// `instance`, else `pid`, else (Java Dubbo 3 registers neither) the same
    /// host and `application`, else the same address. Failover's "another
    /// provider", the protocol choice, broadcast and availability all go by it.
    pub fn same_process(&self, other: &Endpoint) -> bool {
        self.inner.profile.process == other.inner.profile.process
    }

    /// The same as [`same_process`](Self::same_process) (kept for callers
    /// of the protocol choice's former, looser key).
    pub fn same_origin(&self, other: &Endpoint) -> bool {
        self.same_process(other)
    }

    /// Calls in flight and response times.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// Sends one attempt of a call to this provider, through the layers
    /// around each attempt (which learn the provider from the invocation); its deadline
    /// becomes the attempt's (the call's, capped by `attempt_timeout`, and by
    /// the provider's own published timeout when the consumer set none), and a
    /// wildcard reference is addressed to the provider's version and group,
    /// and the provider's [`TOKEN`], if its URL has one, goes as an attachment.
    /// The attempt is counted in the provider's statistics; an error names the
    /// provider's address (the stub adds the service and method).
    ///
    /// The returned future holds this endpoint's service, and so its
    /// connection, until the attempt ends.
    pub fn call(
        &self,
        mut attempt: Invocation,
        settings: &Settings,
    ) -> impl Future<Output = Result<Response, RpcError>> + Send + 'static + use<> {
        let key = attempt.service();
        if key.version() == Some("*") || key.group() == Some("*") {
            let resolved = ServiceKey::new(
                key.interface(),
                if key.version() == Some("*") {
                    self.inner.url.version()
                } else {
                    key.version()
                },
                if key.group() == Some("*") {
                    self.inner.url.group()
                } else {
                    key.group()
                },
            );
            attempt.set_service(resolved);
        }
        // A `dubbo://` provider's `timeout` is per attempt (Java Dubbo's
        // meaning): it caps attempts there within whatever budget the call has.
        // A provider that cannot read the call's encoding gets its alternate
        // (say Hessian2 for Java's `dubbo://`), and its answer is read in kind.
        let switched = !self.accepts(attempt.serialization())
            && attempt.alternate_serialization().is_some_and(|a| self.accepts(a))
            && attempt.switch_to_alternate();
        let answered_in = switched.then(|| attempt.serialization());
        let published = if settings.provider_timeouts || self.inner.url.protocol() == "dubbo" {
            self.published(attempt.method()).timeout
        } else {
            None
        };
        let cap = match (settings.attempt_timeout, published) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        };
        if let Some(cap) = cap
            && let Some(limit) = deadline_after(cap)
        {
            let deadline = attempt.deadline().map_or(limit, |d| d.min(limit));
            attempt.set_deadline(Some(deadline));
        }
        if let Some(token) = &self.inner.profile.token {
            attempt.set_attachment(TOKEN, &**token);
        }
        let deadline = attempt.deadline();
        if self.inner.layered {
            attempt.set_provider(Some(self.inner.url.clone()));
        }
        let guard = if settings.times_attempts() {
            self.inner.stats.start()
        } else {
            self.inner.stats.start_untimed()
        };
        let call = self.inner.invoker.invoke(attempt);
        let timer = if self.inner.enforces_deadline { None } else { deadline };
        // Held until the attempt ends: the provider's connection stays open
        // for it even if the provider leaves the directory meanwhile.
        let endpoint = self.clone();
        async move {
            let result = match timer {
                Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
                    Ok(result) => result,
                    Err(_) => Err(RpcError::new(ErrorKind::Timeout, "no response before the deadline")),
                },
                None => call.await,
            };
            if result
                .as_ref()
                .map_or_else(|e| e.outcome() == Outcome::Remote, |_| true)
            {
                guard.note_answer();
            }
            guard.finish(result.is_ok());
            match (result, answered_in) {
                (Ok(response), Some(serialization)) => Ok(response.with_serialization(serialization)),
                (result, _) => result.map_err(|e| e.with_address(endpoint.address())),
            }
        }
    }
}
