//! Property tests (fuzzing) of everything that parses bytes or strings from outside: task
//! payloads, the znode-data records, ids and connect strings. Arbitrary input must give a value
//! or an error, never a panic; valid values must survive a round trip.

use proptest::prelude::*;
use taskfarm::protocol::{
    validate_id, Assignment, FarmStatus, TaskRecord, TaskResult, WorkerRecord, MAX_PAYLOAD_BYTES, MAX_TASK_ID_LEN,
};
use taskfarm::task::{TaskSpec, MAX_CPU_ROUNDS, MAX_SLEEP_MS};
use taskfarm::zk::parse_connect_string;

/// Bytes that are often almost-JSON: arbitrary bytes, or JSON-ish text built from fragments.
fn nasty_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"kind\"".to_string()),
        Just("\"sleep\"".to_string()),
        Just("\"cpu\"".to_string()),
        Just("\"echo\"".to_string()),
        Just("\"ms\"".to_string()),
        Just("\"rounds\"".to_string()),
        Just("\"state\"".to_string()),
        Just("\"done\"".to_string()),
        Just("\"task\"".to_string()),
        Just("\"epoch\"".to_string()),
        Just("null".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e309".to_string()),
        Just("\"\\ud800\"".to_string()),
        "[a-z0-9]{0,8}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(fragment, 0..40).prop_map(|v| v.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(data in nasty_bytes()) {
        let _ = TaskSpec::parse(&data);
        let _ = TaskRecord::parse(&data);
        let _ = TaskResult::parse(&data);
        if let Ok(w) = WorkerRecord::parse(&data) {
            let _ = w.assignment();
        }
        let _ = FarmStatus::parse(&data);
        let text = String::from_utf8_lossy(&data);
        let _ = validate_id(&text);
        let _ = parse_connect_string(&text);
        let _ = taskfarm::protocol::candidate_sequence(&text);
    }

    #[test]
    fn an_accepted_id_is_safe_in_a_path(id in "\\PC{0,140}") {
        if validate_id(&id).is_ok() {
            prop_assert!(!id.is_empty() && id.len() <= MAX_TASK_ID_LEN);
            prop_assert!(!id.starts_with('.'));
            prop_assert!(!id.contains('/'));
            prop_assert!(id.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn valid_ids_are_accepted(id in "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}") {
        prop_assert!(validate_id(&id).is_ok());
    }

    #[test]
    fn an_accepted_connect_string_has_a_clean_chroot(s in "[a-z0-9.,:/]{0,40}") {
        if let Ok((hosts, chroot)) = parse_connect_string(&s) {
            prop_assert!(!hosts.is_empty());
            prop_assert!(chroot.starts_with('/'));
            prop_assert!(chroot == "/" || !chroot.ends_with('/'));
            prop_assert!(!chroot.contains("//"));
        }
    }

    #[test]
    fn valid_connect_strings_round_trip(
        hosts in proptest::collection::vec(("[a-z][a-z0-9.-]{0,15}", 1u16..), 1..4),
        chroot in proptest::collection::vec("[a-z0-9_-]{1,8}", 0..3),
    ) {
        let hosts: Vec<String> = hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        let hosts = hosts.join(",");
        let chroot = if chroot.is_empty() { "/".to_string() } else { format!("/{}", chroot.join("/")) };
        let s = if chroot == "/" { hosts.clone() } else { format!("{hosts}{chroot}") };
        prop_assert_eq!(parse_connect_string(&s).unwrap(), (hosts, chroot));
    }

    #[test]
    fn valid_task_specs_round_trip(spec in task_spec()) {
        let bytes = spec.to_bytes();
        prop_assert!(bytes.len() <= MAX_PAYLOAD_BYTES);
        prop_assert_eq!(TaskSpec::parse(&bytes).unwrap(), spec);
    }

    #[test]
    fn task_records_round_trip(record in task_record()) {
        prop_assert_eq!(TaskRecord::parse(&record.to_bytes()).unwrap(), record);
    }

    #[test]
    fn results_round_trip(result in task_result()) {
        prop_assert_eq!(TaskResult::parse(&result.to_bytes()).unwrap(), result);
    }

    #[test]
    fn worker_assignments_round_trip(
        task in "[a-z0-9][a-z0-9_.-]{0,40}",
        epoch in any::<i64>(),
        attempt in any::<u32>(),
        task_version in any::<i32>(),
    ) {
        let a = Assignment { task, epoch, attempt, task_version };
        let parsed = WorkerRecord::parse(&WorkerRecord::assigned(&a).to_bytes()).unwrap();
        prop_assert_eq!(parsed.assignment().unwrap(), Some(a));
        prop_assert_eq!(WorkerRecord::parse(&WorkerRecord::free().to_bytes()).unwrap().assignment().unwrap(), None);
    }

    #[test]
    fn farm_status_round_trips(
        leader in "[a-z0-9-]{1,20}",
        epoch in any::<i64>(),
        n in any::<u32>(),
        total in any::<u64>(),
    ) {
        let s = FarmStatus {
            leader,
            epoch,
            leader_since_ms: total / 3,
            updated_ms: total / 2,
            workers: n,
            free_workers: n / 2,
            pending: n / 3,
            running: n / 4,
            completed_total: total,
            failovers: total / 5,
        };
        let bytes = serde_json::to_vec(&s).unwrap();
        prop_assert_eq!(FarmStatus::parse(&bytes).unwrap(), s);
    }
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    prop_oneof![
        (0..=MAX_SLEEP_MS).prop_map(|ms| TaskSpec::Sleep { ms }),
        (0..=MAX_CPU_ROUNDS, "\\PC{0,64}").prop_map(|(rounds, seed)| TaskSpec::Cpu { rounds, seed }),
        "\\PC{0,256}".prop_map(|m| TaskSpec::Echo {
            message: serde_json::Value::String(m)
        }),
        any::<i64>().prop_map(|n| TaskSpec::Echo {
            message: serde_json::json!({ "n": n, "list": [n, null, true] })
        }),
        "\\PC{0,256}".prop_map(|message| TaskSpec::Fail { message }),
        Just(TaskSpec::Crash),
    ]
}

fn task_record() -> impl Strategy<Value = TaskRecord> {
    (
        "[a-z0-9-]{1,30}",
        0u64..=u64::MAX / 2,
        "[a-z0-9-]{1,30}",
        any::<i64>(),
        0u32..1000,
        any::<bool>(),
    )
        .prop_map(|(client, ms, worker, epoch, attempt, assigned)| {
            let queued = TaskRecord::queued(&client, ms);
            if assigned {
                (0..attempt.min(3) + 1).fold(queued, |r, _| r.assigned(&worker, epoch))
            } else {
                queued
            }
        })
}

fn task_result() -> impl Strategy<Value = TaskResult> {
    (
        "[a-z0-9-]{1,30}",
        0u32..1000,
        0u64..100_000,
        any::<bool>(),
        "\\PC{0,100}",
    )
        .prop_map(|(worker, attempt, run_ms, ok, text)| {
            if ok {
                TaskResult::success(serde_json::Value::String(text), &worker, attempt, run_ms)
            } else {
                TaskResult::failure(text, Some(&worker), attempt, run_ms)
            }
        })
}
