//! The lab binary: `taskfarm-lab demo|scenario|soak|bench`. Each runs its own ZooKeeper and
//! the `taskfarm` role binary (found beside this one, or at `$TASKFARM_BIN`) as child processes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use taskfarm::binary::Threads;
use taskfarm::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "taskfarm-lab",
    version,
    about = "Run taskfarm on this machine: demo, fault scenarios, chaos soak, benchmarks"
)]
struct Cli {
    /// Log format of the lab itself on stderr (the roles always log JSON to their own files).
    #[arg(long, global = true, env = "TASKFARM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole farm locally on a real 3-server ZooKeeper ensemble.
    Demo(taskfarm_lab::demo::DemoArgs),
    /// Run the seed's fault scenarios and check their invariants (`all` or one name).
    Scenario(taskfarm_lab::scenario::ScenarioArgs),
    /// Measure throughput against ZooKeeper's own ceiling, failover latency, backlog scaling.
    Bench(taskfarm_lab::bench::BenchArgs),
    /// A chaos soak: random faults for a long run, checked by an independent checker.
    Soak(taskfarm_lab::soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli: Cli = match taskfarm::binary::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // The lab's own ZooKeeper client's reconnection chatter is noise next to its tables.
    taskfarm::logging::init(cli.log_format, true);
    taskfarm::binary::run(Threads::Many, async {
        match cli.command {
            Command::Demo(args) => taskfarm_lab::demo::run(args).await,
            Command::Scenario(args) => taskfarm_lab::scenario::run(args).await,
            Command::Bench(args) => taskfarm_lab::bench::run(args).await,
            Command::Soak(args) => taskfarm_lab::soak::run(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
