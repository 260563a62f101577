//! The consumer's cluster layer: which provider gets each call.
//!
//! A [`Directory`] keeps the live set of provider [`Endpoint`]s of one
//! reference, built from one or more streams of provider URL sets (one per
//! registry; this crate does not know registries, only URL streams). It keeps
//! only the providers the reference may use (interface, version, group,
//! protocol, not disabled), and reuses an endpoint's connection across updates.
//!
//! [`ClusterInvoker`] is the tower `Service<Invocation>` the stub calls: it
//! picks an available endpoint round-robin and sends the call there. Fault
//! tolerance policies and load balancers plug in at this seam.

mod directory;
mod invoker;

pub use directory::{Connect, Directory, Endpoint};
pub use invoker::ClusterInvoker;
