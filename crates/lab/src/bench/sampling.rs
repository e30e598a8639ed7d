//! Figures read from outside the processes while they run: ZooKeeper's four-letter words
//! (`srvr` zxid, `mntr` counters) and `/proc` (CPU ticks and RSS of the servers and the roles,
//! what the machine is).

use std::collections::BTreeMap;

use taskfarm_harness::ZkCluster;

use super::report::{Footprint, Machine};
use super::stats;
use crate::farm::{LocalFarm, Role};

/// What the ZooKeeper servers say at one moment; two samples bracket a measurement.
pub(super) struct ZkSample {
    /// The highest zxid any running server reports.
    zxid: Option<(u32, u32)>,
    /// `mntr` counters summed over the running servers (each counts its own clients' packets).
    mntr: BTreeMap<String, f64>,
    /// CPU ticks used so far by all running servers.
    cpu_ticks: u64,
}

impl ZkSample {
    pub fn take(zk: &ZkCluster) -> Self {
        let running = || (0..zk.len()).filter(|&i| zk.servers()[i].is_running());
        // The four-letter words are blocking socket round trips.
        let (zxid, mntr) = tokio::task::block_in_place(|| {
            let zxid = running()
                .filter_map(|i| zk.four_letter(i, "srvr").and_then(|s| stats::parse_srvr_zxid(&s)))
                .max();
            let mut mntr = BTreeMap::new();
            for i in running() {
                for (k, v) in zk
                    .four_letter(i, "mntr")
                    .map(|m| stats::parse_mntr(&m))
                    .unwrap_or_default()
                {
                    *mntr.entry(k).or_insert(0.0) += v;
                }
            }
            (zxid, mntr)
        });
        let cpu_ticks = zk.servers().iter().filter_map(|s| s.pid()).map(cpu_ticks).sum();
        Self { zxid, mntr, cpu_ticks }
    }

    /// Write transactions (zxids) from `before` to this sample.
    pub fn writes_since(&self, before: &Self) -> Option<u64> {
        stats::zxid_delta(before.zxid?, self.zxid?)
    }

    /// How much a `mntr` counter grew from `before` (0 if it is missing or went back).
    pub fn counter_since(&self, before: &Self, key: &str) -> f64 {
        match (before.mntr.get(key), self.mntr.get(key)) {
            (Some(a), Some(b)) if b >= a => b - a,
            _ => 0.0,
        }
    }

    /// The servers' CPU time from `before`, in microseconds.
    pub fn cpu_us_since(&self, before: &Self) -> f64 {
        stats::ticks_us(self.cpu_ticks.saturating_sub(before.cpu_ticks))
    }
}

pub(super) fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stats::parse_proc_stat_cpu_ticks(&s))
        .unwrap_or(0)
}

pub(super) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| stats::parse_proc_status_kib(&s, "VmRSS"))
        .unwrap_or(0)
}

/// CPU ticks used so far by the running processes of a role.
pub(super) fn role_cpu_ticks(farm: &LocalFarm, role: Role) -> u64 {
    farm.processes()
        .filter(|p| p.role == role)
        .filter_map(|p| p.pid())
        .map(cpu_ticks)
        .sum()
}

/// Raises each role's peak RSS to what its processes use now.
pub(super) fn sample_rss(farm: &LocalFarm, fp: &mut Footprint) {
    for p in farm.processes() {
        let Some(pid) = p.pid() else { continue };
        let kib = rss_kib(pid);
        let slot = match p.role {
            Role::Master => &mut fp.master_rss_kib,
            Role::Worker => &mut fp.worker_rss_kib,
            Role::Client => &mut fp.client_rss_kib,
        };
        *slot = (*slot).max(kib);
    }
}

pub(super) fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|x| x.1.trim().to_string())
            })
            .unwrap_or_default(),
        mem_total_mib: stats::parse_proc_status_kib(&meminfo, "MemTotal").unwrap_or(0) / 1024,
        load_avg_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        zookeeper: String::new(),
    }
}
