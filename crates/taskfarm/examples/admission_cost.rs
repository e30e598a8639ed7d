//! The cost of the admission bound (docs/BENCHMARKS.md, "Admission control: the cost of the
//! bound"): ZooKeeper's rate of task-shaped submissions (a multi creating `/data/<id>` and
//! `/tasks/<id>`, as PROTOCOL.md §5.4) and of their deletions, with and without the farm's
//! quota on `/data`, on one standalone server that enforces quotas. Runs alternate A-B-B-A so
//! that drift on a shared machine falls on both sides.
//!
//!     cargo run --release -p taskfarm --example admission_cost -- [TASKS] [ROUNDS] [IN_FLIGHT]

use std::time::Instant;

use futures::stream::{self, StreamExt as _};
use taskfarm::admission::{self, Bound};
use taskfarm::zk::{ZkConfig, ZkSession};
use taskfarm_harness::{ZkCluster, ZkOptions};

async fn submit(s: &ZkSession, id: &str) {
    let options = s.private_ephemeral();
    let mut multi = s.client.new_multi_writer();
    multi
        .add_create(&format!("/data/{id}"), br#"{"kind":"sleep","ms":0}"#, &options)
        .unwrap();
    multi
        .add_create(
            &format!("/tasks/{id}"),
            br#"{"client":"bench-0123abcd","state":"queued","attempt":0,"submitted_ms":1795648225095,"timeout_ms":0}"#,
            &options,
        )
        .unwrap();
    multi.commit().await.unwrap();
}

/// Submits `n` tasks then deletes them, `in_flight` requests at a time; returns the two rates.
async fn run(config: &ZkConfig, n: usize, in_flight: usize) -> (f64, f64) {
    let s = config.connect().await.unwrap();
    s.ensure_layout().await.unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("bench-0123abcd-{i:08}")).collect();
    let t0 = Instant::now();
    stream::iter(&ids)
        .for_each_concurrent(in_flight, |id| submit(&s, id))
        .await;
    let create = n as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    stream::iter(&ids)
        .for_each_concurrent(in_flight, |id| {
            let s = &s;
            async move {
                s.client.delete(&format!("/tasks/{id}"), None).await.unwrap();
                s.client.delete(&format!("/data/{id}"), None).await.unwrap();
            }
        })
        .await;
    let delete = n as f64 / t1.elapsed().as_secs_f64();
    s.close().await;
    (create, delete)
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, rounds, in_flight) = (arg(1, 5000), arg(2, 3), arg(3, 64));
    let zk = ZkCluster::standalone(ZkOptions {
        full_jit: true,
        ..ZkOptions::default()
    })
    .expect("start ZooKeeper");
    let config = |chroot: &str| {
        ZkConfig::new(
            &format!("{}/{chroot}", zk.connect_string()),
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(30),
            "",
        )
        .unwrap()
    };
    let (plain, bounded) = (config("plain"), config("bounded"));
    // Never reached here: the cost is the check and the counting, not refusals.
    admission::apply(&bounded, Bound { tasks: 1_000_000 }).await.unwrap();
    // Warm-up (the JIT), not reported.
    run(&plain, n, in_flight).await;
    run(&bounded, n, in_flight).await;
    println!(
        "| round | order | without quota: submits/s | with quota: submits/s | without: deletes/s | with: deletes/s |"
    );
    println!("|---|---|---|---|---|---|");
    let (mut sums, mut count) = ([0.0f64; 4], 0.0);
    for round in 1..=rounds {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for bounded_run in [false, true, true, false] {
            let r = run(if bounded_run { &bounded } else { &plain }, n, in_flight).await;
            if bounded_run {
                b.push(r)
            } else {
                a.push(r)
            }
        }
        let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
        let row = [
            mean(&a, |r| r.0),
            mean(&b, |r| r.0),
            mean(&a, |r| r.1),
            mean(&b, |r| r.1),
        ];
        for (s, v) in sums.iter_mut().zip(row) {
            *s += v;
        }
        count += 1.0;
        println!(
            "| {round} | A-B-B-A | {:.0} | {:.0} | {:.0} | {:.0} |",
            row[0], row[1], row[2], row[3]
        );
    }
    let m: Vec<f64> = sums.iter().map(|s| s / count).collect();
    println!(
        "| mean | | {:.0} | {:.0} ({:+.1}%) | {:.0} | {:.0} ({:+.1}%) |",
        m[0],
        m[1],
        (m[1] / m[0] - 1.0) * 100.0,
        m[2],
        m[3],
        (m[3] / m[2] - 1.0) * 100.0
    );
}
