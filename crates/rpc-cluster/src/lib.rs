//! The consumer's cluster layer: which provider gets each call, and what
//! happens when one fails.
//!
//! A call goes down this stack, built once per reference:
//!
//! ```text
//! stub → MockService (degradation) → the user's call layers
//!      → Cluster (settings resolved once, deadline, actives)
//!      → Policy (failover, failfast, failsafe, failback, forking, broadcast, or yours)
//!      → Picker (routing: readable, untried, healthy providers; then the load balancer)
//!      → Endpoint → the user's attempt layers → channel → wire
//! ```
//!
//! * [`Directory`] keeps the live providers of one reference, built from one
//!   or more streams of provider URL sets (one per registry; this crate does
//!   not know registries, only URL streams), filtered by the [`router`].
//! * [`config`] holds what a consumer or a method declaration may set
//!   ([`MethodConfig`], naming a [`ClusterPolicy`] and a [`Balancer`]) and
//!   reads a method descriptor's declared parameters.
//! * [`settings`] is the one place where the settings of a call are merged
//!   (override rules > method > declaration > reference > consumer > provider URLs >
//!   defaults).
//! * [`governance`] reads the operators' rules from the configuration centre
//!   (Dubbo's override rules, condition and tag routing) and applies them to
//!   the provider URLs, the settings (above every level) and each call's
//!   routing, before the load balancer.
//! * [`policy`] holds the six fault-tolerance policies, [`loadbalance`] the
//!   six load balancers, [`Mock`] the degradation layer.

mod call;
mod cluster;
pub mod config;
mod directory;
mod endpoint;
pub mod governance;
pub mod loadbalance;
mod mock;
pub mod outlier;
pub mod policy;
pub mod router;
mod select;
pub mod settings;

pub use call::Call;
pub use cluster::{Cluster, ClusterBuilder};
pub use config::{Balancer, ClusterPolicy, MethodConfig};
pub use directory::{Connect, Directory};
pub use endpoint::{Endpoint, INSTANCE, Probe, TOKEN};
pub use loadbalance::{Candidate, LoadBalance, Stats};
pub use mock::{Mock, MockLayer, MockService, Mocks};
pub use outlier::OutlierConfig;
pub use policy::{FailbackConfig, Policy};
pub use select::{Picker, Select};
pub use settings::Settings;
