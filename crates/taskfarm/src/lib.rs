//! taskfarm: a dependable master/worker task farm coordinated by Apache ZooKeeper.
//!
//! This crate is the product: the znode contract ([`protocol`], and PROTOCOL.md), the ZooKeeper
//! layer ([`zk`], [`waits`]), the election, and one module per role. The role binary
//! (`src/main.rs`) is what master, worker and client pods run. The Kubernetes operator and the
//! lab (demo, scenarios, soak, bench) are crates of their own that build on this one.

pub mod admission;
pub mod binary;
pub mod cli;
pub mod client;
pub mod election;
pub mod exec;
pub mod fsck;
pub mod health;
pub mod logging;
pub mod master;
pub mod metrics;
pub mod protocol;
pub mod role;
pub mod schema;
pub mod task;
pub mod waits;
pub mod worker;
pub mod zk;
pub mod zkcmd;
