//! taskfarm's test harness: real ZooKeeper servers on loopback ([`zookeeper`]), child processes
//! that never outlive us ([`process`]), and the one way to start a role process ([`launch`]).
//!
//! It depends on nothing of taskfarm's, so the product's own tests can use it as a
//! dev-dependency while the lab builds on it too.

pub mod appends;
pub mod launch;
pub mod process;
pub mod zookeeper;

pub use appends::Appends;
pub use launch::{role_binary, RoleCommand};
pub use process::ChildGuard;
pub use zookeeper::{four_letter_word, free_port, ZkCluster, ZkOptions};
