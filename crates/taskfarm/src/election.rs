//! Leader election among masters, on the ZooKeeper recipe.
//!
//! Each candidate creates an ephemeral sequential znode `/master/_c_<uuid>-latch-<seq>` and
//! watches only its predecessor; the lowest sequence leads. The zookeeper-client crate's lock
//! implements exactly that (a guid in the name lets it find its own znode after a
//! ConnectionLoss during the create, so no ghost candidate is left behind). This module adds
//! what the lock does not tell: when leadership is *lost* later.
//!
//! A leader stops leading the moment it can know it might not: on Disconnected (it cannot act
//! anyway, and the server may be expiring its session), on Expired, and when its candidate
//! znode vanishes. It leads again after a reconnection within the same session only once it
//! has seen its znode still present. The leader's epoch is its candidate's sequence number:
//! each new leader's is higher than every earlier leader's, because all lower candidates were
//! gone when it took over and a new candidate only ever gets a higher number.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::watch;
use tracing::Instrument as _;
use zookeeper_client::{Error as ZkError, LockOptions, LockPrefix, SessionState};

use crate::protocol::{candidate_sequence, paths, CandidateInfo};
use crate::zk::{is_terminal, timed, ZkConfig, ZkSession};

/// What this process is in the election, as published on the [`watch`] channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    Follower,
    Leader {
        /// Sequence number of our candidate znode: increases with every new leader.
        epoch: i64,
        /// Our candidate znode: every fenced write checks that it still exists.
        candidate: String,
    },
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }
}

/// Campaigns in `session` until the session ends, publishing leadership changes on `status`.
///
/// Returns `Ok(())` when the session has expired or been closed (the caller starts a new
/// session and campaigns again, at the back of the line).
pub async fn campaign(
    session: &ZkSession,
    info: &CandidateInfo,
    status: &watch::Sender<Leadership>,
) -> anyhow::Result<()> {
    let client = &session.client;
    let mut states = client.state_watcher();
    let data = serde_json::to_vec(info)?;
    loop {
        status.send_if_modified(|s| std::mem::replace(s, Leadership::Follower) != Leadership::Follower);
        let prefix = LockPrefix::new_curator(paths::MASTER, paths::CANDIDATE_NAME).context("lock prefix")?;
        let acquired = tokio::select! {
            lock = client.lock(prefix, &data, LockOptions::new(session.config.acls())) => lock,
            state = wait_terminal(&mut states) => {
                tracing::warn!(?state, "session ended while waiting to lead");
                return Ok(());
            }
        };
        let lock = match acquired {
            Ok(lock) => lock.into_owned(),
            Err(e) if is_terminal(client.state()) => {
                tracing::warn!(error = %e, "session ended while waiting to lead");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(error = %e, "election attempt failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let candidate = lock.lock_path().to_string();
        let epoch = candidate_sequence(paths::name(&candidate)).context("candidate znode without a sequence")?;
        match hold(session, &candidate, epoch, status, &mut states).await {
            Held::SessionEnded => return Ok(()),
            Held::CandidateLost => {
                tracing::error!(
                    candidate,
                    "our candidate znode vanished (deleted by someone else?); campaigning again"
                );
                drop(lock);
            }
        }
    }
}

enum Held {
    SessionEnded,
    CandidateLost,
}

/// Leads while connected and while our candidate znode exists.
async fn hold(
    session: &ZkSession,
    candidate: &str,
    epoch: i64,
    status: &watch::Sender<Leadership>,
    states: &mut zookeeper_client::StateWatcher,
) -> Held {
    let client = &session.client;
    let own_name = paths::name(candidate).to_string();
    loop {
        // Watch /master's children (not our own znode: our successor already watches that one,
        // and we keep every candidate watched by at most one session).
        match timed(session.request_timeout(), client.get_and_watch_children(paths::MASTER)).await {
            Ok((children, _, watcher)) => {
                if !children.contains(&own_name) {
                    status.send_replace(Leadership::Follower);
                    return Held::CandidateLost;
                }
                let leader = Leadership::Leader {
                    epoch,
                    candidate: candidate.to_string(),
                };
                if status.send_if_modified(|s| std::mem::replace(s, leader.clone()) != leader) {
                    tracing::info!(epoch, candidate, "leading");
                }
                tokio::select! {
                    _ = watcher.changed() => continue,
                    state = states.changed() => {
                        if let Some(end) = on_state(state, status, states).await {
                            return end;
                        }
                    }
                }
            }
            Err(ZkError::SessionExpired | ZkError::ClientClosed) => {
                status.send_replace(Leadership::Follower);
                return Held::SessionEnded;
            }
            Err(_) => {
                // Outcome unknown (disconnected): we cannot act, so we do not lead until we see
                // our znode again after reconnecting.
                if let Some(end) = on_state(client.state(), status, states).await {
                    return end;
                }
            }
        }
    }
}

/// Reacts to a session state while holding the lock: steps down on Disconnected and waits for
/// the session to come back (`None`, re-check and lead again) or end (`Some`).
async fn on_state(
    mut state: SessionState,
    status: &watch::Sender<Leadership>,
    states: &mut zookeeper_client::StateWatcher,
) -> Option<Held> {
    loop {
        match state {
            SessionState::SyncConnected => return None,
            s if is_terminal(s) => {
                status.send_replace(Leadership::Follower);
                tracing::warn!(state = ?s, "session ended: no longer leading");
                return Some(Held::SessionEnded);
            }
            s => {
                if status.send_if_modified(|l| std::mem::replace(l, Leadership::Follower) != Leadership::Follower) {
                    tracing::warn!(state = ?s, "lost contact with ZooKeeper: suspending leadership");
                }
            }
        }
        state = states.changed().await;
    }
}

async fn wait_terminal(states: &mut zookeeper_client::StateWatcher) -> SessionState {
    loop {
        let s = states.changed().await;
        if is_terminal(s) {
            return s;
        }
    }
}

/// Who this process is in the election.
/// The election's candidates now, leader first, as (znode name, what the candidate wrote). For
/// observers (the operator, the lab, tests): a candidate whose znode vanished between the
/// listing and its read, or whose data is not a candidate record, is left out.
pub async fn candidates(session: &ZkSession) -> Result<Vec<(String, CandidateInfo)>, ZkError> {
    let limit = session.request_timeout();
    let mut names = timed(limit, session.client.list_children(paths::MASTER)).await?;
    names.retain(|n| candidate_sequence(n).is_some());
    names.sort_by_key(|n| candidate_sequence(n));
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match timed(limit, session.client.get_data(&format!("{}/{name}", paths::MASTER))).await {
            Ok((data, _)) => {
                if let Ok(info) = serde_json::from_slice::<CandidateInfo>(&data) {
                    out.push((name, info));
                }
            }
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The id of the leading candidate, if there is one now.
pub async fn leader_id(session: &ZkSession) -> Result<Option<String>, ZkError> {
    Ok(candidates(session).await?.into_iter().next().map(|(_, info)| info.id))
}

pub fn candidate_info(id: &str) -> CandidateInfo {
    CandidateInfo {
        id: id.to_string(),
        pid: std::process::id(),
        host: std::env::var("HOSTNAME").unwrap_or_default(),
    }
}

/// A random id for a process that was not given one.
pub fn random_id(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}-{n:08x}")
}

#[derive(Debug, Args)]
pub struct ElectionArgs {
    /// This candidate's name (default: a random one).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
}

/// `taskfarm election`: campaigns forever, printing `LEADER <id> epoch=<n>` or
/// `FOLLOWER <id>` on stdout at every change.
pub async fn run_demo(
    config: &ZkConfig,
    args: ElectionArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let id = args.id.unwrap_or_else(|| random_id("candidate"));
    crate::protocol::validate_id(&id)?;
    let info = candidate_info(&id);
    let (tx, mut rx) = watch::channel(Leadership::Follower);
    let tx = std::sync::Arc::new(tx);
    // The printer outlives sessions, so a step-down at session end is printed too.
    let printer_id = id.clone();
    tokio::spawn(async move {
        println!("FOLLOWER {printer_id}");
        let mut leading = false;
        while rx.changed().await.is_ok() {
            let now = rx.borrow_and_update().clone();
            if now.is_leader() != leading {
                leading = now.is_leader();
                match &now {
                    Leadership::Leader { epoch, .. } => println!("LEADER {printer_id} epoch={epoch}"),
                    Leadership::Follower => println!("FOLLOWER {printer_id}"),
                }
            }
        }
    });
    let span = tracing::info_span!("election", candidate = %id);
    crate::role::run_sessions(config, shutdown, |session| {
        let info = info.clone();
        let tx = tx.clone();
        async move {
            session.ensure_layout().await?;
            campaign(&session, &info, &tx).await
        }
    })
    .instrument(span)
    .await?;
    tx.send_replace(Leadership::Follower);
    Ok(())
}
