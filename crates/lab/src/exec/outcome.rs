//! What became of `exec` tasks, from the clients' own records: each delivered result as ok,
//! failed, timed out or refused, counted per command with the output it kept and dropped.

use std::collections::BTreeMap;

use taskfarm::exec::ExecOutput;
use taskfarm::protocol::TaskResult;
use taskfarm::task::TaskSpec;

/// How one result ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Exit 0 within the time limit.
    Ok,
    /// Ran and exited non-zero, was killed, or could not be started.
    Failed,
    /// Its time limit passed (the group got SIGTERM, then SIGKILL after the grace period).
    TimedOut,
    /// Refused by the worker's catalogue before anything ran.
    Refused,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Failed, Outcome::TimedOut, Outcome::Refused];

    pub fn of(result: &TaskResult) -> Self {
        if result.ok {
            return Outcome::Ok;
        }
        if result.error.as_deref().is_some_and(|e| e.starts_with("refused: ")) {
            return Outcome::Refused;
        }
        match output(result) {
            Some(out) if out.timed_out => Outcome::TimedOut,
            _ => Outcome::Failed,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Refused => "refused",
        }
    }
}

/// The command's output carried by a result (absent for a refusal).
pub fn output(result: &TaskResult) -> Option<ExecOutput> {
    serde_json::from_value(result.value.clone()?).ok()
}

/// One result from a client's log: its task id and the result itself.
pub fn parse_record(record: &serde_json::Value) -> Option<(String, TaskResult)> {
    let task = record["task"].as_str()?.to_string();
    let result = serde_json::from_value(record["result"].clone()).ok()?;
    Some((task, result))
}

/// The name of the command an `exec` payload asks for (the kind, for other tasks).
pub fn command_of(spec: &TaskSpec) -> String {
    match spec {
        TaskSpec::Exec { command, .. } => command.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v["kind"].as_str().map(String::from))
            .unwrap_or_default(),
    }
}

/// Counts of one command's results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandTally {
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// The longest stdout tail a result kept, and the most stdout bytes a result dropped.
    pub max_stdout_kept: u64,
    pub max_stdout_dropped: u64,
}

/// Results per command.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub commands: BTreeMap<String, CommandTally>,
}

impl Tally {
    pub fn add(&mut self, command: &str, result: &TaskResult) {
        let t = self.commands.entry(command.to_string()).or_default();
        *t.by_outcome.entry(Outcome::of(result)).or_default() += 1;
        if let Some(out) = output(result) {
            t.max_stdout_kept = t.max_stdout_kept.max(out.stdout.len() as u64);
            t.max_stdout_dropped = t.max_stdout_dropped.max(out.stdout_dropped);
        }
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.commands
            .values()
            .map(|t| t.by_outcome.get(&outcome).copied().unwrap_or(0))
            .sum()
    }

    /// The table: one row per command, a column per outcome, then the totals.
    pub fn render(&self) -> String {
        let mut out = String::from("| command |");
        for o in Outcome::ALL {
            out.push_str(&format!(" {} |", o.label()));
        }
        out.push_str(" stdout kept (max bytes) | stdout dropped (max bytes) |\n|---|");
        out.push_str(&"---|".repeat(Outcome::ALL.len() + 2));
        out.push('\n');
        for (name, t) in &self.commands {
            out.push_str(&format!("| {name} |"));
            for o in Outcome::ALL {
                out.push_str(&format!(" {} |", t.by_outcome.get(&o).copied().unwrap_or(0)));
            }
            out.push_str(&format!(" {} | {} |\n", t.max_stdout_kept, t.max_stdout_dropped));
        }
        out.push_str("| **all** |");
        for o in Outcome::ALL {
            out.push_str(&format!(" **{}** |", self.count(o)));
        }
        out.push_str(" | |\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(json: &str) -> TaskResult {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn results_are_told_apart_by_ok_refusal_and_time_limit() {
        let ok = result(
            r#"{"ok":true,"value":{"exit_code":0,"timed_out":false,"stdout":"y\n","stderr":"","stdout_dropped":9,"stderr_dropped":0,"duration_ms":3,"timeout_ms":10}}"#,
        );
        let failed = result(
            r#"{"ok":false,"error":"command \"fail\" exited with status 3","value":{"exit_code":3,"timed_out":false,"stdout":"","stderr":"x","stdout_dropped":0,"stderr_dropped":0,"duration_ms":3,"timeout_ms":10}}"#,
        );
        let timed_out = result(
            r#"{"ok":false,"error":"command \"hang\" timed out after 2000 ms","value":{"signal":"SIGTERM","timed_out":true,"stdout":"","stderr":"","stdout_dropped":0,"stderr_dropped":0,"duration_ms":2001,"timeout_ms":2000}}"#,
        );
        let refused =
            result(r#"{"ok":false,"error":"refused: command \"rm\" is not declared by this worker's catalogue"}"#);
        let poison =
            result(r#"{"ok":false,"error":"abandoned: its worker vanished on each of 3 attempts (poison task?)"}"#);
        assert_eq!(Outcome::of(&ok), Outcome::Ok);
        assert_eq!(Outcome::of(&failed), Outcome::Failed);
        assert_eq!(Outcome::of(&timed_out), Outcome::TimedOut);
        assert_eq!(Outcome::of(&refused), Outcome::Refused);
        assert_eq!(Outcome::of(&poison), Outcome::Failed);

        let mut t = Tally::default();
        for (c, r) in [
            ("flood", &ok),
            ("fail", &failed),
            ("hang", &timed_out),
            ("rm", &refused),
        ] {
            t.add(c, r);
        }
        assert_eq!(t.count(Outcome::Ok), 1);
        assert_eq!(t.commands["flood"].max_stdout_dropped, 9);
        let table = t.render();
        assert!(table.contains("| hang | 0 | 0 | 1 | 0 | 0 | 0 |"), "{table}");
        assert!(table.contains("| **all** | **1** | **1** | **1** | **1** |"), "{table}");
    }
}
