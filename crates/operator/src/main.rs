//! The operator binary: runs the controller that reconciles TaskFarm resources.

use std::process::ExitCode;

use clap::Parser;
use taskfarm::binary::Threads;
use taskfarm::logging::LogFormat;
use taskfarm_operator::ControllerArgs;

#[derive(Debug, Parser)]
#[command(
    name = "taskfarm-operator",
    version,
    about = "Reconciles TaskFarm resources into role Deployments and runs their chaos experiments"
)]
struct Cli {
    #[command(flatten)]
    controller: ControllerArgs,

    /// Log format on stderr.
    #[arg(long, env = "TASKFARM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli: Cli = match taskfarm::binary::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    taskfarm::logging::init(cli.log_format, false);
    taskfarm::binary::run(Threads::Many, async {
        taskfarm_operator::run(cli.controller, taskfarm::role::shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
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
