//! The operator binary: runs the controller that reconciles TaskFarm resources.

use std::process::ExitCode;

use clap::Parser;
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    taskfarm::logging::init(cli.log_format, false);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(taskfarm_operator::run(
        cli.controller,
        taskfarm::role::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
