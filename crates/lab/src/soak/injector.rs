//! The soak's fault injector: picks a fault at random (seeded, so that a seed repeats the
//! sequence), injects it into a role process or a ZooKeeper server, and undoes it later
//! (SIGCONT, restart) at a random moment.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use taskfarm::protocol::now_ms;
use taskfarm_harness::ZkCluster;

use super::check::{FaultRecord, Freeze};
use crate::farm::{LocalFarm, Role};

/// What the injector can do to a role process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blow {
    Kill,
    Term,
    StopShort,
    StopLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Role(Role, Blow),
    ZkServer,
}

impl Fault {
    fn label(self) -> String {
        match self {
            Fault::ZkServer => "ZooKeeper server death".into(),
            Fault::Role(role, blow) => {
                let b = match blow {
                    Blow::Kill => "SIGKILL",
                    Blow::Term => "SIGTERM",
                    Blow::StopShort => "SIGSTOP<session",
                    Blow::StopLong => "SIGSTOP>session",
                };
                format!("{b} {}", role.as_str())
            }
        }
    }
}

/// Picks a fault: each of the 12 role faults as likely as the others; a ZooKeeper server death
/// as likely as any role's faults of one kind.
fn pick_fault(rng: &mut StdRng) -> Fault {
    let n = rng.random_range(0..15u32);
    if n >= 12 {
        return Fault::ZkServer;
    }
    let role = [Role::Master, Role::Worker, Role::Client][(n / 4) as usize];
    let blow = [Blow::Kill, Blow::Term, Blow::StopShort, Blow::StopLong][(n % 4) as usize];
    Fault::Role(role, blow)
}

/// Something to do later, because of a fault.
#[derive(Debug, Clone)]
enum FollowUp {
    Cont(String),
    Restart(String),
    ZkStart(usize),
}

/// One fault injected (its recovery still unknown).
pub(super) struct Injected {
    pub record: FaultRecord,
    /// The client the fault ended, if it was a client's SIGKILL or SIGTERM: its incarnation is
    /// interrupted, not finished.
    pub ended_client: Option<String>,
}

pub(super) struct Injector {
    rng: StdRng,
    session_timeout: Duration,
    followups: Vec<(Instant, FollowUp)>,
    /// Roles killed by the injector and not yet restarted (their exit is expected).
    awaiting_restart: HashSet<String>,
    /// SIGSTOP'ed processes: (name, stop time, SIGCONT time once sent).
    freezes: Vec<(String, u64, Option<u64>)>,
}

impl Injector {
    pub fn new(seed: u64, session_timeout: Duration) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            session_timeout,
            followups: Vec::new(),
            awaiting_restart: HashSet::new(),
            freezes: Vec::new(),
        }
    }

    /// A pause before the next fault: 0.5x..1.5x `mean`.
    pub fn pause(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(self.rng.random_range(0.5..1.5))
    }

    /// Whether `name` was killed by the injector and is still to be restarted.
    pub fn expects_exit(&self, name: &str) -> bool {
        self.awaiting_restart.contains(name)
    }

    /// Every follow-up has run: nothing is frozen or down because of a fault.
    pub fn settled(&self) -> bool {
        self.followups.is_empty() && self.awaiting_restart.is_empty()
    }

    /// The freezes so far, for the checker (one not continued counts as lasting forever).
    pub fn freezes(&self) -> Vec<Freeze> {
        self.freezes
            .iter()
            .map(|(name, stop, cont)| Freeze {
                master: name.clone(),
                stop_ms: *stop,
                cont_ms: cont.unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// Injects a fault picked at random; `clients` are the running client incarnations,
    /// `leader` the leading master as last observed.
    pub fn inject(
        &mut self,
        farm: &mut LocalFarm,
        zk: &mut ZkCluster,
        clients: &[String],
        leader: Option<&str>,
    ) -> anyhow::Result<Injected> {
        let fault = pick_fault(&mut self.rng);
        let at_ms = now_ms();
        let session = self.session_timeout.as_millis() as u64;
        let mut ended_client = None;
        let target = match fault {
            Fault::ZkServer => {
                let i = self.rng.random_range(0..zk.len());
                let mode = zk.mode(i).unwrap_or_else(|| "?".into());
                zk.stop_server(i, Signal::SIGKILL)?;
                self.later(2_000, 8_000, FollowUp::ZkStart(i));
                format!("zk{} ({mode})", i + 1)
            }
            Fault::Role(role, blow) => {
                let name = self.target(farm, role, clients, leader);
                let signal = match blow {
                    Blow::Kill => Signal::SIGKILL,
                    Blow::Term => Signal::SIGTERM,
                    Blow::StopShort | Blow::StopLong => Signal::SIGSTOP,
                };
                if farm.signal(&name, signal).is_err() {
                    // It exited just now (a client finishing its batch): nothing was injected.
                    anyhow::bail!("{}: {name} is not running", fault.label());
                }
                if signal == Signal::SIGSTOP {
                    self.freezes.push((name.clone(), now_ms(), None));
                }
                match blow {
                    Blow::StopShort => self.later(session / 4, session * 3 / 4, FollowUp::Cont(name.clone())),
                    Blow::StopLong => self.later(session * 3 / 2, session * 3, FollowUp::Cont(name.clone())),
                    Blow::Kill | Blow::Term if role == Role::Client => ended_client = Some(name.clone()),
                    Blow::Kill | Blow::Term => {
                        self.awaiting_restart.insert(name.clone());
                        self.later(300, 2_000, FollowUp::Restart(name.clone()));
                    }
                }
                if role == Role::Master && leader == Some(name.as_str()) {
                    format!("{name} (leader)")
                } else {
                    name
                }
            }
        };
        Ok(Injected {
            record: FaultRecord {
                kind: fault.label(),
                target,
                at_ms,
                recovery_ms: None,
            },
            ended_client,
        })
    }

    /// The process to hit: a random one of the role (the leader half of the time for a master).
    fn target(&mut self, farm: &LocalFarm, role: Role, clients: &[String], leader: Option<&str>) -> String {
        let names = farm.names(role);
        if role == Role::Client {
            return clients[self.rng.random_range(0..clients.len())].clone();
        }
        if role == Role::Master && self.rng.random_bool(0.5) {
            if let Some(leader) = leader.filter(|l| names.iter().any(|n| n == l)) {
                return leader.to_string();
            }
        }
        names[self.rng.random_range(0..names.len())].clone()
    }

    fn later(&mut self, min_ms: u64, max_ms: u64, what: FollowUp) {
        let at = Instant::now() + Duration::from_millis(self.rng.random_range(min_ms..=max_ms));
        self.followups.push((at, what));
    }

    /// Runs the follow-ups that are due (all of them when `all`).
    pub fn follow_up(&mut self, all: bool, farm: &mut LocalFarm, zk: &mut ZkCluster) -> anyhow::Result<()> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.followups.drain(..).partition(|(at, _)| all || *at <= now);
        self.followups = later;
        for (_, f) in due {
            match f {
                FollowUp::Cont(name) => {
                    let _ = farm.signal(&name, Signal::SIGCONT);
                    let now = now_ms();
                    if let Some(f) = self.freezes.iter_mut().rev().find(|f| f.0 == name && f.2.is_none()) {
                        f.2 = Some(now);
                    }
                }
                FollowUp::Restart(name) => {
                    farm.restart(&name)?;
                    self.awaiting_restart.remove(&name);
                }
                FollowUp::ZkStart(i) => zk.start_server(i)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_kind_comes_up_and_a_seed_repeats_the_sequence() {
        let mut rng = StdRng::seed_from_u64(7);
        let faults: Vec<Fault> = (0..2000).map(|_| pick_fault(&mut rng)).collect();
        let kinds: HashSet<String> = faults.iter().map(|f| f.label()).collect();
        assert_eq!(kinds.len(), 13, "{kinds:?}");
        let zk = faults.iter().filter(|f| **f == Fault::ZkServer).count();
        assert!((300..500).contains(&zk), "about 3/15 of the faults: {zk}");
        let mut again = StdRng::seed_from_u64(7);
        assert!(faults.iter().all(|f| *f == pick_fault(&mut again)));
    }
}
