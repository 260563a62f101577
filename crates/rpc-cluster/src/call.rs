//! [`Call`]: one call inside the cluster, its settings resolved.

use rpc_core::Invocation;

use crate::settings::Settings;

/// One call as the cluster's policy, picker and endpoints see it: the
/// invocation and the [`Settings`] resolved for it once, before the first
/// provider was picked.
#[derive(Clone, Debug)]
pub struct Call {
    /// What to send.
    pub invocation: Invocation,
    /// How: budget, retries, balancer, forks.
    pub settings: Settings,
}

impl Call {
    /// `invocation` with `settings`.
    pub fn new(invocation: Invocation, settings: Settings) -> Self {
        Call { invocation, settings }
    }
}
