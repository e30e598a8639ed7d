//! The client role.

use clap::Args;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// This client's name (default: a random one).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
    /// Tasks to submit in all (0 = keep submitting until stopped).
    #[arg(long, default_value_t = 10)]
    pub tasks: u64,
    /// Tasks in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// The task payload (JSON), e.g. '{"kind":"sleep","ms":100}'.
    #[arg(long, default_value = r#"{"kind":"sleep","ms":0}"#)]
    pub task: String,
    /// Append every delivered result to this file as one JSON line.
    #[arg(long)]
    pub results_log: Option<std::path::PathBuf>,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The task payload (JSON), e.g. '{"kind":"echo","message":"hi"}'.
    pub task: String,
    /// Give up waiting for the result after this long.
    #[arg(long, default_value = "5m", value_parser = crate::cli::parse_duration)]
    pub timeout: std::time::Duration,
}
