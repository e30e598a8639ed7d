//! The evidence gathered at the end of a soak, once every role has stopped (what ZooKeeper
//! still holds, the masters' and workers' logs, the observer's records, the clients'
//! incarnations), judged by the pure rules of [`super::check`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use taskfarm::protocol::paths;

use super::check::{self, Report};
use super::Soak;
use crate::farm::{LocalFarm, Role};

/// The parents whose children must all be gone when the farm has stopped.
const PARENTS: [&str; 4] = [paths::TASKS, paths::DATA, paths::WORKERS, paths::MASTER];

pub(super) async fn judge(soak: &mut Soak, elapsed_s: f64) -> anyhow::Result<Report> {
    let bound = soak.bound_ms();
    let left = leftovers(&soak.farm, soak.args.role_session_timeout * 3 + Duration::from_secs(10)).await?;

    let mut violations = std::mem::take(&mut soak.violations);
    let (clients, v) = check::check_clients(&soak.finished);
    violations.extend(v);
    violations.extend(check::check_recoveries(&soak.faults, bound));
    violations.extend(check::check_leftovers(&left));
    let (writes, dones) = {
        let o = soak.seen.lock().unwrap();
        (o.writes.clone(), o.dones.clone())
    };
    violations.extend(check::check_fencing(&writes));
    violations.extend(check::check_single_commit(&dones));
    let mut logged = Vec::new();
    for name in soak.farm.names(Role::Master) {
        let text = std::fs::read_to_string(soak.farm.log_path(&name)).unwrap_or_default();
        logged.extend(text.lines().filter_map(|l| check::parse_assigned_line(&name, l)));
    }
    check::undo_freezes(&mut logged, &soak.injector.freezes(), 500);
    let reassignments = logged.iter().filter(|l| l.attempt >= 2).count() as u64;
    let discarded_results = soak
        .farm
        .names(Role::Worker)
        .iter()
        .map(|w| {
            std::fs::read_to_string(soak.farm.log_path(w))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("result discarded"))
                .count() as u64
        })
        .sum();
    let (terms, v) = check::terms(&logged);
    violations.extend(v);
    violations.extend(check::check_terms(&terms, 250));
    Ok(Report {
        seed: soak.seed,
        elapsed_s,
        faults: std::mem::take(&mut soak.faults),
        clients,
        fenced_writes_checked: writes.len(),
        terms: terms.len(),
        reassignments,
        discarded_results,
        bound_ms: bound,
        violations,
    })
}

/// Waits (bounded) until the farm's znodes are gone, then returns what is left by parent.
async fn leftovers(farm: &LocalFarm, limit: Duration) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let session = farm.config()?.connect().await?;
    let deadline = Instant::now() + limit;
    // Sessions of processes stopped by SIGKILL end only at their timeout: their ephemeral
    // znodes (and what the farm cleans up after them) go then. What is still there at the
    // deadline is reported below, so a wait that runs out is no error here.
    for parent in PARENTS {
        let rest = deadline.saturating_duration_since(Instant::now());
        let _ = taskfarm::waits::children(&session, parent, rest, parent, |c| c.is_empty().then_some(())).await;
    }
    let mut left = BTreeMap::new();
    for parent in PARENTS {
        let children = taskfarm::zk::timed(Duration::from_secs(10), session.client.list_children(parent))
            .await
            .with_context(|| format!("listing {parent}"))?;
        left.insert(parent.to_string(), children);
    }
    session.close().await;
    Ok(left)
}
