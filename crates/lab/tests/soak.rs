//! A short chaos soak in CI: `taskfarm-lab soak` for a minute of faults (every kind of fault is
//! likely to come up once or more with this seed), then its checker's verdict. The long run and
//! its table are in docs/SOAK.md.

use std::process::{Command, Stdio};
use std::time::Duration;

use taskfarm_harness::process::ChildGuard;

#[test]
fn a_one_minute_chaos_soak_finds_no_violation() {
    // The soak runs the `taskfarm` role binary that cargo built beside `taskfarm-lab`.
    let dir = std::env::temp_dir().join(format!("taskfarm-test-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("soak.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let err = std::fs::File::create(dir.join("soak.err")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskfarm-lab"));
    cmd.args(["soak", "--duration", "60s", "--seed", "11", "--run-dir"])
        .arg(dir.join("run"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut soak = ChildGuard::spawn("soak", cmd).unwrap();
    // Generous: a minute of faults, the drain, ZooKeeper's start; reaching it is a hang.
    let status = soak
        .wait_timeout(Duration::from_secs(600))
        .unwrap()
        .expect("the soak ends");
    let report = std::fs::read_to_string(&out_path).unwrap();
    assert!(status.success(), "soak failed ({status}):\n{report}");
    assert!(report.contains("| violations | 0 |"), "{report}");
    let faults: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("| faults injected | "))
        .and_then(|v| v.trim_end_matches(" |").parse().ok())
        .unwrap_or(0);
    assert!(faults >= 5, "too few faults injected:\n{report}");
}
