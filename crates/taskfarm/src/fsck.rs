//! `taskfarm zk fsck`: reads a farm's tree and reports every znode that breaks the contract
//! (PROTOCOL.md, docs/schema/), changing nothing.
//!
//! The checks are pure ([`check`] on a [`Tree`], and [`record_problems`] on one znode's data);
//! the I/O layer at the end only reads the tree. A live farm passes through states that look
//! broken for a moment (a commit lands between two of our reads, a master is about to repair a
//! worker), so when the first read finds anything, the tree is read again after a settle time
//! and only findings that are still there, on the same znode version, are reported.

use std::collections::BTreeMap;
use std::fmt;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use zookeeper_client::Error as ZkError;

use crate::protocol::{
    parse_json, paths, validate_id, CandidateInfo, ContractError, FarmStatus, TaskRecord, TaskResult, TaskState,
    WorkerRecord, MAX_ERROR_BYTES, MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES, MAX_RESULT_RECORD_BYTES, MAX_STATUS_BYTES,
};
use crate::task::TaskSpec;
use crate::zk::{timed, ZkConfig, ZkSession};

/// One znode as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Znode {
    pub data: Vec<u8>,
    pub version: i32,
    /// The owning session (0: persistent).
    pub ephemeral_owner: i64,
}

impl Znode {
    fn ephemeral(&self) -> bool {
        self.ephemeral_owner != 0
    }
}

/// A layout znode and its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dir {
    pub node: Znode,
    pub children: BTreeMap<String, Child>,
}

/// A child of a layout znode (a candidate, task, payload or worker).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Child {
    pub node: Znode,
    /// Its own children's names (the contract gives it none).
    pub children: Vec<String>,
}

/// What fsck reads of a farm: the root's children, and each layout znode two levels deep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// ZooKeeper's real root, where `/zookeeper` is the server's own (no chroot).
    pub real_root: bool,
    pub top: Vec<String>,
    /// The layout znodes that exist, by path.
    pub layout: BTreeMap<&'static str, Dir>,
}

impl Tree {
    /// How many znodes were read.
    pub fn znodes(&self) -> usize {
        1 + self.layout.values().map(|d| 1 + d.children.len()).sum::<usize>()
    }

    fn child(&self, dir: &str, name: &str) -> Option<&Child> {
        self.layout.get(dir)?.children.get(name)
    }
}

/// One problem with one znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub problem: String,
    /// Set when a working farm repairs or finishes this on its own (what does): reported only
    /// because it outlasted the settle time.
    pub transient: Option<&'static str>,
    /// The znode's version when judged (-1: absent), so that a second read tells a state that
    /// persists from the same words about a newer one.
    pub version: i32,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)?;
        if let Some(why) = self.transient {
            write!(f, " [transient: {why}]")?;
        }
        Ok(())
    }
}

/// The kinds of znode data the contract defines (docs/schema/ has one file each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Task,
    Worker,
    Status,
    Candidate,
    Payload,
    Result,
}

const MASTER_CLEARS: &str = "a leading master clears such a worker within about a second; is one running?";
const MASTER_REASSIGNS: &str =
    "a leading master re-assigns it to a free worker at once; is one running, or is that worker quarantined?";

/// Every problem of the tree, in path order.
pub fn check(tree: &Tree) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut report = |path: &str, version: i32, problem: String, transient: Option<&'static str>| {
        out.push(Finding {
            path: path.to_string(),
            problem,
            transient,
            version,
        })
    };
    for name in &tree.top {
        let path = format!("/{name}");
        let ours = paths::LAYOUT.contains(&path.as_str()) || (tree.real_root && name == "zookeeper");
        if !ours {
            report(
                &path,
                -1,
                "foreign znode: not part of the farm's layout (PROTOCOL.md §2)".into(),
                None,
            );
        }
    }
    for path in paths::LAYOUT {
        let Some(dir) = tree.layout.get(path) else {
            report(
                path,
                -1,
                "missing (every role creates it at start; `taskfarm zk init` does too)".into(),
                None,
            );
            continue;
        };
        let v = dir.node.version;
        if dir.node.ephemeral() {
            report(path, v, "is ephemeral: the layout znodes are persistent".into(), None);
        }
        if path == paths::STATUS {
            // Empty until the first leader writes it.
            if !dir.node.data.is_empty() {
                for p in record_problems(Record::Status, &dir.node.data) {
                    report(path, v, p, None);
                }
            }
            if !dir.children.is_empty() {
                let names: Vec<_> = dir.children.keys().map(String::as_str).collect();
                report(
                    path,
                    v,
                    format!("has children ({}): it should have none", names.join(", ")),
                    None,
                );
            }
            continue;
        }
        if !dir.node.data.is_empty() {
            report(path, v, "holds data: this layout znode is empty".into(), None);
        }
        for (name, child) in &dir.children {
            let child_path = format!("{path}/{name}");
            let cv = child.node.version;
            if !child.children.is_empty() {
                report(
                    &child_path,
                    cv,
                    format!("has children ({}): it should have none", child.children.join(", ")),
                    None,
                );
            }
            match path {
                paths::MASTER => check_candidate(name, child, &mut report),
                paths::WORKERS => check_worker(tree, name, child, &mut report),
                paths::TASKS => check_task(tree, name, child, &mut report),
                _ => check_data(tree, name, child, &mut report),
            }
        }
    }
    out
}

type Report<'a> = dyn FnMut(&str, i32, String, Option<&'static str>) + 'a;

fn check_candidate(name: &str, child: &Child, report: &mut Report<'_>) {
    let path = format!("{}/{name}", paths::MASTER);
    let v = child.node.version;
    if !candidate_name().is_match(name) {
        // The election counts any name ending in `latch-` + 10 digits.
        report(
            &path,
            v,
            "foreign znode: not a candidate name (_c_<uuid>-latch-<10 digits>)".into(),
            None,
        );
        return;
    }
    if !child.node.ephemeral() {
        report(
            &path,
            v,
            "a persistent candidate: it never goes away, and while it is the lowest no master leads".into(),
            None,
        );
    }
    for p in record_problems(Record::Candidate, &child.node.data) {
        report(&path, v, p, None);
    }
}

fn check_worker(tree: &Tree, name: &str, child: &Child, report: &mut Report<'_>) {
    let path = paths::worker(name);
    let v = child.node.version;
    if let Some(p) = bad_name("worker", name) {
        report(&path, v, format!("{p} (the master ignores it)"), None);
    }
    if !child.node.ephemeral() {
        report(
            &path,
            v,
            "not ephemeral: not a live worker (the master ignores it)".into(),
            None,
        );
    }
    let problems = record_problems(Record::Worker, &child.node.data);
    if !problems.is_empty() {
        for p in problems {
            report(
                &path,
                v,
                format!("{p} (a live worker clears it; the master ignores it)"),
                None,
            );
        }
        return;
    }
    let Ok(Some(a)) = WorkerRecord::parse(&child.node.data).map(|r| r.assignment().ok().flatten()) else {
        return;
    };
    let Some(task) = tree.child(paths::TASKS, &a.task) else {
        report(
            &path,
            v,
            format!("its assignment names task {}, which has no record", a.task),
            Some(MASTER_CLEARS),
        );
        return;
    };
    // Judged by the master as "holds": the task's record says assigned to us, at the version
    // the assignment carries.
    let holds = match TaskRecord::parse(&task.node.data) {
        Ok(r) if r.state == TaskState::Assigned && r.worker.as_deref() == Some(name) => {
            task.node.version == a.task_version
        }
        Ok(_) => false,
        // The task record's own finding says what is wrong with it.
        Err(_) => return,
    };
    if !holds {
        report(
            &path,
            v,
            format!(
                "its assignment (task {} at version {}) is not the task's: {} is {}",
                a.task,
                a.task_version,
                paths::task(&a.task),
                describe_task(task)
            ),
            Some(MASTER_CLEARS),
        );
    }
}

fn describe_task(task: &Child) -> String {
    match TaskRecord::parse(&task.node.data) {
        Ok(r) => match (r.state, r.worker) {
            (TaskState::Assigned, Some(w)) => format!("assigned to {w} at version {}", task.node.version),
            (TaskState::Assigned, None) => format!("assigned to nobody at version {}", task.node.version),
            (TaskState::Queued, _) => format!("queued at version {}", task.node.version),
        },
        Err(_) => "not readable".into(),
    }
}

fn check_task(tree: &Tree, name: &str, child: &Child, report: &mut Report<'_>) {
    let path = paths::task(name);
    let v = child.node.version;
    if let Some(p) = bad_name("task", name) {
        report(&path, v, format!("{p} (the master never assigns it)"), None);
    }
    if !child.node.ephemeral() {
        report(
            &path,
            v,
            "persistent: a task record belongs to its client's session (ephemeral), this one outlives any client"
                .into(),
            None,
        );
    }
    match tree.child(paths::DATA, name) {
        None => report(
            &path,
            v,
            format!(
                "no payload ({} is missing): the worker it goes to commits without a result",
                paths::data(name)
            ),
            None,
        ),
        Some(data) => {
            if data.node.version >= 1 {
                // A commit writes the result and deletes the record in one transaction.
                report(
                    &path,
                    v,
                    format!(
                        "its task is complete ({} holds a result) but the record remains",
                        paths::data(name)
                    ),
                    None,
                );
            }
            if data.node.ephemeral_owner != child.node.ephemeral_owner
                && child.node.ephemeral()
                && data.node.ephemeral()
            {
                report(
                    &path,
                    v,
                    format!(
                        "owned by another session than {} (one client creates both)",
                        paths::data(name)
                    ),
                    None,
                );
            }
        }
    }
    let problems = record_problems(Record::Task, &child.node.data);
    if !problems.is_empty() {
        for p in problems {
            report(&path, v, format!("{p} (the master skips it)"), None);
        }
        return;
    }
    let Ok(record) = TaskRecord::parse(&child.node.data) else {
        return;
    };
    if record.state != TaskState::Assigned {
        return;
    }
    // An orphan (its worker gone, free, or busy with another task) is a normal state: the master
    // writes nothing until it re-assigns the task, which waits for a free worker. With one free,
    // a leading master does it at once.
    let w = record.worker.as_deref().unwrap_or_default();
    let holder = tree.child(paths::WORKERS, w);
    let problem = match holder.map(|c| WorkerRecord::parse(&c.node.data).map(|r| r.assignment())) {
        None => format!("assigned to worker {w}, which does not exist"),
        Some(Ok(Ok(Some(a)))) if a.task == name => return,
        Some(Ok(Ok(Some(a)))) => format!("assigned to worker {w}, which holds task {}", a.task),
        Some(Ok(Ok(None))) => format!("assigned to worker {w}, which is free"),
        // The worker record's own finding says what is wrong with it.
        Some(_) => return,
    };
    let free = match holder {
        Some(c) if is_free(w, c) => w,
        _ => match free_worker(tree) {
            Some(other) => other,
            // Nothing to re-assign it to: a normal wait.
            None => return,
        },
    };
    let problem = if free == w {
        problem
    } else {
        format!("{problem}, while worker {free} is free")
    };
    report(&path, v, problem, Some(MASTER_REASSIGNS));
}

/// A live worker without an assignment: what a master assigns to.
fn is_free(name: &str, worker: &Child) -> bool {
    validate_id(name).is_ok()
        && worker.node.ephemeral()
        && matches!(
            WorkerRecord::parse(&worker.node.data).map(|r| r.assignment()),
            Ok(Ok(None))
        )
}

fn free_worker(tree: &Tree) -> Option<&str> {
    let workers = &tree.layout.get(paths::WORKERS)?.children;
    workers
        .iter()
        .find(|(name, c)| is_free(name, c))
        .map(|(name, _)| name.as_str())
}

fn check_data(tree: &Tree, name: &str, child: &Child, report: &mut Report<'_>) {
    let path = paths::data(name);
    let v = child.node.version;
    if let Some(p) = bad_name("task", name) {
        report(&path, v, p, None);
    }
    if !child.node.ephemeral() {
        report(
            &path,
            v,
            "persistent: a payload belongs to its client's session (ephemeral), this one outlives any client".into(),
            None,
        );
    }
    if v == 0 {
        for p in record_problems(Record::Payload, &child.node.data) {
            report(
                &path,
                v,
                format!("{p} (a worker completes it with the error result `rejected: …`)"),
                None,
            );
        }
        if tree.child(paths::TASKS, name).is_none() {
            report(
                &path,
                v,
                format!(
                    "a payload without a task record ({} is missing): nobody runs it and its client waits for ever",
                    paths::task(name)
                ),
                None,
            );
        }
    } else {
        // Without a record it is a result its client has not collected yet: normal.
        for p in record_problems(Record::Result, &child.node.data) {
            report(&path, v, p, None);
        }
    }
}

fn candidate_name() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-latch-[0-9]{10}$")
            .expect("valid regex")
    })
}

/// What is wrong with one znode's data, by the rules of docs/schema/ (empty: nothing). The
/// typed parsers are the ones the roles use; the rest are the constraints the schemas add.
pub fn record_problems(kind: Record, data: &[u8]) -> Vec<String> {
    let (what, limit) = match kind {
        Record::Task => ("task record", MAX_RECORD_BYTES),
        Record::Worker => ("worker record", MAX_RECORD_BYTES),
        Record::Status => ("farm status", MAX_STATUS_BYTES),
        Record::Candidate => ("candidate", MAX_RECORD_BYTES),
        Record::Payload => ("task payload", MAX_PAYLOAD_BYTES),
        Record::Result => ("task result", MAX_RESULT_RECORD_BYTES),
    };
    let value: serde_json::Value = match parse_json(what, data, limit) {
        Ok(v) => v,
        Err(e) => return vec![e.to_string()],
    };
    if !value.is_object() {
        return vec![format!("malformed {what}: not a JSON object")];
    }
    if let Some(newer) = other_version(kind, &value) {
        return vec![newer];
    }
    let mut problems = Vec::new();
    let typed: Result<(), ContractError> = match kind {
        Record::Task => TaskRecord::parse(data).map(|r| {
            problems.extend(bad_id(what, "client", Some(&r.client)));
            problems.extend(bad_id(what, "worker", r.worker.as_deref()));
            if r.state == TaskState::Assigned && (r.worker.is_none() || r.epoch.is_none()) {
                problems.push(format!("{what}: an assigned task needs \"worker\" and \"epoch\""));
            }
        }),
        Record::Worker => WorkerRecord::parse(data).and_then(|r| r.assignment().map(|_| ())),
        Record::Status => FarmStatus::parse(data).map(|s| problems.extend(bad_id(what, "leader", Some(&s.leader)))),
        Record::Candidate => CandidateInfo::parse(data).map(|c| problems.extend(bad_id(what, "id", Some(&c.id)))),
        Record::Payload => TaskSpec::parse(data).map(|_| ()),
        Record::Result => TaskResult::parse(data).map(|r| {
            problems.extend(bad_id(what, "worker", r.worker.as_deref()));
            // Present in the JSON, even as null (an `echo` of null succeeds with `"value": null`).
            if r.ok && value.get("value").is_none() {
                problems.push(format!("{what}: a success needs \"value\""));
            }
            match &r.error {
                None if !r.ok => problems.push(format!("{what}: a failure needs \"error\"")),
                Some(e) if e.chars().count() > MAX_ERROR_BYTES => {
                    problems.push(format!("{what}: \"error\" is over {MAX_ERROR_BYTES} characters"))
                }
                _ => {}
            }
        }),
    };
    if let Err(e) = typed {
        problems.insert(0, e.to_string());
    }
    problems
}

/// A znode name that is not a valid id: why.
fn bad_name(kind: &str, name: &str) -> Option<String> {
    match validate_id(name) {
        Ok(()) => None,
        Err(ContractError::InvalidId { reason, .. }) => Some(format!("invalid {kind} id: {reason}")),
        Err(e) => Some(format!("invalid {kind} id: {e}")),
    }
}

fn bad_id(what: &str, field: &str, id: Option<&str>) -> Option<String> {
    match id.map(validate_id) {
        Some(Err(e)) => Some(format!("{what}: field {field:?}: {e}")),
        _ => None,
    }
}

/// A record this version does not define but another one does (PROTOCOL.md, "Compatibility"):
/// version 1's `done` task records, and the values a newer version would add (a task state, a
/// payload kind). Unknown fields are not a version: every revision may add fields.
fn other_version(kind: Record, value: &serde_json::Value) -> Option<String> {
    match kind {
        Record::Task => match value.get("state")?.as_str()? {
            "queued" | "assigned" => None,
            "done" => Some(
                "state \"done\": a record of protocol version 1 (version 1 and 2 roles must not share a farm)".into(),
            ),
            other => Some(format!(
                "unknown state {other:?}: a record of a newer protocol version, or foreign"
            )),
        },
        Record::Payload => {
            let kind = value.get("kind")?.as_str()?;
            let known = ["sleep", "cpu", "echo", "fail", "crash", "exec"];
            (!known.contains(&kind))
                .then(|| format!("unknown task kind {kind:?}: a payload of a newer protocol revision, or foreign"))
        }
        _ => None,
    }
}

// ---- I/O: reading the tree, and the command ------------------------------------------------

/// What one run found.
#[derive(Debug)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// Znodes read (of the last read).
    pub znodes: usize,
}

/// Reads the farm at `config` (creating nothing, not even its chroot) and checks it; reads
/// again after `settle` when the first read finds anything.
pub async fn check_farm(config: &ZkConfig, settle: Duration) -> anyhow::Result<Outcome> {
    let session = config.expecting_farm().connect().await?;
    let outcome = async {
        let tree = read_tree(&session).await?;
        let first = check(&tree);
        if first.is_empty() || settle.is_zero() {
            return Ok(Outcome {
                findings: first,
                znodes: tree.znodes(),
            });
        }
        tokio::time::sleep(settle).await;
        let tree = read_tree(&session).await?;
        Ok(Outcome {
            findings: persisting(&first, check(&tree)),
            znodes: tree.znodes(),
        })
    }
    .await;
    session.close().await;
    outcome
}

/// The findings of a second read that the first read made too, about the same znode version.
pub fn persisting(first: &[Finding], second: Vec<Finding>) -> Vec<Finding> {
    second.into_iter().filter(|f| first.contains(f)).collect()
}

/// Prints the findings (stdout, one line each) and a summary (stderr); the exit status: 0
/// clean, 1 problems found, 2 the check could not run.
pub fn report(outcome: anyhow::Result<Outcome>) -> ExitCode {
    match outcome {
        Ok(o) => {
            for f in &o.findings {
                println!("{f}");
            }
            if o.findings.is_empty() {
                eprintln!("fsck: {} znodes, no problems", o.znodes);
                ExitCode::SUCCESS
            } else {
                eprintln!("fsck: {} znodes, {} problems", o.znodes, o.findings.len());
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn read_tree(session: &ZkSession) -> anyhow::Result<Tree> {
    let mut tree = Tree {
        real_root: session.config.chroot == "/",
        top: list(session, "/").await?,
        layout: BTreeMap::new(),
    };
    for path in paths::LAYOUT {
        let Some(node) = read(session, path).await? else {
            continue;
        };
        let names = list(session, path).await?;
        let reads: Vec<_> = futures::stream::iter(names)
            .map(|name| async move {
                let child = format!("{path}/{name}");
                let read = match read(session, &child).await {
                    // ZooKeeper gives an ephemeral znode no children: no need to ask.
                    Ok(Some(node)) if node.ephemeral() => Ok(Some(Child {
                        node,
                        children: Vec::new(),
                    })),
                    Ok(Some(node)) => list(session, &child)
                        .await
                        .map(|children| Some(Child { node, children })),
                    other => other.map(|_| None),
                };
                (name, read)
            })
            // Pipelined: one round trip per znode would make a large farm slow to check.
            .buffered(32)
            .collect()
            .await;
        let mut children = BTreeMap::new();
        for (name, read) in reads {
            // Gone since the listing: as if never listed.
            if let Some(child) = read? {
                children.insert(name, child);
            }
        }
        tree.layout.insert(path, Dir { node, children });
    }
    Ok(tree)
}

/// A znode's data, or `None` when it does not exist.
async fn read(session: &ZkSession, path: &str) -> anyhow::Result<Option<Znode>> {
    match timed(session.request_timeout(), session.client.get_data(path)).await {
        Ok((data, stat)) => Ok(Some(Znode {
            data,
            version: stat.version,
            ephemeral_owner: stat.ephemeral_owner,
        })),
        Err(ZkError::NoNode) => Ok(None),
        Err(ZkError::NoAuth) => {
            anyhow::bail!("reading {path}: not readable without the farm's secret (--zk-secret or TASKFARM_ZK_SECRET)")
        }
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

async fn list(session: &ZkSession, path: &str) -> anyhow::Result<Vec<String>> {
    match timed(session.request_timeout(), session.client.list_children(path)).await {
        Ok(mut names) => {
            names.sort();
            Ok(names)
        }
        Err(ZkError::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("listing {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Assignment;

    const SESSION: i64 = 0x77;

    fn node(data: &[u8], version: i32, ephemeral: bool) -> Znode {
        Znode {
            data: data.to_vec(),
            version,
            ephemeral_owner: if ephemeral { SESSION } else { 0 },
        }
    }

    /// The layout of a farm with nothing in it.
    fn empty_farm() -> Tree {
        let mut tree = Tree {
            real_root: false,
            top: ["data", "master", "status", "tasks", "workers"]
                .map(String::from)
                .to_vec(),
            layout: BTreeMap::new(),
        };
        for path in paths::LAYOUT {
            tree.layout.insert(path, Dir::default());
        }
        tree
    }

    fn put(tree: &mut Tree, dir: &'static str, name: &str, z: Znode) {
        let child = Child {
            node: z,
            children: Vec::new(),
        };
        tree.layout.get_mut(dir).unwrap().children.insert(name.into(), child);
    }

    fn busy(task: &str, task_version: i32) -> Vec<u8> {
        WorkerRecord::assigned(&Assignment {
            task: task.into(),
            epoch: 7,
            attempt: 1,
            task_version,
        })
        .to_bytes()
    }

    /// A farm in a steady state: a leader, a queued task, a running one, a free and a busy
    /// worker, an uncollected result.
    fn live_farm() -> Tree {
        let mut tree = empty_farm();
        let status = FarmStatus {
            leader: "m1".into(),
            epoch: 7,
            ..Default::default()
        };
        tree.layout.get_mut(paths::STATUS).unwrap().node = node(&serde_json::to_vec(&status).unwrap(), 3, false);
        let candidate = serde_json::to_vec(&crate::election::candidate_info("m1")).unwrap();
        put(
            &mut tree,
            paths::MASTER,
            "_c_0f7e1c2a-1b2c-4d3e-8f90-123456789abc-latch-0000000007",
            node(&candidate, 0, true),
        );
        let queued = TaskRecord::queued("c1", 1);
        put(
            &mut tree,
            paths::TASKS,
            "c1-00000001",
            node(&queued.to_bytes(), 0, true),
        );
        put(
            &mut tree,
            paths::DATA,
            "c1-00000001",
            node(br#"{"kind":"sleep","ms":5}"#, 0, true),
        );
        put(
            &mut tree,
            paths::TASKS,
            "c1-00000002",
            node(&queued.assigned("w2", 7).to_bytes(), 1, true),
        );
        put(
            &mut tree,
            paths::DATA,
            "c1-00000002",
            node(br#"{"kind":"echo"}"#, 0, true),
        );
        put(&mut tree, paths::WORKERS, "w1", node(b"{}", 4, true));
        put(&mut tree, paths::WORKERS, "w2", node(&busy("c1-00000002", 1), 5, true));
        let result = TaskResult::success(serde_json::json!(null), "w1", 1, 0).to_bytes();
        put(&mut tree, paths::DATA, "c1-00000003", node(&result, 1, true));
        tree
    }

    fn problems(tree: &Tree) -> Vec<String> {
        check(tree).iter().map(|f| f.to_string()).collect()
    }

    fn assert_one(tree: &Tree, path: &str, words: &str) -> Finding {
        let found = check(tree);
        assert_eq!(found.len(), 1, "{:?}", problems(tree));
        assert_eq!(found[0].path, path);
        assert!(found[0].problem.contains(words), "{}", found[0]);
        found[0].clone()
    }

    #[test]
    fn a_farm_in_a_steady_state_is_clean() {
        assert_eq!(problems(&live_farm()), Vec::<String>::new());
        assert_eq!(problems(&empty_farm()), Vec::<String>::new());
        // ZooKeeper's own znode at the real root is not foreign.
        let mut root = empty_farm();
        root.real_root = true;
        root.top.push("zookeeper".into());
        assert_eq!(problems(&root), Vec::<String>::new());
    }

    #[test]
    fn foreign_and_missing_znodes_are_named() {
        let mut tree = live_farm();
        tree.top.push("zookeeper".into());
        assert_one(&tree, "/zookeeper", "foreign znode");
        let mut tree = live_farm();
        tree.layout.remove(paths::WORKERS);
        tree.top.retain(|t| t != "workers");
        // The busy worker is gone with it, so the running task is an orphan with no free worker.
        assert_one(&tree, "/workers", "missing");
        let mut tree = live_farm();
        tree.layout
            .get_mut(paths::TASKS)
            .unwrap()
            .children
            .get_mut("c1-00000001")
            .unwrap()
            .children = vec!["x".into()];
        assert_one(&tree, "/tasks/c1-00000001", "has children (x)");
        let mut tree = live_farm();
        put(&mut tree, paths::MASTER, "lock-0000000001", node(b"", 0, true));
        assert_one(&tree, "/master/lock-0000000001", "not a candidate name");
        let mut tree = live_farm();
        tree.layout.get_mut(paths::TASKS).unwrap().node = node(b"x", 1, false);
        assert_one(&tree, "/tasks", "holds data");
    }

    #[test]
    fn persistent_znodes_where_the_contract_wants_ephemeral_ones_are_named() {
        let mut tree = live_farm();
        put(&mut tree, paths::WORKERS, "w3", node(b"{}", 0, false));
        assert_one(&tree, "/workers/w3", "not a live worker");
        let mut tree = live_farm();
        put(
            &mut tree,
            paths::MASTER,
            "_c_00000000-0000-0000-0000-000000000000-latch-0000000001",
            node(br#"{"id":"m0"}"#, 0, false),
        );
        assert_one(
            &tree,
            "/master/_c_00000000-0000-0000-0000-000000000000-latch-0000000001",
            "persistent candidate",
        );
    }

    #[test]
    fn garbled_records_and_invalid_ids_are_named() {
        let mut tree = live_farm();
        put(&mut tree, paths::WORKERS, "w3", node(b"{garbage", 0, true));
        assert_one(&tree, "/workers/w3", "malformed worker record");
        let mut tree = live_farm();
        put(
            &mut tree,
            paths::WORKERS,
            "w3",
            node(br#"{"task":"c1-00000001"}"#, 0, true),
        );
        assert_one(&tree, "/workers/w3", "needs task, epoch, attempt and task_version");
        let mut tree = live_farm();
        let record = TaskRecord::queued("c1", 1).to_bytes();
        put(&mut tree, paths::TASKS, ".hidden", node(&record, 0, true));
        put(&mut tree, paths::DATA, ".hidden", node(br#"{"kind":"crash"}"#, 0, true));
        let found = check(&tree);
        assert_eq!(found.len(), 2, "{:?}", problems(&tree));
        assert!(
            found.iter().all(|f| f.problem.contains("invalid task id")),
            "{:?}",
            problems(&tree)
        );
        let mut tree = live_farm();
        tree.layout.get_mut(paths::STATUS).unwrap().node = node(br#"{"leader":"m1"}"#, 3, false);
        assert_one(&tree, "/status", "malformed farm status");
        let mut tree = live_farm();
        put(
            &mut tree,
            paths::DATA,
            "c1-00000004",
            node(br#"{"ok":true,"worker":"w1"}"#, 1, true),
        );
        assert_one(&tree, "/data/c1-00000004", "a success needs \"value\"");
    }

    #[test]
    fn records_of_other_protocol_versions_are_told_apart() {
        let mut tree = live_farm();
        let done = br#"{"client":"c1","state":"done","attempt":1}"#;
        tree.layout
            .get_mut(paths::TASKS)
            .unwrap()
            .children
            .get_mut("c1-00000001")
            .unwrap()
            .node = node(done, 2, true);
        assert_one(&tree, "/tasks/c1-00000001", "protocol version 1");
        let newer = br#"{"client":"c1","state":"paused"}"#;
        tree.layout
            .get_mut(paths::TASKS)
            .unwrap()
            .children
            .get_mut("c1-00000001")
            .unwrap()
            .node = node(newer, 2, true);
        assert_one(&tree, "/tasks/c1-00000001", "newer protocol version");
        let mut tree = live_farm();
        tree.layout
            .get_mut(paths::DATA)
            .unwrap()
            .children
            .get_mut("c1-00000001")
            .unwrap()
            .node = node(br#"{"kind":"teleport"}"#, 0, true);
        assert_one(&tree, "/data/c1-00000001", "unknown task kind \"teleport\"");
        // Unknown fields are not a version: every revision may add some.
        let extra = br#"{"client":"c1","state":"queued","priority":3}"#;
        let mut tree = live_farm();
        tree.layout
            .get_mut(paths::TASKS)
            .unwrap()
            .children
            .get_mut("c1-00000001")
            .unwrap()
            .node = node(extra, 2, true);
        assert_eq!(problems(&tree), Vec::<String>::new());
    }

    #[test]
    fn payloads_and_records_must_come_in_pairs_but_results_need_no_record() {
        let mut tree = live_farm();
        tree.layout.get_mut(paths::DATA).unwrap().children.remove("c1-00000001");
        assert_one(&tree, "/tasks/c1-00000001", "no payload");
        let mut tree = live_farm();
        tree.layout
            .get_mut(paths::TASKS)
            .unwrap()
            .children
            .remove("c1-00000001");
        assert_one(&tree, "/data/c1-00000001", "a payload without a task record");
        let mut tree = live_farm();
        let result = TaskResult::failure("boom", Some("w1"), 1, 0).to_bytes();
        tree.layout
            .get_mut(paths::DATA)
            .unwrap()
            .children
            .get_mut("c1-00000001")
            .unwrap()
            .node = node(&result, 1, true);
        assert_one(&tree, "/tasks/c1-00000001", "the record remains");
    }

    #[test]
    fn cross_record_findings_are_transient() {
        // A worker holding a task that has no record: the master clears it.
        let mut tree = live_farm();
        put(&mut tree, paths::WORKERS, "w3", node(&busy("gone", 1), 2, true));
        let f = assert_one(&tree, "/workers/w3", "names task gone, which has no record");
        assert!(f.transient.is_some());
        // ...or whose record is at another version.
        let mut tree = live_farm();
        put(&mut tree, paths::WORKERS, "w2", node(&busy("c1-00000002", 9), 5, true));
        assert_one(&tree, "/workers/w2", "is not the task's");
        // A running task whose worker vanished, while another is free: re-assigned at once.
        let mut tree = live_farm();
        tree.layout.get_mut(paths::WORKERS).unwrap().children.remove("w2");
        let f = assert_one(
            &tree,
            "/tasks/c1-00000002",
            "w2, which does not exist, while worker w1 is free",
        );
        assert!(f.to_string().contains("transient"), "{f}");
        // With no free worker, an orphan waiting is normal.
        tree.layout.get_mut(paths::WORKERS).unwrap().children.remove("w1");
        assert_eq!(problems(&tree), Vec::<String>::new());
    }

    #[test]
    fn only_findings_that_persist_on_the_same_version_are_kept() {
        let mut tree = live_farm();
        put(&mut tree, paths::WORKERS, "w3", node(&busy("gone", 1), 2, true));
        let first = check(&tree);
        assert_eq!(persisting(&first, check(&tree)), first);
        // The same words about a newer state of the znode are a new finding.
        put(&mut tree, paths::WORKERS, "w3", node(&busy("gone", 1), 3, true));
        assert!(persisting(&first, check(&tree)).is_empty());
    }

    #[test]
    fn record_problems_of_what_the_roles_write_are_none() {
        let queued = TaskRecord::queued("c1", 1).with_timeout(Some(5));
        for (kind, data) in [
            (Record::Task, queued.to_bytes()),
            (Record::Task, queued.assigned("w1", 3).to_bytes()),
            (Record::Task, queued.assigned("w1", 3).taken_back().to_bytes()),
            (Record::Worker, WorkerRecord::free().to_bytes()),
            (Record::Worker, busy("t1", 1)),
            (
                Record::Result,
                TaskResult::failure("x".repeat(5000), None, 3, 0).to_bytes(),
            ),
            (Record::Payload, TaskSpec::Fail { message: "m".into() }.to_bytes()),
        ] {
            assert_eq!(record_problems(kind, &data), Vec::<String>::new(), "{kind:?}");
        }
        assert!(!record_problems(Record::Task, br#"{"client":"c","state":"assigned"}"#).is_empty());
        assert!(!record_problems(Record::Candidate, br#"{"id":"bad id"}"#).is_empty());
        assert!(!record_problems(Record::Worker, b"[]").is_empty());
    }
}
