//! [`InFlight`]: the calls waiting for answers on one connection.

use std::ops::Deref;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::error::RpcError;

/// Where one call's answer (or the error that ends it) goes.
pub(crate) type Waiter<T> = oneshot::Sender<Result<T, RpcError>>;

/// Whether a connection takes new calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// New calls are registered.
    Open,
    /// The provider is leaving: the calls in flight are answered, new ones refused.
    Refusing,
    /// The connection is gone: every call was failed, new ones are refused.
    Closed,
}

impl Gate {
    const fn from_u8(value: u8) -> Gate {
        match value {
            0 => Gate::Open,
            1 => Gate::Refusing,
            _ => Gate::Closed,
        }
    }
}

/// The calls waiting for answers on one connection, by request id.
///
/// What it guarantees: a call is registered only while the connection takes
/// calls ([`Gate::Open`]), atomically with whatever the caller does to send
/// it ([`register`](Self::register)), so a call is either registered and
/// queued, or refused unsent, never lost in between; every registered call
/// is ended exactly once: answered ([`complete`](Self::complete)), failed
/// ([`fail`](Self::fail), [`abandon`](Self::abandon), [`close`](Self::close)),
/// or given up by its caller ([`Registration`]'s drop), so no entry outlives
/// its caller and none is left when the connection closes.
#[derive(Debug)]
pub(crate) struct InFlight<T> {
    /// By request id: sequential numbers, for which SipHash is wasted work.
    calls: Mutex<FxHashMap<u64, Waiter<T>>>,
    /// A [`Gate`], written under `calls`' lock, read without it.
    gate: AtomicU8,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            calls: Mutex::default(),
            gate: AtomicU8::new(Gate::Open as u8),
        }
    }
}

impl<T> InFlight<T> {
    fn lock(&self) -> MutexGuard<'_, FxHashMap<u64, Waiter<T>>> {
        // Every change is one insert or removal: a panic elsewhere leaves the map whole.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether new calls are taken (read without the lock).
    pub(crate) fn gate(&self) -> Gate {
        Gate::from_u8(self.gate.load(Ordering::Acquire))
    }

    /// Registers call `id` and runs `send` (which queues its request), as one
    /// step under the lock that [`refuse_new`](Self::refuse_new) and
    /// [`close`](Self::close) take: the call is registered only when the gate
    /// is open and `send` succeeded. When the gate is not open, `send` is not
    /// run and the error is `refused(gate)`.
    pub(crate) fn register<R>(
        &self,
        id: u64,
        waiter: Waiter<T>,
        send: impl FnOnce() -> Result<R, RpcError>,
        refused: impl FnOnce(Gate) -> RpcError,
    ) -> Result<R, RpcError> {
        let mut calls = self.lock();
        match self.gate() {
            Gate::Open => {}
            gate => return Err(refused(gate)),
        }
        let sent = send()?;
        calls.insert(id, waiter);
        Ok(sent)
    }

    /// Registers `id` for the answer to an event (a heartbeat), which is not
    /// a call: it is taken while the provider is leaving, and refused (false)
    /// only once the connection is closed.
    pub(crate) fn expect(&self, id: u64, waiter: Waiter<T>) -> bool {
        let mut calls = self.lock();
        if self.gate() == Gate::Closed {
            return false;
        }
        calls.insert(id, waiter);
        true
    }

    /// Refuses new calls from now on (the provider is leaving), running `then`
    /// under the lock: whatever `then` queues comes after every registered
    /// call's request and before any later one could be (there is none).
    pub(crate) fn refuse_new(&self, then: impl FnOnce()) {
        let _calls = self.lock();
        if self.gate() == Gate::Open {
            self.gate.store(Gate::Refusing as u8, Ordering::Release);
        }
        then();
    }

    /// Removes call `id`, handing back its waiter (`None` when it is not
    /// waiting: answered, failed or given up already, or never registered).
    pub(crate) fn take(&self, id: u64) -> Option<Waiter<T>> {
        self.lock().remove(&id)
    }

    /// Ends call `id` with `result`; false when no such call is waiting
    /// (a late or unknown answer: dropped without harm).
    pub(crate) fn complete(&self, id: u64, result: Result<T, RpcError>) -> bool {
        match self.take(id) {
            Some(waiter) => {
                // Its caller may have stopped waiting just now: nothing to do then.
                let _ = waiter.send(result);
                true
            }
            None => false,
        }
    }

    /// Fails call `id` with `error`, if it is waiting.
    pub(crate) fn fail(&self, id: u64, error: RpcError) -> bool {
        self.complete(id, Err(error))
    }

    /// Fails every waiting call with `error`, leaving the gate as it is:
    /// answers arriving for them later are dropped. Returns how many there were.
    pub(crate) fn abandon(&self, error: &RpcError) -> usize {
        let calls = std::mem::take(&mut *self.lock());
        let count = calls.len();
        for (_, waiter) in calls {
            let _ = waiter.send(Err(error.clone()));
        }
        count
    }

    /// Closes the gate for good and fails every waiting call at once with
    /// `error(id)`: the connection is gone, and each call learns whether its
    /// request may have reached the provider.
    pub(crate) fn close(&self, error: impl Fn(u64) -> RpcError) {
        let calls = {
            let mut calls = self.lock();
            self.gate.store(Gate::Closed as u8, Ordering::Release);
            std::mem::take(&mut *calls)
        };
        for (id, waiter) in calls {
            let _ = waiter.send(Err(error(id)));
        }
    }

    /// How many calls are waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A call registered in an [`InFlight`] reachable through `O` (the
/// connection that owns it): removes the entry when the caller stops waiting
/// (its deadline passed, or its future was dropped), unless it was
/// [`disarm`](Self::disarm)ed because the entry is gone already.
#[derive(Debug)]
pub(crate) struct Registration<O, T>
where
    O: Deref,
    O::Target: AsRef<InFlight<T>>,
{
    owner: O,
    id: u64,
    armed: bool,
    _answer: std::marker::PhantomData<fn() -> T>,
}

impl<O, T> Registration<O, T>
where
    O: Deref,
    O::Target: AsRef<InFlight<T>>,
{
    /// Call `id`, registered in `owner`'s in-flight map.
    pub(crate) fn new(owner: O, id: u64) -> Self {
        Registration {
            owner,
            id,
            armed: true,
            _answer: std::marker::PhantomData,
        }
    }

    /// What holds the map.
    pub(crate) fn owner(&self) -> &O {
        &self.owner
    }

    /// The entry was taken by whoever ended the call: nothing to remove.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl<O, T> Drop for Registration<O, T>
where
    O: Deref,
    O::Target: AsRef<InFlight<T>>,
{
    fn drop(&mut self) {
        if self.armed {
            (*self.owner).as_ref().take(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::{ErrorKind, Outcome};

    fn closed(gate: Gate) -> RpcError {
        RpcError::new(ErrorKind::Closed, format!("refused: {gate:?}"))
    }

    #[derive(Default)]
    struct Owner(InFlight<u32>);

    impl AsRef<InFlight<u32>> for Owner {
        fn as_ref(&self) -> &InFlight<u32> {
            &self.0
        }
    }

    #[tokio::test]
    async fn a_registered_call_gets_its_answer_once() {
        let map = InFlight::<u32>::default();
        let (tx, rx) = oneshot::channel();
        map.register(7, tx, || Ok(()), closed).unwrap();
        assert_eq!(map.len(), 1);
        assert!(map.complete(7, Ok(42)));
        assert!(!map.complete(7, Ok(43)), "a second answer finds nobody");
        assert!(!map.complete(8, Ok(1)), "an unknown id is ignored");
        assert_eq!(rx.await.unwrap().unwrap(), 42);
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn a_failed_send_registers_nothing() {
        let map = InFlight::<u32>::default();
        let (tx, _rx) = oneshot::channel();
        let error = map
            .register(
                1,
                tx,
                || Err::<(), _>(RpcError::new(ErrorKind::Closed, "queue gone")),
                closed,
            )
            .unwrap_err();
        assert_eq!(error.message(), "queue gone");
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn refusing_and_closed_gates_refuse_without_sending() {
        let map = InFlight::<u32>::default();
        let mut ran = false;
        map.refuse_new(|| ran = true);
        assert!(ran);
        assert_eq!(map.gate(), Gate::Refusing);
        let (tx, _rx) = oneshot::channel();
        let error = map
            .register(
                1,
                tx,
                || -> Result<(), RpcError> { panic!("sent through a refusing gate") },
                closed,
            )
            .unwrap_err();
        assert!(error.message().contains("Refusing"), "{error}");
        map.close(|_| closed(Gate::Closed));
        map.refuse_new(|| {});
        assert_eq!(map.gate(), Gate::Closed, "closed stays closed");
    }

    #[tokio::test]
    async fn close_fails_every_call_with_its_own_error_and_shuts_the_gate() {
        let map = InFlight::<u32>::default();
        let mut waiting = Vec::new();
        for id in 0..4 {
            let (tx, rx) = oneshot::channel();
            map.register(id, tx, || Ok(()), closed).unwrap();
            waiting.push(rx);
        }
        map.close(|id| {
            if id % 2 == 0 {
                RpcError::new(ErrorKind::Closed, "never written")
            } else {
                RpcError::new(ErrorKind::ConnectionLost, "written")
            }
        });
        for (id, rx) in waiting.into_iter().enumerate() {
            let outcome = rx.await.unwrap().unwrap_err().outcome();
            let expected = if id % 2 == 0 {
                Outcome::NotSent
            } else {
                Outcome::Unknown
            };
            assert_eq!(outcome, expected, "call {id}");
        }
        assert_eq!(map.gate(), Gate::Closed);
        let (tx, _rx) = oneshot::channel();
        assert!(map.register(9, tx, || Ok(()), closed).is_err());
    }

    #[tokio::test]
    async fn abandon_fails_the_waiting_calls_and_keeps_the_gate_open() {
        let map = InFlight::<u32>::default();
        let (tx, rx) = oneshot::channel();
        map.register(1, tx, || Ok(()), closed).unwrap();
        let error = RpcError::new(ErrorKind::Timeout, "stalled");
        assert_eq!(map.abandon(&error), 1);
        assert_eq!(rx.await.unwrap().unwrap_err().kind(), ErrorKind::Timeout);
        assert!(!map.complete(1, Ok(5)), "the late answer is dropped");
        let (tx, _rx) = oneshot::channel();
        map.register(2, tx, || Ok(()), closed).unwrap();
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn a_registration_dropped_while_armed_removes_its_entry() {
        let owner = Arc::new(Owner::default());
        let (tx, _rx) = oneshot::channel();
        owner.0.register(3, tx, || Ok(()), closed).unwrap();
        drop(Registration::<_, u32>::new(owner.clone(), 3));
        assert_eq!(owner.0.len(), 0);

        let (tx, _rx) = oneshot::channel();
        owner.0.register(4, tx, || Ok(()), closed).unwrap();
        let mut registration = Registration::<_, u32>::new(owner.clone(), 4);
        registration.disarm();
        drop(registration);
        assert_eq!(
            owner.0.len(),
            1,
            "a disarmed registration leaves the entry to its owner"
        );
    }
}
