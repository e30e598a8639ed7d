//! The role binary's command line: one subcommand per role, plus the ZooKeeper utilities.
//!
//! Only argument shapes live here; each subcommand's behaviour lives in its own module, which
//! owns its own arguments. Nothing here is imported back by those modules.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;
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
    #[arg(long, global = true, env = "TASKFARM_SESSION_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub session_timeout: Duration,

    /// How long to keep trying to reach ZooKeeper at start before giving up; 0 = for ever (roles
    /// in Kubernetes: a pod waits for ZooKeeper instead of exiting and being restarted).
    #[arg(long, global = true, env = "TASKFARM_CONNECT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
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
    /// ZooKeeper utilities.
    #[command(subcommand)]
    Zk(ZkCommand),
    /// Copy this binary to a path (an init container puts it into a shared volume, so that a
    /// worker can run in any image: docs/KUBERNETES.md).
    CopySelf {
        /// Where to write the copy (made executable).
        dest: std::path::PathBuf,
    },
    /// Internal: the process between a worker and a command it runs (leads the command's
    /// process group; kills it when the worker dies).
    #[command(hide = true)]
    ExecShim(crate::exec::shim::ShimArgs),
}

#[derive(Debug, Subcommand)]
pub enum ZkCommand {
    /// Create the farm's znodes (idempotent; safe to run concurrently), and set the farm's
    /// admission bound when one is given (printed either way).
    Init {
        #[command(flatten)]
        admission: crate::admission::AdmissionArgs,
    },
    /// Print a subtree with each znode's data (shortened) and whether it is ephemeral.
    Tree {
        /// Path to print.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Check the farm's znodes against the contract (PROTOCOL.md) without changing anything:
    /// one line per problem; exit 0 when clean, 1 when a problem is found, 2 when the check
    /// could not run.
    Fsck {
        /// When the first read finds problems, read again after this long and report only those
        /// still there unchanged (a live farm passes through states that are normal for a
        /// moment); 0s reports the first read.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        settle: Duration,
    },
    /// Write the JSON Schemas of the znode records and payloads (docs/schema/) into DIR.
    Schema {
        /// Directory to write into (created if missing).
        dir: std::path::PathBuf,
    },
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
        let parse = |v: &str| Cli::try_parse_from(["taskfarm", "--session-timeout", v, "zk", "init"]);
        assert_eq!(
            parse("250ms").unwrap().global.session_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(parse("10s").unwrap().global.session_timeout, Duration::from_secs(10));
        assert!(parse("10").is_err());
    }

    #[test]
    fn the_lab_and_the_operator_are_not_role_subcommands() {
        for tool in ["demo", "scenario", "soak", "bench", "controller", "crd"] {
            assert!(Cli::try_parse_from(["taskfarm", tool]).is_err(), "{tool}");
        }
    }

    #[test]
    fn unknown_subcommand_is_an_error() {
        assert!(Cli::try_parse_from(["taskfarm", "frobnicate"]).is_err());
    }
}
