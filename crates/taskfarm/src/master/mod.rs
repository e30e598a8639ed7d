//! The master role: every master campaigns; the leader keeps an index of tasks and workers
//! fed by persistent recursive watches on `/tasks` and `/workers`, and turns its decisions
//! into fenced multi-operations ([`leader`]).
//!
//! Backup masters keep the same index warm through the same watches ([`standby`]), so that a
//! new leader assigns at once, whatever the backlog. Nothing decided survives leadership, and
//! nothing a standby knows is trusted beyond a version check: every write is a multi whose
//! first op checks that our candidate znode still exists (a master that lost its session or
//! its leadership cannot change anything) and whose other ops check the versions it read (a
//! stale entry costs a failed write, never a wrong one). After a reconnection, persistent-watch
//! events may have been lost (ZOOKEEPER-4698): leader and standby then scan both trees afresh
//! ([`observe`]).

pub mod index;
mod leader;
mod observe;
mod standby;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::watch;
use tracing::Instrument as _;
use zookeeper_client::{EventType, SessionState, WatchedEvent};

use self::leader::Leader;
use self::observe::Kind;
use self::standby::Standby;
use crate::election::{campaign, candidate_info, random_id, Leadership};
use crate::protocol::{paths, validate_id};
use crate::zk::{PersistentWatch, ZkConfig, ZkSession};

#[derive(Debug, Args)]
pub struct MasterArgs {
    /// This master's name (default: a random one; in Kubernetes, the pod name).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
    /// Assignments to workers that vanished before a task is failed as poison.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Deadline of an assignment whose task states no time limit: past it (plus the grace
    /// below) without a commit, the leader takes the task back. Keep it above the longest
    /// `timeout` in the workers' command catalogues.
    #[arg(long, env = "TASKFARM_ASSIGNMENT_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub assignment_timeout: Duration,
    /// Added to every assignment's time limit before it is taken back (the worker's own
    /// SIGTERM grace, its commit, clock differences between hosts).
    #[arg(long, env = "TASKFARM_ASSIGNMENT_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub assignment_grace: Duration,
    /// How often the leader rewrites /status.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
    /// The farm's admission bound, applied by each new leader (PROTOCOL.md §2.1).
    #[command(flatten)]
    pub admission: crate::admission::AdmissionArgs,
}

/// Runs a master until `shutdown` resolves (the binary passes SIGTERM/SIGINT; a test, anything).
pub async fn run(
    config: &ZkConfig,
    args: MasterArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let id = args.id.clone().unwrap_or_else(|| random_id("master"));
    validate_id(&id).context("master id")?;
    args.admission.bound().context("admission bound")?;
    let span = tracing::info_span!("master", master = %id);
    let ready = Arc::new(
        crate::health::maybe_serve(args.health_addr, crate::role::Role::Master)
            .instrument(span.clone())
            .await?,
    );
    let args = Arc::new(args);
    span.in_scope(|| tracing::info!("master starting"));
    crate::role::run_sessions(config, shutdown, |session| {
        let (id, args, ready) = (id.clone(), args.clone(), ready.clone());
        async move {
            session.ensure_layout().await?;
            ready.send_replace(true);
            let r = master_session(&session, &id, &args).await;
            ready.send_replace(false);
            r
        }
    })
    .instrument(span)
    .await
}

/// Campaigns and, whenever we lead, leads, for the life of one session.
///
/// The persistent watches live as long as the session (re-adding a watch on a path whose
/// previous watcher is being removed can lose the new one). A backup master feeds their events
/// to its warm index ([`standby`]), so that it can lead from it the moment it wins.
async fn master_session(session: &ZkSession, id: &str, args: &MasterArgs) -> anyhow::Result<()> {
    let (tx, mut rx) = watch::channel(Leadership::Follower);
    let info = candidate_info(id);
    let mut events = Events {
        tasks: PersistentWatch::recursive(&session.client, paths::TASKS).await?,
        workers: PersistentWatch::recursive(&session.client, paths::WORKERS).await?,
        tasks_lost: false,
        workers_lost: false,
    };
    let leading = async {
        // A backup's loop is idle between events: it beats on a timer (the leader's beats come
        // with its status writes).
        let mut heartbeat = tokio::time::interval(crate::health::BEAT_INTERVAL);
        let mut standby = Standby::cold();
        loop {
            let (epoch, candidate) = loop {
                if let Leadership::Leader { epoch, candidate } = rx.borrow_and_update().clone() {
                    break (epoch, candidate);
                }
                if !standby.is_warm() {
                    if let Err(e) = standby.warm_up(session, args.max_attempts).await {
                        tracing::info!(error = %format!("{e:#}"), "a standby's scan failed; trying again");
                        tokio::select! {
                            changed = rx.changed() => if changed.is_err() { return },
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    continue;
                }
                let (event, kind) = tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return } else { continue },
                    _ = heartbeat.tick() => { crate::health::beat(); continue }
                    _ = standby.next_read() => continue,
                    e = events.tasks.next() => {
                        if reconnected_after_loss(&mut events.tasks_lost, &e) { standby.forget() }
                        (e, Kind::Task)
                    }
                    e = events.workers.next() => {
                        if reconnected_after_loss(&mut events.workers_lost, &e) { standby.forget() }
                        (e, Kind::Worker)
                    }
                };
                if is_session_end(&event) {
                    return;
                }
                standby.on_event(session, &event, kind);
            };
            let span = tracing::info_span!("leading", epoch);
            span.in_scope(|| tracing::info!(candidate, "became leader"));
            let metrics = &crate::metrics::get().master;
            metrics.leading.set(1);
            metrics.epoch.set(epoch);
            metrics.leaderships.inc();
            // Off the path to the first assignments (it opens a session of its own): a second
            // later, in the background; a failure is logged, the farm keeps its bound.
            let (config, admission) = (session.config.clone(), args.admission.clone());
            let apply = async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                crate::admission::apply_as_leader(&config, &admission).await
            };
            tokio::spawn(apply.instrument(span.clone()));
            let mut leader = Leader::new(session, id, epoch, candidate, args);
            let led = leader
                .lead(&mut rx, &mut events, standby.take())
                .instrument(span.clone())
                .await;
            metrics.leading.set(0);
            span.in_scope(|| match led {
                Ok(reason) => tracing::warn!(reason, "no longer leading"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "leadership ended by an error"),
            });
            if leader.session_ended || crate::zk::is_terminal(session.client.state()) {
                return;
            }
            // The election may not have seen yet why we failed (on a current-thread runtime it
            // cannot run until we yield): back off instead of spinning on a stale "leader".
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        r = campaign(session, &info, &tx) => r,
        _ = leading => Ok(()),
    }
}

/// The session's persistent recursive watches on `/tasks` and `/workers`.
struct Events {
    tasks: PersistentWatch,
    workers: PersistentWatch,
    /// Each watch's Disconnected not yet followed by its own reconnection. A watch hands out
    /// its reconnection only once it is registered again, and events between the two may be
    /// lost (ZOOKEEPER-4698): a leader rescans at each watch's reconnection. Kept per watch and
    /// also while following, so that a reconnection seen by one loop is not missed by the next.
    tasks_lost: bool,
    workers_lost: bool,
}

/// Tracks a watch's session events: whether this event is its reconnection after a loss.
fn reconnected_after_loss(lost: &mut bool, event: &WatchedEvent) -> bool {
    match (event.event_type, event.session_state) {
        (EventType::Session, SessionState::Disconnected) => {
            *lost = true;
            false
        }
        (EventType::Session, SessionState::SyncConnected) => std::mem::take(lost),
        _ => false,
    }
}

/// A terminal session event: the watcher must not be polled again after it.
fn is_session_end(e: &WatchedEvent) -> bool {
    e.event_type == EventType::Session && crate::zk::is_terminal(e.session_state)
}
