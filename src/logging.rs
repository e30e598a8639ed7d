//! tracing setup: human-readable text or one JSON object per line (for `kubectl logs | jq`),
//! always on stderr so that stdout stays free for a command's own output.

use tracing_subscriber::{fmt, EnvFilter};

use crate::cli::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
/// `orchestrator` is for commands that run a farm of child processes (demo, scenario, bench,
/// soak): their own ZooKeeper client's reconnection chatter is noise next to their tables.
pub fn init(format: LogFormat, orchestrator: bool) {
    let default = if orchestrator {
        "warn,zookeeper_client=off"
    } else {
        "info,zookeeper_client=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
}
