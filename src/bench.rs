//! Benchmarks: ZooKeeper's own write ceiling, end-to-end throughput, failover, backlog scaling, footprint (issue 6).

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub async fn run(_global: &GlobalArgs, _args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
