//! Leader election against real ZooKeeper, with real `taskfarm election` processes.

mod common;

use std::time::Duration;

use common::{candidates, shared_standalone, wait_children, Farm, Proc};
use nix::sys::signal::Signal;
use taskfarm_harness::ZkCluster;

fn is_leader(line: &str) -> bool {
    line.starts_with("LEADER ")
}

/// Starts `n` candidates `c1..cn` and waits until all have joined and one leads.
/// Returns the processes and the candidate ids in line order (leader first).
async fn start_candidates(farm: &Farm, n: usize) -> (Vec<Proc>, Vec<String>) {
    let observer = farm.observer().await;
    let mut procs = Vec::new();
    for i in 1..=n {
        let id = format!("c{i}");
        procs.push(farm.spawn(&id, &["election", "--id", &id]));
    }
    wait_children(&observer, "/master", "all candidates joining", |c| {
        (c.len() == n).then_some(())
    })
    .await;
    let order: Vec<String> = candidates(&observer).await.into_iter().map(|(_, id)| id).collect();
    let leader = &order[0];
    let idx = index_of(leader);
    procs[idx].expect_line("LEADER", is_leader).await;
    (procs, order)
}

fn index_of(id: &str) -> usize {
    id.trim_start_matches('c').parse::<usize>().unwrap() - 1
}

/// Exactly one live process's latest status line says LEADER, and it is `expected`.
fn assert_single_leader(procs: &mut [Proc], expected: &str) {
    let leaders: Vec<String> = procs
        .iter_mut()
        .filter_map(|p| {
            if !matches!(p.guard.try_wait(), Ok(None)) {
                return None;
            }
            let last = p.drain().last().cloned().unwrap_or_default();
            is_leader(&last).then(|| p.guard.name().to_string())
        })
        .collect();
    assert_eq!(leaders, vec![expected.to_string()], "exactly one leader");
}

#[tokio::test]
async fn five_candidates_elect_exactly_one_leader_the_first_in_line() {
    let farm = Farm::new(&shared_standalone().connect_string(), "five", Duration::from_secs(5));
    let (mut procs, order) = start_candidates(&farm, 5).await;
    assert_single_leader(&mut procs, &order[0]);
    for p in &procs {
        assert!(
            p.seen.first().is_some_and(|l| l.starts_with("FOLLOWER ")),
            "each starts as a follower: {:?}",
            p.seen
        );
    }
}

#[tokio::test]
async fn sigterm_hands_leadership_to_the_next_in_line() {
    let farm = Farm::new(&shared_standalone().connect_string(), "term", Duration::from_secs(20));
    let (mut procs, order) = start_candidates(&farm, 3).await;
    let (old, next) = (index_of(&order[0]), index_of(&order[1]));
    procs[old].signal(Signal::SIGTERM);
    let status = procs[old].exit().await;
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    // With a 20 s session timeout, only the closed session explains a prompt takeover;
    // the bound below is the failure limit, far above it.
    procs[next].expect_line("LEADER after SIGTERM", is_leader).await;
    let observer = farm.observer().await;
    let now: Vec<String> = candidates(&observer).await.into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        now,
        order[1..].to_vec(),
        "the old leader's candidate znode is gone at once"
    );
    let third = index_of(&order[2]);
    assert!(
        !procs[third].drain().iter().any(|l| is_leader(l)),
        "the third in line stays a follower"
    );
}

#[tokio::test]
async fn sigkill_hands_leadership_over_after_the_session_timeout() {
    let farm = Farm::new(&shared_standalone().connect_string(), "kill", Duration::from_secs(2));
    let (mut procs, order) = start_candidates(&farm, 3).await;
    let (old, next) = (index_of(&order[0]), index_of(&order[1]));
    procs[old].signal(Signal::SIGKILL);
    procs[next].expect_line("LEADER after SIGKILL", is_leader).await;
    assert_single_leader(&mut procs, &order[1]);
}

#[tokio::test]
async fn a_leader_frozen_past_its_session_steps_down_and_rejoins_at_the_back() {
    let farm = Farm::new(&shared_standalone().connect_string(), "freeze", Duration::from_secs(2));
    let (mut procs, order) = start_candidates(&farm, 3).await;
    let (old, next) = (index_of(&order[0]), index_of(&order[1]));
    let observer = farm.observer().await;
    let before = candidates(&observer).await;

    procs[old].signal(Signal::SIGSTOP);
    procs[next]
        .expect_line("LEADER while the old one is frozen", is_leader)
        .await;
    procs[old].signal(Signal::SIGCONT);
    procs[old]
        .expect_line("FOLLOWER after resuming", |l| l.starts_with("FOLLOWER "))
        .await;

    // It rejoined with a new candidate znode, behind everybody else.
    wait_children(&observer, "/master", "the old leader rejoining", |c| {
        (c.len() == 3).then_some(())
    })
    .await;
    let after = candidates(&observer).await;
    assert_eq!(after.last().unwrap().1, order[0], "the old leader is last in line");
    assert_ne!(
        after.last().unwrap().0,
        before[0].0,
        "with a new znode, in a new session"
    );
    assert_eq!(after[0].1, order[1]);
    assert_single_leader(&mut procs, &order[1]);
}

#[tokio::test]
async fn each_candidate_is_watched_by_at_most_one_session() {
    let zk = shared_standalone();
    let farm = Farm::new(&zk.connect_string(), "herd", Duration::from_secs(5));
    let (_procs, _order) = start_candidates(&farm, 5).await;
    let observer = farm.observer().await;
    let names: Vec<String> = candidates(&observer).await.into_iter().map(|(n, _)| n).collect();
    // Candidates 2..5 each register a data watch on their predecessor; wait until all four show.
    let wchp = loop {
        let out = zk.watches_by_path();
        let watched = names
            .iter()
            .filter(|n| out.contains(&format!("{}/master/{n}", farm.chroot)))
            .count();
        if watched == 4 {
            break out;
        }
        // wchp is a snapshot with nothing to subscribe to: ask again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut current: Option<String> = None;
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for line in wchp.lines() {
        if line.starts_with('/') {
            current = Some(line.trim().to_string());
        } else if line.trim().starts_with("0x") {
            if let Some(path) = &current {
                *counts.entry(path.clone()).or_default() += 1;
            }
        }
    }
    for n in &names {
        let path = format!("{}/master/{n}", farm.chroot);
        assert!(
            counts.get(&path).copied().unwrap_or(0) <= 1,
            "{path} watched by {} sessions",
            counts[&path]
        );
    }
    let last = format!("{}/master/{}", farm.chroot, names.last().unwrap());
    assert!(!counts.contains_key(&last), "nobody watches the last candidate");
}

#[tokio::test]
async fn the_election_survives_the_loss_of_one_zookeeper_server() {
    let mut zk = ZkCluster::ensemble(3, common::zk_options()).expect("3-server ensemble");
    let farm = Farm::new(&zk.connect_string(), "quorum", Duration::from_secs(4));
    let (mut procs, order) = start_candidates(&farm, 3).await;
    // Take down the ensemble's leader: the harder loss (a new ZooKeeper leader is elected).
    let zk_leader = zk.leader_index().expect("an ensemble leader");
    zk.stop_server(zk_leader, Signal::SIGKILL).unwrap();
    // The farm's election still works: hand leadership over and see the next one lead.
    let (old, next) = (index_of(&order[0]), index_of(&order[1]));
    procs[old].signal(Signal::SIGTERM);
    procs[old].exit().await;
    procs[next]
        .expect_line("LEADER with two of three servers", is_leader)
        .await;
    let observer = farm.observer().await;
    let now: Vec<String> = candidates(&observer).await.into_iter().map(|(_, id)| id).collect();
    assert_eq!(now, order[1..].to_vec());
}
