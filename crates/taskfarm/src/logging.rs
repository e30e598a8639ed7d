//! tracing setup: human-readable text or one JSON object per line (for `kubectl logs | jq`),
//! always on stderr so that stdout stays free for a command's own output.
//!
//! Roles log inside spans (`master`, `worker`, `client`, `session`, `leading`, `task`), not with
//! the same fields repeated on every event. In JSON the span fields are flattened onto each
//! line, so `jq 'select(.worker == "w1" and .task == "t-7")'` finds every line about that task.
//! Span and event field names are kept apart so that no line carries a key twice.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, EnvFilter};

/// The log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
/// `orchestrator` is for commands that run a farm of child processes (demo, scenario, bench,
/// soak): their own ZooKeeper client's reconnection chatter is noise next to their tables.
pub fn init(format: LogFormat, orchestrator: bool) {
    let default = if orchestrator {
        "warn,zookeeper_client=off"
    } else {
        // The crate warns at every failed reconnection attempt (hundreds while a server is away);
        // the roles say once what failed and the likely cause.
        "info,zookeeper_client=error"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = match format {
        LogFormat::Text => fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init()
            .map_err(|e| e.to_string()),
        LogFormat::Json => {
            let mut json = json_subscriber::JsonLayer::new(std::io::stderr);
            json.with_timer("timestamp", fmt::time::SystemTime);
            json.with_level("level");
            json.with_flattened_event();
            json.with_top_level_flattened_span_list();
            tracing_subscriber::registry()
                .with(filter)
                .with(json)
                .try_init()
                .map_err(|e| e.to_string())
        }
    };
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    /// A writer that keeps what was logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_fields_of_their_spans() {
        let out = Captured::default();
        let writer = out.clone();
        let mut json = json_subscriber::JsonLayer::new(move || writer.clone());
        json.with_level("level");
        json.with_flattened_event();
        json.with_top_level_flattened_span_list();
        let subscriber = tracing_subscriber::registry().with(json);
        tracing::subscriber::with_default(subscriber, || {
            let role = tracing::info_span!("worker", worker = "w1");
            let task = tracing::info_span!(parent: &role, "task", task = "t-7", attempt = 2);
            task.in_scope(|| tracing::info!(ok = true, "result committed"));
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "result committed");
        assert_eq!(line["worker"], "w1");
        assert_eq!(line["task"], "t-7");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["ok"], true);
    }
}
