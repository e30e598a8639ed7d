//! ZooKeeper's own write ceiling on the very servers the farm uses: pipelined creates and
//! deletes from one connection, the same spread over many connections (as a farm sends them),
//! and one write at a time for the round-trip latency.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt as _};
use taskfarm::zk::ZkConfig;
use taskfarm_harness::ZkCluster;

use super::args::Plan;
use super::progress::Progress;
use super::report::{Ceiling, SpreadCeiling};
use super::sampling::ZkSample;
use super::stats::Quantiles;

pub(super) async fn ceiling(zk: &ZkCluster, plan: &Plan, progress: &Progress) -> anyhow::Result<Ceiling> {
    let config = ZkConfig::new(
        &format!("{}/bench-ceiling", zk.connect_string()),
        Duration::from_secs(10),
        Duration::from_secs(30),
        "",
    )?;
    let session = config.connect().await?;
    let client = &session.client;
    let options = session.persistent();
    // An unmeasured round first: the servers' JIT compiles the write path before we time it
    // (the farm, measured later, runs on warm servers too).
    let warm_up: Vec<String> = (0..plan.ceiling_ops).map(|i| format!("/w{i:08}")).collect();
    pipelined_creates_and_deletes(client, &options, &warm_up, plan.window, &|_| {}).await?;
    let names: Vec<String> = (0..plan.ceiling_ops).map(|i| format!("/n{i:08}")).collect();
    let before = ZkSample::take(zk);
    let (creates, deletes) = pipelined_creates_and_deletes(client, &options, &names, plan.window, &|done| {
        progress.set_position(done)
    })
    .await?;
    let after = ZkSample::take(zk);

    let spread = spread_ceiling(&config, plan, zk).await?;

    progress.phase("ceiling: serial round trips", plan.serial_ops * 2);
    let mut serial = Vec::with_capacity(plan.serial_ops as usize * 2);
    for i in 0..plan.serial_ops {
        let name = format!("/s{i:08}");
        let t = Instant::now();
        client.create(&name, b"x", &options).await?;
        serial.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        client.delete(&name, None).await?;
        serial.push(t.elapsed().as_secs_f64() * 1000.0);
        progress.set_position(serial.len() as u64);
    }
    session.close().await;
    let ops = plan.ceiling_ops as f64;
    Ok(Ceiling {
        ops: plan.ceiling_ops,
        window: plan.window,
        creates_per_s: ops / creates.as_secs_f64(),
        deletes_per_s: ops / deletes.as_secs_f64(),
        writes_per_s: 2.0 * ops / (creates + deletes).as_secs_f64(),
        zxid_per_write: after.writes_since(&before).map_or(0.0, |d| d as f64 / (2.0 * ops)),
        requests_per_write: after.counter_since(&before, "zk_packets_received") / (2.0 * ops),
        zk_cpu_us_per_write: after.cpu_us_since(&before) / (2.0 * ops),
        serial_ms: Quantiles::of(&serial),
        spread,
    })
}

/// The same writes as the ceiling, sent the way a farm sends them: from many connections with
/// a couple of requests outstanding on each, so the server cannot batch them per socket read.
async fn spread_ceiling(config: &ZkConfig, plan: &Plan, zk: &ZkCluster) -> anyhow::Result<SpreadCeiling> {
    const CONNECTIONS: usize = 16;
    const WINDOW: usize = 2;
    let mut sessions = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        sessions.push(config.connect().await?);
    }
    let per = plan.ceiling_ops / CONNECTIONS as u64;
    let names: Vec<Vec<String>> = (0..CONNECTIONS)
        .map(|c| (0..per).map(|i| format!("/f{c:02}-{i:08}")).collect())
        .collect();
    let before = ZkSample::take(zk);
    let t0 = Instant::now();
    let runs = sessions.iter().zip(&names).map(|(session, names)| async move {
        let options = session.persistent();
        pipelined_creates_and_deletes(&session.client, &options, names, WINDOW, &|_| {}).await
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    let elapsed = t0.elapsed();
    let after = ZkSample::take(zk);
    for session in sessions {
        session.close().await;
    }
    let writes = (2 * per * CONNECTIONS as u64) as f64;
    Ok(SpreadCeiling {
        connections: CONNECTIONS,
        window: WINDOW,
        writes_per_s: writes / elapsed.as_secs_f64(),
        zk_cpu_us_per_write: after.cpu_us_since(&before) / writes,
    })
}

/// Creates then deletes `names`, keeping `window` requests outstanding (the crate sends a
/// request when its future is created); returns how long each half took.
async fn pipelined_creates_and_deletes(
    client: &zookeeper_client::Client,
    options: &zookeeper_client::CreateOptions<'_>,
    names: &[String],
    window: usize,
    report: &dyn Fn(u64),
) -> anyhow::Result<(Duration, Duration)> {
    let creates = pipelined(
        names,
        window,
        |i| report(i as u64),
        |name| client.create(name, b"x", options),
    )
    .await?;
    let deletes = pipelined(
        names,
        window,
        |i| report((names.len() + i) as u64),
        |name| client.delete(name, None),
    )
    .await?;
    Ok((creates, deletes))
}

/// Sends `request` for every name with at most `window` outstanding; returns how long it took.
async fn pipelined<'n, F, T, E>(
    names: &'n [String],
    window: usize,
    report: impl Fn(usize),
    request: impl Fn(&'n str) -> F,
) -> anyhow::Result<Duration>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let t0 = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for (i, name) in names.iter().enumerate() {
        if inflight.len() >= window {
            inflight.next().await.expect("non-empty")?;
        }
        inflight.push(request(name));
        if i % 1000 == 0 {
            report(i);
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
    }
    Ok(t0.elapsed())
}
