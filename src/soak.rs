//! The chaos soak: random faults for a long run, checked by an independent checker (issue 7).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct SoakArgs {}

pub async fn run(_global: &GlobalArgs, _args: SoakArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
