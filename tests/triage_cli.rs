//! `gpupatrol triage`: the corpus under tests/fixtures/triage (one log per
//! class plus false positives), locally and against a real box.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn triage_log(name: &str) -> Run {
    let mut c = Command::new(BIN);
    c.args(["triage", "--json", "--log"])
        .arg(fixtures().join("triage").join(name));
    run(c, Duration::from_secs(10))
}

#[test]
fn every_class_in_the_corpus() {
    for (file, class, code) in [
        ("cuda_oom.log", "cuda_oom", 0),
        ("multirank_interleaved_oom.log", "cuda_oom", 0),
        ("disk_full.log", "disk_full", 0),
        ("cgroup_oom.log", "cgroup_oom", 0),
        ("cgroup_oom_bare.log", "cgroup_oom", 0),
        ("config_mismatch.log", "config_mismatch", 0),
        ("divergence.log", "divergence", 0),
        ("nccl.log", "nccl", 0),
        ("preempted.log", "preempted", 0),
        ("unknown.log", "unknown", 1),
        ("healthy_with_error_words.log", "unknown", 1),
    ] {
        let r = triage_log(file);
        assert_eq!(r.code, code, "{file}: {}", r.stdout);
        let j = r.one();
        assert_eq!(j["class"], class, "{file}: {j}");
        assert!(!j["remediation"].as_str().unwrap().is_empty());
    }
}

#[test]
fn healthy_log_is_not_a_crash_and_a_traceback_is() {
    let j = triage_log("healthy_with_error_words.log").one();
    assert_eq!(j["crashed"], false);
    assert!(j["line"].as_str().unwrap().contains("no failure signature found"));
    let j = triage_log("unknown.log").one();
    assert_eq!(j["crashed"], true);
    assert!(j["excerpt"].as_str().unwrap().contains("AssertionError"));
}

#[test]
fn cuda_excerpt_is_clean_of_ansi_and_progress_bars() {
    let j = triage_log("cuda_oom.log").one();
    let ex = j["excerpt"].as_str().unwrap();
    assert!(!ex.contains('\x1b') && !ex.contains('\r'), "{ex:?}");
    assert!(ex.starts_with("Epoch 7") || ex.contains("Traceback"), "{ex}");
}

#[test]
fn missing_file_is_exit_3() {
    let mut c = Command::new(BIN);
    c.args(["triage", "--log", "/nonexistent/x.log"]);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("/nonexistent/x.log"), "{}", r.stderr);
}

#[test]
fn remote_triage_pulls_the_traceback_over_one_connection() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("t.log");
    std::fs::copy(fixtures().join("triage/nccl.log"), &log).unwrap();
    let p = sshd.run_profile("t", "gone", "");
    let mut c = sshd.gpupatrol();
    c.args(["triage", "--json", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let j = r.one();
    assert_eq!(j["class"], "nccl", "{j}");
    assert_eq!(j["verdict"], "CRASHED");
    assert_eq!(sshd.accepted(), 1);
    // unreachable box: exit 3
    let mut sshd = sshd;
    sshd.stop();
    let mut c = sshd.gpupatrol();
    c.args(["triage", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("TRIAGE not possible: UNREACHABLE"), "{}", r.stdout);
}
