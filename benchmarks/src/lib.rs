//! Benchmarks of the rpc framework against the peers a Rust user would pick
//! instead (tonic, tarpc) and a raw tokio floor, with one load generator.
//!
//! `cargo run --release -p benchmarks` runs everything and prints one table;
//! see the README's Benchmarks section.

pub mod java_dubbo;
pub mod layers;
pub mod loadgen;
pub mod locks;
pub mod ours;
pub mod payload;
pub mod peers;
pub mod raw;
pub mod registry;
pub mod sys;
