//! [`Link`]: a channel's one connection to its provider, the state machine
//! that opens and re-opens it, and the [`Health`] it reports.
//!
//! ```text
//!            first call                 attempt succeeds
//!   Idle ───────────────► Connecting ───────────────────► Connected ──► (read-only / GOAWAY: leaving)
//!    ▲                        │ fails                        │ ends
//!    │                        ▼                              ▼
//!    │   backoff over    Backoff ◄──── died young ──── (lived ≥ 1 s, or went away) ──► Idle + probe
//!    └─────────────────── (next call or probe connects)
//! ```
//!
//! * **Connecting** happens once at a time: the first caller that finds no
//!   connection starts an attempt (a task of its own, bounded by the connect
//!   timeout, so it records its outcome whether or not anyone still waits);
//!   everyone meanwhile waits for that same attempt, each until its own
//!   deadline. No lock is held while it runs.
//! * **Backoff**: a failed attempt, or a connection that dies younger than
//!   [`MIN_HEALTHY_LIFETIME`] (a peer that accepts and closes at once), waits
//!   [`backoff::delay`] before the next attempt; calls made meanwhile fail at
//!   once, not sent. A connection that lived longer resets the count.
//! * **Probing**: after a connection ends, the link reconnects in the
//!   background (with the same backoff) until it succeeds or the channel is
//!   dropped, so a dead provider is known to be down before any call is sent
//!   to it, and a returning one is found again.
//! * **Leaving**: once the provider said it is shutting down (the native
//!   read-only event; a Triple connection ended by GOAWAY), new calls are
//!   refused unsent and [`Health::Leaving`] is reported until a new
//!   connection is made (after the provider restarted). A new connection
//!   that dies young (one the provider's closing listener accepted at the
//!   last moment) leaves it leaving: only a connection that lived a healthy
//!   lifetime, or that ends for another reason than the provider leaving,
//!   after one, says it is back.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::connector::{Connector, Io};
use crate::error::{ErrorKind, RpcError, Status};
use crate::protocol::Health;
use crate::protocol::backoff::{self, MIN_HEALTHY_LIFETIME};

/// How a [`Link`] connects and reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reconnect {
    /// Longest a connection attempt (transport and protocol handshake) may take.
    pub(crate) connect_timeout: Duration,
    /// First delay before reconnecting after a failed attempt; doubles per failure.
    pub(crate) backoff_initial: Duration,
    /// Longest delay between attempts.
    pub(crate) backoff_max: Duration,
}

/// One live connection of a protocol, as the [`Link`] sees it.
pub(crate) trait Connection: Clone + Send + Sync + 'static {
    /// Closed or closing: it carries no new call, and the link opens another.
    fn is_closed(&self) -> bool;
    /// The provider said it is shutting down: calls in flight go on, new ones
    /// are refused.
    fn is_leaving(&self) -> bool;
    /// Closes it now (the channel was dropped or disconnected).
    fn close(&self, reason: &str);
}

/// A protocol's side of connecting: turns a fresh byte stream into a
/// [`Connection`], starting whatever tasks run it. Those tasks report back
/// through the [`Watch`] they are given.
pub(crate) trait Establish: Send + Sync + Sized + 'static {
    /// What a live connection of this protocol is.
    type Conn: Connection;
    /// Sets up a connection to `address` over `io` (handshakes included: it
    /// runs within the connect timeout).
    fn establish(
        &self,
        address: &str,
        io: Io,
        watch: Watch<Self>,
    ) -> impl Future<Output = Result<Self::Conn, RpcError>> + Send;
}

type Attempt<C> = Shared<BoxFuture<'static, Result<C, RpcError>>>;

enum State<C> {
    /// No connection; the next call connects.
    Idle,
    /// Attempt `generation` is under way; calls wait for it.
    Connecting { attempt: Attempt<C>, generation: u64 },
    /// Connected since `since`, after `failures` failed attempts before it.
    Connected {
        conn: C,
        generation: u64,
        since: Instant,
        failures: u32,
    },
    /// Not connecting before `until`.
    Backoff {
        until: Instant,
        failures: u32,
        error: RpcError,
    },
}

/// [`State`] as a number, readable without the lock.
struct Phase;

impl Phase {
    const IDLE: u8 = 0;
    const CONNECTING: u8 = 1;
    const CONNECTED: u8 = 2;
    const BACKOFF: u8 = 3;
    /// Connected, and the provider said it is shutting down.
    const LEAVING: u8 = 4;
}

/// What [`Link::begin`] found.
enum Begin<C> {
    Ready(C),
    Refused(RpcError),
    Wait(Attempt<C>),
}

/// A channel's connection to one provider address: at most one live
/// connection at a time, (re)opened on demand by the state machine described
/// in the [module docs](self). The protocol is `P`; the transport the
/// [`Connector`]. Dropping the last handle closes the connection.
pub(crate) struct Link<P: Establish> {
    address: String,
    reconnect: Reconnect,
    connector: Arc<dyn Connector>,
    protocol: Arc<P>,
    /// Never held across an await.
    state: Mutex<State<P::Conn>>,
    /// What `state` is, for health checks that take no lock (see [`Phase`]).
    phase: AtomicU8,
    /// The provider said it is shutting down (a connection ended after the
    /// read-only event or GOAWAY), and no connection has lived a healthy
    /// lifetime since: while not connected, it is leaving, not failing. A
    /// connection that dies young (one a shutting-down provider accepted at
    /// the last moment) does not clear it.
    left: AtomicBool,
    /// Woken by [`abandon_waiters`](Self::abandon_waiters): calls waiting for a connection give up.
    abandoned: Notify,
    /// Numbers the attempts (and so the connections) of this link.
    generations: AtomicU64,
    /// Connections made so far; all but the first are reconnections.
    established: AtomicU64,
}

impl<P: Establish> fmt::Debug for Link<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("address", &self.address)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl<P: Establish> Drop for Link<P> {
    fn drop(&mut self) {
        // The connection's tasks hold the connection, not the link: close it
        // when the last handle goes, or it would live on.
        if let State::Connected { conn, .. } = self.state.get_mut().unwrap_or_else(PoisonError::into_inner) {
            conn.close("the channel was dropped");
        }
    }
}

/// The handle a connection's tasks report through: the provider is
/// leaving, or the connection ended. Holds the link weakly. A report about a
/// connection that is no longer the link's current one changes nothing,
/// except that one saying the provider went away still marks it leaving
/// while no newer connection is up.
pub(crate) struct Watch<P: Establish> {
    link: Weak<Link<P>>,
    generation: u64,
}

impl<P: Establish> fmt::Debug for Watch<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch").field("generation", &self.generation).finish()
    }
}

impl<P: Establish> Watch<P> {
    /// The provider said it is shutting down: report [`Health::Leaving`].
    /// Call it once the connection's [`is_leaving`](Connection::is_leaving) is true.
    pub(crate) fn leaving(&self) {
        let Some(link) = self.link.upgrade() else { return };
        let state = link.lock();
        if matches!(&*state, State::Connected { generation, .. } if *generation == self.generation) {
            link.phase.store(Phase::LEAVING, Ordering::Release);
        }
    }

    /// The connection ended, because of `reason`; `went_away` when the
    /// provider closed it on purpose (shutting down) even if it never said
    /// so before. Moves the link on (see the module docs) and starts probing.
    pub(crate) fn ended(&self, went_away: bool, reason: &str) {
        let Some(link) = self.link.upgrade() else { return };
        let mut state = link.lock();
        match &*state {
            State::Connected { generation, .. } if *generation == self.generation => {}
            // A newer connection is up: what this one says is old news.
            State::Connected { .. } => return,
            // Already replaced (a call found it closed first, or it was
            // disconnected): only its news that the provider left still counts.
            _ => {
                if went_away {
                    link.left.store(true, Ordering::Relaxed);
                }
                return;
            }
        }
        link.end(&mut state, went_away, reason);
        drop(state);
        Link::probe(Arc::downgrade(&link));
    }
}

impl<P: Establish> Link<P> {
    /// A link to `address`, connecting through `connector`. Nothing is
    /// connected until [`get`](Self::get) is first called.
    pub(crate) fn new(address: String, reconnect: Reconnect, connector: Arc<dyn Connector>, protocol: P) -> Self {
        Link {
            address,
            reconnect,
            connector,
            protocol: Arc::new(protocol),
            state: Mutex::new(State::Idle),
            phase: AtomicU8::new(Phase::IDLE),
            left: AtomicBool::new(false),
            abandoned: Notify::new(),
            generations: AtomicU64::new(1),
            established: AtomicU64::new(0),
        }
    }

    /// The provider address.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Connections made after the first: each one replaced a connection
    /// that ended (the provider restarted, the network broke, the peer
    /// closed it), whether a call or the background probe made it.
    pub(crate) fn reconnects(&self) -> u64 {
        self.established.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// The protocol's settings and shared state.
    pub(crate) fn protocol(&self) -> &P {
        &self.protocol
    }

    fn lock(&self) -> MutexGuard<'_, State<P::Conn>> {
        // Every transition is one assignment: a panic elsewhere cannot leave it half-made.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, state: &mut State<P::Conn>, next: State<P::Conn>, phase: u8) {
        *state = next;
        self.phase.store(phase, Ordering::Release);
    }

    /// Whether new calls should come here. The one place channel health is
    /// decided, for every protocol:
    ///
    /// * [`Health::Ready`] when connected, when not tried yet, and once a
    ///   backoff is over (the next call connects);
    /// * [`Health::Unavailable`] while connecting or backing off after a
    ///   failure: a dead or unreachable host is not waited on by every call;
    /// * [`Health::Leaving`] once the provider said it is shutting down,
    ///   until a new connection is made (after a restart) and, should that
    ///   one end, it had lived a healthy lifetime.
    ///
    /// Takes no lock when connected.
    pub(crate) fn health(&self) -> Health {
        match self.phase.load(Ordering::Acquire) {
            Phase::CONNECTED => Health::Ready,
            _ if self.left.load(Ordering::Relaxed) => Health::Leaving,
            Phase::IDLE => Health::Ready,
            Phase::LEAVING => Health::Leaving,
            Phase::BACKOFF if !self.is_backing_off() => Health::Ready,
            _ => Health::Unavailable,
        }
    }

    /// Whether the last attempt failed and the link waits before trying again.
    pub(crate) fn is_backing_off(&self) -> bool {
        // Connected (the common case): no lock, no clock.
        if self.phase.load(Ordering::Acquire) != Phase::BACKOFF {
            return false;
        }
        matches!(&*self.lock(), State::Backoff { until, .. } if *until > Instant::now())
    }

    /// The current connection, when it is open and takes new calls.
    pub(crate) fn current(&self) -> Option<P::Conn> {
        match &*self.lock() {
            State::Connected { conn, .. } if !conn.is_closed() && !conn.is_leaving() => Some(conn.clone()),
            _ => None,
        }
    }

    /// The current connection, whatever it takes (calls in flight may wait on it).
    pub(crate) fn connected(&self) -> Option<P::Conn> {
        match &*self.lock() {
            State::Connected { conn, .. } => Some(conn.clone()),
            _ => None,
        }
    }

    /// Calls waiting in [`get`](Self::get) for a connection give up now, not
    /// sent ([`ErrorKind::Connect`]): the provider does not answer.
    pub(crate) fn abandon_waiters(&self) {
        self.abandoned.notify_waiters();
    }

    /// Closes the current connection (its protocol fails its calls in
    /// flight); the next call connects again. An attempt under way is
    /// superseded: its waiters fail, not sent, and its connection is closed.
    pub(crate) fn disconnect(&self, reason: &str) {
        let old = {
            let mut state = self.lock();
            let old = std::mem::replace(&mut *state, State::Idle);
            self.phase.store(Phase::IDLE, Ordering::Release);
            old
        };
        if let State::Connected { conn, .. } = old {
            conn.close(reason);
        }
    }

    /// A connection that takes new calls, connecting (or joining the attempt
    /// under way) if needed, waiting no later than `deadline`. Errors are all
    /// not-sent: [`ErrorKind::Connect`] (attempt failed, backing off, still
    /// connecting at the deadline, given up by
    /// [`abandon_waiters`](Self::abandon_waiters)), or the provider's
    /// "shutting down" ([`Status::ChannelInactive`]).
    pub(crate) async fn get(self: &Arc<Self>, deadline: Option<Instant>) -> Result<P::Conn, RpcError> {
        let attempt = match self.begin() {
            Begin::Ready(conn) => return Ok(conn),
            Begin::Refused(error) => return Err(error),
            Begin::Wait(attempt) => attempt,
        };
        // Made before waiting: `notify_waiters` wakes only those that exist.
        let abandoned = self.abandoned.notified();
        let waited = async {
            tokio::select! {
                connected = attempt => connected,
                _ = abandoned => Err(RpcError::new(
                    ErrorKind::Connect,
                    format!("gave up connecting to {}: the provider does not answer", self.address),
                )),
            }
        };
        match deadline {
            // Still connecting at the deadline: the request was never written.
            Some(deadline) => tokio::time::timeout_at(deadline, waited).await.unwrap_or_else(|_| {
                Err(RpcError::new(
                    ErrorKind::Connect,
                    format!("no connection to {} before the call's deadline", self.address),
                ))
            }),
            None => waited.await,
        }
    }

    /// The connection, a refusal, or the attempt to wait for (started here
    /// when none is under way and no backoff forbids it).
    fn begin(self: &Arc<Self>) -> Begin<P::Conn> {
        let mut state = self.lock();
        if let State::Connected { conn, .. } = &*state {
            if !conn.is_closed() {
                if conn.is_leaving() {
                    return Begin::Refused(RpcError::remote(
                        Status::ChannelInactive,
                        "the provider is shutting down and accepts no new calls",
                    ));
                }
                return Begin::Ready(conn.clone());
            }
            // Closed, and its tasks have not reported it yet.
            let went_away = conn.is_leaving();
            self.end(&mut state, went_away, "the connection closed");
            Link::probe(Arc::downgrade(self));
        }
        let failures = match &*state {
            State::Backoff { until, failures, error } if *until > Instant::now() => {
                return Begin::Refused(RpcError::new(
                    ErrorKind::Connect,
                    format!(
                        "not reconnecting to {} for another {} ms after {failures} failed attempt(s); last: {}",
                        self.address,
                        until.saturating_duration_since(Instant::now()).as_millis(),
                        error.message()
                    ),
                ));
            }
            State::Connecting { attempt, .. } if attempt.peek().is_none() => return Begin::Wait(attempt.clone()),
            State::Backoff { failures, .. } => *failures,
            // An attempt that ended without recording its outcome: its task panicked.
            State::Connecting { .. } => 1,
            State::Idle | State::Connected { .. } => 0,
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(Self::attempt(
            Arc::downgrade(self),
            self.protocol.clone(),
            self.connector.clone(),
            self.address.clone(),
            self.reconnect,
            generation,
            failures,
        ));
        let address = self.address.clone();
        let attempt = async move {
            task.await.unwrap_or_else(|e| {
                Err(RpcError::new(
                    ErrorKind::Connect,
                    format!("the attempt to connect to {address} failed: {e}"),
                ))
            })
        }
        .boxed()
        .shared();
        self.set(
            &mut state,
            State::Connecting {
                attempt: attempt.clone(),
                generation,
            },
            Phase::CONNECTING,
        );
        Begin::Wait(attempt)
    }

    /// One connection attempt, a task of its own so that it records its
    /// outcome whether or not any call still waits for it. Holds the link
    /// weakly: an abandoned attempt does not keep a dropped channel alive.
    async fn attempt(
        link: Weak<Self>,
        protocol: Arc<P>,
        connector: Arc<dyn Connector>,
        address: String,
        reconnect: Reconnect,
        generation: u64,
        failures: u32,
    ) -> Result<P::Conn, RpcError> {
        let watch = Watch {
            link: link.clone(),
            generation,
        };
        let open = async {
            let io = connector
                .connect(&address)
                .await
                .map_err(|e| RpcError::new(ErrorKind::Connect, format!("cannot connect to {address}: {e}")))?;
            protocol.establish(&address, io, watch).await
        };
        let result = tokio::time::timeout(reconnect.connect_timeout, open)
            .await
            .unwrap_or_else(|_| {
                Err(RpcError::new(
                    ErrorKind::Connect,
                    format!(
                        "no connection to {address} within the connect timeout of {} ms",
                        reconnect.connect_timeout.as_millis()
                    ),
                ))
            });
        let Some(link) = link.upgrade() else {
            if let Ok(conn) = &result {
                conn.close("the channel was dropped");
            }
            return Err(RpcError::new(ErrorKind::Closed, "the channel was dropped"));
        };
        link.record(generation, failures, result)
    }

    /// Records how attempt `generation` ended.
    fn record(&self, generation: u64, failures: u32, result: Result<P::Conn, RpcError>) -> Result<P::Conn, RpcError> {
        let mut state = self.lock();
        if !matches!(&*state, State::Connecting { generation: current, .. } if *current == generation) {
            drop(state);
            if let Ok(conn) = &result {
                conn.close("the channel was disconnected while connecting");
            }
            return Err(RpcError::new(
                ErrorKind::Closed,
                format!("the channel to {} was disconnected while connecting", self.address),
            ));
        }
        match result {
            Ok(conn) => {
                let phase = if conn.is_leaving() {
                    Phase::LEAVING
                } else {
                    Phase::CONNECTED
                };
                self.set(
                    &mut state,
                    State::Connected {
                        conn: conn.clone(),
                        generation,
                        since: Instant::now(),
                        failures,
                    },
                    phase,
                );
                self.established.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(address = %self.address, "connected");
                Ok(conn)
            }
            Err(error) => {
                let failures = failures.saturating_add(1);
                let wait = backoff::delay(self.reconnect.backoff_initial, self.reconnect.backoff_max, failures);
                tracing::debug!(address = %self.address, failures, wait_ms = wait.as_millis() as u64, %error, "connect failed");
                self.set(
                    &mut state,
                    State::Backoff {
                        until: Instant::now() + wait,
                        failures,
                        error: error.clone(),
                    },
                    Phase::BACKOFF,
                );
                Err(error)
            }
        }
    }

    /// The current connection (`state` is `Connected`) ended: a young death
    /// is one more failed attempt, backed off; a connection that lived, or
    /// that the provider closed on purpose, leaves the link idle.
    fn end(&self, state: &mut State<P::Conn>, went_away: bool, reason: &str) {
        let State::Connected {
            conn, since, failures, ..
        } = &*state
        else {
            return;
        };
        let went_away = went_away || conn.is_leaving();
        let lived = since.elapsed();
        if went_away {
            self.left.store(true, Ordering::Relaxed);
        } else if lived >= MIN_HEALTHY_LIFETIME {
            self.left.store(false, Ordering::Relaxed);
        }
        tracing::debug!(address = %self.address, %reason, went_away, lived_ms = lived.as_millis() as u64, "connection ended");
        if lived < MIN_HEALTHY_LIFETIME && !went_away {
            // A peer that accepts and closes at once (at its connection
            // limit, a proxy without a backend): a failed attempt, backed off.
            let failures = failures.saturating_add(1);
            let wait = backoff::delay(self.reconnect.backoff_initial, self.reconnect.backoff_max, failures);
            let error = RpcError::new(
                ErrorKind::Connect,
                format!(
                    "the connection to {} ended {} ms after it was made: {reason}",
                    self.address,
                    lived.as_millis()
                ),
            );
            self.set(
                state,
                State::Backoff {
                    until: Instant::now() + wait,
                    failures,
                    error,
                },
                Phase::BACKOFF,
            );
        } else {
            self.set(state, State::Idle, Phase::IDLE);
        }
    }

    /// Reconnects in the background, with the link's backoff, until a
    /// connection is made or the link is dropped. Holds the link weakly
    /// (also while waiting for an attempt).
    fn probe(link: Weak<Self>) {
        tokio::spawn(async move {
            loop {
                let attempt = {
                    let Some(link) = link.upgrade() else { return };
                    match link.begin() {
                        Begin::Ready(_) => return,
                        Begin::Wait(attempt) => Some(attempt),
                        Begin::Refused(_) => None,
                    }
                };
                if let Some(attempt) = attempt
                    && attempt.await.is_ok()
                {
                    return;
                }
                let wait = {
                    let Some(link) = link.upgrade() else { return };
                    match &*link.lock() {
                        State::Backoff { until, .. } => until.saturating_duration_since(Instant::now()),
                        // Connected (leaving, or by a call meanwhile): nothing to probe.
                        State::Connected { .. } => return,
                        State::Idle | State::Connecting { .. } => link.reconnect.backoff_initial,
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
    }
}
