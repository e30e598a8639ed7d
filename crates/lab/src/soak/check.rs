//! The soak's invariants as pure functions over what was recorded: no I/O here, so every rule
//! is unit-tested on hand-made histories.
//!
//! What is recorded (by the driver and the checker's own ZooKeeper session):
//! - every master-made write the checker saw, with its ZooKeeper zxid and the writer's epoch
//!   (an `assigned` task record, a worker znode carrying an assignment, `/status`);
//! - every result it saw written into a task's `/data/<id>` znode, with that znode's creation
//!   time (progress);
//! - the faults the injector caused, with their time;
//! - each client incarnation's results log (one line per delivered result) and summary;
//! - the masters' `assigned` log lines (epoch and timestamp);
//! - the znodes left when everything has stopped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// A write only a leading master makes, as the checker read it back from ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedWrite {
    /// The zxid of the write (`Stat::mzxid`): ZooKeeper's total order of all writes.
    pub zxid: i64,
    /// The election epoch the write carries.
    pub epoch: i64,
    /// The znode written.
    pub path: String,
}

/// Fencing held if, in ZooKeeper's own order of writes, the epoch of master-made writes never
/// goes back: once a master of epoch E has written, no master of an older epoch writes again.
/// Two masters acting in overlapping terms would interleave their epochs.
pub fn check_fencing(writes: &[FencedWrite]) -> Vec<String> {
    let mut sorted: Vec<&FencedWrite> = writes.iter().collect();
    sorted.sort_by_key(|w| (w.zxid, w.epoch));
    sorted.dedup_by(|a, b| a.zxid == b.zxid && a.epoch == b.epoch && a.path == b.path);
    let mut violations = Vec::new();
    let mut newest: Option<&FencedWrite> = None;
    for w in sorted {
        match newest {
            Some(n) if w.epoch < n.epoch => violations.push(format!(
                "fencing: {} written by epoch {} at zxid {:#x}, after epoch {} had written {} at zxid {:#x}",
                w.path, w.epoch, w.zxid, n.epoch, n.path, n.zxid
            )),
            Some(n) if w.epoch == n.epoch => {}
            _ => newest = Some(w),
        }
    }
    violations
}

/// An `assigned` line from a master's JSON log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAssignment {
    pub master: String,
    pub epoch: i64,
    pub at_ms: u64,
    /// 1 for a task's first run; more when it runs again (its worker vanished, or a spurious
    /// re-assignment).
    pub attempt: u64,
}

/// Parses one line of a master's JSON log; `None` for anything but an `assigned` line.
pub fn parse_assigned_line(master: &str, line: &str) -> Option<LoggedAssignment> {
    if !line.contains("\"assigned\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != "assigned" {
        return None;
    }
    let epoch = v.get("epoch")?.as_i64()?;
    let at = humantime::parse_rfc3339_weak(v.get("timestamp")?.as_str()?).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(LoggedAssignment {
        master: master.to_string(),
        epoch,
        at_ms,
        attempt: v.get("attempt").and_then(|a| a.as_u64()).unwrap_or(1),
    })
}

/// A master frozen by SIGSTOP from `stop_ms` to `cont_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub master: String,
    pub stop_ms: u64,
    pub cont_ms: u64,
}

/// A frozen process executes nothing, so a line it logs right after SIGCONT (within
/// `tolerance_ms`) reports work finished before the freeze (a reply already received): such a
/// line is dated back to the moment of the SIGSTOP.
pub fn undo_freezes(lines: &mut [LoggedAssignment], freezes: &[Freeze], tolerance_ms: u64) {
    for l in lines.iter_mut() {
        if let Some(f) = freezes
            .iter()
            .find(|f| f.master == l.master && l.at_ms >= f.cont_ms && l.at_ms <= f.cont_ms.saturating_add(tolerance_ms))
        {
            l.at_ms = f.stop_ms;
        }
    }
}

/// One leadership term as the masters' own logs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub epoch: i64,
    pub master: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub assignments: u64,
}

/// Groups logged assignments into terms (one per epoch), oldest epoch first.
pub fn terms(lines: &[LoggedAssignment]) -> (Vec<Term>, Vec<String>) {
    let mut by_epoch: BTreeMap<i64, Term> = BTreeMap::new();
    let mut violations = Vec::new();
    for l in lines {
        let t = by_epoch.entry(l.epoch).or_insert_with(|| Term {
            epoch: l.epoch,
            master: l.master.clone(),
            first_ms: l.at_ms,
            last_ms: l.at_ms,
            assignments: 0,
        });
        if t.master != l.master {
            violations.push(format!(
                "epoch {} claimed by two masters: {} and {}",
                l.epoch, t.master, l.master
            ));
        }
        t.first_ms = t.first_ms.min(l.at_ms);
        t.last_ms = t.last_ms.max(l.at_ms);
        t.assignments += 1;
    }
    (by_epoch.into_values().collect(), violations)
}

/// No term may still assign after a newer term has begun. Log timestamps are taken when the
/// reply arrives, so `tolerance_ms` absorbs the scheduling delay between commit and log line.
pub fn check_terms(terms: &[Term], tolerance_ms: u64) -> Vec<String> {
    let mut violations = Vec::new();
    for (i, old) in terms.iter().enumerate() {
        for new in &terms[i + 1..] {
            if old.last_ms > new.first_ms + tolerance_ms {
                violations.push(format!(
                    "overlapping terms: epoch {} ({}) assigned until {} ms, {} ms after epoch {} ({}) began",
                    old.epoch,
                    old.master,
                    old.last_ms,
                    old.last_ms - new.first_ms,
                    new.epoch,
                    new.master
                ));
            }
        }
    }
    violations
}

/// A task seen `done` by the checker: when it saw it and when the task znode was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub observed_ms: u64,
    pub created_ms: u64,
}

/// How long after a fault the farm completed a task *submitted after the fault* (so that the
/// task had to be assigned, run and committed by the farm as it was after the fault).
/// `None` if that has not happened (yet).
pub fn recovery_ms(fault_ms: u64, progress: &[Progress]) -> Option<u64> {
    progress
        .iter()
        .filter(|p| p.created_ms >= fault_ms && p.observed_ms >= fault_ms)
        .map(|p| p.observed_ms - fault_ms)
        .min()
}

/// A commit seen for a task: the same payload znode (same creation zxid) must receive a result
/// at most once; a second result at another zxid means two commits of one task.
pub fn check_single_commit(dones: &[(String, i64, i64)]) -> Vec<String> {
    let mut first: HashMap<(&str, i64), i64> = HashMap::new();
    let mut violations = Vec::new();
    for (task, czxid, mzxid) in dones {
        match first.get(&(task.as_str(), *czxid)) {
            Some(m) if m != mzxid => violations.push(format!(
                "task {task} committed twice (done at zxid {m:#x} and {mzxid:#x})"
            )),
            Some(_) => {}
            None => {
                first.insert((task.as_str(), *czxid), *mzxid);
            }
        }
    }
    violations
}

/// One client process: a restarted client is a new incarnation with a new name (and so new
/// task ids), since the old one's tasks died with it.
#[derive(Debug, Clone, Default)]
pub struct Incarnation {
    pub name: String,
    /// How many tasks it was asked to submit.
    pub batch: u64,
    /// SIGKILL'ed or SIGTERM'ed by the injector: its outstanding tasks died with it by design.
    pub interrupted: bool,
    /// Exit status once exited: `Some(true)` for success.
    pub exit_ok: Option<bool>,
    /// Its JSON summary (`None` if it printed none).
    pub summary: Option<serde_json::Value>,
    /// Delivered results, in order: (task id, ok).
    pub deliveries: Vec<(String, bool)>,
}

/// What the clients' own records say, summed over incarnations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTally {
    pub incarnations: u64,
    pub interrupted: u64,
    /// Results delivered (distinct tasks).
    pub delivered: u64,
    pub ok: u64,
    /// Error results (poison tasks failed after too many attempts).
    pub failed: u64,
    /// Tasks of uninterrupted incarnations that never got a result.
    pub lost: u64,
    /// Tasks delivered more than once.
    pub duplicates: u64,
}

/// Exactly-once delivery for every incarnation; completeness for those that stayed alive
/// (never SIGKILL'ed or SIGTERM'ed; a SIGSTOP does not count as interruption: a frozen client
/// whose session expired must submit its outstanding tasks again and still get every result).
pub fn check_clients(incarnations: &[Incarnation]) -> (ClientTally, Vec<String>) {
    let mut t = ClientTally::default();
    let mut violations = Vec::new();
    for inc in incarnations {
        t.incarnations += 1;
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for (task, ok) in &inc.deliveries {
            let n = seen.entry(task.as_str()).or_default();
            *n += 1;
            if *n == 1 {
                t.delivered += 1;
                if *ok {
                    t.ok += 1;
                } else {
                    t.failed += 1;
                }
            } else if *n == 2 {
                t.duplicates += 1;
                violations.push(format!("{}: task {task} delivered more than once", inc.name));
            }
            if !task.starts_with(&format!("{}-", inc.name)) {
                violations.push(format!("{}: delivered a foreign task {task}", inc.name));
            }
        }
        if inc.interrupted {
            t.interrupted += 1;
            continue;
        }
        let expected: BTreeSet<String> = (1..=inc.batch).map(|n| format!("{}-{n:08}", inc.name)).collect();
        let missing = expected.iter().filter(|id| !seen.contains_key(id.as_str())).count() as u64;
        t.lost += missing;
        if missing > 0 {
            violations.push(format!(
                "{}: {missing} of its {} tasks never delivered",
                inc.name, inc.batch
            ));
        }
        match inc.exit_ok {
            None => violations.push(format!("{}: still running at the end", inc.name)),
            Some(false) => violations.push(format!("{}: exited with a failure", inc.name)),
            Some(true) => {}
        }
        match &inc.summary {
            None => violations.push(format!("{}: printed no summary", inc.name)),
            Some(s) => {
                let field = |k: &str| s.get(k).and_then(|v| v.as_u64()).unwrap_or(u64::MAX);
                if field("lost") != 0 || field("submitted") != inc.batch {
                    violations.push(format!("{}: summary disagrees: {s}", inc.name));
                }
                if field("completed").saturating_add(field("failed")) != seen.len() as u64 {
                    violations.push(format!(
                        "{}: summary counts {} results, its log {}",
                        inc.name,
                        field("completed").saturating_add(field("failed")),
                        seen.len()
                    ));
                }
            }
        }
    }
    (t, violations)
}

/// Parses a client's results log (one JSON line per delivered result).
pub fn parse_results(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["task"].as_str().unwrap_or_default().to_string(),
                v["result"]["ok"].as_bool() == Some(true),
            )
        })
        .collect()
}

/// Nothing may be left once every role has stopped: children of these znodes by parent.
pub fn check_leftovers(left: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    left.iter()
        .filter(|(_, children)| !children.is_empty())
        .map(|(parent, children)| {
            let shown: Vec<&str> = children.iter().take(5).map(String::as_str).collect();
            format!("left behind under {parent}: {} ({shown:?}…)", children.len())
        })
        .collect()
}

/// One injected fault and what followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    /// e.g. `SIGKILL master`, `SIGSTOP>session worker`, `ZooKeeper server`.
    pub kind: String,
    pub target: String,
    pub at_ms: u64,
    pub recovery_ms: Option<u64>,
}

/// Recovery must come within the bound after every fault.
pub fn check_recoveries(faults: &[FaultRecord], bound_ms: u64) -> Vec<String> {
    faults
        .iter()
        .filter_map(|f| match f.recovery_ms {
            Some(ms) if ms <= bound_ms => None,
            Some(ms) => Some(format!(
                "{} of {}: progress resumed only after {ms} ms (bound {bound_ms} ms)",
                f.kind, f.target
            )),
            None => Some(format!("{} of {}: progress never resumed", f.kind, f.target)),
        })
        .collect()
}

/// Everything the final table shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub elapsed_s: f64,
    pub faults: Vec<FaultRecord>,
    pub clients: ClientTally,
    pub fenced_writes_checked: usize,
    pub terms: usize,
    /// Assignments of a task after its first (informational: wasted work, not a violation).
    pub reassignments: u64,
    /// Results a worker could not commit because its assignment had changed (informational).
    pub discarded_results: u64,
    pub bound_ms: u64,
    pub violations: Vec<String>,
}

impl Report {
    /// The final Markdown table.
    pub fn render(&self) -> String {
        let mut by_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for f in &self.faults {
            let e = by_kind.entry(f.kind.as_str()).or_default();
            e.0 += 1;
            e.1 = e.1.max(f.recovery_ms.unwrap_or(u64::MAX));
        }
        let worst = self.faults.iter().map(|f| f.recovery_ms.unwrap_or(u64::MAX)).max();
        let ms = |v: u64| {
            if v == u64::MAX {
                "never".to_string()
            } else {
                format!("{v}")
            }
        };
        let mut s = String::new();
        let _ = writeln!(s, "| fault | injected | worst recovery (ms) |");
        let _ = writeln!(s, "|---|---|---|");
        for (kind, (n, worst)) in &by_kind {
            let _ = writeln!(s, "| {kind} | {n} | {} |", ms(*worst));
        }
        let _ = writeln!(s);
        let c = &self.clients;
        let _ = writeln!(s, "| measure | value |");
        let _ = writeln!(s, "|---|---|");
        let rows: Vec<(&str, String)> = vec![
            ("seed", self.seed.to_string()),
            ("duration (s)", format!("{:.0}", self.elapsed_s)),
            ("faults injected", self.faults.len().to_string()),
            ("tasks delivered", c.delivered.to_string()),
            ("  of which error results (poison)", c.failed.to_string()),
            (
                "client incarnations (interrupted by the injector)",
                format!("{} ({})", c.incarnations, c.interrupted),
            ),
            ("lost", c.lost.to_string()),
            ("duplicates", c.duplicates.to_string()),
            (
                "master writes checked for fencing",
                self.fenced_writes_checked.to_string(),
            ),
            ("leadership terms in the logs", self.terms.to_string()),
            ("re-assignments (attempt ≥ 2)", self.reassignments.to_string()),
            (
                "results discarded by workers (assignment changed)",
                self.discarded_results.to_string(),
            ),
            ("worst recovery (ms)", worst.map(ms).unwrap_or_else(|| "-".into())),
            ("recovery bound (ms)", self.bound_ms.to_string()),
            ("violations", self.violations.len().to_string()),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        for v in self.violations.iter().take(50) {
            let _ = writeln!(s, "\nVIOLATION: {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(zxid: i64, epoch: i64) -> FencedWrite {
        FencedWrite {
            zxid,
            epoch,
            path: format!("/tasks/t{zxid}"),
        }
    }

    #[test]
    fn fencing_accepts_epochs_that_only_grow_in_zxid_order() {
        // Recorded out of order (reads of different znodes), fine once sorted by zxid.
        assert!(check_fencing(&[w(5, 2), w(1, 1), w(3, 1), w(9, 7), w(7, 2)]).is_empty());
        assert!(check_fencing(&[]).is_empty());
    }

    #[test]
    fn fencing_catches_an_old_leader_writing_after_a_new_one() {
        let v = check_fencing(&[w(1, 1), w(2, 3), w(3, 1), w(4, 3)]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("epoch 1") && v[0].contains("after epoch 3"), "{v:?}");
    }

    fn line(epoch: i64, ts: &str) -> String {
        format!(
            r#"{{"timestamp":"{ts}","level":"INFO","message":"assigned","task":"t","worker":"w","attempt":1,"epoch":{epoch}}}"#
        )
    }

    #[test]
    fn assigned_lines_are_parsed_and_others_skipped() {
        let a = parse_assigned_line("m1", &line(4, "2026-11-25T23:22:52.250Z")).unwrap();
        assert_eq!((a.epoch, a.attempt), (4, 1));
        assert_eq!(a.at_ms % 1000, 250);
        assert!(parse_assigned_line("m1", r#"{"message":"scanned ZooKeeper","epoch":4}"#).is_none());
        assert!(parse_assigned_line("m1", "not json \"assigned\"").is_none());
        assert!(parse_assigned_line("m1", "").is_none());
    }

    fn la(master: &str, epoch: i64, at_ms: u64) -> LoggedAssignment {
        LoggedAssignment {
            master: master.into(),
            epoch,
            at_ms,
            attempt: 1,
        }
    }

    #[test]
    fn terms_in_sequence_pass_and_overlapping_terms_fail() {
        let (t, v) = terms(&[la("m1", 1, 100), la("m1", 1, 200), la("m2", 5, 300), la("m2", 5, 900)]);
        assert!(v.is_empty());
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].first_ms, t[0].last_ms, t[0].assignments), (100, 200, 2));
        assert!(check_terms(&t, 0).is_empty());

        let (t, _) = terms(&[la("m1", 1, 100), la("m2", 5, 300), la("m1", 1, 1000)]);
        assert_eq!(check_terms(&t, 250).len(), 1);
        assert!(check_terms(&t, 800).is_empty(), "within tolerance");

        let (_, v) = terms(&[la("m1", 1, 100), la("m2", 1, 300)]);
        assert_eq!(v.len(), 1, "one epoch, two masters");
    }

    #[test]
    fn a_line_logged_on_waking_up_is_dated_back_to_the_freeze() {
        // m1 leads, is frozen at 1000 until 5000; m2 takes over at 3500; on waking, m1 logs an
        // assignment whose reply it had received before the freeze.
        let mut lines = vec![
            la("m1", 1, 900),
            la("m2", 2, 3500),
            la("m1", 1, 5010),
            la("m2", 2, 5020),
        ];
        let (t, _) = terms(&lines);
        assert_eq!(check_terms(&t, 250).len(), 1);
        let freezes = [Freeze {
            master: "m1".into(),
            stop_ms: 1000,
            cont_ms: 5000,
        }];
        undo_freezes(&mut lines, &freezes, 250);
        assert_eq!(lines[2].at_ms, 1000);
        let (t, _) = terms(&lines);
        assert!(check_terms(&t, 250).is_empty());
        // Work logged well after waking up is not excused.
        let mut late = vec![la("m2", 2, 3500), la("m1", 1, 6000)];
        undo_freezes(&mut late, &freezes, 250);
        let (t, _) = terms(&late);
        assert_eq!(check_terms(&t, 250).len(), 1);
    }

    #[test]
    fn recovery_is_the_first_completion_of_a_task_submitted_after_the_fault() {
        let p = |observed_ms, created_ms| Progress {
            observed_ms,
            created_ms,
        };
        // A task submitted before the fault and finished after it does not count.
        let progress = [p(1010, 900), p(2500, 1500), p(1800, 1200)];
        assert_eq!(recovery_ms(1000, &progress), Some(800));
        assert_eq!(recovery_ms(3000, &progress), None);
        let faults = vec![
            FaultRecord {
                kind: "SIGKILL master".into(),
                target: "m1".into(),
                at_ms: 0,
                recovery_ms: Some(800),
            },
            FaultRecord {
                kind: "SIGKILL worker".into(),
                target: "w1".into(),
                at_ms: 0,
                recovery_ms: None,
            },
        ];
        assert_eq!(check_recoveries(&faults, 1000).len(), 1);
        assert_eq!(check_recoveries(&faults, 500).len(), 2);
    }

    #[test]
    fn a_task_committed_twice_is_caught() {
        let d = |t: &str, c, m| (t.to_string(), c, m);
        assert!(check_single_commit(&[d("a", 1, 5), d("a", 1, 5), d("b", 2, 6)]).is_empty());
        // Same id, a new znode (resubmitted after an expiry): a new task.
        assert!(check_single_commit(&[d("a", 1, 5), d("a", 8, 9)]).is_empty());
        assert_eq!(check_single_commit(&[d("a", 1, 5), d("a", 1, 7)]).len(), 1);
    }

    fn inc(name: &str, batch: u64, delivered: &[u64], interrupted: bool) -> Incarnation {
        let deliveries: Vec<(String, bool)> = delivered.iter().map(|n| (format!("{name}-{n:08}"), true)).collect();
        Incarnation {
            name: name.into(),
            batch,
            interrupted,
            exit_ok: if interrupted { Some(false) } else { Some(true) },
            summary: Some(serde_json::json!({
                "submitted": batch, "completed": deliveries.len(), "failed": 0, "lost": 0
            })),
            deliveries,
        }
    }

    #[test]
    fn an_incarnation_that_stayed_alive_must_deliver_every_task_once() {
        let (t, v) = check_clients(&[inc("c1i1", 3, &[1, 2, 3], false)]);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((t.delivered, t.lost, t.duplicates), (3, 0, 0));

        let mut missing = inc("c1i2", 3, &[1, 3], false);
        missing.summary = Some(serde_json::json!({"submitted": 3, "completed": 2, "failed": 0, "lost": 0}));
        let (t, v) = check_clients(&[missing]);
        assert_eq!(t.lost, 1);
        assert_eq!(v.len(), 1, "{v:?}");

        let (t, v) = check_clients(&[inc("c1i3", 3, &[1, 2, 2, 3], false)]);
        assert_eq!(t.duplicates, 1);
        assert!(v.iter().any(|v| v.contains("more than once")), "{v:?}");

        let mut running = inc("c1i4", 2, &[1, 2], false);
        running.exit_ok = None;
        assert_eq!(check_clients(&[running]).1.len(), 1);
    }

    #[test]
    fn an_interrupted_incarnation_may_lose_its_outstanding_tasks_but_not_duplicate() {
        let (t, v) = check_clients(&[inc("c2i1", 100, &[1, 2], true)]);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((t.delivered, t.lost, t.interrupted), (2, 0, 1));
        let (_, v) = check_clients(&[inc("c2i2", 100, &[1, 1], true)]);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn results_logs_are_parsed_leniently() {
        let text = "{\"task\":\"c-00000001\",\"result\":{\"ok\":true}}\ngarbage\n{\"task\":\"c-00000002\",\"result\":{\"ok\":false}}\n";
        assert_eq!(
            parse_results(text),
            vec![("c-00000001".into(), true), ("c-00000002".into(), false)]
        );
    }

    #[test]
    fn leftovers_are_reported_by_parent() {
        let mut left = BTreeMap::new();
        left.insert("/tasks".to_string(), vec![]);
        assert!(check_leftovers(&left).is_empty());
        left.insert("/data".to_string(), vec!["x".to_string()]);
        assert_eq!(check_leftovers(&left).len(), 1);
    }

    #[test]
    fn the_report_renders_faults_by_kind_and_the_totals() {
        let r = Report {
            seed: 7,
            faults: vec![FaultRecord {
                kind: "SIGKILL master".into(),
                target: "m1".into(),
                at_ms: 0,
                recovery_ms: Some(1234),
            }],
            ..Default::default()
        };
        let s = r.render();
        assert!(s.contains("| SIGKILL master | 1 | 1234 |"), "{s}");
        assert!(s.contains("| violations | 0 |"), "{s}");
    }
}
