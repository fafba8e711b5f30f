//! History end to end against the loopback sshd box: a job whose pace
//! halves mid-run (SLOW, rate, ETA, `gpupatrol history`), one that finishes
//! while the box stays up (the money it wastes, in the tick and in
//! `status`), and GPUs idling while the run is RUNNING.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// `sh -c SCRIPT` in a new tmux session on the box.
fn tmux_job(sshd: &Sshd, session: &str, script: &str) {
    assert!(
        sshd.tmux()
            .args(["new-session", "-d", "-s", session, "sh", "-c", script])
            .status()
            .unwrap()
            .success()
    );
}

/// A job in tmux: `fast` steps at 0.25 s, then 1 s a step (a quarter of
/// the pace), `Epoch N/400` lines; `done` touched after step `last`.
fn paced_job(sshd: &Sshd, session: &str, log: &Path, fast: u32, last: u32, done: &Path) {
    let script = format!(
        "i=1; while [ $i -le {last} ]; do echo \"Epoch $i/400 loss 0.5\" >> {log}; if [ $i -le {fast} ]; then sleep 0.25; else sleep 1; fi; i=$((i+1)); done; touch {done}; sleep 3600",
        log = q(&log.to_string_lossy()),
        done = q(&done.to_string_lossy()),
    );
    tmux_job(sshd, session, &script);
}

fn tick(sshd: &Sshd, p: &Path) -> serde_json::Value {
    tick_json(sshd, p).one()
}

#[test]
fn a_halved_pace_is_slow_and_the_rate_and_eta_come_from_history() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("hp.log");
    paced_job(&sshd, "hp", &log, 48, 400, &b.join("hp.DONE"));
    let p = sshd.run_profile("hp", "hp", "");
    let mut fast_ticks = Vec::new();
    while count_in(&log, "Epoch") < 48 {
        fast_ticks.push(tick(&sshd, &p));
        assert!(fast_ticks.len() < 40, "the fast phase ends within 40 ticks");
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        fast_ticks.len() >= 7,
        "enough history before the halving: {}",
        fast_ticks.len()
    );
    for t in &fast_ticks {
        assert!(
            !t["warnings"].to_string().contains("SLOW"),
            "a steady pace is not SLOW: {}",
            t["line"]
        );
    }
    let last_fast = fast_ticks.last().unwrap();
    assert_eq!(last_fast["progress"]["total"], 400, "{last_fast}");
    let rate = last_fast["progress"]["rate_per_h"].as_f64().unwrap();
    assert!(rate > 8000.0 && rate < 20000.0, "about 4 steps a second: {rate}");
    assert!(last_fast["progress"]["eta_s"].as_i64().unwrap() > 0);
    let line = last_fast["line"].as_str().unwrap();
    assert!(line.contains("/400 (") && line.contains("/min, ETA "), "{line}");

    let mut slow = None;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(1200));
        let t = tick(&sshd, &p);
        if t["warnings"].to_string().contains("SLOW") {
            slow = Some(t);
            break;
        }
    }
    let slow = slow.expect("the halved pace is SLOW within 8 ticks");
    let w = slow["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w.as_str().unwrap().starts_with("SLOW"))
        .unwrap();
    assert!(w.as_str().unwrap().contains("of the usual"), "{w}");
    assert_eq!(slow["severity"], "warning");
    assert_eq!(slow["verdict"], "RUNNING");

    // the picture and the JSON, from the saved history only
    let mut c = sshd.gpupatrol();
    c.args(["history", "-p"]).arg(&p);
    let h = run(c, Duration::from_secs(10));
    assert_eq!(h.code, 0, "{}", h.stderr);
    assert!(h.stdout.starts_with("hp: "), "{}", h.stdout);
    let rate_line = h.stdout.lines().find(|l| l.starts_with("rate  ")).unwrap();
    assert!(rate_line.contains('█'), "{rate_line}");
    assert!(h.stdout.contains("/400"), "{}", h.stdout);
    let mut c = sshd.gpupatrol();
    c.args(["history", "--json", "-p"]).arg(&p);
    let j = run(c, Duration::from_secs(10)).json();
    assert!(j.len() > fast_ticks.len(), "one object per tick");
    assert!(j.iter().all(|e| e["verdict"] == "RUNNING" && e["total"] == 400));
    // a waiter's ticks look, they do not join the history
    let before = j.len();
    let mut c = sshd.gpupatrol();
    c.args([
        "wait",
        "--pattern",
        "never printed",
        "--interval",
        "200ms",
        "--max-ticks",
        "2",
        "-p",
    ])
    .arg(&p);
    run(c, Duration::from_secs(30));
    let mut c = sshd.gpupatrol();
    c.args(["history", "--json", "-p"]).arg(&p);
    assert_eq!(run(c, Duration::from_secs(10)).json().len(), before);
}

#[test]
fn a_run_that_finished_on_a_box_still_up_is_money_wasted() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("hw.log");
    let done = b.join("hw.DONE");
    paced_job(&sshd, "hw", &log, 100, 6, &done);
    let p = sshd.run_profile("hw", "hw", "cost_per_hour: 3.60\n");
    let first = tick(&sshd, &p);
    assert_eq!(first["verdict"], "RUNNING", "{first}");
    assert_eq!(first["cost"], serde_json::json!({"per_hour": 3.6, "wasted": 0.0}));
    assert!(wait_for(Duration::from_secs(20), || done.exists()));
    std::thread::sleep(Duration::from_secs(2));
    let d = tick(&sshd, &p);
    assert_eq!(d["verdict"], "DONE", "{d}");
    assert_eq!(
        d["severity"], "warning",
        "a finished run billing for nothing is a warning"
    );
    assert_eq!(d["exit_code"], 1);
    let w = d["warnings"].to_string();
    assert!(
        w.contains("box still billed") && w.contains("$3.60/h: stop the box"),
        "{w}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let d2 = tick(&sshd, &p);
    let (w1, w2) = (
        d["cost"]["wasted"].as_f64().unwrap(),
        d2["cost"]["wasted"].as_f64().unwrap(),
    );
    // 3.60/h is a tenth of a cent a second: at least 5 s since the end
    assert!(w2 >= 0.005 && w2 > w1, "the waste grows: {w1} then {w2}");
    let mut c = sshd.gpupatrol();
    c.args(["status", "-p"]).arg(&p);
    let s = run(c, Duration::from_secs(10));
    assert!(
        s.stdout.contains("cost: $3.60/h across 1 box; wasted ~$") && s.stdout.contains("hw DONE $"),
        "{}",
        s.stdout
    );
    let mut c = sshd.gpupatrol();
    c.args(["status", "--json", "-p"]).arg(&p);
    let row = run(c, Duration::from_secs(10)).one();
    assert_eq!(row["cost"]["per_hour"], 3.6, "{row}");
}

#[test]
fn gpus_idle_while_running_cost_is_named() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("hi.log");
    // one step, then a wait that never ends (a hung data loader polling):
    // alive, the step standing still, the GPUs idle
    let script = format!(
        "echo 'Epoch 1/400' >> {}; while :; do sleep 0.5; done",
        q(&log.to_string_lossy())
    );
    tmux_job(&sshd, "hi", &script);
    sshd.gpu_mode("idle");
    let p = sshd.run_profile("hi", "hi", "thresholds: { gpu_idle_for: 2s }\ncost_per_hour: 36\n");
    let t1 = tick(&sshd, &p);
    assert!(
        !t1["warnings"].to_string().contains("GPUs idle"),
        "one tick is no stretch: {t1}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let t2 = tick(&sshd, &p);
    let w = t2["warnings"].to_string();
    assert!(
        w.contains("GPUs idle") && w.contains("while RUNNING") && w.contains("of box time"),
        "{w}"
    );
    assert!(
        t2["cost"]["wasted"].as_f64().unwrap() >= 0.02,
        "36/h for 3 s: {}",
        t2["cost"]
    );
}
