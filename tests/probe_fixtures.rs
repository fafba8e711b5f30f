//! Captured probe outputs (tests/fixtures/probe/*.out, recorded from real
//! probes with GPUPATROL_TRACE_DIR) through parse → facts → decide → report.

use std::path::Path;

use gpupatrol::decide::{Observation, decide};
use gpupatrol::probe::{Request, facts, frames};
use gpupatrol::profile;
use gpupatrol::report;
use gpupatrol::state::State;

const PROFILE: &str = "name: fx\ntransport: local\ngpu: { samples: 2, interval: 200ms }\nsection_timeout: 2s\njob:\n  alive: { pidfile: /tmp/fx/run/job.pid }\n  log: /tmp/fx/run/train.log\n  progress: 'Epoch (\\d+)'\n  done_marker: /tmp/fx/run/DONE\n  stall_after: 30m\nartifacts:\n  - { path: /tmp/fx/run/ckpt, expect_count: 5 }\ndata_mount: /tmp/fx\n";

fn load(name: &str) -> (Vec<u8>, String) {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/probe")
            .join(name),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let nonce = text
        .lines()
        .find_map(|l| l.strip_suffix(" START v2"))
        .expect("a START line")
        .to_string();
    (bytes, nonce)
}

fn shape(p: &profile::Profile) -> facts::Shape<'_> {
    facts::Shape {
        artifacts: p.artifacts.len(),
        stages: &[],
    }
}

fn line_for(name: &str, prev: &State) -> (report::Report, gpupatrol::decide::Decision) {
    let p = profile::parse(Path::new("fx.yaml"), PROFILE).unwrap();
    let (bytes, nonce) = load(name);
    let fr = frames::parse(&bytes, &nonce).unwrap();
    let f = facts::read(&fr, &Request::tick().plan(&p), shape(&p)).unwrap();
    let d = decide(
        &p,
        prev,
        &Observation::Facts(Box::new(f.clone())),
        "2026-11-24T12:00:03Z",
    );
    let r = report::build(report::Inputs {
        ts: "2026-11-24T12:00:03Z",
        profile: &p.name,
        previous: prev.last.as_ref().and_then(|l| l.verdict),
        decision: &d,
        facts: Some(&f),
        transport: "local",
        connections: 0,
        elapsed_ms: 0,
        action: None,
        extra_warnings: &[],
        pace: None,
    });
    (r, d)
}

#[test]
fn running_fixture() {
    let (r, d) = line_for("running.out", &State::new("fx"));
    assert_eq!(r.verdict.as_str(), "RUNNING");
    assert_eq!(r.progress.step, Some(2));
    assert_eq!(r.gpus.len(), 2);
    assert_eq!(d.next.log.offset, 70, "the whole log, every line finished");
    insta::assert_snapshot!("running_line", r.line);
}

#[test]
fn crashed_fixture_after_running() {
    let (_, first) = line_for("running.out", &State::new("fx"));
    let (r, _) = line_for("crashed.out", &first.next);
    assert_eq!(r.verdict.as_str(), "CRASHED");
    let c = r.crash.as_ref().unwrap();
    assert_eq!(c.class, "cuda_oom");
    assert!(!c.excerpt.contains('\x1b'), "ANSI codes are cleaned: {:?}", c.excerpt);
    insta::assert_snapshot!("crashed_line", r.line);
}

#[test]
fn hung_gpu_fixture_still_decides() {
    let (r, _) = line_for("gpu_hung.out", &State::new("fx"));
    assert_eq!(r.gpu_status, "unknown");
    assert!(
        r.warnings.iter().any(|w| w == "gpu: timed out on the box"),
        "{:?}",
        r.warnings
    );
    assert!(r.disk.is_some());
}

#[test]
fn any_corruption_of_a_fixture_is_an_error_or_a_verdict_never_a_panic() {
    let (bytes, nonce) = load("running.out");
    let p = profile::parse(Path::new("fx.yaml"), PROFILE).unwrap();
    // cut at every position, flip bytes: parse must return, not panic
    for cut in (0..bytes.len()).step_by(7) {
        if let Ok(fr) = frames::parse(&bytes[..cut], &nonce) {
            let _ = facts::read(&fr, &Request::tick().plan(&p), shape(&p));
        }
    }
    for i in (0..bytes.len()).step_by(13) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        if let Ok(fr) = frames::parse(&b, &nonce)
            && let Ok(f) = facts::read(&fr, &Request::tick().plan(&p), shape(&p))
        {
            let _ = decide(&p, &State::new("fx"), &Observation::Facts(Box::new(f)), "t");
        }
    }
}
