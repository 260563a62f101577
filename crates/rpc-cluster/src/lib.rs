//! The consumer's cluster layer: which provider gets each call, and what
//! happens when one fails.
//!
//! A call goes down this stack, each step a tower `Service<Invocation>`:
//!
//! ```text
//! stub → MockService (degradation) → ClusterInvoker (settings, deadline, actives)
//!      → policy (failover, failfast, failsafe, failback, forking, broadcast)
//!      → Balancer (untried, healthy providers; load balancer) → Endpoint → wire
//! ```
//!
//! * [`Directory`] keeps the live providers of one reference, built from one
//!   or more streams of provider URL sets (one per registry; this crate does
//!   not know registries, only URL streams), filtered by the [`router`].
//! * [`config`] is the one place where the settings of a call are merged
//!   (method > reference > consumer > provider URL > defaults).
//! * [`policy`] holds the six fault-tolerance policies, [`loadbalance`] the
//!   six load balancers, [`Mock`] the degradation layer.

pub mod config;
mod directory;
mod endpoint;
mod invoker;
pub mod loadbalance;
mod mock;
pub mod outlier;
pub mod policy;
pub mod router;
mod select;

pub use config::Effective;
pub use directory::{Connect, Directory};
pub use endpoint::{Endpoint, INSTANCE, Probe};
pub use invoker::ClusterInvoker;
pub use loadbalance::{Candidate, LoadBalance, Stats};
pub use mock::{Mock, MockLayer, MockService, Mocks};
pub use outlier::OutlierConfig;
pub use policy::FailbackConfig;
pub use select::{Balancer, Select};
