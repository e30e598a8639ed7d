//! Kubernetes: the TaskFarm custom resource and its controller.

use clap::Args;

#[derive(Debug, Args)]
pub struct ControllerArgs {}

pub async fn run(_args: ControllerArgs) -> anyhow::Result<()> {
    anyhow::bail!("the controller is not built yet")
}

pub fn crd_yaml() -> anyhow::Result<String> {
    anyhow::bail!("the CRD is not built yet")
}
