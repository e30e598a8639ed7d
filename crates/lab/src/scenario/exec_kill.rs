//! `exec-kill`: workers running real programs (examples/commands.yaml, 2 slots each) are
//! SIGKILLed while a command runs, then restarted. The farm must still deliver every task of
//! examples/exec-workload.jsonl exactly once, each with the outcome its catalogue entry gives
//! it, and no process of any command may outlive its worker or the run.
//!
//! Each worker gets a copy of the example catalogue whose commands carry an environment
//! marker `<run dir>#<worker>#<command>` ([`crate::exec::write_marked_catalogue`]), so the
//! process table shows which worker runs which command, and what is left of a run.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::Signal;
use taskfarm::exec::Catalogue;
use taskfarm::protocol::TaskResult;
use taskfarm::task::TaskSpec;

use super::{ms, Ctx, Row, Stage, LIMIT};
use crate::exec::outcome::{self, Outcome, Tally};
use crate::exec::{example, procs, write_marked_catalogue, Workload, EXAMPLE_CATALOGUE, EXAMPLE_WORKLOAD};
use crate::farm::{read_results, Role};

/// The example's command that outlives its limit: the kills aim at it, and every admitted
/// run of it must come back timed out, ended by the limit's SIGTERM.
const HANG: &str = "hang";
/// The example's flood, `yes | head -c 1000000000`: every byte must be kept or counted.
const FLOOD: &str = "flood";
const FLOOD_BYTES: u64 = 1_000_000_000;
/// The example's failing command and its exit status.
const FAIL: &str = "fail";
const FAIL_STATUS: i32 = 3;
/// How long a killed worker's commands may outlive it. The shim acts on the kernel's
/// parent-death signal at once; the bound only turns a leak into a failure.
const GONE_WITHIN: Duration = Duration::from_secs(10);
/// A worker that held the flood's gigabyte, or a good part of it, would pass this by far.
const PEAK_RSS_BOUND: u64 = 128 << 20;
/// Workers killed, one after the other, each while it runs `hang`.
const KILLS: usize = 2;

pub(super) async fn exec_kill(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let mut st = ctx.start("exec-kill", 1).await?;
    let workers: &[&str] = if ctx.quick { &["w1", "w2"] } else { &["w1", "w2", "w3"] };
    let clients: &[&str] = if ctx.quick { &["c1"] } else { &["c1", "c2"] };
    let catalogue_path = example(EXAMPLE_CATALOGUE);
    let catalogue = Catalogue::load(&catalogue_path)?;
    let workload_path = example(EXAMPLE_WORKLOAD);
    let workload = Workload::load(&workload_path)?;
    // Absolute, so that no other run's processes can match it.
    let run = std::path::absolute(&st.farm.run_dir)?.display().to_string();

    st.farm.spawn(Role::Master, "m1", &[])?;
    st.wait_status("m1 leading", |s| s.leader == "m1").await?;
    if !ctx.quick {
        st.farm.spawn(Role::Master, "m2", &[])?;
    }
    for w in workers {
        let file = st.farm.run_dir.join(format!("commands-{w}.yaml"));
        write_marked_catalogue(&catalogue_path, &file, &format!("{run}#{w}"))?;
        let args = ["--commands", &file.display().to_string(), "--slots", "2"].map(String::from);
        st.farm.spawn(Role::Worker, w, &args)?;
    }
    st.wait_workers(workers.len() * 2).await?;
    let concurrency = (workers.len() * 2).to_string();
    for c in clients {
        let args = [
            "--tasks-from",
            &workload_path.display().to_string(),
            "--concurrency",
            &concurrency,
        ]
        .map(String::from);
        st.farm.spawn(Role::Client, c, &args)?;
    }

    // Kill a worker while its `hang` runs and see its commands go; once its session has expired
    // (the master re-assigns its tasks), kill another one running `hang`. The killed stay down
    // until the last kill: the `hang` taken from the first is re-run on a worker still alive,
    // so the next kill always finds one.
    let mut killed: Vec<String> = Vec::new();
    let mut kill_notes = Vec::new();
    let mut worst_gone = Duration::ZERO;
    let mut peak = 0;
    for _ in 0..KILLS {
        let (victim, pid) = procs::wait_for(&format!("{run}#"), LIMIT, "a worker running hang", |m| {
            m.iter().filter(|p| !p.is_shim()).find_map(|p| {
                let (worker, command) = p.marker.strip_prefix(&format!("{run}#"))?.split_once('#')?;
                (command == HANG && !killed.iter().any(|k| k == worker)).then(|| (worker.to_string(), p.pid))
            })
        })
        .await?;
        peak = peak.max(procs::largest_peak_rss(&st.farm, workers.iter().copied()));
        let t0 = Instant::now();
        st.farm.signal(&victim, Signal::SIGKILL)?;
        procs::wait_gone(&format!("{run}#{victim}#"), GONE_WITHIN)
            .await
            .with_context(|| format!("{victim}'s commands after its SIGKILL"))?;
        let gone = t0.elapsed();
        worst_gone = worst_gone.max(gone);
        let slot_of_victim = |slot: &String| slot.rsplit_once('-').is_some_and(|(id, _)| id == victim);
        taskfarm::waits::children(
            &st.observer,
            "/workers",
            LIMIT,
            "the killed worker's session expiring",
            |c| (!c.iter().any(slot_of_victim)).then_some(()),
        )
        .await?;
        kill_notes.push(format!(
            "{victim} SIGKILLed while running hang (pid {pid}): all its commands' processes gone {}ms later, its slots gone from /workers after {}ms",
            ms(gone),
            ms(t0.elapsed())
        ));
        killed.push(victim);
    }
    for w in &killed {
        st.farm.restart(w)?;
    }

    let mut delivery = ctx.row(&format!("{KILLS} workers SIGKILLed while commands ran"));
    let stalled = match st.finish(&mut delivery, clients).await {
        Ok(()) => None,
        Err(e) => Some(stall(&mut st, &mut delivery, clients, e).await?),
    };
    let checked = check_results(&st, clients, &workload, &catalogue);
    delivery.recovery_ms = Some(ms(worst_gone));
    // Each kill took a running task: at least one result must come from a later attempt.
    delivery.ok &= checked.reruns >= 1 && stalled.is_none();
    delivery.notes.push_str(&format!(
        "{}{}; results from a re-run (attempt ≥ 2): {}; recovery = kill → the worker's commands all gone",
        stalled.unwrap_or_default(),
        kill_notes.join("; "),
        checked.reruns
    ));

    // Nothing of any command is left: not from the kills, the time limits or the run's end.
    let left = procs::wait_gone(&format!("{run}#"), GONE_WITHIN).await;
    peak = peak.max(procs::largest_peak_rss(&st.farm, workers.iter().copied()));
    let mut results = Row {
        zk: st.zk_label.clone(),
        submitted: checked.results,
        completed: checked.tally.count(Outcome::Ok),
        failed: checked.results - checked.tally.count(Outcome::Ok),
        ..ctx.row("results as the catalogue declares them")
    };
    let flood = checked.tally.commands.get(FLOOD).cloned().unwrap_or_default();
    let floods = flood.by_outcome.get(&Outcome::Ok).copied().unwrap_or(0);
    results.ok = checked.violations.is_empty()
        && left.is_ok()
        && peak <= PEAK_RSS_BOUND
        && checked.tally.count(Outcome::TimedOut) > 0
        && floods > 0;
    let counts: Vec<String> = Outcome::ALL
        .iter()
        .map(|&o| format!("{} {}", o.label(), checked.tally.count(o)))
        .collect();
    let verdict = if checked.violations.is_empty() {
        "each as its catalogue entry predicts: refusals as Catalogue::admit gives them, every hang timed out and ended by its SIGTERM".to_string()
    } else {
        format!("{} NOT as predicted", checked.violations.len())
    };
    results.notes = format!(
        "{}; {verdict}; flood ×{floods}: at most {} bytes of stdout kept, up to {} dropped; \
         workers' peak RSS {:.1} MiB (bound {} MiB); processes of the run's commands left at the end: {}",
        counts.join(", "),
        flood.max_stdout_kept,
        flood.max_stdout_dropped,
        peak as f64 / f64::from(1 << 20),
        PEAK_RSS_BOUND >> 20,
        match &left {
            Ok(()) => "none".to_string(),
            Err(e) => format!("{e:#}"),
        },
    );
    for v in checked.violations.iter().take(3) {
        results.notes.push_str(&format!("; e.g. {v}"));
    }
    Ok(vec![delivery, results])
}

/// A client that never finished: names the tasks it waits for, then stops the clients (they
/// report those as withdrawn) so that the rest of the run can still be checked.
async fn stall(st: &mut Stage, row: &mut Row, clients: &[&str], e: anyhow::Error) -> anyhow::Result<String> {
    let left = st.unfinished().await;
    for c in clients {
        if st.farm.exited(c).is_none() {
            st.farm.signal(c, Signal::SIGTERM)?;
        }
        st.wait_exit(c).await?;
    }
    st.tally(row, clients);
    row.zk = st.zk_label.clone();
    row.ok = false;
    Ok(format!("STALLED: {e:#}; still in /tasks: {left}; "))
}

/// What the clients' records say, checked result by result.
#[derive(Debug, Default)]
struct Checked {
    results: u64,
    tally: Tally,
    reruns: u64,
    violations: Vec<String>,
}

fn check_results(st: &Stage, clients: &[&str], workload: &Workload, catalogue: &Catalogue) -> Checked {
    let mut c = Checked::default();
    for record in clients
        .iter()
        .flat_map(|name| read_results(&st.farm.results_path(name)))
    {
        let Some((task, result)) = outcome::parse_record(&record) else {
            c.violations.push(format!("unreadable record {record}"));
            continue;
        };
        let Some(spec) = workload.task(&task) else {
            c.violations.push(format!("{task}: no such task in the workload"));
            continue;
        };
        let command = outcome::command_of(spec);
        c.results += 1;
        c.tally.add(&command, &result);
        c.reruns += u64::from(result.attempt > 1);
        if let Err(e) = expect(spec, catalogue, &result) {
            c.violations.push(format!("{task} ({command}): {e}"));
        }
    }
    c
}

/// Whether a result is what the catalogue makes of its task.
fn expect(spec: &TaskSpec, catalogue: &Catalogue, result: &TaskResult) -> Result<(), String> {
    let admitted = match crate::exec::admit(catalogue, spec).ok_or("not an exec task")? {
        Ok(a) => a,
        Err(refusal) => {
            let want = format!("refused: {refusal}");
            return match &result.error {
                Some(e) if *e == want => Ok(()),
                other => Err(format!("expected the error {want:?}, got {other:?}")),
            };
        }
    };
    let got = Outcome::of(result);
    let out = outcome::output(result).ok_or_else(|| format!("no command output (error {:?})", result.error))?;
    let limit = admitted.timeout.as_millis() as u64;
    if out.timeout_ms != limit {
        return Err(format!("ran under {} ms instead of {limit} ms", out.timeout_ms));
    }
    let fine = match admitted.spec.name.as_str() {
        // `sleep` dies of the SIGTERM the limit sends: a SIGKILL means SIGTERM never reached it.
        HANG => got == Outcome::TimedOut && out.duration_ms >= limit && out.signal.as_deref() == Some("SIGTERM"),
        FLOOD => {
            let kept = out.stdout.len() as u64;
            got == Outcome::Ok
                && kept <= admitted.spec.max_output as u64
                && out.stdout_dropped > 0
                && out.stdout_dropped + kept == FLOOD_BYTES
        }
        FAIL => got == Outcome::Failed && out.exit_code == Some(FAIL_STATUS) && !out.stderr.is_empty(),
        // The other commands are quick: they exit (0 or not) well within their limits.
        _ => out.exit_code.is_some() && !out.timed_out,
    };
    if fine {
        return Ok(());
    }
    let end = match (&out.signal, out.exit_code) {
        (Some(signal), _) => format!("killed by {signal}"),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "no exit".into(),
    };
    Err(format!(
        "{}, {end} after {} ms (limit {limit} ms), stdout {} bytes kept / {} dropped",
        got.label(),
        out.duration_ms,
        out.stdout.len(),
        out.stdout_dropped
    ))
}
