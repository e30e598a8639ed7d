//! Command-line interface: one binary, one subcommand per role or tool.
//!
//! Only argument shapes live here; each subcommand's behaviour lives in its own module.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::zk::ZkConfig;

#[derive(Debug, Parser)]
#[command(
    name = "taskfarm",
    version,
    about = "A dependable master/worker task farm coordinated by Apache ZooKeeper",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// ZooKeeper connect string: host:port[,host:port...][/chroot].
    #[arg(long, global = true, env = "TASKFARM_ZK", default_value = "127.0.0.1:2181")]
    pub zk: String,

    /// ZooKeeper session timeout (the server clamps it to [2, 20] x its tickTime).
    #[arg(long, global = true, env = "TASKFARM_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,

    /// How long to keep trying to reach ZooKeeper at start before giving up.
    #[arg(long, global = true, env = "TASKFARM_CONNECT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Shared secret for ZooKeeper digest authentication (the farm's ACLs); empty = open ACLs.
    #[arg(
        long,
        global = true,
        env = "TASKFARM_ZK_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub zk_secret: String,

    /// Log format on stderr.
    #[arg(long, global = true, env = "TASKFARM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl GlobalArgs {
    pub fn zk_config(&self) -> anyhow::Result<ZkConfig> {
        ZkConfig::new(&self.zk, self.session_timeout, self.connect_timeout, &self.zk_secret)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a master: joins the election; the leader assigns tasks to free workers.
    Master(crate::master::MasterArgs),
    /// Run a worker: registers under /workers and executes the tasks assigned to it.
    Worker(crate::worker::WorkerArgs),
    /// Run a client: submits tasks, collects their results, prints a summary.
    Client(crate::client::ClientArgs),
    /// Submit one task (JSON) and print its result.
    Submit(crate::client::SubmitArgs),
    /// Join the master election and print LEADER/FOLLOWER at each change (a demo of the recipe).
    Election(crate::election::ElectionArgs),
    /// Run the whole farm locally on a real 3-server ZooKeeper ensemble.
    Demo(crate::demo::DemoArgs),
    /// Run the seed's fault scenarios and check their invariants (`all` or one name).
    Scenario(crate::scenario::ScenarioArgs),
    /// Measure throughput against ZooKeeper's own ceiling, failover latency, backlog scaling.
    Bench(crate::bench::BenchArgs),
    /// A chaos soak: random faults for a long run, checked by an independent checker.
    Soak(crate::soak::SoakArgs),
    /// ZooKeeper utilities.
    #[command(subcommand)]
    Zk(ZkCommand),
    /// Run the Kubernetes controller that reconciles TaskFarm resources.
    Controller(crate::k8s::ControllerArgs),
    /// Print the TaskFarm CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Debug, Subcommand)]
pub enum ZkCommand {
    /// Create the farm's znodes (idempotent; safe to run concurrently).
    Init,
    /// Print a subtree with each znode's data (shortened) and whether it is ephemeral.
    Tree {
        /// Path to print.
        #[arg(default_value = "/")]
        path: String,
    },
}

/// Parses durations like `10s`, `500ms`, `2m` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e} (examples: 10s, 500ms, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units_and_reject_bare_numbers() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn unknown_subcommand_is_an_error() {
        assert!(Cli::try_parse_from(["taskfarm", "frobnicate"]).is_err());
    }
}
