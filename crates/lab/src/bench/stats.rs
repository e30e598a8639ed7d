//! Pure helpers of the benchmark: quantiles, ratios, ZooKeeper's four-letter-word output, log
//! timestamps and `/proc` parsing. No I/O here, so all of it is unit-tested.

use std::collections::BTreeMap;

use taskfarm::client::quantile;

/// Write transactions one task costs by the protocol: submit, assign, commit, clean-up
/// (each one multi, so one zxid each).
pub const PROTOCOL_WRITES_PER_TASK: u32 = 4;

/// p50 / p90 / p99 / max of unsorted samples (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quantiles {
    pub n: usize,
    pub p50: f64,
    /// Absent from reports written before it was added.
    #[serde(default)]
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    pub fn of(samples: &[f64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        Self {
            n: s.len(),
            p50: quantile(&s, 0.50),
            p90: quantile(&s, 0.90),
            p99: quantile(&s, 0.99),
            max: s.last().copied().unwrap_or(0.0),
        }
    }
}

/// Throughput as a fraction of the bound ZooKeeper sets: `ceiling / writes_per_task` tasks/s.
pub fn ceiling_ratio(tasks_per_s: f64, ceiling_writes_per_s: f64, writes_per_task: f64) -> f64 {
    if ceiling_writes_per_s <= 0.0 || writes_per_task <= 0.0 {
        return 0.0;
    }
    tasks_per_s / (ceiling_writes_per_s / writes_per_task)
}

/// `b / a`, 0 when `a` is 0.
pub fn ratio(b: f64, a: f64) -> f64 {
    if a > 0.0 {
        b / a
    } else {
        0.0
    }
}

/// The `Zxid: 0x...` of a `srvr` answer, as (epoch, counter).
pub fn parse_srvr_zxid(srvr: &str) -> Option<(u32, u32)> {
    let hex = srvr.lines().find_map(|l| l.strip_prefix("Zxid:"))?.trim();
    let v = u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok()?;
    Some(((v >> 32) as u32, v as u32))
}

/// Transactions between two zxids of the same epoch (None across a leader change).
pub fn zxid_delta(before: (u32, u32), after: (u32, u32)) -> Option<u64> {
    (before.0 == after.0 && after.1 >= before.1).then(|| u64::from(after.1 - before.1))
}

/// `mntr` answers `key<TAB>value` lines; numeric values only.
pub fn parse_mntr(mntr: &str) -> BTreeMap<String, f64> {
    mntr.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('\t')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One client connection of a `cons` answer: its session and packet counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounters {
    /// Packets received from the client (requests and pings).
    pub received: u64,
    /// Packets sent to it (responses and watch notifications).
    pub sent: u64,
}

/// The connections of a `cons` answer that have a session, by session id (`0x...`, lower case).
/// A line reads ` /127.0.0.1:5555[1](queued=0,recved=12,sent=13,sid=0x1000...,lop=GETD,...)`;
/// the four-letter word's own connection has no `sid` and is left out.
pub fn parse_cons(cons: &str) -> BTreeMap<String, ConnCounters> {
    let mut out = BTreeMap::new();
    for line in cons.lines() {
        let Some(fields) = line.split_once('(').map(|x| x.1.trim_end().trim_end_matches(')')) else {
            continue;
        };
        let mut sid = None;
        let mut c = ConnCounters::default();
        for kv in fields.split(',') {
            match kv.split_once('=') {
                Some(("sid", v)) => sid = Some(v.trim().to_ascii_lowercase()),
                Some(("recved", v)) => c.received = v.trim().parse().unwrap_or(0),
                Some(("sent", v)) => c.sent = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        if let Some(sid) = sid {
            // One session, one connection: should a session show twice, its counters add up.
            let e: &mut ConnCounters = out.entry(sid).or_default();
            e.received += c.received;
            e.sent += c.sent;
        }
    }
    out
}

/// `wchs`: `<c> connections watching <p> paths` / `Total watches:<w>`, as (c, p, w).
pub fn parse_wchs(wchs: &str) -> Option<(u64, u64, u64)> {
    let mut words = wchs.split_whitespace();
    let connections = words.next()?.parse().ok()?;
    let paths = wchs
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| (w[0] == "watching").then(|| w[1].parse().ok()).flatten())?;
    let total = wchs
        .split_once("Total watches:")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((connections, paths, total))
}

/// `wchc`: for each session (`0x...` on a line of its own) the paths it watches (one per
/// indented line), counted.
pub fn parse_wchc(wchc: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in wchc.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some(sid) = &current {
                *out.entry(sid.clone()).or_insert(0) += 1;
            }
        } else if line.starts_with("0x") {
            let sid = line.trim().to_ascii_lowercase();
            out.entry(sid.clone()).or_insert(0);
            current = Some(sid);
        } else {
            current = None;
        }
    }
    out
}

/// Bytes of memory per queued task above a base: the slope from `(base_queued, base_kib)` to
/// `(queued, kib)`; 0 when the two sizes are the same.
pub fn bytes_per_queued_task(base_queued: u64, base_kib: u64, queued: u64, kib: u64) -> f64 {
    if queued <= base_queued {
        return 0.0;
    }
    (kib as f64 - base_kib as f64) * 1024.0 / (queued - base_queued) as f64
}

/// For each element of `after` (sorted or not), the gap to the first element of `later` (sorted)
/// at or after it; elements with none after them are skipped.
pub fn gaps_to_next(after: &[f64], later_sorted: &[f64]) -> Vec<f64> {
    after
        .iter()
        .filter_map(|&t| {
            let i = later_sorted.partition_point(|&x| x < t);
            later_sorted.get(i).map(|&n| n - t)
        })
        .collect()
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC timestamp as tracing-subscriber writes
/// it (`2026-11-25T23:22:51.123456Z`); fractional digits optional.
pub fn parse_utc_timestamp_ms(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut t = time.split(':');
    let (hh, mm): (u32, u32) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: f64 = t.next()?.parse().ok()?;
    if t.next().is_some() || hh > 23 || mm > 59 || !(0.0..61.0).contains(&sec) {
        return None;
    }
    let days = days_from_civil(y, m, day);
    Some(((days * 86_400 + i64::from(hh) * 3_600 + i64::from(mm) * 60) as f64 + sec) * 1000.0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// utime + stime of a `/proc/<pid>/stat` line, in clock ticks (USER_HZ, 100 on Linux).
pub fn parse_proc_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Vm...:  1234 kB` value of `/proc/<pid>/status`, in KiB.
pub fn parse_proc_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Linux reports process CPU times in USER_HZ ticks, fixed at 100 per second for userland.
pub const USER_HZ: f64 = 100.0;

/// CPU clock ticks in microseconds.
pub fn ticks_us(ticks: u64) -> f64 {
    ticks as f64 / USER_HZ * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let q = Quantiles::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((q.n, q.p50, q.p90, q.p99, q.max), (5, 3.0, 5.0, 5.0, 5.0));
        let many: Vec<f64> = (1..=200).map(f64::from).collect();
        let q = Quantiles::of(&many);
        assert_eq!((q.p50, q.p90, q.p99), (100.0, 180.0, 198.0));
        // Reports written before p90 existed still read.
        let old: Quantiles = serde_json::from_str(r#"{"n":1,"p50":2.0,"p99":3.0,"max":4.0}"#).unwrap();
        assert_eq!((old.p50, old.p90, old.max), (2.0, 0.0, 4.0));
        assert_eq!(Quantiles::of(&[]), Quantiles::default());
    }

    #[test]
    fn ceiling_ratio_divides_the_ceiling_by_the_writes_per_task() {
        // 10,000 writes/s at 4 writes a task bounds throughput at 2,500 tasks/s.
        assert!((ceiling_ratio(1_500.0, 10_000.0, 4.0) - 0.6).abs() < 1e-12);
        assert_eq!(ceiling_ratio(1.0, 0.0, 4.0), 0.0);
        assert_eq!(ratio(9.0, 10.0), 0.9);
        assert_eq!(ratio(9.0, 0.0), 0.0);
    }

    #[test]
    fn srvr_zxid_is_split_into_epoch_and_counter() {
        let srvr = "Zookeeper version: 3.8.0-debian\nLatency min/avg/max: 0/0.4/12\nReceived: 10\n\
                    Zxid: 0x2000001f4\nMode: leader\nNode count: 9\n";
        assert_eq!(parse_srvr_zxid(srvr), Some((2, 0x1f4)));
        assert_eq!(parse_srvr_zxid("Mode: standalone\n"), None);
        assert_eq!(zxid_delta((2, 10), (2, 50)), Some(40));
        assert_eq!(zxid_delta((2, 10), (3, 1)), None);
    }

    #[test]
    fn mntr_numbers_are_parsed() {
        let m = parse_mntr("zk_version\t3.8.0-debian\nzk_avg_latency\t0.25\nzk_packets_received\t1234\n");
        assert_eq!(m.get("zk_packets_received"), Some(&1234.0));
        assert_eq!(m.get("zk_avg_latency"), Some(&0.25));
        assert!(!m.contains_key("zk_version"));
    }

    #[test]
    fn log_timestamps_become_epoch_milliseconds() {
        assert_eq!(parse_utc_timestamp_ms("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_utc_timestamp_ms("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500.0)
        );
        let t = parse_utc_timestamp_ms("2026-11-25T23:22:51.123456Z").unwrap();
        assert!((t - 1_795_648_971_123.456).abs() < 1e-3, "{t}");
        for bad in [
            "",
            "2026-11-25 23:22:51Z",
            "2026-13-01T00:00:00Z",
            "2026-11-25T23:22:51",
        ] {
            assert_eq!(parse_utc_timestamp_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn cons_wchs_and_wchc_are_parsed() {
        let cons = " /127.0.0.1:40312[1](queued=0,recved=1200,sent=1800,sid=0x100006599CF001C,lop=MULT,est=1,to=2000,lcxid=0x4b0,lzxid=0x1f4,lresp=2,llat=0,minlat=0,avglat=0,maxlat=3)\n \
                    /127.0.0.1:40314[1](queued=0,recved=7,sent=9,sid=0x100006599cf001d,lop=PING,est=1,to=2000)\n \
                    /127.0.0.1:40399[0](queued=0,recved=1,sent=0)\n\n";
        let c = parse_cons(cons);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c["0x100006599cf001c"],
            ConnCounters {
                received: 1200,
                sent: 1800
            }
        );
        assert_eq!(c["0x100006599cf001d"].sent, 9);
        assert_eq!(
            parse_wchs("17 connections watching 10012 paths\nTotal watches:10040\n"),
            Some((17, 10012, 10040))
        );
        assert_eq!(parse_wchs(""), None);
        let wchc = "0x100006599cf001c\n\t/tasks\n\t/workers\n\n0x100006599cf001d\n\t/data/c-1\n\t/data/c-2\n\t/data/c-3\n0x100006599cf0020\n";
        let w = parse_wchc(wchc);
        assert_eq!(w["0x100006599cf001c"], 2);
        assert_eq!(w["0x100006599cf001d"], 3);
        assert_eq!(w["0x100006599cf0020"], 0);
    }

    #[test]
    fn memory_slope_and_gaps() {
        // 10 MiB more with 100,000 more tasks queued: ~105 bytes each.
        let b = bytes_per_queued_task(100, 8_000, 100_100, 8_000 + 10 * 1024);
        assert!((b - 104.8576).abs() < 1e-9, "{b}");
        assert_eq!(bytes_per_queued_task(100, 8_000, 100, 9_000), 0.0);
        assert!(bytes_per_queued_task(100, 8_000, 1_100, 7_000) < 0.0);
        assert_eq!(gaps_to_next(&[1.0, 5.0, 9.0], &[2.0, 5.0, 6.0]), vec![1.0, 0.0]);
    }

    #[test]
    fn proc_files_are_parsed() {
        let stat = "4242 (task farm) S 1 4242 4242 0 -1 4194304 1234 0 0 0 250 75 0 0 20 0 9 0 100 \
                    12345678 2000 18446744073709551615";
        assert_eq!(parse_proc_stat_cpu_ticks(stat), Some(325));
        let status = "Name:\ttaskfarm\nVmHWM:\t   12000 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(parse_proc_status_kib(status, "VmRSS"), Some(9876));
        assert_eq!(parse_proc_status_kib(status, "VmHWM"), Some(12000));
        assert_eq!(parse_proc_status_kib(status, "VmSwap"), None);
    }
}
