//! The worker role.

use clap::Args;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// This worker's name (default: a random one; in Kubernetes, the pod name).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
}
