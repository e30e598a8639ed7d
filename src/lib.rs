//! taskfarm: a dependable master/worker task farm coordinated by Apache ZooKeeper.
//!
//! The znode contract lives in [`protocol`] (and PROTOCOL.md); each role has its own module;
//! [`harness`] runs real ZooKeeper servers for tests, the demo, scenarios and benchmarks.

pub mod bench;
pub mod cli;
pub mod client;
pub mod demo;
pub mod election;
pub mod farm;
pub mod harness;
pub mod health;
pub mod k8s;
pub mod logging;
pub mod master;
pub mod process;
pub mod protocol;
pub mod role;
pub mod scenario;
pub mod soak;
pub mod task;
pub mod waits;
pub mod worker;
pub mod zk;
pub mod zkcmd;
