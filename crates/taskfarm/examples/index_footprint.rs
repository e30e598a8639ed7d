//! What the master's index costs per queued task: builds a standby's index of N queued tasks
//! (as its observations would, one by one) and prints the resident memory it added and the
//! time a take-over and the first decision take.
//!
//!   cargo run --release -p taskfarm --example index_footprint [N]
//!
//! Resident memory comes from /proc/self/statm, before and after; the records are those a
//! `taskfarm client` writes.

use std::time::Instant;

use taskfarm::master::index::{Index, TaskObs, WorkerObs};
use taskfarm::protocol::TaskRecord;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let clients = 10;
    let before = resident_bytes();
    let mut index = Index::new(0, 3);
    for w in 0..4 {
        let obs = WorkerObs {
            assignment: Ok(None),
            version: 0,
            ephemeral: true,
        };
        index.observe_worker(&format!("w{w}"), Some(obs));
    }
    let started = Instant::now();
    for i in 0..n {
        let client = format!("client-{:08x}", i % clients);
        let id = format!("{client}-{:08}", i / clients);
        let mut record = TaskRecord::queued(&client, 1_764_547_200_000 + i as u64);
        record.timeout_ms = None;
        let obs = TaskObs {
            record: Ok(record),
            version: 0,
            created: i as i64,
        };
        index.observe_task(&id, Some(obs));
        index.settle();
    }
    let observed = started.elapsed();
    let after = resident_bytes();
    let started = Instant::now();
    let counts = index.counts();
    index.expire(taskfarm::master::index::Deadlines {
        default_limit_ms: 3_600_000,
        grace_ms: 30_000,
    });
    let once_a_second = started.elapsed();
    let started = Instant::now();
    index.take_over(1);
    let first = index.decide();
    let decided = started.elapsed();
    println!(
        "queued tasks:            {n} ({} pending by the index's count)",
        counts.pending
    );
    println!(
        "resident memory added:   {:.1} MiB",
        (after - before) as f64 / 1048576.0
    );
    println!("per queued task:         {} bytes", (after - before) / n.max(1) as u64);
    println!(
        "observing, per task:     {:.2} µs",
        observed.as_secs_f64() * 1e6 / n.max(1) as f64
    );
    println!(
        "take-over + first decide: {:.3} ms ({} assignments)",
        decided.as_secs_f64() * 1e3,
        first.len()
    );
    println!(
        "the leader's passes once a second (status counts, deadlines): {:.3} ms",
        once_a_second.as_secs_f64() * 1e3
    );
}
