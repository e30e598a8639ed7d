//! Task payloads (`/data/<id>`): what a client may ask for and how a worker runs it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::exec::catalogue::MAX_MAX_ARGS;
use crate::protocol::{parse_json, ContractError, ID_PATTERN, MAX_PAYLOAD_BYTES};

/// Longest `sleep` task we accept (one hour).
pub const MAX_SLEEP_MS: u64 = 3_600_000;
/// Most `cpu` rounds we accept (about a minute of hashing on a slow core).
pub const MAX_CPU_ROUNDS: u64 = 50_000_000;

/// A task payload. JSON with a `kind` field, e.g. `{"kind":"sleep","ms":100}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
// `parse` refuses unknown fields (serde alone would ignore them).
#[schemars(deny_unknown_fields)]
pub enum TaskSpec {
    /// Sleep for `ms` milliseconds; the result is `{"slept_ms": ms}`.
    Sleep {
        #[schemars(range(max = MAX_SLEEP_MS))]
        ms: u64,
    },
    /// `rounds` iterations of SHA-256 over the previous digest, starting from `seed`;
    /// the result is `{"digest": hex}` (deterministic).
    Cpu {
        #[schemars(range(max = MAX_CPU_ROUNDS))]
        rounds: u64,
        #[serde(default)]
        seed: String,
    },
    /// Returns `message` unchanged.
    Echo {
        #[serde(default)]
        message: serde_json::Value,
    },
    /// Reports an error result carrying `message`.
    Fail {
        #[serde(default = "default_fail_message")]
        message: String,
    },
    /// Kills the worker process that runs it (a poison task, for fault tests).
    Crash,
    /// Runs a command the worker's catalogue declares (PROTOCOL.md, "exec"): never an argv
    /// of the client's choosing.
    Exec {
        /// The command's name in the worker's catalogue.
        #[schemars(pattern(ID_PATTERN))]
        command: String,
        /// Appended to the declared argv when the catalogue's pattern admits each.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = MAX_MAX_ARGS), inner(pattern(r"^[^\u0000]*$")), extend("default" = []))]
        args: Vec<String>,
        /// Written to the command's stdin (absent: stdin is /dev/null).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdin: Option<String>,
        /// The time limit (absent: the catalogue's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 1, max = MAX_EXEC_TIMEOUT_MS))]
        timeout_ms: Option<u64>,
    },
}

/// A task's error result: the error, and for `exec` the output that goes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    pub error: String,
    pub value: Option<serde_json::Value>,
}

impl From<String> for TaskFailure {
    fn from(error: String) -> Self {
        Self { error, value: None }
    }
}

fn default_fail_message() -> String {
    "task asked to fail".into()
}

const KINDS: &str = "sleep, cpu, echo, fail, crash, exec";

/// Longest `exec` time limit a task may ask for (a day); the catalogue's bound applies too.
pub const MAX_EXEC_TIMEOUT_MS: u64 = 86_400_000;

impl TaskSpec {
    /// Parses and validates a payload, with an error a person can act on.
    pub fn parse(data: &[u8]) -> Result<Self, ContractError> {
        let value: serde_json::Value = parse_json("task payload", data, MAX_PAYLOAD_BYTES)?;
        let malformed = |reason: String| ContractError::Malformed {
            what: "task payload",
            reason,
        };
        let kind = match value.get("kind") {
            Some(serde_json::Value::String(k)) => k.clone(),
            Some(_) => return Err(malformed("\"kind\" must be a string".into())),
            None => return Err(malformed(format!("missing \"kind\" (one of {KINDS})"))),
        };
        if !KINDS.split(", ").any(|k| k == kind) {
            return Err(malformed(format!(
                "unknown task kind {kind:?} (expected one of {KINDS})"
            )));
        }
        let allowed: &[&str] = match kind.as_str() {
            "sleep" => &["ms"],
            "cpu" => &["rounds", "seed"],
            "echo" => &["message"],
            "fail" => &["message"],
            "exec" => &["command", "args", "stdin", "timeout_ms"],
            _ => &[],
        };
        if let Some(obj) = value.as_object() {
            if let Some(extra) = obj.keys().find(|k| *k != "kind" && !allowed.contains(&k.as_str())) {
                return Err(malformed(format!("unknown field {extra:?} for kind {kind:?}")));
            }
        }
        let spec: TaskSpec = serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
        spec.validate().map_err(malformed)?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            TaskSpec::Sleep { ms } if *ms > MAX_SLEEP_MS => Err(format!("sleep of {ms} ms is over {MAX_SLEEP_MS}")),
            TaskSpec::Cpu { rounds, .. } if *rounds > MAX_CPU_ROUNDS => {
                Err(format!("{rounds} cpu rounds is over {MAX_CPU_ROUNDS}"))
            }
            TaskSpec::Exec {
                command,
                args,
                timeout_ms,
                ..
            } => {
                crate::protocol::validate_id(command).map_err(|e| format!("exec command name: {e}"))?;
                if args.len() > MAX_MAX_ARGS {
                    return Err(format!("{} exec arguments is over {MAX_MAX_ARGS}", args.len()));
                }
                if args.iter().any(|a| a.contains('\0')) {
                    return Err("exec arguments must not contain NUL bytes".into());
                }
                match timeout_ms {
                    Some(0) => Err("exec timeout_ms must be at least 1".into()),
                    Some(ms) if *ms > MAX_EXEC_TIMEOUT_MS => {
                        Err(format!("exec timeout_ms {ms} is over {MAX_EXEC_TIMEOUT_MS}"))
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("task spec serializes")
    }

    /// The run time the task itself states, if it states one: what the client writes into
    /// the task record for the master's deadline. (An `exec` task without `timeout_ms` runs
    /// under its catalogue's limit, which only the worker knows.)
    pub fn time_limit_ms(&self) -> Option<u64> {
        match self {
            TaskSpec::Sleep { ms } => Some(*ms),
            TaskSpec::Echo { .. } | TaskSpec::Fail { .. } => Some(0),
            TaskSpec::Exec { timeout_ms, .. } => *timeout_ms,
            TaskSpec::Cpu { .. } | TaskSpec::Crash => None,
        }
    }

    /// Runs the task. `Err` is the task's own error result, not a failure of the worker.
    /// `catalogue` holds the commands `exec` tasks may name (empty: none).
    pub async fn run(&self, catalogue: &crate::exec::Catalogue) -> Result<serde_json::Value, TaskFailure> {
        match self {
            TaskSpec::Sleep { ms } => {
                // A no-op task should cost nothing: the timer wheel rounds even 0 ms up to ~1 ms.
                if *ms > 0 {
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                }
                Ok(serde_json::json!({ "slept_ms": ms }))
            }
            TaskSpec::Cpu { rounds, seed } => {
                let (rounds, seed) = (*rounds, seed.clone());
                let digest = tokio::task::spawn_blocking(move || cpu_digest(&seed, rounds))
                    .await
                    .map_err(|e| TaskFailure::from(format!("cpu task panicked: {e}")))?;
                Ok(serde_json::json!({ "digest": digest }))
            }
            TaskSpec::Echo { message } => Ok(message.clone()),
            TaskSpec::Fail { message } => Err(message.clone().into()),
            TaskSpec::Crash => {
                tracing::error!("running a crash task: this worker process aborts now");
                std::process::abort();
            }
            TaskSpec::Exec {
                command,
                args,
                stdin,
                timeout_ms,
            } => crate::exec::run(catalogue, command, args, stdin.as_deref(), *timeout_ms).await,
        }
    }
}

/// `rounds` chained SHA-256 hashes of `seed`, hex-encoded.
pub fn cpu_digest(seed: &str, rounds: u64) -> String {
    let mut digest: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    for _ in 0..rounds {
        digest = Sha256::digest(digest).into();
    }
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses() {
        assert_eq!(
            TaskSpec::parse(br#"{"kind":"sleep","ms":5}"#).unwrap(),
            TaskSpec::Sleep { ms: 5 }
        );
        assert!(matches!(
            TaskSpec::parse(br#"{"kind":"cpu","rounds":10}"#).unwrap(),
            TaskSpec::Cpu { rounds: 10, .. }
        ));
        assert!(matches!(
            TaskSpec::parse(br#"{"kind":"echo","message":[1,2]}"#).unwrap(),
            TaskSpec::Echo { .. }
        ));
        assert!(matches!(
            TaskSpec::parse(br#"{"kind":"fail"}"#).unwrap(),
            TaskSpec::Fail { .. }
        ));
        assert_eq!(TaskSpec::parse(br#"{"kind":"crash"}"#).unwrap(), TaskSpec::Crash);
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"{not json", "malformed task payload"),
            (br#"{"kind":"teleport"}"#, "unknown task kind \"teleport\""),
            (br#"{"ms":5}"#, "missing \"kind\""),
            (br#"{"kind":"sleep","ms":5,"extra":1}"#, "unknown field \"extra\""),
            (br#"{"kind":"sleep","ms":-1}"#, "malformed task payload"),
            (br#"{"kind":"sleep","ms":99999999999}"#, "is over"),
            (b"", "task payload is empty"),
        ];
        for (input, expected) in cases {
            let err = TaskSpec::parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{:?}: {err}", String::from_utf8_lossy(input));
        }
        let big = format!(r#"{{"kind":"echo","message":"{}"}}"#, "x".repeat(MAX_PAYLOAD_BYTES));
        assert!(TaskSpec::parse(big.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("over the 65536-byte limit"));
    }

    #[test]
    fn cpu_digest_is_deterministic() {
        assert_eq!(cpu_digest("a", 3), cpu_digest("a", 3));
        assert_ne!(cpu_digest("a", 3), cpu_digest("a", 4));
        // Zero rounds is plain SHA-256 of the seed.
        assert_eq!(
            cpu_digest("abc", 0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn tasks_run_to_values_or_errors() {
        assert_eq!(
            TaskSpec::Sleep { ms: 1 }.run(&Default::default()).await.unwrap(),
            serde_json::json!({"slept_ms": 1})
        );
        assert_eq!(
            TaskSpec::Fail { message: "no".into() }
                .run(&Default::default())
                .await
                .unwrap_err(),
            TaskFailure::from("no".to_string())
        );
        let echo = TaskSpec::Echo {
            message: serde_json::json!({"a": 1}),
        };
        assert_eq!(
            echo.run(&Default::default()).await.unwrap(),
            serde_json::json!({"a": 1})
        );
    }
}
