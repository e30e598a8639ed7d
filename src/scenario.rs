//! `taskfarm scenario`: the seed's fault scenarios, automated, with invariant checks (issue 4).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct ScenarioArgs {}

pub async fn run(_global: &GlobalArgs, _args: ScenarioArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
