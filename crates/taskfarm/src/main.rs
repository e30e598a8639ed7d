//! The taskfarm role binary: parse the command line, set up logging, run one role or utility.

use std::process::ExitCode;

use clap::Parser as _;
use taskfarm::cli::{Cli, Command, ZkCommand};
use taskfarm::role::shutdown_signal;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // The shim starts no runtime and logs nothing: it only waits for its command.
    if let Command::ExecShim(args) = cli.command {
        taskfarm::exec::shim::run(args);
    }
    taskfarm::logging::init(cli.global.log_format, false);
    // The roles are I/O-bound and light: one thread avoids cross-thread wake-ups (most of a
    // master's CPU was context switching on a multi-thread runtime; docs/BENCHMARKS.md).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One clear line, no backtrace: the chain of contexts says what failed and why.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Election(args) => taskfarm::election::run_demo(&global.zk_config()?, args, shutdown_signal()).await?,
        Command::Zk(ZkCommand::Init) => {
            let session = global.zk_config()?.connect().await?;
            taskfarm::zkcmd::init(&session).await?;
            session.close().await;
        }
        Command::Zk(ZkCommand::Tree { path }) => {
            let session = global.zk_config()?.connect().await?;
            print!("{}", taskfarm::zkcmd::tree(&session, &path).await?);
            session.close().await;
        }
        Command::Master(args) => taskfarm::master::run(&global.zk_config()?, args, shutdown_signal()).await?,
        Command::Worker(args) => taskfarm::worker::run(&global.zk_config()?, args, shutdown_signal()).await?,
        Command::Client(args) => return taskfarm::client::run(&global.zk_config()?, args, shutdown_signal()).await,
        Command::Submit(args) => return taskfarm::client::submit_one(&global.zk_config()?, args).await,
        Command::CopySelf { dest } => taskfarm::exec::copy_self(&dest)?,
        Command::ExecShim(args) => taskfarm::exec::shim::run(args),
    }
    Ok(ExitCode::SUCCESS)
}
