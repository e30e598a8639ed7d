//! Pure helpers of the benchmark: quantiles, ratios, ZooKeeper's four-letter-word output, log
//! timestamps and `/proc` parsing. No I/O here, so all of it is unit-tested.

use std::collections::BTreeMap;

use taskfarm::client::quantile;

/// Write transactions one task costs by the protocol: submit, assign, commit, clean-up
/// (each one multi, so one zxid each).
pub const PROTOCOL_WRITES_PER_TASK: u32 = 4;

/// p50 / p99 / max of unsorted samples (milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quantiles {
    pub n: usize,
    pub p50: f64,
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
        assert_eq!((q.n, q.p50, q.p99, q.max), (5, 3.0, 5.0, 5.0));
        let many: Vec<f64> = (1..=200).map(f64::from).collect();
        let q = Quantiles::of(&many);
        assert_eq!((q.p50, q.p99), (100.0, 198.0));
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
