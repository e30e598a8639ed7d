//! `taskfarm scenario NAME|all`: the seed's fault scenarios, automated, and `exec-kill` (real
//! programs on workers that are killed, in [`exec_kill`]).
//!
//! Each scenario starts its own ZooKeeper, runs the roles as processes ([`LocalFarm`]), injects
//! its faults at chosen moments (waiting for events, e.g. "this worker now holds a task", rather
//! than for fixed times), checks the invariants from the clients' own records and from
//! ZooKeeper, and yields table rows. The run exits non-zero when an invariant breaks.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tracing::Instrument as _;
use zookeeper_client::EventType;

use crate::farm::{new_run_dir, read_deliveries, read_results, read_summary, LocalFarm, Role};
use taskfarm::protocol::{FarmStatus, TaskRecord, TaskState, WorkerRecord};
use taskfarm::zk::ZkSession;
use taskfarm_harness::{ZkCluster, ZkOptions};

mod exec_kill;

/// The seed's scenarios, named on the command line as the seed names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1 master, 1 worker, 1 client: the worker dies before and while executing; the client dies.
    #[value(name = "1-1-1")]
    OneOneOne,
    /// 1 master, 2 workers, 1 client: a worker dies; the other takes over its task.
    #[value(name = "1-2-1")]
    OneTwoOne,
    /// 1 master, 2 workers, 2 clients: workers compete; no task runs twice, no worker idles.
    #[value(name = "2-2-1")]
    TwoTwoOne,
    /// 2 masters, 2 workers, 2 clients: the leader dies; the backup resumes.
    #[value(name = "2-2-2")]
    TwoTwoTwo,
    /// The leader frozen longer and shorter than its session timeout.
    MasterLag,
    /// The same workload on a standalone server and on an ensemble.
    ZkCluster,
    /// ZooKeeper servers die: a follower, the leader, then two (quorum lost).
    ZkFailure,
    /// Workers running real programs (examples/commands.yaml) are SIGKILLed mid-command.
    ExecKill,
}

impl Scenario {
    async fn run(self, ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
        match self {
            Scenario::OneOneOne => one_one_one(ctx).await,
            Scenario::OneTwoOne => one_two_one(ctx).await,
            Scenario::TwoTwoOne => two_two_one(ctx).await,
            Scenario::TwoTwoTwo => two_two_two(ctx).await,
            Scenario::MasterLag => master_lag(ctx).await,
            Scenario::ZkCluster => zk_cluster(ctx).await,
            Scenario::ZkFailure => zk_failure(ctx).await,
            Scenario::ExecKill => exec_kill::exec_kill(ctx).await,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.to_possible_value().expect("no scenario is skipped");
        f.write_str(value.get_name())
    }
}

/// What to run: one scenario, or `all` of them in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    One(Scenario),
    All,
}

impl Selection {
    pub fn scenarios(self) -> Vec<Scenario> {
        match self {
            Selection::One(s) => vec![s],
            Selection::All => Scenario::value_variants().to_vec(),
        }
    }
}

/// The scenarios' own values, then `all`.
impl ValueEnum for Selection {
    fn value_variants<'a>() -> &'a [Self] {
        static VARIANTS: LazyLock<Vec<Selection>> = LazyLock::new(|| {
            let one = Scenario::value_variants().iter().map(|&s| Selection::One(s));
            one.chain([Selection::All]).collect()
        });
        &VARIANTS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            Selection::One(s) => s.to_possible_value(),
            Selection::All => Some(PossibleValue::new("all").help("Every scenario, one after the other")),
        }
    }
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// A scenario, or `all`.
    #[arg(value_enum)]
    pub name: Selection,
    /// Shorter runs (fewer tasks), as CI uses.
    #[arg(long)]
    pub quick: bool,
    /// Session timeout of the farm's roles in the scenarios (short, so expiries take seconds).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub role_session_timeout: Duration,
    /// Where logs go (default: runs/scenario-<time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Print the table as JSON lines too.
    #[arg(long)]
    pub json: bool,
}

/// One line of the evidence table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Row {
    pub scenario: String,
    pub case: String,
    pub zk: String,
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub failovers: u64,
    pub recovery_ms: Option<u64>,
    pub tasks_per_s: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub ok: bool,
    pub notes: String,
}

/// A bound on every wait: reaching it fails the scenario (it is never a measurement).
const LIMIT: Duration = Duration::from_secs(120);

pub async fn run(args: ScenarioArgs) -> anyhow::Result<ExitCode> {
    let run_dir = match &args.run_dir {
        Some(d) => d.clone(),
        None => new_run_dir("scenario")?,
    };
    let mut rows = Vec::new();
    for name in args.name.scenarios() {
        let ctx = Ctx {
            scenario: name,
            run_dir: run_dir.join(name.to_string()),
            quick: args.quick,
            session_timeout: args.role_session_timeout,
        };
        eprintln!("scenario {name}: running (logs in {})", ctx.run_dir.display());
        // Whatever the lab itself logs during a scenario says which one.
        let span = tracing::info_span!("scenario", scenario = %name);
        let result = name.run(&ctx).instrument(span).await;
        match result {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row {
                scenario: name.to_string(),
                ok: false,
                notes: format!("error: {e:#}"),
                ..Row::default()
            }),
        }
        if let Some(last) = rows.last() {
            eprintln!("scenario {name}: {}", if last.ok { "ok" } else { "FAILED" });
        }
    }
    println!("{}", render_table(&rows));
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    }
    println!("logs: {}", run_dir.display());
    Ok(if rows.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The evidence table, in Markdown.
pub fn render_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | case | zk | submitted | completed | failed | lost | duplicates | failovers | recovery ms | tasks/s | p50 ms | p99 ms | verdict | notes |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.case,
            r.zk,
            r.submitted,
            r.completed,
            r.failed,
            r.lost,
            r.duplicates,
            r.failovers,
            r.recovery_ms.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            opt(r.tasks_per_s),
            opt(r.p50_ms),
            opt(r.p99_ms),
            if r.ok { "ok" } else { "FAILED" },
            r.notes
        ));
    }
    out
}

struct Ctx {
    scenario: Scenario,
    run_dir: PathBuf,
    quick: bool,
    session_timeout: Duration,
}

impl Ctx {
    /// A row of this scenario's table.
    fn row(&self, case: &str) -> Row {
        Row {
            scenario: self.scenario.to_string(),
            case: case.into(),
            ..Row::default()
        }
    }

    fn tasks(&self, full: u64, quick: u64) -> u64 {
        if self.quick {
            quick
        } else {
            full
        }
    }

    fn zk_options(&self, case: &str) -> ZkOptions {
        ZkOptions {
            base_dir: Some(self.run_dir.join(case).join("zk")),
            ..ZkOptions::default()
        }
    }

    /// A ZooKeeper cluster (1 or 3 servers) and a farm on it, logging under `<run_dir>/<case>`.
    async fn start(&self, case: &str, servers: usize) -> anyhow::Result<Stage> {
        let options = self.zk_options(case);
        let zk = tokio::task::spawn_blocking(move || ZkCluster::with_servers(servers, options)).await??;
        let binary = taskfarm_harness::role_binary()?;
        let farm = LocalFarm::new(&zk, "/farm", &self.run_dir.join(case), &binary, self.session_timeout)?;
        let observer = farm.observer().await?;
        Ok(Stage {
            zk,
            farm,
            observer,
            zk_label: if servers == 1 {
                "standalone".into()
            } else {
                format!("{servers} servers")
            },
        })
    }
}

/// One running setup: ZooKeeper, the farm's processes, and an observer session.
/// Fields drop in order: the observer and the processes go before the servers they talk to.
struct Stage {
    observer: ZkSession,
    farm: LocalFarm,
    zk: ZkCluster,
    zk_label: String,
}

impl Stage {
    fn spawn_client(&mut self, name: &str, tasks: u64, concurrency: u64, task: &str) -> anyhow::Result<()> {
        let args = [
            "--tasks",
            &tasks.to_string(),
            "--concurrency",
            &concurrency.to_string(),
            "--task",
            task,
        ]
        .map(String::from);
        self.farm.spawn(Role::Client, name, &args)
    }

    /// Waits for a process to exit (it is expected to end by itself).
    async fn wait_exit(&mut self, name: &str) -> anyhow::Result<std::process::ExitStatus> {
        let farm = &mut self.farm;
        tokio::task::block_in_place(|| farm.wait_exit(name, LIMIT))
            .with_context(|| format!("{name} did not finish within {LIMIT:?}"))
    }

    async fn wait_workers(&self, n: usize) -> anyhow::Result<()> {
        taskfarm::waits::children(&self.observer, "/workers", LIMIT, "workers registering", |c| {
            (c.len() >= n).then_some(())
        })
        .await
    }

    /// Waits until `worker` holds a task; returns the task id.
    async fn wait_assigned(&self, worker: &str) -> anyhow::Result<String> {
        taskfarm::waits::data(
            &self.observer,
            &format!("/workers/{worker}"),
            LIMIT,
            "an assignment",
            |d| {
                WorkerRecord::parse(d?)
                    .ok()?
                    .assignment()
                    .ok()
                    .flatten()
                    .map(|a| a.task)
            },
        )
        .await
    }

    /// Waits until the task's record satisfies `check`.
    async fn wait_task<T>(
        &self,
        task: &str,
        what: &str,
        check: impl Fn(&TaskRecord) -> Option<T>,
    ) -> anyhow::Result<T> {
        taskfarm::waits::data(&self.observer, &format!("/tasks/{task}"), LIMIT, what, |d| {
            check(&TaskRecord::parse(d?).ok()?)
        })
        .await
    }

    async fn status(&self) -> Option<FarmStatus> {
        let (d, _) = self.observer.client.get_data("/status").await.ok()?;
        FarmStatus::parse(&d).ok()
    }

    async fn wait_status(&self, what: &str, check: impl Fn(&FarmStatus) -> bool) -> anyhow::Result<FarmStatus> {
        taskfarm::waits::data(&self.observer, "/status", LIMIT, what, |d| {
            let s = FarmStatus::parse(d?).ok()?;
            check(&s).then_some(s)
        })
        .await
    }

    /// m1 leading, then m2 as its backup (in that order: the first candidate leads), and workers.
    async fn leader_and_backup(&mut self, workers: &[&str]) -> anyhow::Result<()> {
        self.farm.spawn(Role::Master, "m1", &[])?;
        self.wait_status("m1 leading", |s| s.leader == "m1").await?;
        self.farm.spawn(Role::Master, "m2", &[])?;
        for w in workers {
            self.farm.spawn(Role::Worker, w, &[])?;
        }
        Ok(())
    }

    /// Waits until no task or data znode is left.
    async fn wait_clean(&self) -> anyhow::Result<()> {
        taskfarm::waits::children(&self.observer, "/tasks", LIMIT, "tasks cleaned up", |c| {
            c.is_empty().then_some(())
        })
        .await?;
        taskfarm::waits::children(&self.observer, "/data", LIMIT, "data cleaned up", |c| {
            c.is_empty().then_some(())
        })
        .await
    }

    /// Tallies the clients that ran to the end: exactly-once delivery from their own records.
    fn tally(&self, row: &mut Row, clients: &[&str]) {
        let mut latency = Vec::new();
        for c in clients {
            let d = read_deliveries(&self.farm.results_path(c));
            row.duplicates += d.duplicates;
            match read_summary(&self.farm.out_path(c)) {
                Some(s) => {
                    let submitted = s["submitted"].as_u64().unwrap_or(0);
                    // Tasks in flight when a scenario stopped an endless client are withdrawn.
                    let abandoned = s["abandoned"].as_u64().unwrap_or(0);
                    row.submitted += submitted - abandoned;
                    row.completed += s["completed"].as_u64().unwrap_or(0);
                    row.failed += s["failed"].as_u64().unwrap_or(0);
                    let distinct = d.delivered - d.duplicates;
                    row.lost += s["lost"].as_u64().unwrap_or(0) + submitted.saturating_sub(distinct + abandoned);
                    if let (Some(p50), Some(p99), Some(rate)) =
                        (s["p50_ms"].as_f64(), s["p99_ms"].as_f64(), s["tasks_per_s"].as_f64())
                    {
                        latency.push((p50, p99, rate));
                    }
                }
                None => {
                    row.lost += 1;
                    row.notes.push_str(&format!("{c} printed no summary; "));
                }
            }
        }
        if let Some(&(p50, p99, _)) = latency.first() {
            row.p50_ms = Some(p50);
            row.p99_ms = Some(p99);
            row.tasks_per_s = Some(latency.iter().map(|l| l.2).sum());
        }
        row.ok =
            row.lost == 0 && row.duplicates == 0 && row.submitted > 0 && row.completed + row.failed == row.submitted;
    }

    /// The tasks still in `/tasks`, with their state, worker and attempt (for a failure's
    /// message: which task a client still waits for, and where the farm last put it).
    async fn unfinished(&self) -> String {
        let Ok(ids) = self.observer.client.list_children("/tasks").await else {
            return "(cannot list /tasks)".into();
        };
        let mut out = Vec::new();
        for id in ids {
            let record = match self.observer.client.get_data(&format!("/tasks/{id}")).await {
                Ok((d, _)) => TaskRecord::parse(&d).ok(),
                Err(_) => None,
            };
            out.push(match record {
                Some(r) => format!(
                    "{id} ({:?} on {}, attempt {})",
                    r.state,
                    r.worker.as_deref().unwrap_or("-"),
                    r.attempt
                ),
                None => format!("{id} (gone or unreadable)"),
            });
        }
        out.join(", ")
    }

    async fn finish(&mut self, row: &mut Row, clients: &[&str]) -> anyhow::Result<()> {
        for c in clients {
            self.wait_exit(c).await?;
        }
        self.tally(row, clients);
        row.failovers = self.status().await.map(|s| s.failovers).unwrap_or(0);
        row.zk = self.zk_label.clone();
        if let Err(e) = self.wait_clean().await {
            row.ok = false;
            row.notes.push_str(&format!("left behind: {e}; "));
        }
        Ok(())
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

const SLEEP_0: &str = r#"{"kind":"sleep","ms":0}"#;

/// 1 client, 1 worker, 1 master: the worker fails before executing and while executing; the
/// client fails with tasks in flight.
async fn one_one_one(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();

    // The worker dies after its assignment, before it could read it (frozen, then killed).
    let mut st = ctx.start("worker-before", 1).await?;
    st.farm.spawn(Role::Master, "m1", &[])?;
    st.farm.spawn(Role::Worker, "w1", &[])?;
    st.wait_workers(1).await?;
    st.farm.signal("w1", Signal::SIGSTOP)?;
    st.spawn_client("c1", ctx.tasks(20, 5), 2, r#"{"kind":"sleep","ms":50}"#)?;
    st.wait_assigned("w1").await?;
    let t0 = Instant::now();
    st.farm.signal("w1", Signal::SIGKILL)?;
    st.farm.restart("w1")?;
    let mut r = ctx.row("worker killed before executing");
    st.finish(&mut r, &["c1"]).await?;
    r.recovery_ms = Some(ms(t0.elapsed()));
    r.notes
        .push_str("recovery = kill → all tasks delivered (the restarted worker re-runs the orphaned task)");
    rows.push(r);

    // The worker dies while executing.
    let mut st = ctx.start("worker-during", 1).await?;
    st.farm.spawn(Role::Master, "m1", &[])?;
    st.farm.spawn(Role::Worker, "w1", &[])?;
    st.spawn_client("c1", ctx.tasks(10, 3), 1, r#"{"kind":"sleep","ms":1000}"#)?;
    let task = st.wait_assigned("w1").await?;
    let t0 = Instant::now();
    st.farm.signal("w1", Signal::SIGKILL)?;
    st.farm.restart("w1")?;
    let attempt = st
        .wait_task(&task, "the task re-assigned", |r| (r.attempt >= 2).then_some(r.attempt))
        .await?;
    let mut r = ctx.row("worker killed while executing");
    r.recovery_ms = Some(ms(t0.elapsed()));
    st.finish(&mut r, &["c1"]).await?;
    r.notes.push_str(&format!(
        "the killed task ran again as attempt {attempt}; recovery = kill → re-assigned"
    ));
    rows.push(r);

    // The client dies with tasks in flight: nothing is left behind and the worker is freed.
    let mut st = ctx.start("client-dies", 1).await?;
    st.farm.spawn(Role::Master, "m1", &[])?;
    st.farm.spawn(Role::Worker, "w1", &[])?;
    st.spawn_client("c1", 50, 5, r#"{"kind":"sleep","ms":1000}"#)?;
    st.wait_assigned("w1").await?;
    let in_flight = st.observer.client.list_children("/tasks").await?.len() as u64;
    let t0 = Instant::now();
    st.farm.signal("c1", Signal::SIGKILL)?;
    st.wait_clean().await?;
    taskfarm::waits::data(&st.observer, "/workers/w1", LIMIT, "the worker freed", |d| {
        WorkerRecord::parse(d?).ok().filter(|r| r.task.is_none()).map(|_| ())
    })
    .await?;
    rows.push(Row {
        zk: st.zk_label.clone(),
        submitted: in_flight,
        recovery_ms: Some(ms(t0.elapsed())),
        ok: true,
        notes: format!(
            "{in_flight} tasks in flight vanished with the client's session; worker freed; nothing left behind"
        ),
        ..ctx.row("client killed with tasks in flight")
    });
    Ok(rows)
}

/// 1 master, 2 workers, 1 client: a worker fails; the other takes over its task.
async fn one_two_one(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut st = ctx.start("worker-fails", 1).await?;
    st.farm.spawn(Role::Master, "m1", &[])?;
    st.farm.spawn(Role::Worker, "w1", &[])?;
    st.farm.spawn(Role::Worker, "w2", &[])?;
    st.wait_workers(2).await?;
    st.spawn_client("c1", ctx.tasks(40, 10), 2, r#"{"kind":"sleep","ms":500}"#)?;
    let task = st.wait_assigned("w1").await?;
    let t0 = Instant::now();
    st.farm.signal("w1", Signal::SIGKILL)?;
    let taken_by = st
        .wait_task(&task, "the other worker taking over", |r| {
            (r.worker.as_deref() == Some("w2") && r.state == TaskState::Assigned)
                .then(|| r.worker.clone().unwrap_or_default())
        })
        .await?;
    let mut r = ctx.row("a worker is killed while executing");
    r.recovery_ms = Some(ms(t0.elapsed()));
    st.finish(&mut r, &["c1"]).await?;
    r.notes.push_str(&format!(
        "{task} taken over by {taken_by}; recovery = kill → re-assigned (≈ session timeout)"
    ));
    Ok(vec![r])
}

/// 2 clients, 2 workers, 1 master: workers compete for tasks; no task runs twice; no worker
/// idles while tasks wait.
async fn two_two_one(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut st = ctx.start("compete", 1).await?;
    st.farm
        .spawn(Role::Master, "m1", &["--status-interval".into(), "100ms".into()])?;
    st.farm.spawn(Role::Worker, "w1", &[])?;
    st.farm.spawn(Role::Worker, "w2", &[])?;
    st.wait_workers(2).await?;
    let n = ctx.tasks(200, 60);
    st.spawn_client("c1", n, 4, r#"{"kind":"sleep","ms":20}"#)?;
    st.spawn_client("c2", n, 4, r#"{"kind":"sleep","ms":20}"#)?;
    // Sample the leader's status while both clients run: a worker free while tasks wait, seen
    // in two samples in a row, would be an idle worker.
    // A worker idle while tasks wait, in three samples in a row (300 ms), would be a scheduling
    // failure; a single sample can catch the moment between a commit and the next assignment.
    let mut idle_runs = 0;
    let mut idle_streak = 0;
    let mut samples = 0;
    let deadline = Instant::now() + LIMIT;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < deadline && !(st.farm.exited("c1").is_some() && st.farm.exited("c2").is_some()) {
        tick.tick().await;
        if let Some(s) = st.status().await {
            samples += 1;
            if s.pending > 0 && s.free_workers > 0 {
                idle_streak += 1;
                if idle_streak == 3 {
                    idle_runs += 1;
                }
            } else {
                idle_streak = 0;
            }
        }
    }
    let mut r = ctx.row("two clients, workers compete");
    st.finish(&mut r, &["c1", "c2"]).await?;
    let reruns = count_reruns(&st, &["c1", "c2"]);
    r.ok &= reruns == 0 && idle_runs == 0;
    r.notes.push_str(&format!(
        "tasks run more than once: {reruns}; status samples: {samples}; a worker idle while tasks waited for 300 ms: {idle_runs} times"
    ));
    Ok(vec![r])
}

/// Results whose attempt is above 1 (a task that ran twice) in the clients' records.
fn count_reruns(st: &Stage, clients: &[&str]) -> u64 {
    clients
        .iter()
        .flat_map(|c| read_results(&st.farm.results_path(c)))
        .filter(|v| v["result"]["attempt"].as_u64().unwrap_or(1) > 1)
        .count() as u64
}

/// 2 masters, 2 workers, 2 clients: the leader fails (SIGTERM, then SIGKILL); the backup
/// resumes the job; every task is done.
async fn two_two_two(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let mut st = ctx
            .start(&format!("leader-{}", signal.as_str().to_lowercase()), 1)
            .await?;
        st.leader_and_backup(&["w1", "w2"]).await?;
        let n = ctx.tasks(300, 100);
        st.spawn_client("c1", n, 4, r#"{"kind":"sleep","ms":10}"#)?;
        st.spawn_client("c2", n, 4, r#"{"kind":"sleep","ms":10}"#)?;
        let before = st.wait_status("progress", |s| s.completed_total >= n / 4).await?;
        let t0 = Instant::now();
        st.farm.signal("m1", signal)?;
        let after = st.wait_status("the backup leading", |s| s.leader == "m2").await?;
        let recovery = t0.elapsed();
        let mut r = ctx.row(&format!("leader {}", signal.as_str()));
        st.finish(&mut r, &["c1", "c2"]).await?;
        r.recovery_ms = Some(ms(recovery));
        r.ok &= after.epoch > before.epoch;
        r.notes.push_str(&format!(
            "epoch {} → {}; recovery = kill → new leader's first status write",
            before.epoch, after.epoch
        ));
        rows.push(r);
    }
    Ok(rows)
}

/// The leader is frozen longer than its session timeout (fenced, steps down, rejoins), and
/// shorter (a stall, no failover).
async fn master_lag(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();

    let mut st = ctx.start("long-freeze", 1).await?;
    st.leader_and_backup(&["w1", "w2"]).await?;
    let n = ctx.tasks(300, 100);
    st.spawn_client("c1", n, 4, r#"{"kind":"sleep","ms":10}"#)?;
    let before = st.wait_status("progress", |s| s.completed_total >= n / 5).await?;
    let t0 = Instant::now();
    st.farm.signal("m1", Signal::SIGSTOP)?;
    let after = st.wait_status("the backup leading", |s| s.leader == "m2").await?;
    let recovery = t0.elapsed();
    // Let the new leader work a little while the old one is still frozen (unless the work was
    // already all done), then resume it.
    st.wait_status("progress under the new leader", |s| {
        s.completed_total > after.completed_total || (s.pending == 0 && s.running == 0)
    })
    .await?;
    st.farm.signal("m1", Signal::SIGCONT)?;
    let mut r = ctx.row("leader frozen > session timeout");
    st.finish(&mut r, &["c1"]).await?;
    let log = std::fs::read_to_string(st.farm.log_path("m1")).unwrap_or_default();
    let stepped_down = log
        .lines()
        .any(|l| l.contains("no longer leading") || l.contains("session ended"));
    let assigned_after = log
        .lines()
        .skip_while(|l| !l.contains("no longer leading"))
        .filter(|l| l.contains("\"assigned\""))
        .count();
    let line = taskfarm::waits::children(&st.observer, "/master", LIMIT, "m1 rejoining", |c| {
        (c.len() == 2).then(|| c.to_vec())
    })
    .await?;
    r.ok &= stepped_down && assigned_after == 0 && after.epoch > before.epoch && line.len() == 2;
    r.recovery_ms = Some(ms(recovery));
    r.notes.push_str(&format!(
        "m1 frozen {}ms; m2 took over (epoch {} → {}); m1 on resume: stepped down = {stepped_down}, assignments after = {assigned_after}, rejoined at the back",
        ms(recovery), before.epoch, after.epoch
    ));
    rows.push(r);

    // A freeze shorter than the session timeout: the session survives, no failover.
    let mut st = ctx.start("short-freeze", 1).await?;
    st.leader_and_backup(&["w1"]).await?;
    st.spawn_client("c1", n, 2, r#"{"kind":"sleep","ms":10}"#)?;
    let before = st.wait_status("progress", |s| s.completed_total >= n / 5).await?;
    let freeze = ctx.session_timeout / 3;
    st.farm.signal("m1", Signal::SIGSTOP)?;
    // The freeze itself is the fault being injected: a fixed duration is the point here.
    tokio::time::sleep(freeze).await;
    st.farm.signal("m1", Signal::SIGCONT)?;
    let mut r = ctx.row("leader frozen < session timeout");
    st.finish(&mut r, &["c1"]).await?;
    let end = st.status().await.unwrap_or_default();
    r.ok &= end.leader == "m1" && end.epoch == before.epoch;
    r.notes.push_str(&format!(
        "m1 frozen {}ms (session {}ms): still leader = {}, epoch unchanged = {}; assignment stalled for the freeze",
        ms(freeze),
        ms(ctx.session_timeout),
        end.leader == "m1",
        end.epoch == before.epoch
    ));
    rows.push(r);
    Ok(rows)
}

/// The same workload on a standalone server and on a 3-server ensemble.
async fn zk_cluster(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for servers in [1, 3] {
        let mut st = ctx.start(&format!("zk{servers}"), servers).await?;
        st.farm.spawn(Role::Master, "m1", &[])?;
        st.farm.spawn(Role::Master, "m2", &[])?;
        for w in 1..=4 {
            st.farm.spawn(Role::Worker, &format!("w{w}"), &[])?;
        }
        st.wait_workers(4).await?;
        let n = ctx.tasks(500, 100);
        st.spawn_client("c1", n, 16, SLEEP_0)?;
        st.spawn_client("c2", n, 16, SLEEP_0)?;
        let mut r = ctx.row("same workload (2 × sleep-0 clients, 4 workers)");
        st.finish(&mut r, &["c1", "c2"]).await?;
        rows.push(r);
    }
    if let [a, b] = &rows[..] {
        if let (Some(x), Some(y)) = (a.tasks_per_s, b.tasks_per_s) {
            let note = format!("ensemble/standalone throughput = {:.2}", y / x);
            rows[1].notes.push_str(&note);
        }
    }
    Ok(rows)
}

/// Delivery events (a client deleting a task's result znode, `/data/<id>`), from a session of
/// their own.
async fn deliveries(st: &Stage) -> anyhow::Result<(ZkSession, mpsc::UnboundedReceiver<Instant>)> {
    // A separate session: a persistent watch must not share a path with one-shot watches.
    let session = st.farm.observer().await?;
    let mut watch = taskfarm::zk::PersistentWatch::recursive(&session.client, taskfarm::protocol::paths::DATA).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let e = watch.next().await;
            if e.event_type == EventType::Session {
                if taskfarm::zk::is_terminal(e.session_state) {
                    return;
                }
                continue;
            }
            if e.event_type == EventType::NodeDeleted && tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    Ok((session, rx))
}

/// Time from `t0` to the next delivery.
async fn next_delivery(rx: &mut mpsc::UnboundedReceiver<Instant>, t0: Instant) -> anyhow::Result<Duration> {
    taskfarm::waits::within(LIMIT, "a delivery after the fault", async {
        while let Some(t) = rx.recv().await {
            if t > t0 {
                return Ok(t - t0);
            }
        }
        bail!("delivery watch ended")
    })
    .await
}

/// Kills ZooKeeper server `i`, times the next delivery, and starts the server again.
async fn kill_server_once(
    st: &mut Stage,
    i: usize,
    what: &str,
    delivered: &mut mpsc::UnboundedReceiver<Instant>,
) -> anyhow::Result<String> {
    let t0 = Instant::now();
    st.zk.stop_server(i, Signal::SIGKILL)?;
    let d = next_delivery(delivered, t0).await?;
    st.zk.start_server(i)?;
    Ok(format!("{what} zk{} killed: next delivery after {}ms", i + 1, ms(d)))
}

/// One ZooKeeper server dies (a follower, then the leader): the farm goes on. Two die: the
/// farm stalls, loses nothing, and resumes when a server returns.
async fn zk_failure(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut st = ctx.start("zk-failure", 3).await?;
    st.farm.spawn(Role::Master, "m1", &[])?;
    st.farm.spawn(Role::Master, "m2", &[])?;
    for w in 1..=3 {
        st.farm.spawn(Role::Worker, &format!("w{w}"), &[])?;
    }
    st.wait_workers(3).await?;
    let (_s, mut delivered) = deliveries(&st).await?;
    // An endless client: the faults must find work in flight however fast the machine is.
    st.spawn_client("c1", 0, 8, r#"{"kind":"sleep","ms":5}"#)?;
    next_delivery(&mut delivered, Instant::now()).await?;
    let mut notes = Vec::new();

    let follower = (0..st.zk.len())
        .find(|&i| st.zk.mode(i).as_deref() == Some("follower"))
        .context("a follower")?;
    notes.push(kill_server_once(&mut st, follower, "follower", &mut delivered).await?);
    let leader = st.zk.leader_index().context("a ZooKeeper leader")?;
    notes.push(kill_server_once(&mut st, leader, "leader", &mut delivered).await?);
    let zk = &mut st.zk;
    tokio::task::block_in_place(|| zk.wait_serving(LIMIT))?;

    // Quorum lost: two servers down.
    let down: Vec<usize> = (0..3)
        .filter(|&i| Some(i) != st.zk.leader_index())
        .take(1)
        .chain(st.zk.leader_index())
        .collect();
    let t0 = Instant::now();
    for &i in &down {
        st.zk.stop_server(i, Signal::SIGKILL)?;
    }
    // The stall is the fault: hold it for longer than the session timeout.
    let outage = ctx.session_timeout * 2;
    tokio::time::sleep(outage).await;
    for &i in &down {
        st.zk.start_server(i)?;
    }
    let zk = &mut st.zk;
    tokio::task::block_in_place(|| zk.wait_serving(LIMIT))?;
    let (_s2, mut delivered2) = deliveries(&st).await?;
    let d = next_delivery(&mut delivered2, Instant::now()).await?;
    notes.push(format!(
        "two servers down for {}ms (quorum lost): the farm stalled; first delivery {}ms after they returned",
        ms(t0.elapsed()) - ms(d),
        ms(d)
    ));
    // Stop the client (it reports the tasks still in flight as withdrawn) and check the rest.
    st.farm.signal("c1", Signal::SIGTERM)?;
    let mut r = ctx.row("follower, leader, then quorum lost");
    st.finish(&mut r, &["c1"]).await?;
    r.notes = notes.join("; ");
    Ok(vec![r])
}
