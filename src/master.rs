//! The master role.

use clap::Args;

#[derive(Debug, Args)]
pub struct MasterArgs {
    /// This master's name (default: a random one; in Kubernetes, the pod name).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
    /// Assignments to workers that vanished before a task is failed as poison.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
}
