//! The znode contract (see PROTOCOL.md): paths, the JSON each znode carries, and its limits.
//!
//! Everything here is pure: parsing and formatting only, no I/O, so that every rule of the
//! public interface is unit-tested and shared by all roles.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest task payload (`/data/<id>`) a client may submit. ZooKeeper's own limit
/// (jute.maxbuffer, ~1 MB per request, a whole multi included) answers an oversize write by
/// dropping the connection, so we refuse well before it.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Largest serialized result value a worker may commit into `/data/<id>`; larger values are
/// replaced by an error result.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Largest whole result (`/data/<id>` from version 1) a reader accepts: the value and room for
/// the fields around it.
pub const MAX_RESULT_RECORD_BYTES: usize = MAX_RESULT_BYTES + 8192;

/// Longest task id; ids are `[A-Za-z0-9_.-]`, not starting with a dot.
pub const MAX_TASK_ID_LEN: usize = 128;

/// [`validate_id`] as a JSON Schema pattern (ECMA 262), for docs/schema/.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$";

/// Largest task record and worker record (`/tasks/<id>`, `/workers/<id>`) a reader accepts.
pub const MAX_RECORD_BYTES: usize = 4096;

/// Largest `/status` a reader accepts.
pub const MAX_STATUS_BYTES: usize = 64 * 1024;

/// Longest error string in a result (bytes; a longer one is cut).
pub const MAX_ERROR_BYTES: usize = 4096;

/// How many times a task may be assigned to a worker that then vanished (crashed, killed,
/// session expired) before the master completes it with an error result (poison task).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

pub mod paths {
    /// Election candidates: ephemeral sequential children.
    pub const MASTER: &str = "/master";
    /// Task records: ephemeral children owned by the submitting client's session.
    pub const TASKS: &str = "/tasks";
    /// Task payloads, replaced by the task's result when it completes (version 0: the payload,
    /// version 1: the result): ephemeral children owned by the submitting client's session.
    pub const DATA: &str = "/data";
    /// Workers: ephemeral children whose data carries the worker's assignment.
    pub const WORKERS: &str = "/workers";
    /// Farm status, rewritten by the leading master about once a second.
    pub const STATUS: &str = "/status";

    /// Persistent znodes every role may create at start (idempotently).
    pub const LAYOUT: [&str; 5] = [MASTER, TASKS, DATA, WORKERS, STATUS];

    /// Name of an election candidate is `_c_<uuid>-` + this + a 10-digit sequence number.
    pub const CANDIDATE_NAME: &str = "latch-";

    pub fn task(id: &str) -> String {
        format!("{TASKS}/{id}")
    }

    pub fn data(id: &str) -> String {
        format!("{DATA}/{id}")
    }

    pub fn worker(id: &str) -> String {
        format!("{WORKERS}/{id}")
    }

    /// The last path component.
    pub fn name(path: &str) -> &str {
        path.rsplit('/').next().unwrap_or(path)
    }
}

/// Why a znode's content was refused.
#[derive(Debug, Error, PartialEq)]
pub enum ContractError {
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is not UTF-8 JSON")]
    NotUtf8 { what: &'static str },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("invalid id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
}

/// Parses JSON znode data with errors that say which znode kind was wrong and why.
pub fn parse_json<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    data: &[u8],
    limit: usize,
) -> Result<T, ContractError> {
    if data.is_empty() {
        return Err(ContractError::Empty { what });
    }
    if data.len() > limit {
        return Err(ContractError::TooLarge {
            what,
            size: data.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(data).map_err(|_| ContractError::NotUtf8 { what })?;
    serde_json::from_str(text).map_err(|e| ContractError::Malformed {
        what,
        reason: e.to_string(),
    })
}

/// Validates a task, worker or client id (one znode name, safe in paths and logs).
pub fn validate_id(id: &str) -> Result<(), ContractError> {
    let bad = |reason| {
        Err(ContractError::InvalidId {
            id: id.chars().take(64).collect(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_TASK_ID_LEN {
        return bad("longer than 128 characters");
    }
    if id.starts_with('.') {
        return bad("starts with a dot");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

/// The life of a task as recorded in `/tasks/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum TaskState {
    /// Submitted, waiting for a worker.
    Queued,
    /// Handed to `worker` by the master of `epoch`. (A finished task has no record: the
    /// transaction that writes its result deletes it.)
    Assigned,
}

/// Data of `/tasks/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// The master writes `worker` and `epoch` with every assignment.
#[schemars(extend(
    "if" = {"properties": {"state": {"const": "assigned"}}, "required": ["state"]},
    "then" = {
        "required": ["worker", "epoch"],
        "properties": {"worker": {"type": "string"}, "epoch": {"type": "integer"}}
    }
))]
pub struct TaskRecord {
    /// The submitting client's id (informational; ownership is the znode's ephemeral owner).
    // Shared: a master holding a deep backlog keeps one copy per client, not one per task.
    #[schemars(pattern(ID_PATTERN))]
    pub client: std::sync::Arc<str>,
    pub state: TaskState,
    /// How many times the task has been assigned (1 for the first run).
    #[serde(default)]
    pub attempt: u32,
    /// The worker it was last assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub worker: Option<String>,
    /// The assigning master's election epoch (its candidate's sequence number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// Milliseconds since the Unix epoch at submission (for latency figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_ms: Option<u64>,
    /// The task's own time limit, when it states one (written by the client): the master takes
    /// an assignment back when this plus a grace period has passed without a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When the current assignment was made (written by the master with the assignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_ms: Option<u64>,
}

impl TaskRecord {
    pub fn queued(client: &str, submitted_ms: u64) -> Self {
        Self {
            client: client.into(),
            state: TaskState::Queued,
            attempt: 0,
            worker: None,
            epoch: None,
            submitted_ms: Some(submitted_ms),
            timeout_ms: None,
            assigned_ms: None,
        }
    }

    /// The same record with the task's own time limit.
    pub fn with_timeout(self, timeout_ms: Option<u64>) -> Self {
        Self { timeout_ms, ..self }
    }

    pub fn parse(data: &[u8]) -> Result<Self, ContractError> {
        parse_json("task record", data, MAX_RECORD_BYTES)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("task record serializes")
    }

    /// The record after the master hands it to `worker`.
    pub fn assigned(&self, worker: &str, epoch: i64) -> Self {
        Self {
            state: TaskState::Assigned,
            attempt: self.attempt + 1,
            worker: Some(worker.to_string()),
            epoch: Some(epoch),
            ..self.clone()
        }
    }

    /// The record after the master took an assignment back: queued again, its attempt kept
    /// (the next assignment counts the next attempt).
    pub fn taken_back(&self) -> Self {
        Self {
            state: TaskState::Queued,
            worker: None,
            epoch: None,
            assigned_ms: None,
            ..self.clone()
        }
    }
}

/// The outcome of a task: a value or an error, both delivered to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// What every writer does: a success carries its value, a failure its error.
#[schemars(extend(
    "if" = {"properties": {"ok": {"const": true}}, "required": ["ok"]},
    "then" = {"required": ["value"]},
    "else" = {"required": ["error"], "properties": {"error": {"type": "string"}}}
))]
pub struct TaskResult {
    pub ok: bool,
    /// The task's value (when ok; a failed `exec` task carries its output too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Why it failed (when not ok); at most 4,096 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ERROR_BYTES))]
    pub error: Option<String>,
    /// The worker that produced it (absent when the master failed the task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub worker: Option<String>,
    /// The assignment that produced it.
    #[serde(default)]
    pub attempt: u32,
    /// Execution time on the worker, in milliseconds.
    #[serde(default)]
    pub run_ms: u64,
}

impl TaskResult {
    /// Parses `/data/<id>` at version 1 or more (the result; version 0 is the payload).
    pub fn parse(data: &[u8]) -> Result<Self, ContractError> {
        parse_json("task result", data, MAX_RESULT_RECORD_BYTES)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("task result serializes")
    }

    pub fn success(value: serde_json::Value, worker: &str, attempt: u32, run_ms: u64) -> Self {
        let r = Self {
            ok: true,
            value: Some(value),
            error: None,
            worker: Some(worker.into()),
            attempt,
            run_ms,
        };
        r.within_limit()
    }

    pub fn failure(error: impl Into<String>, worker: Option<&str>, attempt: u32, run_ms: u64) -> Self {
        let mut error: String = error.into();
        if error.len() > MAX_ERROR_BYTES {
            let mut cut = MAX_ERROR_BYTES;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
        }
        Self {
            ok: false,
            value: None,
            error: Some(error),
            worker: worker.map(Into::into),
            attempt,
            run_ms,
        }
    }

    /// A failed result that carries a value too (an `exec` task's output).
    pub fn failure_with(self, value: Option<serde_json::Value>) -> Self {
        Self { value, ..self }.within_limit()
    }

    /// Replaces an oversize value by an error, so a commit never exceeds the znode limit.
    fn within_limit(self) -> Self {
        let size = self
            .value
            .as_ref()
            .map(|v| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0))
            .unwrap_or(0);
        if size > MAX_RESULT_BYTES {
            let msg = format!("result of {size} bytes exceeds the {MAX_RESULT_BYTES}-byte limit");
            Self::failure(msg, self.worker.as_deref(), self.attempt, self.run_ms)
        } else {
            self
        }
    }
}

/// Data of `/workers/<id>`: `{}` when free, the assignment when busy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// An assignment is complete or bogus (see `assignment`); `"task": null` is free.
#[schemars(extend(
    "if" = {"properties": {"task": {"type": "string"}}, "required": ["task"]},
    "then" = {
        "required": ["epoch", "attempt", "task_version"],
        "properties": {
            "epoch": {"type": "integer"},
            "attempt": {"type": "integer"},
            "task_version": {"type": "integer"}
        }
    }
))]
pub struct WorkerRecord {
    /// The assigned task's id (absent when free).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub task: Option<String>,
    /// The assigning master's election epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// The task record's `attempt` after the assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Version of `/tasks/<task>` right after the assignment; the worker's commit checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_version: Option<i32>,
    /// In a free record written by a worker's commit: the task it committed, `<task>@<attempt>`.
    /// Informational; it lets a worker whose commit reply was lost tell its own commit from a
    /// withdrawal (the master frees a worker with a plain `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

/// A worker's current assignment, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub task: String,
    pub epoch: i64,
    pub attempt: u32,
    pub task_version: i32,
}

impl Assignment {
    /// What a worker's commit of this assignment leaves in its record's `last`.
    pub fn committed_marker(&self) -> String {
        format!("{}@{}", self.task, self.attempt)
    }
}

impl WorkerRecord {
    pub fn free() -> Self {
        Self::default()
    }

    pub fn assigned(a: &Assignment) -> Self {
        Self {
            task: Some(a.task.clone()),
            epoch: Some(a.epoch),
            attempt: Some(a.attempt),
            task_version: Some(a.task_version),
            last: None,
        }
    }

    /// The free record a worker's commit of `a` writes.
    pub fn free_after(a: &Assignment) -> Self {
        Self {
            last: Some(a.committed_marker()),
            ..Self::default()
        }
    }

    pub fn parse(data: &[u8]) -> Result<Self, ContractError> {
        parse_json("worker record", data, MAX_RECORD_BYTES)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("worker record serializes")
    }

    /// `Ok(None)` when free, `Ok(Some)` for a complete assignment, an error for a partial one.
    pub fn assignment(&self) -> Result<Option<Assignment>, ContractError> {
        let Some(task) = &self.task else {
            return Ok(None);
        };
        validate_id(task)?;
        match (self.epoch, self.attempt, self.task_version) {
            (Some(epoch), Some(attempt), Some(task_version)) => Ok(Some(Assignment {
                task: task.clone(),
                epoch,
                attempt,
                task_version,
            })),
            _ => Err(ContractError::Malformed {
                what: "worker record",
                reason: "an assignment needs task, epoch, attempt and task_version".into(),
            }),
        }
    }
}

/// Data of an election candidate `/master/_c_<uuid>-latch-<seq>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CandidateInfo {
    /// The master's id.
    #[schemars(pattern(ID_PATTERN))]
    pub id: String,
    /// Its process id (informational).
    #[serde(default)]
    pub pid: u32,
    /// Its host name (informational).
    #[serde(default)]
    pub host: String,
}

impl CandidateInfo {
    pub fn parse(data: &[u8]) -> Result<Self, ContractError> {
        parse_json("candidate", data, MAX_RECORD_BYTES)
    }
}

/// Data of `/status`, written by the leading master about once a second (fenced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FarmStatus {
    /// The leading master's id.
    #[schemars(pattern(ID_PATTERN))]
    pub leader: String,
    /// Its election epoch.
    pub epoch: i64,
    /// When this leader took over (ms since the Unix epoch).
    pub leader_since_ms: u64,
    /// When this was written.
    pub updated_ms: u64,
    /// Live workers (ephemeral `/workers` children).
    pub workers: u32,
    /// Workers without an assignment.
    pub free_workers: u32,
    /// Tasks waiting for a worker.
    pub pending: u32,
    /// Tasks assigned and not yet completed.
    pub running: u32,
    /// Tasks completed (committed by a worker or failed by a master) since the farm began;
    /// carried over across failovers.
    pub completed_total: u64,
    /// Number of leadership changes observed by leaders since the farm began.
    pub failovers: u64,
}

impl FarmStatus {
    pub fn parse(data: &[u8]) -> Result<Self, ContractError> {
        parse_json("farm status", data, MAX_STATUS_BYTES)
    }
}

/// The sequence number at the end of a candidate's name (its election epoch).
pub fn candidate_sequence(name: &str) -> Option<i64> {
    let digits = name.rsplit_once(paths::CANDIDATE_NAME)?.1;
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The leading candidate among `/master`'s children: the lowest sequence number. Children that
/// are not candidates are ignored.
pub fn leading_candidate(children: &[String]) -> Option<(&str, i64)> {
    children
        .iter()
        .filter_map(|c| candidate_sequence(c).map(|seq| (c.as_str(), seq)))
        .min_by_key(|(_, seq)| *seq)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["t1", "c-1a2b-00000001", "w_3.x", &"a".repeat(128)] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "sp ace", "ü", &"a".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn task_records_round_trip_through_their_states() {
        let queued = TaskRecord::queued("c1", 42);
        assert_eq!(TaskRecord::parse(&queued.to_bytes()).unwrap(), queued);
        let assigned = queued.assigned("w1", 7);
        assert_eq!(
            (assigned.state, assigned.attempt, assigned.epoch),
            (TaskState::Assigned, 1, Some(7))
        );
        let again = assigned.assigned("w2", 8);
        assert_eq!((again.attempt, again.worker.as_deref()), (2, Some("w2")));
        assert_eq!(TaskRecord::parse(&again.to_bytes()).unwrap(), again);
        // A version-1 "done" record is no state of this protocol: it reads as garbled.
        assert!(TaskRecord::parse(br#"{"client":"c","state":"done"}"#).is_err());
    }

    #[test]
    fn results_round_trip_and_a_payload_is_not_a_result() {
        let ok = TaskResult::success(serde_json::json!({"slept_ms": 5}), "w1", 2, 5);
        assert_eq!(TaskResult::parse(&ok.to_bytes()).unwrap(), ok);
        let failed = TaskResult::failure("boom", None, 3, 0);
        assert_eq!(TaskResult::parse(&failed.to_bytes()).unwrap(), failed);
        assert!(TaskResult::parse(br#"{"kind":"sleep","ms":5}"#).is_err());
    }

    #[test]
    fn garbage_znode_data_gets_a_clear_error() {
        assert_eq!(
            TaskRecord::parse(b""),
            Err(ContractError::Empty { what: "task record" })
        );
        assert_eq!(
            TaskRecord::parse(&[0xff, 0xfe]),
            Err(ContractError::NotUtf8 { what: "task record" })
        );
        let err = TaskRecord::parse(br#"{"client":"c","state":"sleeping"}"#).unwrap_err();
        assert!(err.to_string().starts_with("malformed task record"), "{err}");
        let big = vec![b' '; MAX_RESULT_BYTES + 5000];
        assert!(matches!(TaskRecord::parse(&big), Err(ContractError::TooLarge { .. })));
    }

    #[test]
    fn worker_records_distinguish_free_assigned_and_bogus() {
        assert_eq!(WorkerRecord::parse(b"{}").unwrap().assignment().unwrap(), None);
        let a = Assignment {
            task: "t1".into(),
            epoch: 3,
            attempt: 1,
            task_version: 1,
        };
        let rec = WorkerRecord::parse(&WorkerRecord::assigned(&a).to_bytes()).unwrap();
        assert_eq!(rec.assignment().unwrap(), Some(a));
        let partial = WorkerRecord::parse(br#"{"task":"t1"}"#).unwrap();
        assert!(partial.assignment().is_err());
        let bad_id = WorkerRecord::parse(br#"{"task":"../x","epoch":1,"attempt":1,"task_version":1}"#).unwrap();
        assert!(bad_id.assignment().is_err());
        assert!(WorkerRecord::parse(b"").is_err());
    }

    #[test]
    fn oversize_results_become_errors() {
        let huge = serde_json::Value::String("x".repeat(MAX_RESULT_BYTES + 1));
        let r = TaskResult::success(huge, "w", 1, 0);
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("exceeds"));
        let long_error = TaskResult::failure("é".repeat(5000), None, 1, 0);
        assert!(long_error.error.unwrap().len() <= 4096);
    }

    #[test]
    fn candidate_sequences_are_parsed_from_names() {
        assert_eq!(candidate_sequence("_c_0f7e-latch-0000000042"), Some(42));
        assert_eq!(candidate_sequence("latch-12"), None);
        assert_eq!(candidate_sequence("foreign"), None);
    }
}
