//! `taskfarm demo`: the whole farm locally on a real 3-server ZooKeeper ensemble (issue 4).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct DemoArgs {}

pub async fn run(_global: &GlobalArgs, _args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
