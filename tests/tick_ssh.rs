//! `gpupatrol tick` end to end against a real sshd, a real tmux and a fake
//! nvidia-smi on the box's PATH.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn running_then_done_with_one_connection_per_tick() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("r1.log");
    let ckpt = b.join("ckpt");
    sshd.start_job("train", &log, "finish", 4, "0.4", Some(&b.join("r1.DONE")), Some(&ckpt));
    let p = sshd.run_profile(
        "r1",
        "train",
        "artifacts:\n  - { path: CKPT, expect_count: 4 }\n"
            .replace("CKPT", &yq(&ckpt.to_string_lossy()))
            .as_str(),
    );
    assert!(wait_for(Duration::from_secs(5), || count_in(&log, "Epoch 1") == 1));

    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let j = r.one();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["severity"], "ok");
    assert_eq!(j["exit_code"], 0);
    assert_eq!(j["connections"], 1);
    assert!(j["progress"]["step"].as_u64().unwrap() >= 1);
    assert_eq!(j["gpus"][0]["index"], 0);
    assert_eq!(j["gpus"][0]["util_pct"], 97.0);
    assert_eq!(j["gpus"][0]["mem_used_mib"], 72908.0);
    assert_eq!(j["gpus"][0]["mem_total_mib"], 81920.0);
    assert!(j["disk"]["used_pct"].as_f64().is_some());
    assert!(j["disk"]["inodes_used_pct"].as_f64().is_some());
    assert!(j["cgroup"].is_object());
    assert!(j["crash"].is_null());
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    for key in ["ts", "profile", "changed", "previous", "remediation"] {
        assert!(j.get(key).is_some(), "missing {key}");
    }

    assert!(wait_for(Duration::from_secs(10), || b.join("r1.DONE").exists()));
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(&p);
    let r2 = run(c, Duration::from_secs(30));
    assert_eq!(r2.code, 0, "{}{}", r2.stdout, r2.stderr);
    let line = r2.stdout.trim();
    assert_eq!(r2.stdout.lines().count(), 1);
    assert!(line.contains(" r1 DONE step 4"), "{line}");
    assert!(line.ends_with("was RUNNING"), "{line}");
    assert!(line.contains("gpu0 97% 71.2/80.0GiB"), "{line}");
    assert_eq!(sshd.accepted(), 2, "one SSH connection per tick");

    let r3 = tick_json(&sshd, &p);
    let j3 = r3.one();
    assert_eq!(j3["verdict"], "DONE");
    assert_eq!(j3["changed"], false);
    assert_eq!(sshd.accepted(), 3);
}

#[test]
fn crash_is_classified_from_the_per_run_log() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("c.log");
    sshd.start_job("train", &log, "crash_cuda", 2, "0.2", None, None);
    let p = sshd.run_profile("c", "train", "");
    assert!(wait_for(Duration::from_secs(10), || count_in(&log, "OutOfMemoryError") == 1));
    assert!(wait_for(Duration::from_secs(5), || !sshd
        .tmux()
        .args(["has-session", "-t", "=train"])
        .status()
        .unwrap()
        .success()));
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let j = r.one();
    assert_eq!(j["verdict"], "CRASHED");
    assert_eq!(j["severity"], "critical");
    assert_eq!(j["crash"]["class"], "cuda_oom");
    assert!(j["crash"]["excerpt"].as_str().unwrap().contains("Traceback"));
    assert!(j["remediation"].as_str().unwrap().contains("batch size"));
}

#[test]
fn killed_session_is_died_and_master_log_crashes_do_not_count() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("d.log");
    let master = b.join("all.log");
    // an EARLIER run's crash in the shared master log
    std::fs::write(
        &master,
        "Epoch 9\nTraceback (most recent call last):\nKeyError: 'old'\n",
    )
    .unwrap();
    sshd.start_job("train", &log, "forever", 0, "0.2", None, None);
    let p = sshd.run_profile(
        "d",
        "train",
        &format!("  master_log: {}\n", yq(&master.to_string_lossy())),
    );
    assert!(wait_for(Duration::from_secs(5), || count_in(&log, "Epoch 2") == 1));
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["verdict"], "RUNNING", "{}", r.stdout);
    sshd.kill_session("train");
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 2);
    let j = r.one();
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(j["previous"], "RUNNING");
    assert_eq!(j["changed"], true);
    assert!(j["remediation"].as_str().unwrap().contains("resume"));
}

#[test]
fn waiting_lines_are_not_progress() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("s.log");
    sshd.start_job("train", &log, "stall", 2, "0.2", None, None);
    let p = sshd.profile(
        "s",
        &format!(
            "job:\n  alive: {{ tmux: train }}\n  log: {}\n  progress: 'Epoch (\\d+)'\n  stall_after: 2s\n",
            yq(&log.to_string_lossy())
        ),
    );
    assert!(wait_for(Duration::from_secs(5), || count_in(&log, "waiting") >= 1));
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["progress"]["step"], 2);
    std::thread::sleep(Duration::from_millis(3600));
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "STALLED", "{j}");
    assert_eq!(r.code, 2);
    assert!(j["progress"]["stalled_for_s"].as_i64().unwrap() >= 2);
}

#[test]
fn offsets_make_the_log_scan_incremental() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("o.log");
    let mut big = String::new();
    for i in 0..20000 {
        big.push_str(&format!("Epoch {i} loss 1.0 some padding to make the line longer\n"));
    }
    std::fs::write(&log, &big).unwrap();
    let p = sshd.profile(
        "o",
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\n",
            yq(&log.to_string_lossy())
        ),
    );
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["progress"]["step"], 19999);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sshd.state_dir().join("o.json")).unwrap()).unwrap();
    assert_eq!(state["log"]["offset"], big.len() as u64);
    // an unfinished last line is not consumed until it ends
    std::fs::write(&log, format!("{big}Epoch 20000 loss 0.9\nEpoch 2000")).unwrap();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["progress"]["step"], 20000);
    std::fs::write(&log, format!("{big}Epoch 20000 loss 0.9\nEpoch 20001 loss 0.8\n")).unwrap();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["progress"]["step"], 20001, "the split line is read whole");
    // rotation: the file shrinks → read from the start again
    std::fs::write(&log, "Epoch 3 loss 2.0\n").unwrap();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["progress"]["step"], 3);
}

#[test]
fn a_fleet_tick_keeps_at_most_jobs_connections_in_flight() {
    let sshd = Sshd::start();
    std::fs::write(sshd.path("gpu/calls.log"), "").unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["tick", "--json", "--jobs", "3"]);
    let n = 12;
    for i in 0..n {
        let p = sshd.profile(&format!("f{i:02}"), "job:\n  alive: { tmux: none }\n");
        c.arg("-p").arg(p);
    }
    let r = run(c, Duration::from_secs(120));
    let ticks = r.json();
    assert_eq!(ticks.len(), n, "{}", r.stderr);
    assert!(ticks.iter().all(|j| j["verdict"] == "DIED"), "{}", r.stdout);
    assert_eq!(sshd.accepted(), n, "one connection per box");
    // the probes' nvidia-smi calls never overlap more than --jobs
    let log = std::fs::read_to_string(sshd.path("gpu/calls.log")).unwrap();
    let mut events: Vec<(u128, i32)> = log
        .lines()
        .filter_map(|l| {
            let (k, t) = l.split_once(' ')?;
            Some((t.parse().ok()?, if k == "begin" { 1 } else { -1 }))
        })
        .collect();
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    assert!((1..=3).contains(&most), "at most 3 probes at once, saw {most}");
}
