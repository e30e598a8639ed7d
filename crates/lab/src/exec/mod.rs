//! Real programs in the lab: the example catalogue and workload (`examples/`), what the
//! clients' records say about `exec` results, and the commands' processes on this machine.
//!
//! - [`outcome`]: each delivered result as ok, failed, timed out or refused, per command;
//! - [`procs`]: the process table: which commands of a run are alive, a worker's peak memory.

pub mod outcome;
pub mod procs;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use taskfarm::exec::catalogue::{Admitted, Refusal};
use taskfarm::exec::Catalogue;
use taskfarm::task::TaskSpec;

/// The example catalogue, for `taskfarm worker --commands`.
pub const EXAMPLE_CATALOGUE: &str = "commands.yaml";
/// The example workload, for `taskfarm client --tasks-from`.
pub const EXAMPLE_WORKLOAD: &str = "exec-workload.jsonl";

/// A file of the repository's `examples/` (located at build time: the lab runs from a checkout).
pub fn example(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    // Without the `..`s where it exists: the path shows in tables and logs.
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// A workload: the tasks of a `--tasks-from` file, in order.
#[derive(Debug, Clone)]
pub struct Workload {
    pub tasks: Vec<TaskSpec>,
}

impl Workload {
    /// Reads a file of one JSON task a line (blank lines skipped), each checked as the client does.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut tasks = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let spec = TaskSpec::parse(line.as_bytes()).with_context(|| format!("{}:{}", path.display(), n + 1))?;
            tasks.push(spec);
        }
        anyhow::ensure!(!tasks.is_empty(), "{}: no tasks", path.display());
        Ok(Self { tasks })
    }

    /// The payload of task id `<client>-<n>`: the client submits line (n - 1) mod len as task n.
    pub fn task(&self, task_id: &str) -> Option<&TaskSpec> {
        let n: usize = task_id.rsplit('-').next()?.parse().ok()?;
        self.tasks.get(n.checked_sub(1)? % self.tasks.len())
    }

    /// Writes the first `n` tasks, going round the workload as often as needed.
    pub fn write_cycled(&self, n: usize, dest: &Path) -> anyhow::Result<()> {
        let mut text = String::new();
        for spec in self.tasks.iter().cycle().take(n) {
            text.push_str(&serde_json::to_string(spec)?);
            text.push('\n');
        }
        std::fs::write(dest, text).with_context(|| format!("writing {}", dest.display()))
    }
}

/// What a worker with `catalogue` makes of a task: the command it would run, or why it refuses
/// it (`None`: not an `exec` task).
pub fn admit<'a>(catalogue: &'a Catalogue, spec: &TaskSpec) -> Option<Result<Admitted<'a>, Refusal>> {
    match spec {
        TaskSpec::Exec {
            command,
            args,
            stdin,
            timeout_ms,
        } => Some(catalogue.admit(command, args, stdin.is_some(), *timeout_ms)),
        _ => None,
    }
}

/// The name of the environment variable that marks a run's command processes.
pub const MARKER_VAR: &str = "TASKFARM_LAB_MARKER";

/// Copies a catalogue, adding `TASKFARM_LAB_MARKER=<marker>#<command>` to every command's
/// environment. Every process a command starts inherits it (a command line need not: `sh -c`
/// execs its last command), so the process table tells which processes are a run's commands.
pub fn write_marked_catalogue(src: &Path, dest: &Path, marker: &str) -> anyhow::Result<()> {
    use serde_yaml::{Mapping, Value};
    let text = std::fs::read_to_string(src).with_context(|| format!("reading {}", src.display()))?;
    let mut doc: Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", src.display()))?;
    let commands = doc
        .get_mut("commands")
        .and_then(Value::as_mapping_mut)
        .with_context(|| format!("{}: no commands", src.display()))?;
    for (name, command) in commands.iter_mut() {
        let name = name.as_str().context("a command name")?.to_string();
        let command = command.as_mapping_mut().context("a command")?;
        let env = command
            .entry(Value::from("env"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        let env = env.as_mapping_mut().context("env must be a mapping")?;
        env.insert(MARKER_VAR.into(), format!("{marker}#{name}").into());
    }
    let out = serde_yaml::to_string(&doc)?;
    // The worker would refuse a broken file at start: refuse it here, with the reason.
    taskfarm::exec::Catalogue::parse(&out).map_err(|e| anyhow::anyhow!("{}: {e}", dest.display()))?;
    std::fs::write(dest, out).with_context(|| format!("writing {}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_parse_and_the_workload_names_declared_commands_and_others() {
        let catalogue = Catalogue::load(&example(EXAMPLE_CATALOGUE)).unwrap();
        let workload = Workload::load(&example(EXAMPLE_WORKLOAD)).unwrap();
        let mut admitted = 0;
        for spec in &workload.tasks {
            let verdict = admit(&catalogue, spec).unwrap_or_else(|| panic!("not an exec task: {spec:?}"));
            admitted += usize::from(verdict.is_ok());
        }
        // Mostly commands that run, and some the catalogue refuses (what the demo shows).
        assert!(admitted > workload.tasks.len() / 2 && admitted < workload.tasks.len());
    }

    #[test]
    fn task_numbers_map_to_lines_as_the_client_submits_them() {
        let w = Workload {
            tasks: vec![TaskSpec::Crash, TaskSpec::Sleep { ms: 1 }],
        };
        assert_eq!(w.task("c1-00000001"), Some(&TaskSpec::Crash));
        assert_eq!(w.task("c1-2-00000004"), Some(&TaskSpec::Sleep { ms: 1 }));
        assert_eq!(w.task("c1-00000000"), None);
        assert_eq!(w.task("garbage"), None);
    }

    #[test]
    fn a_marked_catalogue_keeps_each_command_and_adds_the_marker() {
        let dir = std::env::temp_dir().join(format!("taskfarm-lab-marked-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("commands.yaml");
        write_marked_catalogue(&example(EXAMPLE_CATALOGUE), &dest, "/run/x#w1").unwrap();
        let text = std::fs::read_to_string(&dest).unwrap();
        let original = Catalogue::load(&example(EXAMPLE_CATALOGUE)).unwrap();
        let marked = Catalogue::parse(&text).unwrap();
        assert_eq!(marked.names().collect::<Vec<_>>(), original.names().collect::<Vec<_>>());
        let hang = marked.admit("hang", &[], false, None).unwrap();
        assert_eq!(hang.spec.env[MARKER_VAR], "/run/x#w1#hang");
        // The catalogue's own variables stay.
        assert_eq!(
            marked.admit("stats", &[], true, None).unwrap().spec.env["PYTHONHASHSEED"],
            "0"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
