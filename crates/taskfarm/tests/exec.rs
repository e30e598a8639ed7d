//! `exec` tasks end to end: a real ZooKeeper, a master, workers with a command catalogue, and
//! real commands. Declared commands run; everything else is refused at once with a reason; time
//! limits, output bounds and process groups hold; no process of a task outlives it, its
//! withdrawal or a SIGKILL of its worker (checked from the process table).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{processes_with, shared_standalone, wait_children, wait_gone, Farm, Proc};
use nix::sys::signal::Signal;
use serde_json::Value;

/// The digest of "hello\n".
const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// A farm with one master and a catalogue file; `marker` makes this test's sleeps unique in
/// the process table.
struct ExecFarm {
    farm: Farm,
    catalogue: std::path::PathBuf,
    marker: String,
    _master: Proc,
}

impl ExecFarm {
    /// A farm whose layout exists (as `taskfarm zk init` makes it: `submit` needs a farm).
    async fn new(name: &str) -> Self {
        let farm = Farm::new(&shared_standalone().connect_string(), name, Duration::from_secs(2));
        // Longer than any wait of the tests (common::LIMIT), so a sleep that is gone was killed.
        let marker = format!(
            "{}.{:06}",
            200 + u32::from(rand::random::<u8>() % 100),
            rand::random::<u32>() % 1_000_000
        );
        let dir = farm.dir.display().to_string();
        std::fs::write(farm.dir.join("not-exec.sh"), "#!/bin/sh\necho never\n").unwrap();
        let fifo = std::ffi::CString::new(farm.dir.join("started").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
        let catalogue = farm.dir.join("commands.yaml");
        std::fs::write(
            &catalogue,
            format!(
                r#"commands:
  checksum:
    argv: ["sha256sum"]
    timeout: 10s
  sleepy:
    argv: ["sleep", "{marker}"]
    timeout: 1s
    grace: 1s
  words:
    argv: ["echo"]
    args: '[a-z]+'
  fails:
    argv: ["sh", "-c", "echo oops >&2; exit 3"]
  flood:
    argv: ["sh", "-c", "yes | head -c 50000000"]
    max_output: 4KiB
  missing:
    argv: ["/nonexistent/program"]
  not-exec:
    argv: ["{dir}/not-exec.sh"]
  quiet:
    argv: ["true"]
    stdin: false
  hang:
    argv: ["sh", "-c", "sleep {marker} & sleep {marker} & echo started > {dir}/started; wait"]
    timeout: 5m
  rendezvous:
    argv: ["sh", "-c", "touch {dir}/$1; while [ ! -e {dir}/a ] || [ ! -e {dir}/b ]; do sleep 0.02; done", "sh"]
    args: '[ab]'
    timeout: 2m
"#
            ),
        )
        .unwrap();
        farm.observer().await.close().await;
        let master = farm.master("m1");
        Self {
            farm,
            catalogue,
            marker,
            _master: master,
        }
    }

    fn worker(&self, id: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["worker", "--id", id, "--commands", self.catalogue.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.farm.spawn(id, &args)
    }

    /// `taskfarm submit <task>`: its result (JSON on stdout).
    async fn submit(&self, name: &str, task: Value) -> Value {
        let mut p = self.farm.spawn(name, &["submit", &task.to_string()]);
        let line = p.expect_line("a result", |l| l.starts_with('{')).await;
        p.exit().await;
        serde_json::from_str(&line).unwrap()
    }

    /// Waits until the command started by `hang` has written to the fifo.
    async fn hang_started(&self) {
        let fifo = self.farm.dir.join("started");
        tokio::task::spawn_blocking(move || std::fs::read_to_string(fifo).unwrap())
            .await
            .unwrap();
    }
}

fn exec(command: &str) -> Value {
    serde_json::json!({"kind": "exec", "command": command})
}

#[tokio::test]
async fn declared_commands_run_and_everything_else_is_refused_with_a_reason() {
    let f = ExecFarm::new("exec").await;
    let _worker = f.worker("w1", &[]);

    let r = f
        .submit(
            "checksum",
            serde_json::json!({"kind":"exec","command":"checksum","stdin":"hello\n"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["value"]["stdout"], format!("{HELLO_SHA256}  -\n"), "{r}");
    assert_eq!(r["value"]["exit_code"], 0);

    let r = f
        .submit(
            "words",
            serde_json::json!({"kind":"exec","command":"words","args":["hello","farm"]}),
        )
        .await;
    assert_eq!(
        (r["ok"].clone(), r["value"]["stdout"].clone()),
        (Value::Bool(true), "hello farm\n".into()),
        "{r}"
    );

    // Refusals: an error result at once, no retry, no crash.
    for (name, task, reason) in [
        ("undeclared", exec("rm"), "is not declared"),
        (
            "badargs",
            serde_json::json!({"kind":"exec","command":"words","args":["ok", "; rm -rf /"]}),
            "does not match the pattern",
        ),
        (
            "noargs",
            serde_json::json!({"kind":"exec","command":"checksum","args":["-c"]}),
            "takes no arguments",
        ),
        ("missing", exec("missing"), "cannot be used"),
        ("notexec", exec("not-exec"), "is not an executable file"),
        (
            "stdin",
            serde_json::json!({"kind":"exec","command":"quiet","stdin":"x"}),
            "takes no stdin",
        ),
        (
            "overbound",
            serde_json::json!({"kind":"exec","command":"checksum","timeout_ms":10_001}),
            "above command \"checksum\"'s bound",
        ),
    ] {
        let r = f.submit(name, task).await;
        assert_eq!(r["ok"], false, "{name}: {r}");
        assert_eq!(r["attempt"], 1, "{name}: refused on its first attempt: {r}");
        assert!(r["error"].as_str().unwrap().contains(reason), "{name}: {r}");
    }

    // A command that fails: a failed result carrying its output.
    let r = f.submit("fails", exec("fails")).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"], "command \"fails\" exited with status 3", "{r}");
    assert_eq!(r["value"]["stderr"], "oops\n");

    // A flood: the tail is kept within the bound and the rest counted.
    let r = f.submit("flood", exec("flood")).await;
    assert_eq!(r["ok"], true, "{r}");
    let kept = r["value"]["stdout"].as_str().unwrap().len() as u64;
    assert!(kept <= 4096, "{kept}");
    assert_eq!(kept + r["value"]["stdout_dropped"].as_u64().unwrap(), 50_000_000);

    // A command over its time limit: timed out, and its process is gone.
    let r = f.submit("sleepy", exec("sleepy")).await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["value"]["timed_out"], true, "{r}");
    // Ended by the time limit's SIGTERM, not the SIGKILL after the grace (the command must not
    // inherit the shim's blocked signals).
    assert_eq!(r["value"]["signal"], "SIGTERM", "{r}");
    assert_eq!(r["error"], "command \"sleepy\" timed out after 1000 ms");
    for pid in processes_with(&format!("sleep {}", f.marker)) {
        wait_gone(pid, "the timed-out command").await;
    }

    // Still healthy after all that.
    let r = f
        .submit(
            "again",
            serde_json::json!({"kind":"exec","command":"checksum","stdin":"hello\n"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
}

/// `taskfarm submit exec NAME`: stdin in, the command's stdout and stderr out, its status.
fn submit_exec(f: &ExecFarm, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskfarm"));
    cmd.args(["--zk", &f.farm.connect_string(), "submit", "exec"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn submit_exec_behaves_like_the_command_it_runs() {
    let f = ExecFarm::new("submitexec").await;
    let _worker = f.worker("w1", &[]);
    let f = std::sync::Arc::new(f);
    let run = |args: &'static [&'static str], stdin: &'static str| {
        let f = f.clone();
        tokio::task::spawn_blocking(move || submit_exec(&f, args, stdin))
    };
    let (code, out, _) = run(&["checksum"], "hello\n").await.unwrap();
    assert_eq!((code, out.as_str()), (0, format!("{HELLO_SHA256}  -\n").as_str()));
    let (code, out, err) = run(&["fails"], "").await.unwrap();
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(err.contains("oops"), "{err}");
    let (code, _, err) = run(&["sleepy"], "").await.unwrap();
    assert_eq!(code, 124, "{err}");
    assert!(err.contains("timed out"), "{err}");
    let (code, _, err) = run(&["words", "--", "two", "words"], "").await.unwrap();
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["nope"], "").await.unwrap();
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("not declared"), "{err}");
    // Stdin over the payload limit: refused before anything is written.
    let big = "x".repeat(70_000);
    let f2 = f.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || submit_exec(&f2, &["checksum"], &big))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("65536-byte limit"), "{err}");
}

impl ExecFarm {
    /// A worker and a client whose one `hang` task is running: the pids of its processes (the
    /// shim, the shell, and the two sleeps it started before it wrote to the fifo).
    async fn hang_running(&self) -> (Proc, Proc, Vec<i32>) {
        let worker = self.worker("w1", &[]);
        let client = self.farm.client("c1", 1, 1, &exec("hang").to_string());
        self.hang_started().await;
        let pids = processes_with(&format!("sleep {}", self.marker));
        assert_eq!(
            pids.len(),
            4,
            "the shim, the command and the children it started: {pids:?}"
        );
        (worker, client, pids)
    }
}

#[tokio::test]
async fn a_withdrawn_exec_task_has_its_whole_process_group_killed() {
    let f = ExecFarm::new("withdrawn").await;
    let (_worker, client, pids) = f.hang_running().await;
    // The client dies: its task is withdrawn (after its session times out) and the worker
    // kills the command's group, grandchild included.
    client.signal(Signal::SIGKILL);
    for pid in pids {
        wait_gone(pid, "a process of the withdrawn task").await;
    }
}

#[tokio::test]
async fn a_sigkilled_worker_takes_the_commands_it_ran_with_it() {
    let f = ExecFarm::new("workerkill").await;
    let (worker, _client, pids) = f.hang_running().await;
    worker.signal(Signal::SIGKILL);
    for pid in pids {
        wait_gone(pid, "a process of the killed worker's task").await;
    }
}

#[tokio::test]
async fn slots_run_tasks_at_once_each_as_a_worker_of_its_own() {
    let f = ExecFarm::new("slots").await;
    let _worker = f.worker("w", &["--slots", "2"]);
    let observer = f.farm.observer().await;
    let mut slots = wait_children(&observer, "/workers", "both slots", |c| {
        (c.len() == 2).then(|| c.to_vec())
    })
    .await;
    slots.sort();
    assert_eq!(slots, ["w-1", "w-2"]);
    // Each command waits for the other to start: both finish only if they run at once.
    let (a, b) = tokio::join!(
        f.submit(
            "a",
            serde_json::json!({"kind":"exec","command":"rendezvous","args":["a"]})
        ),
        f.submit(
            "b",
            serde_json::json!({"kind":"exec","command":"rendezvous","args":["b"]})
        ),
    );
    assert_eq!(
        (a["ok"].clone(), b["ok"].clone()),
        (Value::Bool(true), Value::Bool(true)),
        "{a} {b}"
    );
    assert_ne!(a["worker"], b["worker"]);
}

#[tokio::test]
async fn a_worker_refuses_a_catalogue_with_mistakes_and_names_the_line() {
    let farm = Farm::new(&shared_standalone().connect_string(), "badcat", Duration::from_secs(2));
    let path = farm.dir.join("bad.yaml");
    std::fs::write(
        &path,
        "commands:\n  ok:\n    argv: [\"true\"]\n  typo:\n    argv: [\"true\"]\n    tiemout: 1s\n",
    )
    .unwrap();
    let mut worker = farm.spawn("w1", &["worker", "--id", "w1", "--commands", path.to_str().unwrap()]);
    let status = worker.exit().await;
    assert!(!status.success());
    let log = worker.log();
    assert!(log.contains("tiemout") && log.contains("line 6"), "{log}");
}

#[tokio::test]
async fn a_client_submits_the_tasks_of_a_file_one_per_line() {
    let f = ExecFarm::new("bulk").await;
    let _worker = f.worker("w1", &["--slots", "2"]);
    let lines: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|w| serde_json::json!({"kind":"exec","command":"checksum","stdin":w}).to_string())
        .collect();
    let file = f.farm.dir.join("tasks.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let results = f.farm.results_path("c1");
    let mut client = f.farm.spawn(
        "c1",
        &[
            "client",
            "--id",
            "c1",
            "--tasks-from",
            file.to_str().unwrap(),
            "--json",
            "--results-log",
            results.to_str().unwrap(),
        ],
    );
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 3, "{summary}");
    let mut digests: Vec<String> = f
        .farm
        .results("c1")
        .iter()
        .map(|r| r["result"]["value"]["stdout"].as_str().unwrap().to_string())
        .collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3, "each line its own stdin: {digests:?}");
}

#[tokio::test]
async fn a_worker_whose_binary_was_replaced_on_disk_still_runs_commands() {
    let f = ExecFarm::new("replaced").await;
    // The worker runs from a copy that is then deleted (an upgrade or a rebuild under it).
    let copy = f.farm.dir.join("taskfarm-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_taskfarm"), &copy).unwrap();
    let args = ["worker", "--id", "w1", "--commands", f.catalogue.to_str().unwrap()];
    let _worker = f.farm.spawn_binary(&copy, "w1", &args);
    let observer = f.farm.observer().await;
    wait_children(&observer, "/workers", "the worker", |c| (!c.is_empty()).then_some(())).await;
    std::fs::remove_file(&copy).unwrap();
    let r = f
        .submit(
            "checksum",
            serde_json::json!({"kind":"exec","command":"checksum","stdin":"hello\n"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
}
