//! [`Cluster`]: the consumer's cluster stack for one reference, built once.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;
use std::task::{Context, Poll};

use rpc_core::{ArgumentMask, BoxFuture, ErrorKind, Invocation, Response, RpcError, ServiceDescriptor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::Service;

use crate::call::Call;
use crate::config::{Balancer, ClusterPolicy, MethodConfig};
use crate::directory::Directory;
use crate::endpoint::Endpoint;
use crate::loadbalance::LoadBalance;
use crate::policy::{Broadcast, Failback, FailbackConfig, Failfast, Failover, Failsafe, Forking, Policy};
use crate::select::{Picker, Select};
use crate::settings::{self, Settings};

/// The tower `Service<Invocation>` below a reference's stub, its degradation
/// layer and the user's call layers: it resolves each call's [`Settings`]
/// (once, before the first pick), sets the call's deadline, applies the
/// `actives` limit and hands the call to the method's [`Policy`], which picks
/// providers through the reference's [`Picker`].
///
/// Everything is built once, by [`ClusterBuilder::build`]: one policy object
/// per policy the methods use (a failback queue lives as long as the
/// reference), one picker with its balancers, one plan per method. Cloning
/// shares all of it.
///
/// Always ready (a limit waits inside the call, until its deadline), with
/// boxed futures: [`BoxInvoker::always_ready`](rpc_core::BoxInvoker::always_ready) may wrap it.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Arc<Directory>,
    select: Arc<dyn Select>,
    custom_balancer: bool,
    methods: Vec<Plan>,
    /// For a method the descriptor does not list (a generic call).
    other: Plan,
    /// The built-in policies, for consumer-side rules that name another one
    /// than a method's plan (made on first use, then kept).
    policies: Mutex<PolicySet>,
}

/// What is fixed about the calls of one method.
struct Plan {
    name: Box<str>,
    /// Levels 1 to 4 merged.
    consumer: MethodConfig,
    policy: Arc<dyn Policy>,
    /// The built-in policy `policy` is (none when it is the reference's own).
    kind: Option<ClusterPolicy>,
    actives: Option<Arc<Semaphore>>,
    /// The limit a consumer-side rule's `actives` sets, while it stands.
    rule_actives: Mutex<Option<(u32, Arc<Semaphore>)>>,
    /// What the providers publish, worked out once per directory snapshot;
    /// only when the consumer leaves the timeout or the balancer unset.
    published: Option<ArcSwap<Published>>,
}

/// What the providers published for a method, and the provider set it was
/// worked out from.
#[derive(Default)]
struct Published {
    snapshot: Weak<Vec<Endpoint>>,
    config: MethodConfig,
}

impl Plan {
    /// The slots for a rule's `actives` of `n` (0: no limit).
    fn rule_slots(&self, n: u32) -> Option<Arc<Semaphore>> {
        if n == 0 {
            return None;
        }
        if self.consumer.actives == Some(n) {
            return self.actives.clone();
        }
        let mut slot = self.rule_actives.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some((limit, slots)) if *limit == n => Some(slots.clone()),
            // A new limit starts with all its slots free: calls holding the
            // old one's are not counted against it.
            _ => {
                let slots = Arc::new(Semaphore::new(n as usize));
                *slot = Some((n, slots.clone()));
                Some(slots)
            }
        }
    }

    fn published(&self, directory: &Directory) -> MethodConfig {
        let Some(cache) = &self.published else {
            return MethodConfig::new();
        };
        let endpoints = directory.snapshot();
        let cached = cache.load();
        if std::ptr::eq(cached.snapshot.as_ptr(), Arc::as_ptr(&endpoints)) {
            return cached.config;
        }
        // The provider set changed: work it out again (calls racing here
        // compute the same value; the last store wins).
        let config = settings::published(endpoints.iter().map(|e| e.published(&self.name)));
        cache.store(Arc::new(Published {
            snapshot: Arc::downgrade(&endpoints),
            config,
        }));
        config
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("directory", &self.inner.directory)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A builder of the cluster over `directory`.
    pub fn builder(directory: Arc<Directory>) -> ClusterBuilder {
        ClusterBuilder {
            directory,
            descriptor: None,
            methods: Vec::new(),
            reference: MethodConfig::new(),
            consumer: MethodConfig::new(),
            prefer: None,
            failback: FailbackConfig::default(),
            balancer: None,
            policy: None,
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.inner.directory
    }

    /// The methods whose arguments the stub must hash for the balancer (a
    /// consistent-hash balancer, or `hash_arguments` set), with the
    /// positions to hash.
    pub fn argument_hashing(&self) -> Vec<(String, ArgumentMask)> {
        self.inner
            .methods
            .iter()
            .filter(|plan| {
                plan.consumer.hash_arguments.is_some() || plan.consumer.loadbalance == Some(Balancer::ConsistentHash)
            })
            .map(|plan| {
                (
                    plan.name.to_string(),
                    plan.consumer.hash_arguments.unwrap_or(ArgumentMask::FIRST),
                )
            })
            .collect()
    }

    /// The settings a call of `method` would run with now.
    pub fn settings(&self, method: &str) -> Settings {
        let plan = self.inner.plan(method);
        Settings::resolve(
            &self.inner.consumer_of(plan, method),
            &plan.published(&self.inner.directory),
            self.inner.custom_balancer,
        )
    }
}

impl Inner {
    /// The consumer's settings of a call: an override rule's over the plan's
    /// (rules rank above every local setting, as Dubbo's configurators apply last).
    #[inline]
    fn consumer_of(&self, plan: &Plan, method: &str) -> MethodConfig {
        let governance = self.directory.governance();
        if !governance.is_active() {
            return plan.consumer;
        }
        match governance.consumer_overrides(method) {
            Some(rule) => rule.or(plan.consumer),
            None => plan.consumer,
        }
    }

    fn plan(&self, method: &str) -> &Plan {
        self.methods
            .iter()
            .find(|plan| &*plan.name == method)
            .unwrap_or(&self.other)
    }

    /// A call while consumer-side rules may be in force: their settings,
    /// and the policy, `actives` limit and mock they name, over the plan's.
    fn call_governed(&self, plan: &Plan, invocation: Invocation) -> BoxFuture<Result<Response, RpcError>> {
        let governance = self.directory.governance();
        let method = invocation.method();
        let Some(rule) = governance.consumer_overrides(method) else {
            return self.run(plan, plan.consumer, &plan.policy, plan.actives.as_ref(), invocation);
        };
        let consumer = rule.or(plan.consumer);
        let ruled_policy;
        let policy = match rule.cluster {
            Some(kind) if plan.kind != Some(kind) => {
                ruled_policy = self.policies.lock().unwrap_or_else(PoisonError::into_inner).get(kind);
                &ruled_policy
            }
            _ => &plan.policy,
        };
        let slots = match rule.actives {
            Some(n) => plan.rule_slots(n),
            None => plan.actives.clone(),
        };
        let Some(mock) = governance.consumer_mock(method) else {
            return self.run(plan, consumer, policy, slots.as_ref(), invocation);
        };
        if mock.is_forced() {
            return mock.answer(invocation, None);
        }
        let running = self.run(plan, consumer, policy, slots.as_ref(), invocation.clone());
        Box::pin(async move {
            match running.await {
                Ok(response) => Ok(response),
                Err(error) => {
                    tracing::warn!(%error, ?mock, "the call failed; answering from the mock an override rule sets");
                    mock.answer(invocation, Some(error)).await
                }
            }
        })
    }

    /// Resolves the call's settings, sets its deadline, takes an `actives`
    /// slot and hands it to `policy`.
    fn run(
        &self,
        plan: &Plan,
        consumer: MethodConfig,
        policy: &Arc<dyn Policy>,
        slots: Option<&Arc<Semaphore>>,
        mut invocation: Invocation,
    ) -> BoxFuture<Result<Response, RpcError>> {
        let settings = Settings::resolve(&consumer, &plan.published(&self.directory), self.custom_balancer);
        // A deadline set above (by a layer, or a generic caller) stands.
        if invocation.deadline().is_none() {
            invocation.set_deadline(invocation.deadline_after(settings.timeout));
        }
        let call = Call::new(invocation, settings);
        let Some(slots) = slots else {
            return policy.call(call, &self.select);
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let running = policy.call(call, &self.select);
                Box::pin(async move {
                    let result = running.await;
                    drop(permit);
                    result
                })
            }
            Err(_) => {
                let (slots, policy, select) = (slots.clone(), policy.clone(), self.select.clone());
                Box::pin(async move {
                    let permit = acquire(&slots, &call).await?;
                    let result = policy.call(call, &select).await;
                    drop(permit);
                    result
                })
            }
        }
    }
}

impl Service<Invocation> for Cluster {
    type Response = Response;
    type Error = RpcError;
    type Future = BoxFuture<Result<Response, RpcError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: Invocation) -> Self::Future {
        let inner = &self.inner;
        let plan = inner.plan(invocation.method());
        if inner.directory.governance().is_active() {
            return inner.call_governed(plan, invocation);
        }
        inner.run(plan, plan.consumer, &plan.policy, plan.actives.as_ref(), invocation)
    }
}

/// Waits for an `actives` slot until the call's deadline.
async fn acquire(slots: &Arc<Semaphore>, call: &Call) -> Result<OwnedSemaphorePermit, RpcError> {
    let started = Instant::now();
    let invocation = &call.invocation;
    let refused = |why: &str| {
        RpcError::new(
            ErrorKind::LocalLimit,
            format!(
                "the actives limit of {} concurrent calls was reached and {why} after waiting {} ms",
                call.settings.actives,
                started.elapsed().as_millis()
            ),
        )
        .with_service(invocation.service())
        .with_method(invocation.method())
    };
    let waiting = slots.clone().acquire_owned();
    let acquired = match invocation.deadline() {
        Some(deadline) => tokio::time::timeout_at(deadline, waiting).await,
        None => Ok(waiting.await),
    };
    match acquired {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(refused("the limiter closed")),
        Err(_) => Err(refused("no slot freed before the deadline")),
    }
}

/// Configures a [`Cluster`]: the consumer-side settings of each level, the
/// picker's preferences, and policies or balancers of the user's own.
pub struct ClusterBuilder {
    directory: Arc<Directory>,
    descriptor: Option<&'static ServiceDescriptor>,
    methods: Vec<(String, MethodConfig)>,
    reference: MethodConfig,
    consumer: MethodConfig,
    prefer: Option<String>,
    failback: FailbackConfig,
    balancer: Option<Arc<dyn LoadBalance>>,
    policy: Option<Arc<dyn Policy>>,
}

impl fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("directory", &self.directory)
            .field("reference", &self.reference)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl ClusterBuilder {
    /// The service's methods and their declared settings (`#[rpc(..)]`).
    pub fn descriptor(mut self, descriptor: &'static ServiceDescriptor) -> Self {
        self.descriptor = Some(descriptor);
        self
    }

    /// The consumer's settings for one method (by wire name): the strongest level.
    pub fn method(mut self, name: impl Into<String>, config: MethodConfig) -> Self {
        self.methods.push((name.into(), config));
        self
    }

    /// The reference's settings, for every method.
    pub fn reference(mut self, config: MethodConfig) -> Self {
        self.reference = config;
        self
    }

    /// The consumer's defaults, for every reference.
    pub fn consumer(mut self, config: MethodConfig) -> Self {
        self.consumer = config;
        self
    }

    /// Prefers providers of `protocol` when a provider exports several.
    pub fn prefer_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.prefer = Some(protocol.into());
        self
    }

    /// The failback policy's retry queue.
    pub fn failback(mut self, config: FailbackConfig) -> Self {
        self.failback = config;
        self
    }

    /// Picks providers with `balancer` for every method whose own settings
    /// (declaration or per-method setting) name no balancer.
    pub fn loadbalance_with(mut self, balancer: Arc<dyn LoadBalance>) -> Self {
        self.balancer = Some(balancer);
        self
    }

    /// Runs calls with `policy` for every method whose own settings name no
    /// cluster policy.
    pub fn cluster_with(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Builds the stack, reading each method's declared settings from the
    /// descriptor once.
    ///
    /// # Errors
    ///
    /// When a per-method setting names a method the descriptor does not
    /// have, or a declared parameter cannot be read (the message names the
    /// interface, the method, the key and the value; see
    /// [`MethodConfig::declared`]).
    pub fn build(self) -> Result<Cluster, String> {
        let mut picker = Picker::new(self.directory.clone());
        if let Some(protocol) = &self.prefer {
            picker = picker.prefer_protocol(protocol.as_str());
        }
        let custom_balancer = self.balancer.is_some();
        if let Some(balancer) = self.balancer.clone() {
            picker = picker.with_balancer(balancer);
        }
        if let Some(descriptor) = self.descriptor {
            for (name, _) in &self.methods {
                if descriptor.method(name).is_none() {
                    return Err(format!(
                        "`{}` has no method `{name}` (methods: {})",
                        descriptor.interface,
                        descriptor.method_names()
                    ));
                }
            }
        }
        let mut policies = PolicySet {
            failback_config: self.failback,
            ..PolicySet::default()
        };
        let declared: Vec<(&str, MethodConfig)> = match self.descriptor {
            Some(descriptor) => descriptor
                .methods
                .iter()
                .map(|m| {
                    MethodConfig::declared(m)
                        .map(|config| (m.name, config))
                        .map_err(|why| format!("`{}`: {why}", descriptor.interface))
                })
                .collect::<Result<_, _>>()?,
            None => self
                .methods
                .iter()
                .map(|(name, _)| (name.as_str(), MethodConfig::new()))
                .collect(),
        };
        let mut methods = Vec::with_capacity(declared.len());
        for (name, declaration) in declared {
            let own = self.methods.iter().rev().find(|(n, _)| n == name).map(|(_, c)| *c);
            methods.push(self.plan(name, own.as_ref(), &declaration, &mut policies));
        }
        let other = self.plan("", None, &MethodConfig::new(), &mut policies);
        Ok(Cluster {
            inner: Arc::new(Inner {
                directory: self.directory,
                select: Arc::new(picker),
                custom_balancer,
                methods,
                other,
                policies: Mutex::new(policies),
            }),
        })
    }

    fn plan(&self, name: &str, own: Option<&MethodConfig>, declared: &MethodConfig, policies: &mut PolicySet) -> Plan {
        let mut consumer = settings::consumer_side(own, declared, &self.reference, &self.consumer);
        // What the method itself says (declaration, per-method setting)
        // beats a policy or balancer of the reference's own.
        let method_level = settings::consumer_side(own, declared, &MethodConfig::new(), &MethodConfig::new());
        let (policy, kind) = match (&self.policy, method_level.cluster) {
            (Some(custom), None) => (custom.clone(), None),
            _ => {
                let kind = settings::policy_of(&consumer);
                (policies.get(kind), Some(kind))
            }
        };
        if self.balancer.is_some() && method_level.loadbalance.is_none() {
            consumer.loadbalance = None;
        }
        let needs_published = consumer.timeout.is_none() || (consumer.loadbalance.is_none() && self.balancer.is_none());
        let actives = consumer
            .actives
            .filter(|&n| n > 0)
            .map(|n| Arc::new(Semaphore::new(n as usize)));
        Plan {
            name: name.into(),
            consumer,
            policy,
            kind,
            actives,
            rule_actives: Mutex::new(None),
            published: needs_published.then(|| ArcSwap::from_pointee(Published::default())),
        }
    }
}

/// One object per built-in policy a reference's methods use.
#[derive(Default)]
struct PolicySet {
    failback_config: FailbackConfig,
    failover: Option<Arc<dyn Policy>>,
    failfast: Option<Arc<dyn Policy>>,
    failsafe: Option<Arc<dyn Policy>>,
    forking: Option<Arc<dyn Policy>>,
    broadcast: Option<Arc<dyn Policy>>,
    failback: Option<Arc<Failback>>,
}

impl PolicySet {
    fn get(&mut self, kind: ClusterPolicy) -> Arc<dyn Policy> {
        fn one<P: Policy>(slot: &mut Option<Arc<dyn Policy>>, make: impl FnOnce() -> P) -> Arc<dyn Policy> {
            slot.get_or_insert_with(|| Arc::new(make())).clone()
        }
        match kind {
            ClusterPolicy::Failover => one(&mut self.failover, || Failover),
            ClusterPolicy::Failfast => one(&mut self.failfast, || Failfast),
            ClusterPolicy::Failsafe => one(&mut self.failsafe, || Failsafe),
            ClusterPolicy::Forking => one(&mut self.forking, || Forking),
            ClusterPolicy::Broadcast => one(&mut self.broadcast, || Broadcast),
            ClusterPolicy::Failback => {
                let config = self.failback_config;
                self.failback
                    .get_or_insert_with(|| Arc::new(Failback::new(config)))
                    .clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use rpc_core::{Outcome, Serialization, ServiceKey};
    use tower::ServiceExt;

    use super::*;
    use crate::policy::test_util::*;

    fn call_of(method: &'static str) -> Invocation {
        Invocation::new(
            ServiceKey::new("a.B", None, None),
            method,
            Bytes::new(),
            Serialization::Json,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_for_an_actives_slot_is_refused_unsent_at_its_deadline() {
        let a = Provider::new(1, Behaviour::Answer(Duration::from_secs(1)));
        let cluster = Cluster::builder(directory(&[&a]).await)
            .method(
                "slow",
                MethodConfig::new().with_actives(1).with_timeout(Duration::from_secs(5)),
            )
            .method(
                "quick",
                MethodConfig::new().with_actives(1).with_timeout(Duration::from_secs(5)),
            )
            .build()
            .unwrap();
        let holder = tokio::spawn(cluster.clone().oneshot(call_of("slow")));
        tokio::task::yield_now().await;
        assert_eq!(a.calls(), 1, "the first call holds the only slot of `slow`");
        let started = Instant::now();
        let second_slow = cluster.clone().oneshot({
            let mut inv = call_of("slow");
            inv.set_deadline(Some(Instant::now() + Duration::from_millis(100)));
            inv
        });
        let error = second_slow.await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert_eq!(error.kind(), ErrorKind::LocalLimit, "{error}");
        assert_eq!(error.outcome(), Outcome::NotSent);
        assert!(error.to_string().contains("actives limit of 1"), "{error}");
        assert_eq!(a.calls(), 1, "the refused call was never sent");
        // `quick` has slots of its own.
        cluster.clone().oneshot(call_of("quick")).await.unwrap();
        assert_eq!(a.calls(), 2);
        assert!(holder.await.unwrap().is_ok());
    }

    /// Two providers publishing different timeouts: the call's budget is the
    /// larger, and each attempt is capped by its own provider's.
    #[tokio::test(start_paused = true)]
    async fn heterogeneous_providers_give_the_largest_budget_and_cap_each_attempt() {
        let fast = Provider::at(
            "rpc://127.0.0.1:1/a.B?timeout=200&loadbalance=roundrobin",
            Behaviour::Hang,
        );
        let slow = Provider::at(
            "rpc://127.0.0.1:2/a.B?timeout=900&loadbalance=roundrobin",
            Behaviour::Answer(Duration::from_millis(700)),
        );
        let other = Provider::at("rpc://127.0.0.1:3/a.B?loadbalance=leastactive", Behaviour::Hang);
        let cluster = Cluster::builder(directory(&[&fast, &slow, &other]).await)
            .method("m", MethodConfig::new().with_retries(0))
            .build()
            .unwrap();
        let settings = cluster.settings("m");
        assert_eq!(
            settings.timeout,
            Duration::from_millis(900),
            "the largest published timeout"
        );
        assert!(settings.provider_timeouts);
        assert_eq!(
            settings.loadbalance,
            settings::Balance::Builtin(Balancer::RoundRobin),
            "the balancer most providers publish"
        );
        // An attempt on the provider publishing 200 ms ends at 200 ms, not 900.
        let endpoints = cluster.directory().endpoints();
        let fast_endpoint = endpoints.iter().find(|e| e.address() == "127.0.0.1:1").unwrap();
        let mut attempt = call_of("m");
        attempt.set_deadline(Some(Instant::now() + settings.timeout));
        let started = Instant::now();
        let error = fast_endpoint.call(attempt, &settings).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        // The consumer's own timeout is not capped by any provider.
        let own = Cluster::builder(cluster.directory().clone())
            .reference(MethodConfig::new().with_timeout(Duration::from_secs(3)))
            .build()
            .unwrap()
            .settings("m");
        assert_eq!(own.timeout, Duration::from_secs(3));
        assert!(!own.provider_timeouts);
        let started = Instant::now();
        let mut attempt = call_of("m");
        attempt.set_deadline(Some(Instant::now() + own.timeout));
        let error = fast_endpoint.call(attempt, &own).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    /// What a method declares (`#[rpc(timeout = "300ms", retries = 0)]`)
    /// beats the reference; the consumer's per-method setting beats both.
    #[tokio::test]
    async fn the_declaration_beats_the_reference_and_the_method_setting_beats_both() {
        static METHODS: [rpc_core::MethodDescriptor; 2] = [
            rpc_core::MethodDescriptor::new("placeOrder", "place_order").with_params(&[
                ("timeout", "300"),
                ("retries", "0"),
                ("idempotent", "false"),
            ]),
            rpc_core::MethodDescriptor::new("sayHello", "say_hello"),
        ];
        static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new("a.B").with_methods(&METHODS);
        let a = Provider::new(1, Behaviour::Answer(Duration::ZERO));
        let directory = directory(&[&a]).await;
        let reference = MethodConfig::new().with_timeout(Duration::from_secs(5)).with_retries(4);
        let cluster = Cluster::builder(directory.clone())
            .descriptor(&DESCRIPTOR)
            .reference(reference)
            .build()
            .unwrap();
        let place_order = cluster.settings("placeOrder");
        assert_eq!(place_order.timeout, Duration::from_millis(300));
        assert_eq!((place_order.retries, place_order.idempotent), (0, false));
        let say_hello = cluster.settings("sayHello");
        assert_eq!((say_hello.timeout, say_hello.retries), (Duration::from_secs(5), 4));
        let own = Cluster::builder(directory)
            .descriptor(&DESCRIPTOR)
            .reference(reference)
            .method("placeOrder", MethodConfig::new().with_timeout(Duration::from_secs(2)))
            .build()
            .unwrap()
            .settings("placeOrder");
        assert_eq!((own.timeout, own.retries), (Duration::from_secs(2), 0));
    }

    #[tokio::test]
    async fn a_per_method_setting_for_an_unknown_method_is_refused() {
        static METHODS: [rpc_core::MethodDescriptor; 1] = [rpc_core::MethodDescriptor::new("m", "m")];
        static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new("a.B").with_methods(&METHODS);
        let a = Provider::new(1, Behaviour::Answer(Duration::ZERO));
        let error = Cluster::builder(directory(&[&a]).await)
            .descriptor(&DESCRIPTOR)
            .method("nope", MethodConfig::new())
            .build()
            .unwrap_err();
        assert!(error.contains("no method `nope`"), "{error}");
    }

    /// A declared parameter that does not parse (a descriptor written by
    /// hand, not by the macro) fails the build, naming where and what.
    #[tokio::test]
    async fn a_declared_param_that_does_not_parse_fails_the_build() {
        static METHODS: [rpc_core::MethodDescriptor; 2] = [
            rpc_core::MethodDescriptor::new("m", "m").with_params(&[("timeout", "300")]),
            rpc_core::MethodDescriptor::new("placeOrder", "place_order")
                .with_params(&[("retries", "0"), ("loadbalance", "fastest")]),
        ];
        static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::new("a.B").with_methods(&METHODS);
        let a = Provider::new(1, Behaviour::Answer(Duration::ZERO));
        let error = Cluster::builder(directory(&[&a]).await)
            .descriptor(&DESCRIPTOR)
            .build()
            .unwrap_err();
        assert!(
            error.starts_with(
                "`a.B`: method `placeOrder` declares `loadbalance` = `fastest`, which cannot be used: unknown load \
                 balancer `fastest`"
            ),
            "{error}"
        );
    }
}
