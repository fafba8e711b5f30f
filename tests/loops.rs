//! `wait`, `patrol`, alerts, auto-resume and `cron`, end to end against a
//! real sshd and tmux. Short intervals; every loop here is bounded.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn wait_cmd(sshd: &Sshd, p: &std::path::Path, extra: &[&str]) -> Command {
    let mut c = sshd.gpupatrol();
    c.arg("wait").arg("-p").arg(p).args(extra);
    c
}

#[test]
fn wait_returns_as_soon_as_the_marker_appears() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let marker = b.join("EVAL_DONE");
    sshd.start_job("train", &b.join("w.log"), "finish", 4, "0.5", Some(&marker), None);
    let p = sshd.run_profile("w", "train", "");
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &[
                "--marker",
                &marker.to_string_lossy(),
                "--interval",
                "300ms",
                "--max-ticks",
                "60",
            ],
        ),
        Duration::from_secs(40),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let last = r.stdout.lines().last().unwrap();
    assert!(last.contains(" w wait found: marker "), "{last}");
    assert!(
        r.stdout.lines().filter(|l| l.contains(" w RUNNING")).count() >= 2,
        "one line per tick: {}",
        r.stdout
    );
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert_eq!(sshd.accepted(), r.stdout.lines().count() - 1, "one connection per tick");
}

#[test]
fn wait_stops_with_2_when_the_run_crashes_first() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.start_job("train", &b.join("wc.log"), "crash_cuda", 3, "0.3", None, None);
    let p = sshd.run_profile("wc", "train", "");
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &[
                "--marker",
                &b.join("NEVER").to_string_lossy(),
                "--interval",
                "300ms",
                "--max-ticks",
                "60",
                "--quiet",
            ],
        ),
        Duration::from_secs(40),
    );
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "--quiet prints only the final line: {}",
        r.stdout
    );
    assert!(r.stdout.contains("wait failure: CRASHED (cuda_oom)"), "{}", r.stdout);
}

#[test]
fn wait_gives_up_after_exactly_n_ticks() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.start_job("train", &b.join("wn.log"), "forever", 0, "0.2", None, None);
    let p = sshd.run_profile("wn", "train", "");
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &[
                "--pattern",
                "never printed",
                "--interval",
                "200ms",
                "--max-ticks",
                "3",
                "--json",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let lines = r.json();
    assert_eq!(lines.len(), 4, "3 ticks + the final line");
    assert_eq!(lines[3]["wait"], "gave-up");
    assert_eq!(lines[3]["ticks"], 3);
    assert!(lines[3]["detail"].as_str().unwrap().contains("check ground truth"));
    assert_eq!(sshd.accepted(), 3);
}

#[test]
fn wait_pattern_is_literal_text_in_the_run_log() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("wp.log");
    std::fs::write(&log, "Epoch 1\nstage a done\n").unwrap();
    let p = sshd.profile(
        "wp",
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\n",
            yq(&log.to_string_lossy())
        ),
    );
    let wait_for_text = || {
        let args = [
            "--pattern",
            "stage a|b \"x\" $(id)",
            "--interval",
            "200ms",
            "--max-ticks",
            "2",
        ];
        run(wait_cmd(&sshd, &p, &args), Duration::from_secs(20))
    };
    // as a regex `stage a|b "x"` would match "stage a"; as text it must not
    let r = wait_for_text();
    assert_eq!(r.code, 1, "{}", r.stdout);
    std::fs::write(&log, "Epoch 1\nstage a done\nstage a|b \"x\" $(id)\n").unwrap();
    let r = wait_for_text();
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn wait_exits_3_after_three_unreachable_ticks() {
    let mut sshd = Sshd::start();
    let p = sshd.run_profile("wu", "train", "");
    sshd.stop();
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &["--marker", "/x", "--interval", "300ms", "--max-ticks", "50"],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(
        r.stdout.lines().filter(|l| l.contains(" wu UNREACHABLE ")).count(),
        3,
        "{}",
        r.stdout
    );
    assert!(r.stdout.lines().last().unwrap().contains("circuit breaker"));
}

#[test]
fn one_waiter_per_run_and_supersede() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.start_job("train", &b.join("ww.log"), "forever", 0, "0.3", None, None);
    let p = sshd.run_profile("ww", "train", "");
    let mut first = wait_cmd(
        &sshd,
        &p,
        &["--marker", "/nope", "--interval", "300ms", "--max-ticks", "200"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    assert!(wait_for(Duration::from_secs(10), || sshd
        .state_dir()
        .join("ww.wait.lock")
        .exists()
        && sshd.accepted() >= 1));
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &["--marker", "/nope", "--interval", "300ms", "--max-ticks", "2"],
        ),
        Duration::from_secs(20),
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains(&format!("pid {}", first.id())), "{}", r.stderr);
    assert!(r.stderr.contains("--supersede"), "{}", r.stderr);
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &[
                "--marker",
                "/nope",
                "--interval",
                "200ms",
                "--max-ticks",
                "2",
                "--supersede",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "the new waiter runs its course: {}{}", r.stdout, r.stderr);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = first.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "old waiter still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3), "superseded waiter ends with 3");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut first.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        out.lines().last().unwrap().contains("wait interrupted: SIGTERM"),
        "{out}"
    );
}

#[test]
fn patrol_prints_every_tick_and_stops() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.start_job("train", &b.join("pa.log"), "forever", 0, "0.2", None, None);
    let p = sshd.run_profile("pa", "train", "");
    let mut c = sshd.gpupatrol();
    c.args(["patrol", "--every", "200ms", "--max-ticks", "3", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 0, "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(
        lines[1].ends_with("unchanged") && lines[2].ends_with("unchanged"),
        "{}",
        r.stdout
    );

    // --until-terminal ends on DONE
    let marker = b.join("pb.DONE");
    sshd.start_job("train2", &b.join("pb.log"), "finish", 3, "0.3", Some(&marker), None);
    let p2 = sshd.run_profile("pb", "train2", "");
    let mut c = sshd.gpupatrol();
    c.args([
        "patrol",
        "--every",
        "300ms",
        "--max-ticks",
        "100",
        "--until-terminal",
        "-p",
    ])
    .arg(&p2);
    let r = run(c, Duration::from_secs(40));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.lines().last().unwrap().contains(" pb DONE"), "{}", r.stdout);
}

#[test]
fn patrol_circuit_breaker_stops_a_dead_box() {
    let mut sshd = Sshd::start();
    let p = sshd.run_profile("pd", "train", "");
    sshd.stop();
    let mut c = sshd.gpupatrol();
    c.args(["patrol", "--every", "300ms", "--max-ticks", "50", "-p"])
        .arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(r.stdout.lines().filter(|l| l.contains(" pd UNREACHABLE")).count(), 3);
    assert!(
        r.stdout
            .contains("pd patrol stopped: UNREACHABLE 3 ticks in a row (circuit breaker)"),
        "{}",
        r.stdout
    );
}

#[test]
fn alerts_fire_once_per_cooldown_with_report_text_only_in_the_environment() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("al.log");
    std::fs::write(&log, "Epoch 3 $(touch PWNED) `touch PWNED2`\n").unwrap();
    let alerts = sshd.path("alerts.txt");
    let flag = sshd.path("alert.flag");
    let p = sshd.profile(
        "al",
        &format!(
            "job:\n  alive: {{ tmux: nosession }}\n  log: {}\n  progress: 'Epoch (\\d+)'\nalert:\n  command: {}\n  flag_file: {}\n  cooldown: 1h\n",
            yq(&log.to_string_lossy()),
            yd(&format!("printf '%s|%s|%s\\n' \"$GPUPATROL_PROFILE\" \"$GPUPATROL_VERDICT\" \"$GPUPATROL_LINE\" >> {}", q(&alerts.to_string_lossy()))),
            yq(&flag.to_string_lossy()),
        ),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED");
    let text = std::fs::read_to_string(&alerts).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("al|DIED|"), "{text}");
    assert!(
        text.contains("Epoch 3 $(touch PWNED)") || text.contains("step 3"),
        "{text}"
    );
    assert!(std::fs::read_to_string(&flag).unwrap().contains(" al DIED "));
    for _ in 0..2 {
        tick_json(&sshd, &p);
    }
    assert_eq!(
        std::fs::read_to_string(&alerts).unwrap().lines().count(),
        1,
        "still critical, but within the cooldown"
    );
    assert!(
        !sshd.path("home/PWNED").exists()
            && !std::path::Path::new("PWNED").exists()
            && !std::path::Path::new("PWNED2").exists()
    );
}

#[test]
fn auto_resume_restarts_once_then_respects_cooldown_and_budget() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("ar.log");
    let job = format!(
        "sh {} {} forever 0 0.3",
        q(&fixtures().join("fake_train.sh").to_string_lossy()),
        q(&log.to_string_lossy())
    );
    let resume = format!("tmux new-session -d -s train {}", q(&job));
    sshd.start_job("train", &log, "forever", 0, "0.3", None, None);
    let alerts = sshd.path("alerts.txt");
    let p = sshd.run_profile(
        "ar",
        "train",
        &format!(
            "  resume: {}\n  auto_resume: true\n  max_restarts: 2\n  restart_cooldown: 1h\nalert:\n  command: {}\n  cooldown: 1h\n",
            yd(&resume),
            yd(&format!("echo \"$GPUPATROL_VERDICT $GPUPATROL_LINE\" >> {}", q(&alerts.to_string_lossy()))),
        ),
    );
    let has = |s: &str| {
        sshd.tmux()
            .args(["has-session", "-t", &format!("={s}")])
            .status()
            .unwrap()
            .success()
    };
    assert!(wait_for(Duration::from_secs(5), || count_in(&log, "Epoch 2") >= 1));
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "RUNNING");
    sshd.kill_session("train");
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(j["action"], "resumed (restart 1/2) with job.resume", "{j}");
    assert_eq!(j["connections"], 1, "the resume used the tick's own connection");
    assert!(
        wait_for(Duration::from_secs(5), || has("train")),
        "resume started the session again"
    );
    assert_eq!(sshd.accepted(), 2);
    // dies again within the cooldown: no second resume
    sshd.kill_session("train");
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED");
    assert!(j["action"].as_str().unwrap().contains("not resuming yet"), "{j}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has("train"), "never two resumes within the cooldown");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sshd.state_dir().join("ar.json")).unwrap()).unwrap();
    assert_eq!(state["restarts"].as_array().unwrap().len(), 1);
}

#[test]
fn auto_resume_budget_spent_alerts_once() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let alerts = sshd.path("alerts.txt");
    // the resume "works" (exit 0) but the job never comes back
    let p = sshd.run_profile(
        "ab",
        "gone",
        &format!(
            "  resume: 'true'\n  auto_resume: true\n  max_restarts: 1\n  restart_cooldown: 100ms\nalert:\n  command: {}\n  cooldown: 1h\n",
            yd(&format!("echo \"$GPUPATROL_LINE\" >> {}", q(&alerts.to_string_lossy()))),
        ),
    );
    let _ = b;
    let j = tick_json(&sshd, &p).one();
    assert!(
        j["action"].as_str().unwrap().starts_with("resumed (restart 1/1)"),
        "{j}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let j = tick_json(&sshd, &p).one();
    assert!(
        j["action"].as_str().unwrap().starts_with("restart budget spent (1/1"),
        "{j}"
    );
    assert_eq!(j["verdict"], "DIED");
    tick_json(&sshd, &p);
    let text = std::fs::read_to_string(&alerts).unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "the death, then the spent budget, once: {text}"
    );
    assert!(text.lines().nth(1).unwrap().contains("restart budget spent"));
}

#[test]
fn cron_prints_crontab_and_systemd_units() {
    let sshd = Sshd::start();
    let p = sshd.run_profile("cr", "train", "");
    let mut c = sshd.gpupatrol();
    c.args(["cron", "--every", "30m", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("3-59/30 * * * * "), "{}", r.stdout);
    assert!(r.stdout.contains(" tick -p "), "{}", r.stdout);
    assert!(r.stdout.contains("OnUnitActiveSec=1800s"));
    assert!(r.stdout.contains("[Install]\nWantedBy=timers.target"));
    // the crontab command line really runs
    let line = r.stdout.lines().find(|l| l.starts_with("3-59/30")).unwrap();
    let cmd = line.trim_start_matches("3-59/30 * * * * ");
    let out = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert_eq!(out.code(), Some(2), "DIED (no session) through the cron line");
}

#[test]
fn two_concurrent_ticks_never_resume_one_death_twice() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("a2.log");
    let marker = b.join("resumes.txt");
    // the resume appends to a file on the box, then starts the job again
    let job = format!(
        "sh {} {} forever 0 0.3",
        q(&fixtures().join("fake_train.sh").to_string_lossy()),
        q(&log.to_string_lossy())
    );
    let resume = format!(
        "echo resumed >> {} && tmux new-session -d -s train {}",
        q(&marker.to_string_lossy()),
        q(&job)
    );
    let p = sshd.run_profile(
        "a2",
        "train",
        &format!(
            "  resume: {}\n  auto_resume: true\n  max_restarts: 5\n  restart_cooldown: 100ms\n",
            yd(&resume)
        ),
    );
    std::fs::write(&log, "Epoch 1\n").unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let mut c = sshd.gpupatrol();
            c.args(["tick", "--json", "-p"]).arg(&p);
            std::thread::spawn(move || run(c, Duration::from_secs(60)))
        })
        .collect();
    let results: Vec<serde_json::Value> = handles.into_iter().map(|h| h.join().unwrap().one()).collect();
    let resumed = results
        .iter()
        .filter(|j| j["action"].as_str().is_some_and(|a| a.starts_with("resumed")))
        .count();
    assert_eq!(resumed, 1, "{results:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 1);
    // the others saw the resumed run alive
    assert!(
        results.iter().filter(|j| j["verdict"] == "RUNNING").count() >= 1,
        "{results:?}"
    );
}
