//! [`Select`]: what a cluster policy asks for, and [`Picker`], which answers
//! from a [`Directory`] with the load balancer of the call.

use std::fmt;
use std::sync::Arc;

use rpc_core::protocol::Health;
use rpc_core::{ErrorKind, Invocation, RpcError, ServiceKey};
use smallvec::SmallVec;

use crate::call::Call;
use crate::config::Balancer;
use crate::directory::Directory;
use crate::endpoint::Endpoint;
use crate::governance::FORCE_TAG_KEY;
use crate::loadbalance::{
    Candidate, ConsistentHash, LeastActive, LoadBalance, P2c, Random, RoundRobin, ShortestResponse,
};
use crate::settings::Balance;

/// Picks providers for the attempts of a call: the seam between cluster
/// policies and routing plus load balancing.
pub trait Select: Send + Sync + 'static {
    /// The reference the providers serve.
    fn service(&self) -> &ServiceKey;

    /// One provider for `invocation`, preferring providers whose process is
    /// not in `tried` and providers whose connection is healthy. Fails with
    /// [`ErrorKind::NoProvider`] when there is no provider at all, or when
    /// every one is shutting down.
    fn select(&self, call: &Call, tried: &[Endpoint]) -> Result<Endpoint, RpcError>;

    /// Every provider process once (broadcast): of a process that exports
    /// several protocols, the endpoint `select` would prefer; processes
    /// shutting down are left out (they are leaving the cluster).
    fn select_all(&self, call: &Call) -> Result<Arc<Vec<Endpoint>>, RpcError>;
}

/// The balancers of one reference, one of each kind and the reference's own,
/// created once so that their state (round-robin counters, hash rings) lives
/// as long as the reference.
struct BalancerSet {
    random: Random,
    round_robin: RoundRobin,
    least_active: LeastActive,
    shortest_response: ShortestResponse,
    consistent_hash: ConsistentHash,
    p2c: P2c,
    custom: Option<Arc<dyn LoadBalance>>,
}

impl BalancerSet {
    fn get(&self, balance: Balance) -> &dyn LoadBalance {
        match balance {
            Balance::Builtin(Balancer::Random) => &self.random,
            Balance::Builtin(Balancer::RoundRobin) => &self.round_robin,
            Balance::Builtin(Balancer::LeastActive) => &self.least_active,
            Balance::Builtin(Balancer::ShortestResponse) => &self.shortest_response,
            Balance::Builtin(Balancer::ConsistentHash) => &self.consistent_hash,
            Balance::Builtin(Balancer::P2c) => &self.p2c,
            Balance::Custom => match &self.custom {
                Some(custom) => &**custom,
                None => &self.random,
            },
        }
    }
}

/// [`Select`] over a live [`Directory`]: routing plus load balancing, with
/// the balancer the call's settings name. Built once per reference.
///
/// Among the directory's providers it keeps those that read the call's
/// serialization, then those not yet tried by the call (all of them when
/// every one was tried), then those whose connection is healthy (all of them
/// when none is, so a provider coming back is found again), then those of the
/// preferred protocol, and lets the balancer pick.
pub struct Picker {
    directory: Arc<Directory>,
    balancers: BalancerSet,
    prefer: Option<Arc<str>>,
}

impl fmt::Debug for Picker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Picker")
            .field("directory", &self.directory)
            .field("prefer", &self.prefer)
            .finish()
    }
}

impl Picker {
    /// Picks among the providers of `directory`.
    pub fn new(directory: Arc<Directory>) -> Self {
        Picker {
            directory,
            balancers: BalancerSet {
                random: Random::new(),
                round_robin: RoundRobin::new(),
                least_active: LeastActive::new(),
                shortest_response: ShortestResponse::new(),
                consistent_hash: ConsistentHash::new(),
                p2c: P2c::new(),
                custom: None,
            },
            prefer: None,
        }
    }

    /// Prefers providers of `protocol` (say `rpc` over `tri` when a provider
    /// exports both), within each provider process: a process's other
    /// endpoints are picked only when it has no usable one of `protocol`,
    /// and processes without one (a Java provider's `dubbo://`) are kept.
    pub fn prefer_protocol(mut self, protocol: impl Into<Arc<str>>) -> Self {
        self.prefer = Some(protocol.into());
        self
    }

    /// Picks with `balancer` the calls whose settings name no built-in one
    /// ([`Balance::Custom`]).
    pub fn with_balancer(mut self, balancer: Arc<dyn LoadBalance>) -> Self {
        self.balancers.custom = Some(balancer);
        self
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    fn unreadable(&self, invocation: &Invocation, endpoints: &[Endpoint]) -> RpcError {
        let mut listed: Vec<String> = endpoints
            .iter()
            .map(|e| {
                let read: Vec<&str> = rpc_core::Serialization::ALL
                    .into_iter()
                    .filter(|s| e.accepts(*s))
                    .map(|s| s.name())
                    .collect();
                format!(
                    "{} reads {}",
                    e.address(),
                    if read.is_empty() {
                        "none of ours".to_string()
                    } else {
                        read.join(", ")
                    }
                )
            })
            .collect();
        listed.sort();
        RpcError::new(
            ErrorKind::NoProvider,
            format!(
                "no provider reads {} ({})",
                invocation.serialization().name(),
                listed.join("; ")
            ),
        )
        .with_service(self.directory.key())
        .with_method(invocation.method())
    }

    fn all_leaving(&self, invocation: &Invocation, count: usize) -> RpcError {
        RpcError::new(
            ErrorKind::NoProvider,
            format!("every provider ({count}) is shutting down"),
        )
        .with_service(self.directory.key())
        .with_method(invocation.method())
    }

    fn no_provider(&self, invocation: &Invocation) -> RpcError {
        RpcError::new(ErrorKind::NoProvider, "no provider matches the reference")
            .with_service(self.directory.key())
            .with_method(invocation.method())
    }
}

/// Candidates kept on the stack up to this many providers: no allocation per
/// call for the usual directory sizes.
const INLINE: usize = 8;

/// Keeps the endpoints that pass `keep`, unless none does. One pass when
/// all of them pass (the usual case).
fn keep_if_any(pool: &mut SmallVec<[&Endpoint; INLINE]>, keep: impl Fn(&Endpoint) -> bool) {
    let Some(first_out) = pool.iter().position(|e| !keep(e)) else {
        return;
    };
    // Everything before `first_out` passed.
    if first_out > 0 || pool[first_out + 1..].iter().any(|e| keep(e)) {
        pool.retain(|e| keep(e));
    }
}

impl Picker {
    /// Whether `invocation` must go through the routing rules: one atomic
    /// load and a branch while no rule, tagged provider or tag is in play.
    #[inline]
    fn routes(&self, invocation: &Invocation) -> bool {
        self.directory.governance().is_active()
            || (!invocation.attachments().is_empty() && invocation.attachment(FORCE_TAG_KEY).is_some())
    }

    /// Picks among `pool` (providers routing allows; `all`, every provider,
    /// for messages).
    fn narrow(
        &self,
        call: &Call,
        tried: &[Endpoint],
        mut pool: SmallVec<[&Endpoint; INLINE]>,
        all: &[Endpoint],
    ) -> Result<Endpoint, RpcError> {
        let invocation = &call.invocation;
        let serialization = invocation.serialization();
        // Only providers that read the call's encoding; then narrow down in
        // place, never to nothing: untried, then healthy, then of the
        // preferred protocol.
        let alternate = invocation.alternate_serialization();
        pool.retain(|e| e.accepts(serialization) || alternate.is_some_and(|a| e.accepts(a)));
        if pool.is_empty() {
            return Err(self.unreadable(invocation, all));
        }
        if !tried.is_empty() {
            keep_if_any(&mut pool, |e| !tried.iter().any(|t| t.same_process(e)));
        }
        // A provider process is available only when all of its endpoints are:
        // a Java process whose `dubbo` endpoint is down or ejected is out,
        // its `tri` endpoint with it (ours share one port: alike anyway).
        if pool.iter().any(|e| !e.is_available()) {
            let snapshot: SmallVec<[&Endpoint; INLINE]> = pool.clone();
            keep_if_any(&mut pool, |e| {
                e.is_available() && !snapshot.iter().any(|o| !o.is_available() && o.same_process(e))
            });
        }
        if pool[0].health() == Health::Leaving && pool.iter().all(|e| e.health() == Health::Leaving) {
            return Err(self.all_leaving(invocation, pool.len()));
        }
        if let Some(prefer) = &self.prefer {
            // Within each process only: a process with no usable endpoint of
            // the preferred protocol (a Java provider beside ours) keeps its own.
            let preferred = |e: &Endpoint| e.url().protocol() == &**prefer;
            if pool.iter().any(|e| !preferred(e)) {
                let snapshot: SmallVec<[&Endpoint; INLINE]> = pool.clone();
                pool.retain(|e| preferred(e) || !snapshot.iter().any(|o| preferred(o) && o.same_process(e)));
            }
        }
        // A process left with both `dubbo` and `tri` (a Java provider, when
        // `tri` is not the preference) is called over `dubbo`, Java Dubbo's
        // default: one protocol per Java process, as before `tri` read Hessian2.
        let protocol = |e: &Endpoint, p: &str| e.url().protocol() == p;
        if pool.iter().any(|e| protocol(e, "tri")) && pool.iter().any(|e| protocol(e, "dubbo")) {
            let snapshot: SmallVec<[&Endpoint; INLINE]> = pool.clone();
            pool.retain(|e| !protocol(e, "tri") || !snapshot.iter().any(|o| protocol(o, "dubbo") && o.same_process(e)));
        }
        if pool.len() == 1 {
            return Ok(pool[0].clone());
        }
        let candidates: SmallVec<[Candidate<'_>; INLINE]> = pool.iter().map(|e| e.candidate()).collect();
        let index = self
            .balancers
            .get(call.settings.loadbalance)
            .select(&candidates, invocation);
        Ok(pool.get(index).copied().unwrap_or(pool[0]).clone())
    }
}

impl Select for Picker {
    fn service(&self) -> &ServiceKey {
        self.directory.key()
    }

    fn select(&self, call: &Call, tried: &[Endpoint]) -> Result<Endpoint, RpcError> {
        let invocation = &call.invocation;
        let endpoints = self.directory.snapshot();
        if self.routes(invocation) {
            // Routing rules first, as Dubbo's router chain runs before the balancer.
            let routed = self.directory.governance().route(&endpoints, invocation)?;
            if routed.is_empty() {
                return Err(self.no_provider(invocation));
            }
            return self.narrow(call, tried, routed, &endpoints);
        }
        let serialization = invocation.serialization();
        match endpoints.len() {
            0 => return Err(self.no_provider(invocation)),
            1 if endpoints[0].accepts(serialization) => return Ok(endpoints[0].clone()),
            _ => {}
        }
        self.narrow(call, tried, endpoints.iter().collect(), &endpoints)
    }

    fn select_all(&self, call: &Call) -> Result<Arc<Vec<Endpoint>>, RpcError> {
        let invocation = &call.invocation;
        let endpoints = self.directory.endpoints();
        if endpoints.is_empty() {
            return Err(self.no_provider(invocation));
        }
        let routed: SmallVec<[&Endpoint; INLINE]> = if self.routes(invocation) {
            self.directory.governance().route(&endpoints, invocation)?
        } else {
            endpoints.iter().collect()
        };
        let prefer = self.prefer.as_deref();
        let mut chosen: Vec<Endpoint> = Vec::with_capacity(routed.len());
        let mut leaving = 0;
        for endpoint in routed.iter().copied() {
            let alternate = invocation.alternate_serialization();
            if !endpoint.accepts(invocation.serialization()) && !alternate.is_some_and(|a| endpoint.accepts(a)) {
                tracing::debug!(
                    provider = endpoint.address(),
                    "broadcast: passing over a provider that cannot read the call"
                );
                continue;
            }
            if endpoint.health() == Health::Leaving {
                leaving += 1;
                continue;
            }
            match chosen.iter_mut().find(|c| c.same_process(endpoint)) {
                // Of one process, the preferred protocol's endpoint.
                Some(slot) if prefer.is_some_and(|p| endpoint.url().protocol() == p && slot.url().protocol() != p) => {
                    *slot = endpoint.clone();
                }
                Some(_) => {}
                None => chosen.push(endpoint.clone()),
            }
        }
        if chosen.is_empty() && leaving == 0 {
            return Err(self.unreadable(invocation, &endpoints));
        }
        if chosen.is_empty() {
            return Err(self.all_leaving(invocation, leaving));
        }
        Ok(Arc::new(chosen))
    }
}
