//! The ZooKeeper layer: connect with retry, ACLs, session-state tracking, idempotent layout.
//!
//! Every role talks to ZooKeeper through a [`ZkSession`]. A session is one ZooKeeper session:
//! when it expires, the role drops it and builds a new one with [`ZkConfig::connect`], starting
//! its ZooKeeper state afresh (ephemerals and watches belong to the dead session).

use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use tokio::time::Instant;
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, Client, CreateMode, CreateOptions, EventType, Permission, PersistentWatcher,
    SessionState, WatchedEvent,
};

use crate::protocol::paths;

/// The user name the farm's roles authenticate as when a secret is configured.
pub const DIGEST_USER: &str = "taskfarm";

/// How to reach ZooKeeper and how to behave there; cheap to clone.
#[derive(Clone, Debug)]
pub struct ZkConfig {
    /// `host:port[,host:port...]` without the chroot.
    pub hosts: String,
    /// Chroot path (`/` when none), created on connect if missing (unless `expecting_farm`).
    pub chroot: String,
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
    secret: String,
    acls: Vec<Acl>,
    /// The farm's identity only (no world READ): task payloads and results.
    private_acls: Vec<Acl>,
    /// Whether connecting creates a missing chroot (roles do; a one-shot `submit` must not:
    /// a typo in the chroot would wait on a farm nobody serves).
    create_chroot: bool,
}

/// The hosts of a connect string that accept a TCP connection: when no session could be had,
/// these tell "the server refuses us" (connection limit, no quorum) from "nothing listens".
async fn accepting_hosts(hosts: &str) -> Vec<String> {
    let mut open = Vec::new();
    for host in hosts.split(',') {
        let probe = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(host)).await;
        if matches!(probe, Ok(Ok(_))) {
            open.push(host.to_string());
        }
    }
    open
}

/// The connect string names no farm: its chroot or layout is missing. Not retried.
#[derive(Debug, thiserror::Error)]
#[error(
    "no farm at {connect}: {missing} does not exist (create the farm with `taskfarm zk init`, \
     or check the connect string's chroot)"
)]
pub struct NoFarm {
    pub connect: String,
    pub missing: String,
}

impl ZkConfig {
    /// Validates a connect string (`host:port[,host:port...][/chroot]`) and builds a config.
    pub fn new(
        connect: &str,
        session_timeout: Duration,
        connect_timeout: Duration,
        secret: &str,
    ) -> anyhow::Result<Self> {
        let (hosts, chroot) = parse_connect_string(connect)?;
        if session_timeout < Duration::from_millis(100) {
            bail!("session timeout {session_timeout:?} is too short (at least 100ms)");
        }
        let (acls, private_acls) = if secret.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let farm = Acl::new(Permission::ALL, AuthId::new("digest", &digest_id(DIGEST_USER, secret)));
            (
                vec![farm.clone(), Acl::new(Permission::READ, AuthId::anyone())],
                vec![farm],
            )
        };
        Ok(Self {
            hosts,
            chroot,
            session_timeout,
            connect_timeout,
            secret: secret.to_string(),
            acls,
            private_acls,
            create_chroot: true,
        })
    }

    /// The same config for a command that uses an existing farm and creates nothing: a
    /// missing chroot is a [`NoFarm`] error at once.
    pub fn expecting_farm(&self) -> Self {
        Self {
            create_chroot: false,
            ..self.clone()
        }
    }

    /// The connect string as given (hosts plus chroot).
    pub fn connect_string(&self) -> String {
        if self.chroot == "/" {
            self.hosts.clone()
        } else {
            format!("{}{}", self.hosts, self.chroot)
        }
    }

    /// A copy of this config for another chroot under the same servers.
    pub fn with_chroot(&self, chroot: &str) -> anyhow::Result<Self> {
        let mut c = self.clone();
        let (_, chroot) = parse_connect_string(&format!("{}{}", self.hosts, chroot))?;
        c.chroot = chroot;
        Ok(c)
    }

    pub fn with_session_timeout(&self, timeout: Duration) -> Self {
        let mut c = self.clone();
        c.session_timeout = timeout;
        c
    }

    pub fn has_secret(&self) -> bool {
        !self.secret.is_empty()
    }

    /// Connects, retrying with exponential backoff until `connect_timeout` has passed.
    ///
    /// Creates the chroot when it is missing (the crate needs it to exist).
    /// A `connect_timeout` of zero means no limit: roles in Kubernetes wait for ZooKeeper to
    /// come up rather than exit and be restarted; each failed attempt is logged.
    pub async fn connect(&self) -> anyhow::Result<ZkSession> {
        let unbounded = self.connect_timeout.is_zero();
        let deadline = Instant::now()
            + if unbounded {
                Duration::from_secs(86_400 * 365)
            } else {
                self.connect_timeout
            };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0u32;
        let mut accepted: Vec<String> = Vec::new();
        loop {
            attempt += 1;
            match self.try_connect().await {
                Ok(session) => {
                    tracing::debug!(
                        session_id = format!("{:#x}", session.client.session_id().0),
                        negotiated_timeout_ms = session.client.session_timeout().as_millis() as u64,
                        attempt,
                        "connected to ZooKeeper"
                    );
                    return Ok(session);
                }
                Err(err) if err.downcast_ref::<NoFarm>().is_some() => return Err(err),
                Err(err) => {
                    let now = Instant::now();
                    // Which hosts take a TCP connection at all: probed while attempts fail, so
                    // that one slow handshake on a busy host does not hide the likely cause.
                    if accepted.is_empty() {
                        accepted = accepting_hosts(&self.hosts).await;
                    }
                    if now >= deadline {
                        let hint = match accepted.as_slice() {
                            [] => String::new(),
                            open => format!(
                                "; {} accepted the TCP connection but gave no session: too many \
                                 connections from this host (ZooKeeper's maxClientCnxns, 60 by default)? \
                                 a server not yet in a quorum? not a ZooKeeper port?",
                                open.join(", ")
                            ),
                        };
                        return Err(err.context(format!(
                            "no ZooKeeper server answered at {} within {:?} ({attempt} attempts){hint}",
                            self.hosts, self.connect_timeout
                        )));
                    }
                    let error = format!("{err:#}");
                    if unbounded || attempt.is_multiple_of(5) {
                        tracing::warn!(attempt, zk = %self.hosts, error, "ZooKeeper not reachable yet; retrying");
                    } else {
                        tracing::debug!(attempt, error, "ZooKeeper not reachable yet; retrying");
                    }
                    crate::health::beat(); // waiting for ZooKeeper is not a stall
                    tokio::time::sleep(backoff.min(deadline - now)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn try_connect(&self) -> anyhow::Result<ZkSession> {
        let mut connector = Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.session_timeout.min(Duration::from_secs(5)) / 2)
            .with_fail_eagerly();
        if self.has_secret() {
            connector = connector.with_auth("digest", format!("{DIGEST_USER}:{}", self.secret).as_bytes());
        }
        let budget = self.session_timeout.max(Duration::from_secs(2));
        let client = tokio::time::timeout(budget, connector.connect(&self.hosts))
            .await
            .context("timed out connecting")?
            .context("connecting")?;
        let client = if self.chroot == "/" {
            client
        } else {
            // Look before creating: ZooKeeper answers a create under a parent we may not write
            // with NoAuth even when the znode exists.
            let exists = tokio::time::timeout(budget, client.check_stat(&self.chroot))
                .await
                .context("timed out looking for the chroot")?
                .with_context(|| format!("looking for chroot {}", self.chroot))?
                .is_some();
            if !exists && !self.create_chroot {
                return Err(NoFarm {
                    connect: self.connect_string(),
                    missing: self.chroot.clone(),
                }
                .into());
            }
            if !exists {
                let options = CreateMode::Persistent.with_acls(self.acls());
                tokio::time::timeout(budget, client.mkdir(&self.chroot, &options))
                    .await
                    .context("timed out creating the chroot")?
                    .with_context(|| format!("creating chroot {}", self.chroot))?;
            }
            match client.chroot(self.chroot.clone()) {
                Ok(c) => c,
                Err(_) => bail!("invalid chroot {}", self.chroot),
            }
        };
        Ok(ZkSession {
            client,
            config: self.clone(),
        })
    }

    /// ACLs for the farm's znodes: open when no secret is set; otherwise the farm's digest
    /// identity may do everything and anyone else may only read.
    pub fn acls(&self) -> Acls<'_> {
        if self.acls.is_empty() {
            Acls::anyone_all()
        } else {
            Acls::new(&self.acls)
        }
    }

    /// ACLs for task payloads and records (which carry results): open when no secret is set;
    /// otherwise only the farm's digest identity may read or write them.
    pub fn private_acls(&self) -> Acls<'_> {
        if self.private_acls.is_empty() {
            Acls::anyone_all()
        } else {
            Acls::new(&self.private_acls)
        }
    }
}

/// The farm's znodes refuse us (no secret, or another one): retrying cannot help, so roles
/// stop at once with this error instead of starting session after session.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AccessDenied(pub String);

/// What a role should do about the ACL it finds on one of the farm's persistent znodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclVerdict {
    /// As expected.
    Fine,
    /// Open to the world but we have a secret: set the farm's ACL (we may: world has ADMIN).
    Tighten,
    /// Protected, and we run without a secret: we could not write.
    NeedSecret,
    /// Protected by an identity that is not ours (another secret).
    Foreign,
}

fn world_may_write(acl: &[Acl]) -> bool {
    acl.iter().any(|a| {
        a.scheme() == "world"
            && a.id() == "anyone"
            && (a.permission().has(Permission::WRITE)
                || a.permission().has(Permission::CREATE)
                || a.permission().has(Permission::DELETE))
    })
}

/// Decides about `found` given the farm's own ACL `ours` (empty when running without a secret).
pub fn acl_verdict(ours: &[Acl], found: &[Acl]) -> AclVerdict {
    let open = world_may_write(found);
    let Some(farm) = ours.iter().find(|a| a.scheme() == "digest") else {
        return if open { AclVerdict::Fine } else { AclVerdict::NeedSecret };
    };
    let ours_all = found
        .iter()
        .any(|a| a.auth_id() == farm.auth_id() && a.permission().has(Permission::ALL));
    let world_admin = found
        .iter()
        .any(|a| a.scheme() == "world" && a.id() == "anyone" && a.permission().has(Permission::ADMIN));
    match (ours_all, open) {
        (true, false) => AclVerdict::Fine,
        (_, true) if world_admin || ours_all => AclVerdict::Tighten,
        _ => AclVerdict::Foreign,
    }
}

fn describe_acl(acl: &[Acl]) -> String {
    acl.iter()
        .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ZooKeeper's digest ACL id for `user:password`: `user:base64(sha1(user:password))`.
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// Splits and validates `host:port[,host:port...][/chroot]`.
pub fn parse_connect_string(s: &str) -> anyhow::Result<(String, String)> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty ZooKeeper connect string (expected host:port[,host:port...][/chroot])");
    }
    let (hosts, chroot) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "/"),
    };
    for host in hosts.split(',') {
        let Some((name, port)) = host.rsplit_once(':') else {
            bail!("invalid ZooKeeper address {host:?} in {s:?}: expected host:port");
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("invalid ZooKeeper host {name:?} in {s:?}");
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => bail!("invalid ZooKeeper port {port:?} in {s:?}: expected 1-65535"),
        }
    }
    let chroot = chroot.trim_end_matches('/');
    let chroot = if chroot.is_empty() { "/" } else { chroot };
    if chroot != "/" && chroot.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..") {
        bail!("invalid chroot {chroot:?} in {s:?}");
    }
    Ok((hosts.to_string(), chroot.to_string()))
}

/// One live ZooKeeper session plus the config it was made from.
#[derive(Clone, Debug)]
pub struct ZkSession {
    pub client: Client,
    pub config: ZkConfig,
}

impl ZkSession {
    pub fn persistent(&self) -> CreateOptions<'_> {
        CreateMode::Persistent.with_acls(self.config.acls())
    }

    pub fn ephemeral(&self) -> CreateOptions<'_> {
        CreateMode::Ephemeral.with_acls(self.config.acls())
    }

    /// For a task's `/data/<id>` and `/tasks/<id>`: readable by the farm only when it has a secret.
    pub fn private_ephemeral(&self) -> CreateOptions<'_> {
        CreateMode::Ephemeral.with_acls(self.config.private_acls())
    }

    pub fn session_id(&self) -> i64 {
        self.client.session_id().0
    }

    /// The time a request may take before we treat it as lost: requests issued while
    /// disconnected are queued by the crate with no deadline of their own.
    pub fn request_timeout(&self) -> Duration {
        self.client.session_timeout().max(Duration::from_secs(1))
    }

    /// Creates the farm's layout; idempotent and safe to race (NodeExists is success).
    pub async fn ensure_layout(&self) -> anyhow::Result<()> {
        for path in paths::LAYOUT {
            self.ensure_path(path).await?;
        }
        self.check_acls().await
    }

    /// Checks the ACLs of the layout (and of the chroot, when the farm has one and a secret):
    /// open ones left by a run without a secret are tightened when we have one; a clear error
    /// when the farm is protected and we lack its secret, or it carries another secret's ACL.
    async fn check_acls(&self) -> anyhow::Result<()> {
        let mut nodes: Vec<&str> = paths::LAYOUT.to_vec();
        if self.config.has_secret() && self.config.chroot != "/" {
            // The chroot too: an open parent would let anyone delete and re-create an empty
            // layout znode with open ACLs. (Without a chroot, "/" is ZooKeeper's own root.)
            nodes.insert(0, "/");
        }
        let limit = self.request_timeout() * 2;
        for path in nodes {
            let shown = if path == "/" { self.config.chroot.as_str() } else { path };
            let (found, stat) = tokio::time::timeout(limit, self.client.get_acl(path))
                .await
                .with_context(|| format!("timed out reading the ACL of {shown}"))?
                .with_context(|| format!("reading the ACL of {shown}"))?;
            match acl_verdict(&self.config.acls, &found) {
                AclVerdict::Fine => {}
                AclVerdict::Tighten => {
                    match tokio::time::timeout(limit, self.client.set_acl(path, &self.config.acls, Some(stat.aversion)))
                        .await
                    {
                        Ok(Ok(_)) => tracing::info!(path = shown, "tightened an open ACL to the farm's"),
                        // Another role did it at the same moment.
                        Ok(Err(zookeeper_client::Error::BadVersion)) => {}
                        Ok(Err(e)) => return Err(e).with_context(|| format!("setting the farm's ACL on {shown}")),
                        Err(_) => bail!("timed out setting the farm's ACL on {shown}"),
                    }
                }
                AclVerdict::NeedSecret => {
                    return Err(AccessDenied(format!(
                        "{shown} is protected by ZooKeeper ACLs ({}): this role needs the farm's secret \
                         (--zk-secret or TASKFARM_ZK_SECRET)",
                        describe_acl(&found)
                    ))
                    .into())
                }
                AclVerdict::Foreign => {
                    return Err(AccessDenied(format!(
                    "{shown} is protected by ACLs of another identity ({}): is TASKFARM_ZK_SECRET the farm's secret?",
                    describe_acl(&found)
                ))
                    .into())
                }
            }
        }
        Ok(())
    }

    /// `mkdir -p` for one path.
    pub async fn ensure_path(&self, path: &str) -> anyhow::Result<()> {
        let limit = self.request_timeout() * 2;
        // Look first: a create under a parent we may not write fails with NoAuth even when the
        // znode exists (the ACL check then explains what is missing).
        let exists = tokio::time::timeout(limit, self.client.check_stat(path))
            .await
            .with_context(|| format!("timed out looking for {path}"))?
            .with_context(|| format!("looking for {path}"))?
            .is_some();
        if exists {
            return Ok(());
        }
        let options = self.persistent();
        match tokio::time::timeout(limit, self.client.mkdir(path, &options)).await {
            Ok(Err(zookeeper_client::Error::NoAuth)) => Err(AccessDenied(format!(
                "creating {path}: not authorized by the ZooKeeper ACLs (is TASKFARM_ZK_SECRET the farm's secret?)"
            ))
            .into()),
            r => r
                .with_context(|| format!("timed out creating {path}"))?
                .with_context(|| format!("creating {path}")),
        }
    }

    /// Closes the session and waits (briefly) until the server has acknowledged it, so that
    /// our ephemeral znodes disappear now rather than after the session timeout.
    pub async fn close(self) {
        let mut states = self.client.state_watcher();
        let session_id = self.session_id();
        drop(self);
        let wait = async {
            loop {
                match states.changed().await {
                    SessionState::Closed | SessionState::Expired | SessionState::AuthFailed => break,
                    _ => continue,
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(3), wait).await.is_err() {
            tracing::warn!(session_id = format!("{session_id:#x}"), "session close not confirmed");
        } else {
            tracing::debug!(session_id = format!("{session_id:#x}"), "session closed");
        }
    }
}

/// A persistent watch (recursive or on one node) that survives reconnections.
///
/// zookeeper-client 0.11.2 re-sends only one-shot watches when it reconnects (its SetWatches
/// request leaves persistent ones out), so a session that moved to another server would hear
/// nothing more. This wrapper registers the watch again after every Disconnected →
/// SyncConnected, adding the new watcher before dropping the old one (so the client never asks
/// the server to remove the path's watch). Events during the disconnection may still be lost
/// (ZOOKEEPER-4698): callers re-read what they care about after a reconnection.
///
/// While connected, a persistent watch reports every change, one event per write (unlike a
/// one-shot watch, nothing is coalesced), in the order ZooKeeper applied them.
///
/// [`PersistentWatch::next`] is cancel-safe (callers use it in `select!`): the SyncConnected
/// that calls for a renewal is handed out only once the watch is registered again, and a
/// renewal interrupted by cancellation (or failed: the connection may drop again at once) is
/// resumed by the next call. So a caller that reads state after that event cannot miss a
/// change made after its read.
pub struct PersistentWatch {
    client: Client,
    path: String,
    mode: AddWatchMode,
    watcher: PersistentWatcher,
    disconnected: bool,
    /// The SyncConnected event held back until the watch is registered again.
    renewing: Option<WatchedEvent>,
    ended: bool,
}

impl PersistentWatch {
    /// Watches `path` and everything below it.
    pub async fn recursive(client: &Client, path: &str) -> Result<Self, zookeeper_client::Error> {
        Self::new(client, path, AddWatchMode::PersistentRecursive).await
    }

    /// Watches the node at `path` (data changes, creation, deletion).
    pub async fn node(client: &Client, path: &str) -> Result<Self, zookeeper_client::Error> {
        Self::new(client, path, AddWatchMode::Persistent).await
    }

    async fn new(client: &Client, path: &str, mode: AddWatchMode) -> Result<Self, zookeeper_client::Error> {
        let watcher = client.watch(path, mode).await?;
        Ok(Self {
            client: client.clone(),
            path: path.to_string(),
            mode,
            watcher,
            disconnected: false,
            renewing: None,
            ended: false,
        })
    }

    /// The next event (node or session). After a terminal session event it never resolves.
    pub async fn next(&mut self) -> WatchedEvent {
        if self.ended {
            return std::future::pending().await;
        }
        if self.renewing.is_none() {
            let event = self.watcher.changed().await;
            if event.event_type != EventType::Session {
                return event;
            }
            let renew = event.session_state == SessionState::SyncConnected && self.disconnected;
            match event.session_state {
                SessionState::Disconnected => self.disconnected = true,
                SessionState::SyncConnected => self.disconnected = false,
                s if is_terminal(s) => self.ended = true,
                _ => {}
            }
            if !renew {
                return event;
            }
            self.renewing = Some(event);
        }
        self.renew().await;
        self.renewing.take().expect("a SyncConnected is held while renewing")
    }

    /// Registers the watch again, retrying until it is, or until the session has ended.
    async fn renew(&mut self) {
        let mut pause = Duration::from_millis(50);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.client.watch(&self.path, self.mode)).await {
                Ok(Ok(fresh)) => {
                    self.watcher = fresh;
                    return;
                }
                // The watcher we hold reports the session's end next.
                Ok(Err(zookeeper_client::Error::SessionExpired | zookeeper_client::Error::ClientClosed)) => return,
                Ok(Err(e)) => tracing::warn!(path = self.path, error = %e, "could not renew a watch; retrying"),
                Err(_) => tracing::warn!(path = self.path, "renewing a watch timed out; retrying"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// Runs a ZooKeeper request with a deadline, turning a hang (queued while disconnected)
/// into a ConnectionLoss-like error the caller already handles.
pub async fn timed<T, F>(limit: Duration, fut: F) -> Result<T, zookeeper_client::Error>
where
    F: std::future::Future<Output = Result<T, zookeeper_client::Error>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(zookeeper_client::Error::ConnectionLoss),
    }
}

/// How a failed request should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The session is over: start a new one.
    SessionEnded,
    /// The outcome is unknown (connection trouble): reconnect, look, and retry.
    Transient,
    /// The server answered no (NoNode, BadVersion, NoAuth...): retrying will not help.
    Definite,
}

/// Classifies a request error.
pub fn classify(e: &zookeeper_client::Error) -> Failure {
    use zookeeper_client::Error as E;
    match e {
        E::SessionExpired | E::ClientClosed | E::AuthFailed => Failure::SessionEnded,
        E::NoNode
        | E::NodeExists
        | E::BadVersion
        | E::NoAuth
        | E::NotEmpty
        | E::NoChildrenForEphemerals
        | E::InvalidAcl
        | E::BadArguments(_)
        | E::QuotaExceeded
        | E::Unimplemented
        | E::NoWatcher
        | E::NotReadOnly
        | E::ReconfigDisabled => Failure::Definite,
        // ConnectionLoss, timeouts, socket errors ("connection reset by peer"), throttling...
        _ => Failure::Transient,
    }
}

/// Whether a request's error means "the connection broke, outcome unknown": the crate reports
/// a reset socket as an I/O error (`Error::Custom`) rather than `ConnectionLoss`.
pub fn is_connection_loss(e: &zookeeper_client::Error) -> bool {
    classify(e) == Failure::Transient
}

/// Whether a session state means the session is gone for good (a new client is needed).
pub fn is_terminal(state: SessionState) -> bool {
    matches!(
        state,
        SessionState::Expired | SessionState::Closed | SessionState::AuthFailed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_are_validated() {
        assert_eq!(
            parse_connect_string("127.0.0.1:2181").unwrap(),
            ("127.0.0.1:2181".into(), "/".into())
        );
        assert_eq!(
            parse_connect_string("a:1,b:2/farm/x/").unwrap(),
            ("a:1,b:2".into(), "/farm/x".into())
        );
        for bad in [
            "",
            "localhost",
            "a:0",
            "a:99999",
            "a:x",
            ":2181",
            "a:1,",
            "a:1//x",
            "a:1/x/../y",
        ] {
            assert!(parse_connect_string(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn acl_verdicts() {
        let with = ZkConfig::new("a:1/f", Duration::from_secs(1), Duration::from_secs(1), "s3cret").unwrap();
        let other = ZkConfig::new("a:1/f", Duration::from_secs(1), Duration::from_secs(1), "other").unwrap();
        let without = ZkConfig::new("a:1/f", Duration::from_secs(1), Duration::from_secs(1), "").unwrap();
        let open = vec![Acl::new(Permission::ALL, AuthId::anyone())];
        assert_eq!(acl_verdict(&without.acls, &open), AclVerdict::Fine);
        assert_eq!(acl_verdict(&without.acls, &with.acls), AclVerdict::NeedSecret);
        assert_eq!(acl_verdict(&with.acls, &with.acls), AclVerdict::Fine);
        assert_eq!(acl_verdict(&with.acls, &with.private_acls), AclVerdict::Fine);
        assert_eq!(acl_verdict(&with.acls, &open), AclVerdict::Tighten);
        assert_eq!(acl_verdict(&with.acls, &other.acls), AclVerdict::Foreign);
        let read_only = vec![Acl::new(Permission::READ, AuthId::anyone())];
        assert_eq!(acl_verdict(&with.acls, &read_only), AclVerdict::Foreign);
        assert_eq!(acl_verdict(&without.acls, &read_only), AclVerdict::NeedSecret);
    }

    #[test]
    fn digest_id_matches_zookeepers_generator() {
        // base64(sha1("super:secret")), as DigestAuthenticationProvider.generateDigest computes it.
        assert_eq!(digest_id("super", "secret"), "super:lK75jTNcA+U9vtVEw5vB51mj/w4=");
    }
}
