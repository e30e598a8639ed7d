//! The client role: submits tasks, waits for their results, cleans up, and reports.
//!
//! A task is two ephemeral znodes created in one multi, `/data/<id>` (payload) and `/tasks/<id>`
//! (record), owned by the client's session: a client that dies leaves nothing behind. The
//! worker's commit replaces the payload by the result and deletes the record; the client
//! watches `/data/<id>` for that one change, takes the result and deletes the znode.
//! If the session expires, its tasks vanish with it; the client opens a new session and submits
//! the tasks whose results it has not received yet again, so each result is delivered once.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt as _};
use tracing::Instrument as _;
use zookeeper_client::{Error as ZkError, EventType, MultiWriteError};

use crate::election::random_id;
use crate::metrics::{Outcome, OutcomeLabel};
use crate::protocol::{now_ms, paths, validate_id, TaskRecord, TaskResult};
use crate::task::TaskSpec;
use crate::zk::{is_connection_loss, is_terminal, timed, ZkConfig, ZkSession};

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// This client's name (default: a random one); task ids are `<client>-<n>`.
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
    /// Submit the tasks of a file instead: one JSON task per line (blank lines skipped), each
    /// checked as --task is; as many tasks as lines.
    #[arg(long, conflicts_with_all = ["task", "tasks"])]
    pub tasks_from: Option<PathBuf>,
    /// Append every delivered result to this file as one JSON line.
    #[arg(long)]
    pub results_log: Option<PathBuf>,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SubmitArgs {
    /// The task payload (JSON), e.g. '{"kind":"echo","message":"hi"}'; prints the result (JSON).
    #[arg(required = true)]
    pub task: Option<String>,
    /// Give up waiting for the result after this long.
    #[arg(long, global = true, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// When the farm is full (ZooKeeper refuses the task: the farm's admission bound): `fail`
    /// at once with exit status 75, or `wait` for room (within --timeout).
    #[arg(long, global = true, value_enum, default_value_t = WhenFull::Fail)]
    pub when_full: WhenFull,
    #[command(subcommand)]
    pub exec: Option<SubmitCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SubmitCommand {
    /// Run a command the workers declare: sends this process's stdin, prints the command's
    /// stdout and stderr as they were, and exits with its status (124 when it timed out, 128+N
    /// when killed by signal N, 125 when the farm refused or could not run it).
    Exec(SubmitExecArgs),
}

#[derive(Debug, Args)]
pub struct SubmitExecArgs {
    /// The command's name in the workers' catalogue.
    pub command: String,
    /// Arguments for the command (after `--`), checked against the catalogue's pattern.
    #[arg(last = true)]
    pub args: Vec<String>,
    /// The command's time limit (default: the catalogue's; never above it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub time_limit: Option<Duration>,
    /// Send no stdin (the default when stdin is a terminal).
    #[arg(long)]
    pub no_stdin: bool,
}

/// Exit status of `submit exec` when the farm refused the task or could not run the command.
const EXEC_REFUSED: u8 = 125;

/// Exit status of `submit` when the farm is full (sysexits' EX_TEMPFAIL: try again later).
pub const FARM_FULL_EXIT: u8 = 75;

/// What a submission does when ZooKeeper refuses it because the farm is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenFull {
    /// Retry the same create (same task id) with a capped backoff until there is room.
    Wait,
    /// Give up at once: the task was not submitted.
    Fail,
}

/// The farm refused the task: it holds as many tasks as its admission bound allows.
#[derive(Debug, thiserror::Error)]
#[error(
    "farm full: ZooKeeper refused the task (QuotaExceeded): the farm holds as many tasks as its \
     admission bound allows (`taskfarm zk init` prints it); nothing was submitted. Try again \
     later, or pass --when-full wait"
)]
pub struct FarmFull;

/// One "farm full" episode of this process at a time: logged when it starts and ends, not at
/// every refused retry.
mod full_episode {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Tasks of ours waiting for room now.
    static WAITING: AtomicUsize = AtomicUsize::new(0);
    static REFUSALS: AtomicU64 = AtomicU64::new(0);
    static STARTED: Mutex<Option<Instant>> = Mutex::new(None);
    static LAST_WARNING: Mutex<Option<Instant>> = Mutex::new(None);

    /// A task starts waiting for room.
    pub fn waiting() {
        if WAITING.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut started = STARTED.lock().unwrap();
            if started.is_none() {
                *started = Some(Instant::now());
                // At the bound, room comes and goes with every collected result: one warning
                // per minute at most.
                let mut last = LAST_WARNING.lock().unwrap();
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    *last = Some(Instant::now());
                    tracing::warn!(
                        "farm full: ZooKeeper refuses new tasks (the farm's admission bound); \
                         waiting for room (the same task ids are retried)"
                    );
                }
            }
        }
    }

    /// One refused create.
    pub fn refused() {
        REFUSALS.fetch_add(1, Ordering::Relaxed);
        crate::metrics::get().client.farm_full.inc();
    }

    /// A waiting task got in (or gave up).
    pub fn done_waiting(submitted: bool) {
        if WAITING.fetch_sub(1, Ordering::SeqCst) == 1 && submitted {
            if let Some(t0) = STARTED.lock().unwrap().take() {
                tracing::info!(
                    waited_ms = t0.elapsed().as_millis() as u64,
                    refusals = REFUSALS.swap(0, Ordering::Relaxed),
                    "the farm has room again: submitting"
                );
            }
        }
    }
}

/// Why one task's round trip stopped before a result.
#[derive(Debug)]
enum TaskError {
    /// The session ended: the task vanished with it and must be submitted again.
    SessionEnded,
    /// Something we cannot retry (e.g. an id collision with a foreign znode).
    Fatal(String),
    /// The farm is full and we were told not to wait: nothing was created.
    FarmFull,
}

/// Appends one JSON line with a single `write` of the whole line: clients sharing the file
/// (opened with O_APPEND) never interleave within a line. (`writeln!` on a file writes each
/// token of a JSON value separately.)
fn append_line(f: &mut std::fs::File, line: &serde_json::Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line)?;
    bytes.push(b'\n');
    f.write_all(&bytes)
}

/// Submits one task, waits for its result, deletes its znodes.
async fn round_trip(
    session: &ZkSession,
    client_id: &str,
    task_id: &str,
    payload: &[u8],
    time_limit_ms: Option<u64>,
    when_full: WhenFull,
) -> Result<TaskResult, TaskError> {
    submit(session, client_id, task_id, payload, time_limit_ms, when_full).await?;
    collect(session, task_id).await
}

/// Waits for a submitted task's result and deletes its znodes.
async fn collect(session: &ZkSession, task_id: &str) -> Result<TaskResult, TaskError> {
    let (result, watcher) = await_result(session, task_id).await?;
    Box::pin(cleanup(session, task_id)).await;
    // Dropped only now, when our delete has fired it: dropping an unfired watcher makes the
    // crate send a RemoveWatches request (one more request for the server).
    drop(watcher);
    Ok(result)
}

fn session_error(e: ZkError) -> TaskError {
    match e {
        ZkError::SessionExpired | ZkError::ClientClosed | ZkError::AuthFailed => TaskError::SessionEnded,
        other => TaskError::Fatal(other.to_string()),
    }
}

/// Waits until the session is connected again; `Err(SessionEnded)` if it ended.
async fn reconnected(session: &ZkSession) -> Result<(), TaskError> {
    // A short pause first: the error may precede the session's own view of the disconnection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut states = session.client.state_watcher();
    let mut state = session.client.state();
    loop {
        if is_terminal(state) {
            return Err(TaskError::SessionEnded);
        }
        if state == zookeeper_client::SessionState::SyncConnected {
            return Ok(());
        }
        state = states.changed().await;
    }
}

async fn submit(
    session: &ZkSession,
    client_id: &str,
    task_id: &str,
    payload: &[u8],
    time_limit_ms: Option<u64>,
    when_full: WhenFull,
) -> Result<(), TaskError> {
    let mut waiting = None;
    let r = submit_once(
        session,
        client_id,
        task_id,
        payload,
        time_limit_ms,
        when_full,
        &mut waiting,
    )
    .await;
    if waiting.is_some() {
        full_episode::done_waiting(r.is_ok());
    }
    r
}

/// Submits a task; over the farm's bound, waits for room (`waiting` holds the backoff) or fails.
async fn submit_once(
    session: &ZkSession,
    client_id: &str,
    task_id: &str,
    payload: &[u8],
    time_limit_ms: Option<u64>,
    when_full: WhenFull,
    waiting: &mut Option<Duration>,
) -> Result<(), TaskError> {
    let record = TaskRecord::queued(client_id, now_ms())
        .with_timeout(time_limit_ms)
        .to_bytes();
    let (task_path, data_path) = (paths::task(task_id), paths::data(task_id));
    let mut stale_waits = 0;
    loop {
        let options = session.private_ephemeral();
        let mut multi = session.client.new_multi_writer();
        multi
            .add_create(&data_path, payload, &options)
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        multi
            .add_create(&task_path, &record, &options)
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        // A request that hangs (queued while disconnected) is a connection loss too.
        let result = match tokio::time::timeout(session.request_timeout(), multi.commit()).await {
            Ok(r) => r,
            Err(_) => Err(MultiWriteError::RequestFailed {
                source: ZkError::ConnectionLoss,
            }),
        };
        match result {
            Ok(_) => return Ok(()),
            Err(MultiWriteError::OperationFailed {
                source: ZkError::NodeExists,
                ..
            }) => {
                // Ours if a previous attempt's reply was lost; ephemerals of an older session
                // of ours (expired on our side, not yet on the servers': e.g. after every
                // server restarted) go soon: wait for them; anybody else's is a collision.
                match existing(session, client_id, &task_path, &data_path).await {
                    Ok(Existing::Ours) => return Ok(()),
                    Ok(Existing::Gone) => continue,
                    Ok(Existing::Stale(path)) if stale_waits < 3 => {
                        stale_waits += 1;
                        tracing::info!(task = task_id, path, "waiting for a znode of an ended session to go");
                        wait_gone(session, &path).await?;
                        continue;
                    }
                    Ok(_) => return Err(TaskError::Fatal(format!("task id {task_id} is already taken"))),
                    Err(e) if is_connection_loss(&e) => {
                        reconnected(session).await?;
                        continue;
                    }
                    Err(e) => return Err(session_error(e)),
                }
            }
            Err(MultiWriteError::OperationFailed {
                source: ZkError::QuotaExceeded,
                ..
            }) => {
                // The farm is full: the multi created nothing. Retry the same create (same id)
                // once there is room: collected results and ended sessions make it.
                if when_full == WhenFull::Fail {
                    return Err(TaskError::FarmFull);
                }
                full_episode::refused();
                let pause = match *waiting {
                    None => {
                        full_episode::waiting();
                        Duration::from_millis(50)
                    }
                    Some(p) => (p * 2).min(MAX_FULL_BACKOFF),
                };
                *waiting = Some(pause);
                tracing::debug!(
                    task = task_id,
                    pause_ms = pause.as_millis() as u64,
                    "farm full: waiting"
                );
                crate::health::beat(); // waiting for room is not a stall
                                       // Jittered, so that clients waiting together do not retry in step.
                tokio::time::sleep(pause.mul_f64(0.5 + rand::random::<f64>() / 2.0)).await;
                continue;
            }
            Err(MultiWriteError::OperationFailed { source, .. }) => return Err(session_error(source)),
            Err(MultiWriteError::RequestFailed { source }) if is_connection_loss(&source) => {
                // Outcome unknown: reconnect, then look before trying again. The payload znode
                // tells (the record is gone once a fast task is committed; the payload, holding
                // the result, stays until we collect it).
                reconnected(session).await?;
                match timed(session.request_timeout(), session.client.check_stat(&data_path)).await {
                    Ok(Some(stat)) if stat.ephemeral_owner == session.session_id() => return Ok(()),
                    Ok(_) => continue,
                    Err(e) if is_connection_loss(&e) => continue,
                    Err(e) => return Err(session_error(e)),
                }
            }
            Err(MultiWriteError::RequestFailed { source }) => return Err(session_error(source)),
        }
    }
}

/// The longest pause between two tries of a submission the farm refused as full.
const MAX_FULL_BACKOFF: Duration = Duration::from_secs(1);

/// Who holds a task id we failed to create.
enum Existing {
    /// Our own session (a retried create whose first reply was lost).
    Ours,
    /// Gone meanwhile: try again.
    Gone,
    /// An ephemeral of another session that is ours by its record, or a lone ephemeral payload:
    /// it goes when that session ends.
    Stale(String),
    /// A foreign znode.
    Foreign,
}

async fn existing(session: &ZkSession, client_id: &str, task_path: &str, data_path: &str) -> Result<Existing, ZkError> {
    let limit = session.request_timeout();
    match timed(limit, session.client.get_data(task_path)).await {
        Ok((_, stat)) if stat.ephemeral_owner == session.session_id() => Ok(Existing::Ours),
        Ok((data, stat)) => {
            let ours = TaskRecord::parse(&data).is_ok_and(|r| *r.client == *client_id);
            Ok(if stat.ephemeral_owner != 0 && ours {
                Existing::Stale(task_path.to_string())
            } else {
                Existing::Foreign
            })
        }
        // No record: a fast task may already be committed (the commit deletes the record and
        // leaves the result in our payload znode).
        Err(ZkError::NoNode) => match timed(limit, session.client.check_stat(data_path)).await? {
            None => Ok(Existing::Gone),
            Some(stat) if stat.ephemeral_owner == session.session_id() => Ok(Existing::Ours),
            Some(stat) if stat.ephemeral_owner != 0 => Ok(Existing::Stale(data_path.to_string())),
            Some(_) => Ok(Existing::Foreign),
        },
        Err(e) => Err(e),
    }
}

/// Waits until `path` is gone, at most a few session timeouts.
async fn wait_gone(session: &ZkSession, path: &str) -> Result<(), TaskError> {
    let deadline = tokio::time::Instant::now() + session.client.session_timeout() * 3 + Duration::from_secs(1);
    loop {
        let watcher = match timed(session.request_timeout(), session.client.check_and_watch_stat(path)).await {
            Ok((None, _)) => return Ok(()),
            Ok((Some(_), watcher)) => watcher,
            Err(e) if is_connection_loss(&e) => {
                reconnected(session).await?;
                continue;
            }
            Err(e) => return Err(session_error(e)),
        };
        match tokio::time::timeout_at(deadline, watcher.changed()).await {
            Ok(event)
                if event.event_type == zookeeper_client::EventType::Session && is_terminal(event.session_state) =>
            {
                return Err(TaskError::SessionEnded)
            }
            Ok(_) => continue,
            Err(_) => return Ok(()),
        }
    }
}

/// Waits for the task's result. `/data/<id>` holds the payload at version 0 and the result
/// from version 1 on: the commit that writes it also deletes `/tasks/<id>`, so one watch on
/// the payload znode wakes us once, for the result. Also returns the watch when it has not
/// fired yet (see `round_trip`).
///
/// A client keeps thousands of these waiting, so while it waits this future holds only the
/// watch's own future: each step around it is boxed, alive only while it runs.
async fn await_result(
    session: &ZkSession,
    task_id: &str,
) -> Result<(TaskResult, Option<zookeeper_client::OneshotWatcher>), TaskError> {
    loop {
        let watcher = match Box::pin(look(session, task_id)).await? {
            Look::Done(result, watcher) => return Ok((result, Some(watcher))),
            Look::Wait(watcher) => watcher,
        };
        let event = watcher.changed().await;
        match event.event_type {
            EventType::Session if is_terminal(event.session_state) => return Err(TaskError::SessionEnded),
            EventType::NodeDataChanged => return Ok((Box::pin(read_result(session, task_id)).await?, None)),
            // Deleted (reported by the next look) or a reconnection: look again.
            _ => continue,
        }
    }
}

/// What one look at a task's payload znode found.
enum Look {
    /// The result, and the watch just set (it has not fired).
    Done(TaskResult, zookeeper_client::OneshotWatcher),
    /// No result yet: the watch fires when it is written.
    Wait(zookeeper_client::OneshotWatcher),
}

/// Reads the payload znode's version and sets a watch on it; reads the result if it is there.
async fn look(session: &ZkSession, task_id: &str) -> Result<Look, TaskError> {
    loop {
        let look = session.client.check_and_watch_stat(&paths::data(task_id));
        let (stat, watcher) = match timed(session.request_timeout(), look).await {
            Ok(x) => x,
            Err(e) if is_connection_loss(&e) => {
                reconnected(session).await?;
                continue;
            }
            Err(e) => return Err(session_error(e)),
        };
        return match stat {
            None => Err(vanished(task_id)),
            Some(stat) if stat.version >= 1 => Ok(Look::Done(read_result(session, task_id).await?, watcher)),
            Some(_) => Ok(Look::Wait(watcher)),
        };
    }
}

fn vanished(task_id: &str) -> TaskError {
    TaskError::Fatal(format!(
        "task {task_id}'s payload znode vanished (deleted by someone else)"
    ))
}

/// Reads the result from `/data/<id>`.
async fn read_result(session: &ZkSession, task_id: &str) -> Result<TaskResult, TaskError> {
    loop {
        match timed(
            session.request_timeout(),
            session.client.get_data(&paths::data(task_id)),
        )
        .await
        {
            Ok((data, _)) => {
                return TaskResult::parse(&data)
                    .map_err(|e| TaskError::Fatal(format!("task {task_id} result garbled: {e}")))
            }
            Err(e) if is_connection_loss(&e) => reconnected(session).await?,
            Err(ZkError::NoNode) => return Err(vanished(task_id)),
            Err(e) => return Err(session_error(e)),
        }
    }
}

/// Deletes the task's payload znode, which now holds the result (the commit deleted the task's
/// record); best effort: it is ephemeral and goes with the session anyway.
async fn cleanup(session: &ZkSession, task_id: &str) {
    for _ in 0..3 {
        match timed(
            session.request_timeout(),
            session.client.delete(&paths::data(task_id), None),
        )
        .await
        {
            Ok(()) | Err(ZkError::NoNode) => return,
            Err(e) if is_connection_loss(&e) => {
                if reconnected(session).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Figures for the summary.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub client: String,
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub resubmitted: u64,
    pub lost: u64,
    /// Tasks still in flight when the client was asked to stop (SIGTERM/SIGINT): withdrawn,
    /// not lost (their znodes went with the session).
    pub abandoned: u64,
    pub sessions: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub elapsed_s: f64,
    pub tasks_per_s: f64,
}

/// The value at quantile `q` (0..=1) of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs a client until its tasks are done or `shutdown` resolves (the binary passes
/// SIGTERM/SIGINT): tasks in flight then are reported as abandoned.
pub async fn run(
    config: &ZkConfig,
    args: ClientArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let mut args = args;
    let workload = match &args.tasks_from {
        None => Workload::single(TaskSpec::parse(args.task.as_bytes()).context("--task")?),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let w = Workload::from_lines(&text).with_context(|| format!("--tasks-from {}", path.display()))?;
            args.tasks = w.len() as u64;
            w
        }
    };
    let id = args.id.clone().unwrap_or_else(|| random_id("client"));
    validate_client_id(&id)?;
    let span = tracing::info_span!("client", client = %id);
    let limit = max_in_flight(&config.chroot, id.len() + TASK_NUMBER_SUFFIX);
    if args.concurrency > limit {
        span.in_scope(|| {
            tracing::warn!(
                requested = args.concurrency,
                limit,
                "--concurrency lowered: the session's tasks must stay within what ZooKeeper can remove in one transaction when the session ends"
            )
        });
        args.concurrency = limit;
    }
    drive(config, args, id, Arc::new(workload), shutdown)
        .instrument(span)
        .await
}

/// Submissions a client has in flight at once (its tasks in flight, waiting for their results,
/// may be many more). 64 pipelined multis are far more than the farm takes; with 256, a client
/// holding 10,000 tasks used 0.8 MiB more (`bench --only scaling --quick --backlogs 10000`).
const SUBMIT_WINDOW: usize = 64;

/// What a task id adds to its client id: `-<8 digits>`.
const TASK_NUMBER_SUFFIX: usize = 9;

/// The most tasks one session may hold at once. When a session ends, ZooKeeper removes its
/// ephemeral znodes in one transaction naming every path, and a follower refuses a transaction
/// over 2 × jute.maxbuffer (2,097,150 bytes by default): the ensemble then loses its quorum and
/// cannot load its own log again (ZOOKEEPER-4306; measured in docs/bench/zk-queue-limits.md).
/// A task is two paths, `<chroot>/tasks/<id>` and `<chroot>/data/<id>`, about
/// 21 + 2 × (chroot + id) bytes of that transaction; the budget is 1,000,000 bytes, under half.
pub fn max_in_flight(chroot: &str, task_id_len: usize) -> u64 {
    const BUDGET: usize = 1_000_000;
    let chroot = if chroot == "/" { 0 } else { chroot.len() };
    (BUDGET / (21 + 2 * chroot + 2 * task_id_len)) as u64
}

/// A client id must leave room for the task ids made from it (`<client>-<8 digits>`).
fn validate_client_id(id: &str) -> anyhow::Result<()> {
    validate_id(id).context("client id")?;
    let longest = crate::protocol::MAX_TASK_ID_LEN - 9;
    anyhow::ensure!(
        id.len() <= longest,
        "client id is {} characters; at most {longest} (task ids `<client>-<8 digits>` must stay within {})",
        id.len(),
        crate::protocol::MAX_TASK_ID_LEN
    );
    Ok(())
}

/// The payloads a client submits: task number n (from 1) carries payload (n - 1) mod len.
#[derive(Debug)]
struct Workload {
    tasks: Vec<(Arc<[u8]>, Option<u64>)>,
}

impl Workload {
    fn single(spec: TaskSpec) -> Self {
        Self {
            tasks: vec![(spec.to_bytes().into(), spec.time_limit_ms())],
        }
    }

    fn from_lines(text: &str) -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let spec = TaskSpec::parse(line.as_bytes()).with_context(|| format!("line {}", n + 1))?;
            tasks.push((spec.to_bytes().into(), spec.time_limit_ms()));
        }
        anyhow::ensure!(!tasks.is_empty(), "no tasks in the file");
        Ok(Self { tasks })
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The payload and time limit of a task id `<client>-<n>`.
    fn task(&self, task_id: &str) -> (Arc<[u8]>, Option<u64>) {
        let n: usize = task_id.rsplit('-').next().and_then(|s| s.parse().ok()).unwrap_or(1);
        let (payload, limit) = &self.tasks[n.saturating_sub(1) % self.tasks.len()];
        (payload.clone(), *limit)
    }
}

async fn drive(
    config: &ZkConfig,
    args: ClientArgs,
    id: String,
    workload: Arc<Workload>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let ready = crate::health::maybe_serve(args.health_addr, crate::role::Role::Client).await?;
    let metrics = &crate::metrics::get().client;
    let mut heartbeat = tokio::time::interval(crate::health::BEAT_INTERVAL);
    let mut log = match &args.results_log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };

    let started = Instant::now();
    let mut summary = Summary {
        client: id.clone(),
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut next_number: u64 = 0;
    // Tasks whose result we have not received (by number: task ids are `<client>-<number>`),
    // with their first submission time.
    let mut outstanding: BTreeMap<u64, Instant> = BTreeMap::new();
    let task_id = |number: u64| format!("{id}-{number:08}");
    let unlimited = args.tasks == 0;
    tokio::pin!(shutdown);
    let mut stopped = false;

    'sessions: loop {
        let session = tokio::select! {
            s = config.connect() => s?,
            _ = &mut shutdown => {
                stopped = true;
                break 'sessions;
            }
        };
        summary.sessions += 1;
        tokio::spawn(crate::role::track_session(&session));
        session.ensure_layout().await?;
        ready.send_replace(true);
        tracing::info!(session_id = format!("{:#x}", session.session_id()), "session started");
        // Polled by this task rather than spawned: a client may hold thousands in flight, and a
        // spawned task costs its own header and join entry on top of its future.
        let mut inflight = FuturesUnordered::new();
        let submitting = Arc::new(tokio::sync::Semaphore::new(SUBMIT_WINDOW));
        let shared = Arc::new(session.clone());
        let client_id: Arc<str> = id.as_str().into();
        // After an expiry, the tasks still outstanding go first.
        let mut resubmit: VecDeque<u64> = outstanding.keys().copied().collect();
        summary.resubmitted += resubmit.len() as u64;
        loop {
            while (inflight.len() as u64) < args.concurrency {
                let number = if let Some(n) = resubmit.pop_front() {
                    n
                } else if unlimited || next_number < args.tasks {
                    next_number += 1;
                    outstanding.insert(next_number, Instant::now());
                    summary.submitted += 1;
                    metrics.submitted.inc();
                    next_number
                } else {
                    break;
                };
                let task_id = task_id(number);
                // Shared, not copied (a session handle carries the farm's config and ACLs).
                let (session, client_id) = (shared.clone(), client_id.clone());
                let (payload, time_limit_ms) = workload.task(&task_id);
                let submitting = submitting.clone();
                inflight.push(async move {
                    let r = async {
                        // A window of submissions at a time, each boxed: the thousands of tasks a
                        // client may hold in flight then wait in a small state, not the submit's.
                        let permit = submitting.acquire().await.expect("never closed");
                        Box::pin(submit(
                            &session,
                            &client_id,
                            &task_id,
                            &payload,
                            time_limit_ms,
                            WhenFull::Wait,
                        ))
                        .await?;
                        drop(permit);
                        collect(&session, &task_id).await
                    };
                    let r = r.await;
                    (number, r)
                });
            }
            if inflight.is_empty() {
                drop(shared);
                session.close().await;
                break 'sessions;
            }
            let joined = tokio::select! {
                j = inflight.next() => j,
                _ = heartbeat.tick() => { crate::health::beat(); continue }
                _ = &mut shutdown => {
                    drop(inflight);
                    drop(shared);
                    session.close().await;
                    stopped = true;
                    break 'sessions;
                }
            };
            let Some((number, outcome)) = joined else { continue };
            let task_id = task_id(number);
            match outcome {
                Ok(result) => {
                    let Some(t0) = outstanding.remove(&number) else {
                        continue;
                    };
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    latencies.push(ms);
                    crate::health::beat();
                    metrics.latency.observe(ms / 1000.0);
                    let outcome = if result.ok {
                        summary.completed += 1;
                        Outcome::Ok
                    } else {
                        summary.failed += 1;
                        Outcome::Failed
                    };
                    metrics.results.get_or_create(&OutcomeLabel { outcome }).inc();
                    if let Some(f) = log.as_mut() {
                        let line =
                            serde_json::json!({"client": id, "task": task_id, "latency_ms": ms, "result": result});
                        // A result that cannot be recorded must not be dropped in silence.
                        append_line(f, &line).with_context(|| {
                            format!(
                                "cannot record the result of {task_id} in {}",
                                args.results_log
                                    .as_deref()
                                    .unwrap_or(std::path::Path::new("?"))
                                    .display()
                            )
                        })?;
                    }
                    tracing::debug!(task = task_id, ok = result.ok, latency_ms = ms, "result delivered");
                }
                Err(TaskError::SessionEnded) => {
                    tracing::warn!("session ended: submitting the outstanding tasks again in a new session");
                    ready.send_replace(false);
                    continue 'sessions;
                }
                Err(TaskError::FarmFull) => unreachable!("the client role waits when the farm is full"),
                Err(TaskError::Fatal(reason)) => {
                    tracing::error!(task = task_id, reason, "task lost");
                    outstanding.remove(&number);
                    summary.lost += 1;
                    metrics.lost.inc();
                }
            }
        }
    }
    if stopped {
        summary.abandoned = outstanding.len() as u64;
    } else {
        summary.lost += outstanding.len() as u64;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    summary.p50_ms = quantile(&latencies, 0.50);
    summary.p99_ms = quantile(&latencies, 0.99);
    summary.max_ms = latencies.last().copied().unwrap_or(0.0);
    summary.elapsed_s = started.elapsed().as_secs_f64();
    summary.tasks_per_s = (summary.completed + summary.failed) as f64 / summary.elapsed_s.max(1e-9);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", render_summary(&summary));
    }
    Ok(if summary.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The summary as a Markdown table (pastes into a report).
pub fn render_summary(s: &Summary) -> String {
    format!(
        "| client | submitted | completed | failed | lost | abandoned at stop | resubmitted | p50 ms | p99 ms | tasks/s |\n\
         |---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
        s.client,
        s.submitted,
        s.completed,
        s.failed,
        s.lost,
        s.abandoned,
        s.resubmitted,
        s.p50_ms,
        s.p99_ms,
        s.tasks_per_s
    )
}

/// `taskfarm submit`: one task, its result on stdout. Exit 0 for a success result, 3 for an
/// error result, 1 when no result came.
pub async fn submit_one(config: &ZkConfig, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let spec = match (&args.exec, &args.task) {
        (Some(SubmitCommand::Exec(exec)), _) => exec_spec(exec)?,
        (None, Some(task)) => TaskSpec::parse(task.as_bytes()).context("task")?,
        (None, None) => anyhow::bail!("give a task (JSON) or `exec NAME`"),
    };
    let result = match submit_and_wait(config, &spec, args.timeout, args.when_full).await {
        Ok(r) => r,
        Err(e) if e.downcast_ref::<FarmFull>().is_some() => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(FARM_FULL_EXIT));
        }
        Err(e) => return Err(e),
    };
    if args.exec.is_some() {
        return Ok(print_exec_result(&result));
    }
    println!("{}", serde_json::to_string(&result)?);
    Ok(if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The `exec` task of `submit exec`, with this process's stdin unless told otherwise.
fn exec_spec(exec: &SubmitExecArgs) -> anyhow::Result<TaskSpec> {
    use std::io::{IsTerminal as _, Read as _};
    let stdin = if exec.no_stdin || std::io::stdin().is_terminal() {
        None
    } else {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).context("reading stdin")?;
        Some(String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("stdin is not UTF-8 text (exec tasks carry text)"))?)
    };
    let spec = TaskSpec::Exec {
        command: exec.command.clone(),
        args: exec.args.clone(),
        stdin,
        timeout_ms: exec.time_limit.map(|d| d.as_millis().max(1) as u64),
    };
    // Through the same checks as a payload from anywhere else (size, names, limits).
    TaskSpec::parse(&spec.to_bytes()).context("exec task")
}

/// Prints an exec result as the command's own output; returns the exit status to use.
fn print_exec_result(result: &TaskResult) -> ExitCode {
    use std::io::Write as _;
    let output = result
        .value
        .as_ref()
        .and_then(|v| serde_json::from_value::<crate::exec::ExecOutput>(v.clone()).ok());
    let Some(output) = output else {
        eprintln!("taskfarm: {}", result.error.as_deref().unwrap_or("the task failed"));
        return ExitCode::from(EXEC_REFUSED);
    };
    let _ = std::io::stdout().write_all(output.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(output.stderr.as_bytes());
    for (stream, dropped) in [("stdout", output.stdout_dropped), ("stderr", output.stderr_dropped)] {
        if dropped > 0 {
            eprintln!("taskfarm: the first {dropped} bytes of {stream} were dropped (over the command's max_output)");
        }
    }
    if let Some(error) = &result.error {
        if output.timed_out || output.signal.is_some() {
            eprintln!("taskfarm: {error}");
        }
    }
    ExitCode::from(output.shell_status().clamp(0, 255) as u8)
}

/// Submits one task and waits for its result.
async fn submit_and_wait(
    config: &ZkConfig,
    spec: &TaskSpec,
    timeout: Duration,
    when_full: WhenFull,
) -> anyhow::Result<TaskResult> {
    let session = config.expecting_farm().connect().await?;
    // A farm has its layout: a chroot without one (a typo, say) is an error now, not a wait.
    for path in [paths::TASKS, paths::MASTER] {
        if timed(session.request_timeout(), session.client.check_stat(path))
            .await?
            .is_none()
        {
            session.close().await;
            return Err(crate::zk::NoFarm {
                connect: config.connect_string(),
                missing: format!("{}{path}", if config.chroot == "/" { "" } else { &config.chroot }),
            }
            .into());
        }
    }
    let id = random_id("submit");
    let task_id = format!("{id}-00000001");
    let outcome = tokio::time::timeout(
        timeout,
        round_trip(
            &session,
            &id,
            &task_id,
            &spec.to_bytes(),
            spec.time_limit_ms(),
            when_full,
        ),
    )
    .await;
    session.close().await;
    match outcome {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(TaskError::SessionEnded)) => anyhow::bail!("the ZooKeeper session expired before the result came"),
        Ok(Err(TaskError::Fatal(reason))) => anyhow::bail!("task {task_id} lost: {reason}"),
        Ok(Err(TaskError::FarmFull)) => Err(FarmFull.into()),
        Err(_) => anyhow::bail!("no result within {timeout:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A submission whose reply was lost after a fast task was already committed: the record is
    /// gone, the result waits in our own payload znode. Submitting again must take it as ours
    /// (it used to wait for "a stale znode" to go, then fail as an id collision).
    #[tokio::test]
    async fn a_resubmission_finds_its_committed_result_in_its_own_payload_znode() {
        let zk = taskfarm_harness::ZkCluster::standalone(taskfarm_harness::ZkOptions::default()).unwrap();
        let connect = format!("{}/resubmit", zk.connect_string());
        let config = ZkConfig::new(&connect, Duration::from_secs(2), Duration::from_secs(30), "").unwrap();
        let session = config.connect().await.unwrap();
        session.ensure_layout().await.unwrap();
        // What a landed submission plus a landed commit leave behind.
        let result = TaskResult::success(serde_json::json!("done"), "w1", 1, 0);
        session
            .client
            .create(&paths::data("t1"), b"{}", &session.private_ephemeral())
            .await
            .unwrap();
        session
            .client
            .set_data(&paths::data("t1"), &result.to_bytes(), None)
            .await
            .unwrap();
        let payload = TaskSpec::Sleep { ms: 0 }.to_bytes();
        let submitted = tokio::time::timeout(
            Duration::from_secs(5),
            round_trip(&session, "c1", "t1", &payload, None, WhenFull::Fail),
        )
        .await
        .expect("no waiting for our own znode to go");
        assert_eq!(submitted.unwrap(), result);
    }

    #[test]
    fn a_tasks_file_gives_each_task_its_own_payload_and_names_a_bad_line() {
        let w = Workload::from_lines("{\"kind\":\"sleep\",\"ms\":5}\n\n{\"kind\":\"echo\",\"message\":2}\n").unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w.task("c-00000001").1, Some(5));
        assert_eq!(&*w.task("c-00000002").0, br#"{"kind":"echo","message":2}"#);
        let e = Workload::from_lines("{\"kind\":\"echo\"}\n{\"kind\":\"nope\"}\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        assert!(Workload::from_lines("\n").is_err());
    }

    #[test]
    fn a_client_id_leaves_room_for_its_task_ids() {
        assert!(validate_client_id(&"c".repeat(119)).is_ok());
        let e = validate_client_id(&"c".repeat(120)).unwrap_err();
        assert!(e.to_string().contains("at most 119"), "{e}");
    }

    /// ZOOKEEPER-4306: a session of 10,000 tasks with 116-character task ids took a
    /// 3-server ensemble down when it closed (a 2.6 MB transaction); 30,000 default ones too.
    #[test]
    fn a_session_holds_no_more_tasks_than_zookeeper_can_remove_at_its_end() {
        // Random client ids (task ids of 24 characters), no chroot: the cap of 10,000 stands.
        assert_eq!(max_in_flight("/", 24), 14_492);
        // The longest ids allowed (128-character task ids), under a chroot.
        assert_eq!(max_in_flight("/farm", 128), 3_484);
        let session_end_txn = |n: u64, chroot: usize, id: usize| n as usize * (21 + 2 * chroot + 2 * id);
        assert!(session_end_txn(max_in_flight("/farm", 128), 5, 128) <= 1_000_000);
        assert!(session_end_txn(10_000, 5, 128) > 2_097_150, "what the cap prevents");
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }
}
