//! Every section parser fed truncated, garbled and hostile output: never a
//! panic, always a verdict (an observation the decision table can decide).

use std::path::Path;

use gpupatrol::decide::{Observation, decide};
use gpupatrol::probe::frames::{self, Frame, Frames};
use gpupatrol::probe::{Plan, Section, facts};
use gpupatrol::state::State;
use proptest::prelude::*;

const PROFILE: &str = "name: pp\nhost: h\ngpu: { samples: 3 }\njob:\n  alive: { slurm: train }\n  log: /l\n  progress: 'Epoch (\\d+)'\n  done_marker: /d\n  done_pattern: 'done'\n  max_runtime: 1h\nartifacts:\n  - { path: /a, expect_count: 3 }\n  - { path: /b }\ndata_mount: /\nchain:\n  dir: /c\n  stages:\n    - { name: train, run: 'x', stall_after: 1m }\n    - { name: eval, run: 'y' }\n";

const ALL: [Section; 11] = [
    Section::Now,
    Section::Alive,
    Section::Markers,
    Section::Log,
    Section::Artifacts,
    Section::Disk,
    Section::Chain,
    Section::Wait,
    Section::Dmesg,
    Section::Cgroup,
    Section::Gpu,
];

/// Keys the sections print, so generated lines hit the parsers' real paths.
const KEYS: &[&str] = &[
    "now",
    "alive",
    "why",
    "pid",
    "started",
    "threads",
    "method",
    "job_id",
    "job_state",
    "job_elapsed",
    "job_reason",
    "final_id",
    "final_state",
    "final_exit",
    "final_reason",
    "done_marker",
    "done_marker_mtime",
    "master_done",
    "master_size",
    "master_inode",
    "master_fp_len",
    "master_replaced",
    "artifact_1",
    "artifact_2",
    "chain",
    "chain_alive",
    "chain_pid",
    "chain_started",
    "done",
    "stage_1",
    "stage_2",
    "stage_1_result",
    "slurm_train_id",
    "slurm_train_state",
    "slurm_train_exit",
    "slurm_error",
    "marker",
    "pattern",
    "pattern_size",
    "cg_current",
    "cg_max",
    "cg_inactive_file",
    "cg_oom_kill",
    "cg_cpu_max",
    "cg_version",
    "mem_total_kb",
    "mem_avail_kb",
    "loadavg",
    "nproc",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("yes".to_string()),
        Just("no".to_string()),
        Just("pending".to_string()),
        Just("error".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1|2|3|4".to_string()),
        Just("SUCCESS|yes".to_string()),
        Just("FAILED 99999999999|no".to_string()),
        Just("0:4294967296".to_string()),
        Just("dir 3 1".to_string()),
        Just("max 100000".to_string()),
        "[0-9]{0,25}",
        "\\PC{0,40}",
        any::<String>(),
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k}={v}")),
        (
            prop::sample::select(
                &[
                    "m log",
                    "m size",
                    "m inode",
                    "m mtime",
                    "m start",
                    "m lines",
                    "m last_len",
                    "m ends_nl",
                    "m done_line",
                    "m lastprog",
                    "m fp_len"
                ][..]
            ),
            value()
        )
            .prop_map(|(k, v)| format!("{k}={v}")),
        (
            prop::sample::select(&["c", "t", "x", "s", "e"][..]),
            "[0-9]{0,22}",
            "\\PC{0,60}"
        )
            .prop_map(|(t, n, s)| format!("{t} {n} {s}")),
        ("[0-9]{0,3}", "[0-9]{0,4}", "\\PC{0,80}").prop_map(|(s, rc, b)| format!("g {s} {rc} {b}")),
        ("[0-9]{0,4}", "-?[0-9.]{0,12}", "[0-9.\\[\\]A-Za-z/ ]{0,12}")
            .prop_map(|(i, u, m)| format!("g 1 0 {i}, {u}, {m}, 81920, 60, {u}, 400")),
        "(b|i) [ -~]{0,60}",
        "mtime -?[0-9]{0,20} (train|eval)\\.(heartbeat|log)",
        any::<String>(),
    ]
}

fn section() -> impl Strategy<Value = (usize, Option<i32>, bool, Vec<String>)> {
    (
        0..ALL.len(),
        prop::option::of(prop_oneof![Just(0), Just(1), Just(124), Just(137), any::<i32>()]),
        any::<bool>(),
        prop::collection::vec(line(), 0..12),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Whatever a log holds, plain text has no control character left (no
    /// escape sequence can start) and keeps every ordinary character that
    /// was not inside a terminated sequence.
    #[test]
    fn plain_text_never_carries_a_control_character(
        parts in prop::collection::vec(prop_oneof![
            Just("\u{1b}".to_string()), Just("\u{1b}[".to_string()), Just("\u{1b}]".to_string()),
            Just("\u{9b}".to_string()), Just("\u{9d}".to_string()), Just("\u{7}".to_string()),
            Just("\u{9c}".to_string()), Just("\u{1b}\\".to_string()), Just("\r".to_string()),
            "[ -~]{0,6}", "\\PC{0,3}",
        ], 0..24)
    ) {
        let s: String = parts.concat();
        let p = gpupatrol::text::plain(&s);
        prop_assert!(!p.chars().any(|c| c.is_control()), "{:?} -> {:?}", s, p);
        prop_assert!(p.chars().count() <= s.chars().count());
    }

    #[test]
    fn any_section_output_reads_or_errs_and_decides(secs in prop::collection::vec(section(), 0..14)) {
        let p = gpupatrol::profile::parse(Path::new("pp.yaml"), PROFILE).unwrap();
        let mut frames = Frames::default();
        // usually a clock and an alive answer, so the table itself is reached
        frames.sections.insert("now".into(), Frame { rc: Some(0), truncated: false, lines: vec!["now=1000000".into()] });
        frames.sections.insert("alive".into(), Frame { rc: Some(0), truncated: false, lines: vec!["method=slurm".into(), "alive=no".into()] });
        for (i, rc, truncated, lines) in secs {
            frames.sections.insert(ALL[i].name().into(), Frame { rc, truncated, lines });
        }
        let plan = Plan(ALL.to_vec());
        let stages = vec!["train".to_string(), "eval".to_string()];
        let read = facts::read(&frames, &plan, facts::Shape { artifacts: 2, stages: &stages });
        let obs = match read {
            Ok(f) => Observation::Facts(Box::new(f)),
            Err(why) => Observation::ProbeError(why),
        };
        let mut prev = State::new("pp");
        for _ in 0..2 {
            let d = decide(&p, &prev, &obs, "2026-12-01T00:00:00Z");
            let f = match &obs { Observation::Facts(f) => Some(&**f), _ => None };
            let r = gpupatrol::report::build(gpupatrol::report::Inputs {
                ts: "2026-12-01T00:00:00Z",
                profile: &p.name,
                previous: None,
                decision: &d,
                facts: f,
                transport: "ssh",
                connections: 1,
                elapsed_ms: 0,
                action: None,
                extra_warnings: &[],
                pace: None,
            });
            prop_assert!(!r.line.contains('\n'));
            let _ = serde_json::to_string(&r).unwrap();
            prev = d.next;
        }
    }

    #[test]
    fn any_bytes_with_the_nonce_parse_or_err(body in prop::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2100) {
        let nonce = "GPXtestnonce";
        let mut out = format!("{nonce} START v2\n{nonce} BEGIN now\nnow=5\n{nonce} END now rc=0 trunc=0\n{nonce} BEGIN alive\n").into_bytes();
        out.extend(&body);
        out.extend(format!("\n{nonce} END alive rc=0 trunc=0\n{nonce} FIN\n").as_bytes());
        let out = &out[..cut.min(out.len())];
        if let Ok(fr) = frames::parse(out, nonce) {
            let _ = facts::read(&fr, &Plan(vec![Section::Now, Section::Alive]), facts::Shape { artifacts: 0, stages: &[] });
        }
    }
}
