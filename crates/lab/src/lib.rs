//! taskfarm's lab: everything that exercises the product on this machine and is not shipped.
//!
//! - [`farm`]: a whole farm on one machine (real ZooKeeper, role processes of the `taskfarm`
//!   binary, one log file each), which everything below builds on;
//! - [`demo`]: the farm with a live progress line and an evidence table, optionally chaotic,
//!   optionally running real programs (`--exec`);
//! - [`exec`]: the example command catalogue and workload, exec outcomes, the process table;
//! - [`scenario`]: the seed's fault scenarios with their invariants;
//! - [`soak`]: random faults for a long run, judged by an independent checker;
//! - [`bench`]: throughput against ZooKeeper's own ceiling, failover latency, backlog scaling.
//!
//! It depends on the product (`taskfarm`) and on the harness; neither depends on it.

pub mod bench;
pub mod demo;
pub mod exec;
pub mod farm;
pub mod scenario;
pub mod soak;
