//! The taskfarm role binary: parse the command line, set up logging, run one role or utility.

use std::process::ExitCode;

use taskfarm::binary::Threads;
use taskfarm::cli::{Cli, Command, ZkCommand};
use taskfarm::role::shutdown_signal;

fn main() -> ExitCode {
    let cli: Cli = match taskfarm::binary::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // The shim starts no runtime and logs nothing: it only waits for its command.
    if let Command::ExecShim(args) = cli.command {
        taskfarm::exec::shim::run(args);
    }
    taskfarm::logging::init(cli.global.log_format, false);
    taskfarm::binary::run(Threads::One, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Election(args) => taskfarm::election::run_demo(&global.zk_config()?, args, shutdown_signal()).await?,
        Command::Zk(ZkCommand::Init { admission }) => {
            let bound = admission.bound()?;
            let config = global.zk_config()?;
            let session = config.connect().await?;
            taskfarm::zkcmd::init(&session).await?;
            session.close().await;
            taskfarm::zkcmd::init_bound(&config, bound).await?;
        }
        Command::Zk(ZkCommand::Tree { path }) => {
            let session = global.zk_config()?.connect().await?;
            print!("{}", taskfarm::zkcmd::tree(&session, &path).await?);
            session.close().await;
        }
        // Its own exit status: 1 is "problems found", so a failure to check is 2.
        Command::Zk(ZkCommand::Fsck { settle }) => {
            let outcome = async { taskfarm::fsck::check_farm(&global.zk_config()?, settle).await };
            return Ok(taskfarm::fsck::report(outcome.await));
        }
        Command::Zk(ZkCommand::Schema { dir }) => {
            for path in taskfarm::schema::write_all(&dir)? {
                println!("{}", path.display());
            }
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
