//! The process table (`/proc`): which processes carry a run's marker (see
//! [`super::write_marked_catalogue`]) and how much memory a worker used at its peak.

use std::time::Duration;

use super::MARKER_VAR;
use crate::farm::LocalFarm;

/// A live process carrying a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub pid: u32,
    /// The marker's value: `<run>#<worker>#<command>`.
    pub marker: String,
    /// Its command line, arguments separated by spaces.
    pub cmdline: String,
}

impl Marked {
    /// The `exec-shim` that leads a command's group (as opposed to the command's own processes).
    pub fn is_shim(&self) -> bool {
        self.cmdline.contains(" exec-shim ")
    }
}

/// Every live process whose marker starts with `prefix` (zombies are dead: skipped).
pub fn marked(prefix: &str) -> Vec<Marked> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let var = format!("{MARKER_VAR}=");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path();
        // A process may exit between the listing and these reads: it is then simply not found.
        let Ok(environ) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        let Some(marker) = environ
            .split(|&b| b == 0)
            .filter_map(|e| std::str::from_utf8(e).ok())
            .filter_map(|e| e.strip_prefix(var.as_str()))
            .find(|m| m.starts_with(prefix))
        else {
            continue;
        };
        if zombie(pid) {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .trim_end()
            .to_string();
        found.push(Marked {
            pid,
            marker: marker.to_string(),
            cmdline,
        });
    }
    found
}

fn zombie(pid: u32) -> bool {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces and parentheses.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// The peak resident memory of a process (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The largest peak RSS among the live processes of a farm named `names`.
pub fn largest_peak_rss<'a>(farm: &LocalFarm, names: impl IntoIterator<Item = &'a str>) -> u64 {
    names
        .into_iter()
        .filter_map(|n| farm.get(n)?.pid())
        .filter_map(peak_rss)
        .max()
        .unwrap_or(0)
}

/// How often the table is read while waiting on it: nothing announces a process starting or
/// ending (short of the kernel's proc connector, which needs privileges), so the wait polls.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `find` picks something from the processes marked with `prefix`.
pub async fn wait_for<T>(
    prefix: &str,
    limit: Duration,
    what: &str,
    mut find: impl FnMut(&[Marked]) -> Option<T>,
) -> anyhow::Result<T> {
    taskfarm::waits::within(limit, what, async {
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            if let Some(t) = find(&marked(prefix)) {
                return Ok(t);
            }
        }
    })
    .await
}

/// Waits until no process is marked with `prefix`; on the bound, names those left.
pub async fn wait_gone(prefix: &str, limit: Duration) -> anyhow::Result<()> {
    let gone = wait_for(prefix, limit, "the processes ending", |m| m.is_empty().then_some(())).await;
    gone.map_err(|_| {
        let left: Vec<String> = marked(prefix)
            .iter()
            .map(|m| format!("{} ({})", m.pid, m.cmdline))
            .collect();
        anyhow::anyhow!("processes still alive after {limit:?}: {}", left.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_marked_child_is_found_until_it_ends() {
        let marker = format!("/test/{}#w1#sleep", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(MARKER_VAR, &marker)
            .spawn()
            .unwrap();
        let found = marked(&format!("/test/{}#", std::process::id()));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, child.id());
        assert_eq!(found[0].marker, marker);
        assert_eq!(found[0].cmdline, "sleep 30");
        assert!(!found[0].is_shim());
        child.kill().unwrap();
        // Killed but not yet reaped (a zombie): no longer counted.
        wait_gone(&marker, Duration::from_secs(10)).await.unwrap();
        child.wait().unwrap();
        assert!(peak_rss(std::process::id()).is_some_and(|b| b > 0));
    }
}
