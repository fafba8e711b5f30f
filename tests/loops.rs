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

/// A run that never prints the text a waiter waits for: the box, and the
/// waiter's result (gpu: the fake nvidia-smi's mode).
fn wait_for_text_never_printed(name: &str, gpu: &str, extra: &[&str]) -> (Sshd, Run) {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.start_job("train", &b.join(format!("{name}.log")), "forever", 0, "0.2", None, None);
    let p = sshd.run_profile(name, "train", "");
    sshd.gpu_mode(gpu);
    let mut args = vec!["--pattern", "never printed", "--json"];
    args.extend_from_slice(extra);
    let r = run(wait_cmd(&sshd, &p, &args), Duration::from_secs(30));
    (sshd, r)
}

#[test]
fn wait_gives_up_after_exactly_n_ticks() {
    let (sshd, r) = wait_for_text_never_printed("wn", "ok", &["--interval", "200ms", "--max-ticks", "3"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let lines = r.json();
    assert_eq!(lines.len(), 4, "3 ticks + the final line");
    assert_eq!(lines[3]["wait"], "gave-up");
    assert_eq!(lines[3]["ticks"], 3);
    assert!(lines[3]["detail"].as_str().unwrap().contains("check ground truth"));
    assert_eq!(sshd.accepted(), 3);
}

#[test]
fn wait_max_seconds_bounds_the_wall_time_and_returns_the_last_line() {
    let (_sshd, r) = wait_for_text_never_printed(
        "wm",
        "ok",
        &["--interval", "1s", "--max-ticks", "1000", "--max-seconds", "3s"],
    );
    assert_eq!(r.code, 1, "gave up: {}", r.stdout);
    let lines = r.json();
    let last = lines.last().unwrap();
    assert_eq!(last["wait"], "gave-up", "{last}");
    let ticks = last["ticks"].as_u64().unwrap();
    assert!((1..=3).contains(&ticks), "{ticks} ticks of 1s in 3s");
    assert_eq!(lines.len() as u64, ticks + 1, "every tick's line and the end");
    let detail = last["detail"].as_str().unwrap();
    assert!(detail.contains("--max-seconds 3s"), "{detail}");
    let tick_line = lines[lines.len() - 2]["line"].as_str().unwrap();
    assert!(detail.contains(tick_line), "the last tick's line comes back: {detail}");
    assert!(
        r.elapsed < Duration::from_secs(6),
        "it does not start a tick it cannot finish: {:?}",
        r.elapsed
    );
}

#[test]
fn wait_max_seconds_cuts_off_a_tick_that_would_run_past_it() {
    // a wedged nvidia-smi: each tick waits out section_timeout (5s)
    let (_sshd, r) = wait_for_text_never_printed("wc", "hang", &["--interval", "1s", "--max-seconds", "2"]);
    assert_eq!(r.code, 1, "gave up: {}", r.stdout);
    let last = r.json().pop().unwrap();
    assert_eq!(last["wait"], "gave-up", "{last}");
    assert!(last["detail"].as_str().unwrap().contains("cut off"), "{last}");
    assert!(
        r.elapsed < Duration::from_secs(4),
        "a 5 s tick was cut at 2 s: {:?}",
        r.elapsed
    );
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
    // three or more in a row, over at least three intervals (0.9s here)
    let n = r.stdout.lines().filter(|l| l.contains(" wu UNREACHABLE ")).count();
    assert!((3..=10).contains(&n), "{}", r.stdout);
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.contains(&format!("UNREACHABLE {n} ticks in a row over ")),
        "{last}"
    );
    assert!(last.contains("circuit breaker"), "{last}");
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
    let n = r.stdout.lines().filter(|l| l.contains(" pd UNREACHABLE")).count();
    assert!((3..=10).contains(&n), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("pd patrol stopped: UNREACHABLE {n} ticks in a row over ")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(circuit breaker)"), "{}", r.stdout);
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
    // the box ran the resume script once: its log is written before anything starts
    assert_eq!(sshd.resumes("ar"), 1, "never two resumes within the cooldown");
    assert!(!has("train"));
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
    // restart_cooldown (100 ms) passes
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
    // a state dir that does not exist yet, with a `%` (cron's newline) in its name
    let state = sshd.path("fresh 100%/state");
    let mut c = std::process::Command::new(BIN);
    c.env_remove("SSH_AUTH_SOCK")
        .arg("--state-dir")
        .arg(&state)
        .args(["cron", "--every", "30m", "-p"])
        .arg(&p);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("3-59/30 * * * * "), "{}", r.stdout);
    assert!(r.stdout.contains(" tick --every 1800s -p "), "{}", r.stdout);
    assert!(r.stdout.contains("OnUnitActiveSec=1800s"));
    assert!(r.stdout.contains("[Install]\nWantedBy=timers.target"));
    // the crontab command line really runs, as cron runs it: `\%` is a `%`
    let line = r.stdout.lines().find(|l| l.starts_with("3-59/30")).unwrap();
    assert!(line.contains("100\\%"), "% escaped for cron: {line}");
    let cmd = line.trim_start_matches("3-59/30 * * * * ").replace("\\%", "%");
    let out = Command::new("sh").arg("-c").arg(&cmd).status().unwrap();
    assert_eq!(
        out.code(),
        Some(2),
        "DIED (no session) through the cron line, on a fresh state dir"
    );
    assert!(count_in(&state.join("patrol.log"), " cr DIED ") == 1);
    // the units systemd would load
    let units = tempfile::tempdir().unwrap();
    let mut name = String::new();
    let mut cur: Option<std::fs::File> = None;
    for l in r.stdout.lines() {
        if let Some(f) = l.strip_prefix("# ~/.config/systemd/user/") {
            name = f.to_string();
            cur = Some(std::fs::File::create(units.path().join(f)).unwrap());
        } else if let Some(f) = cur.as_mut().filter(|_| !l.starts_with("# ")) {
            use std::io::Write;
            writeln!(f, "{l}").unwrap();
        }
    }
    assert!(name.starts_with("gpupatrol-cr."), "{name}");
    if have("systemd-analyze") || !peer_missing("systemd-analyze not installed; the units were not verified") {
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg(units.path().join("gpupatrol-cr.service"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("gpupatrol-cr.service:"), "systemd-analyze: {err}");
    }
    // a control character in a path cannot go into a unit: refused, exit 3
    let bad = sshd.path("bad\ndir");
    let mut c = std::process::Command::new(BIN);
    c.arg("--state-dir")
        .arg(&bad)
        .args(["cron", "--every", "30m", "-p"])
        .arg(&p);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("control character"), "{}", r.stderr);
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

#[test]
fn supersede_never_signals_pid_zero_or_a_stranger() {
    use std::os::unix::process::CommandExt;
    let sshd = Sshd::start();
    let p = sshd.run_profile("wz", "train", "");
    std::fs::create_dir_all(sshd.state_dir()).unwrap();
    let lock = sshd.state_dir().join("wz.wait.lock");
    // 1. the lock is held but names no pid (a holder that never wrote it)
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .process_group(0)
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .is_ok_and(|s| !s.success())));
    let mut c = wait_cmd(&sshd, &p, &["--marker", "/nope", "--max-ticks", "1", "--supersede"]);
    // its own process group: a `kill -TERM 0` would hit only it, never this test
    c.process_group(0);
    let r = run(c, Duration::from_secs(20));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("names no usable pid"), "{}", r.stderr);
    assert!(holder.try_wait().unwrap().is_none(), "the holder was not signalled");
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", holder.id())])
        .status();
    let _ = holder.wait();
    // 2. the lock names a pid that is not a gpupatrol (reused, or a stranger)
    let mut stranger = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9>>{0}; flock 9; echo $$ > {0}; exec sleep 30",
            q(&lock.to_string_lossy())
        ))
        .spawn()
        .unwrap();
    let spid = stranger.id();
    assert!(wait_for(Duration::from_secs(5), || std::fs::read_to_string(&lock)
        .is_ok_and(|s| s.trim() == spid.to_string())));
    let mut c = wait_cmd(&sshd, &p, &["--marker", "/nope", "--max-ticks", "1", "--supersede"]);
    c.process_group(0);
    let r = run(c, Duration::from_secs(20));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("pid {spid} is not a gpupatrol process")),
        "{}",
        r.stderr
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(stranger.try_wait().unwrap().is_none(), "the stranger was not signalled");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn patrol_until_terminal_keeps_watching_a_run_it_resumed() {
    let sshd = Sshd::start();
    let log = sshd.box_dir().join("pr.log");
    let pidf = sshd.box_dir().join("pr.pid");
    let job = format!(
        "sh {} progress {} {}",
        q(&fixtures().join("matrix_job.sh").to_string_lossy()),
        q(&log.to_string_lossy()),
        q(&pidf.to_string_lossy())
    );
    let p = sshd.run_profile(
        "pr",
        "prjob",
        &format!(
            "  resume: {}\n  auto_resume: true\n",
            yd(&format!("tmux new-session -d -s prjob {}", q(&job)))
        ),
    );
    // the run died before this patrol: its first tick resumes it
    std::fs::write(&log, "Epoch 1 loss 0.9\n").unwrap();
    let mut c = sshd.gpupatrol();
    c.args([
        "patrol",
        "--every",
        "500ms",
        "--max-ticks",
        "3",
        "--until-terminal",
        "--json",
        "-p",
    ])
    .arg(&p);
    let r = run(c, Duration::from_secs(30));
    sshd.kill_session("prjob");
    let ticks = r.json();
    assert!(
        ticks[0]["action"].as_str().unwrap().starts_with("resumed"),
        "{}",
        r.stdout
    );
    assert_eq!(ticks.len(), 3, "a resumed run is not terminal: {}", r.stdout);
    assert_eq!(ticks[2]["verdict"], "RUNNING", "{}", r.stdout);
}

#[test]
fn each_profile_keeps_its_own_schedule_in_a_patrol() {
    let mut dead = Sshd::start();
    let pd = dead.run_profile("pdead", "train", "");
    dead.stop();
    let sshd = Sshd::start();
    sshd.start_job("train", &sshd.box_dir().join("ph.log"), "forever", 0, "0.3", None, None);
    let ph = sshd.run_profile("ph", "train", "");
    let mut c = sshd.gpupatrol();
    c.args(["patrol", "--every", "6s", "--max-ticks", "2", "--json", "-p"])
        .arg(&ph)
        .arg("-p")
        .arg(&pd);
    let r = run(c, Duration::from_secs(60));
    let healthy: Vec<i64> = r
        .json()
        .iter()
        .filter(|j| j["profile"] == "ph" && j.get("verdict").is_some() && j.get("patrol").is_none())
        .map(|j| chrono_secs(j["ts"].as_str().unwrap()))
        .collect();
    assert_eq!(healthy.len(), 2, "{}", r.stdout);
    // the dead box retries after its backoff (~5 s); the healthy one waits its 6 s
    assert!(
        healthy[1] - healthy[0] >= 5,
        "the healthy box was ticked early: {}",
        r.stdout
    );
}

/// "2026-11-24T12:00:03Z" → seconds of the day (the tests never run across midnight twice).
fn chrono_secs(ts: &str) -> i64 {
    let t = &ts[11..19];
    let p: Vec<i64> = t.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600 + p[1] * 60 + p[2]
}

#[test]
fn a_hung_alert_command_is_killed_with_everything_it_started() {
    let sshd = Sshd::start();
    let p = sshd.run_profile(
        "ah",
        "nosession",
        "alert:\n  command: 'sleep 3005 & sleep 3006; wait'\n  timeout: 1s\n",
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED");
    let w = j["warnings"].as_array().unwrap();
    assert!(
        w.iter().any(|x| x
            .as_str()
            .unwrap()
            .contains("alert: delivery failed: command ran past 1s and was killed")),
        "{j}"
    );
    let left = Command::new("pgrep").args(["-f", "^sleep 300[56]$"]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "the alert's children survived: {:?}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn a_failed_alert_is_retried_and_a_waiter_does_not_hide_a_change() {
    let mut sshd = Sshd::start();
    let ok = sshd.path("alert-works");
    let sent = sshd.path("alerts.txt");
    let p = sshd.run_profile(
        "af",
        "nosession",
        &format!(
            "alert:\n  command: {}\n  cooldown: 1h\n",
            yd(&format!(
                "test -e {} && echo \"$GPUPATROL_VERDICT\" >> {}",
                q(&ok.to_string_lossy()),
                q(&sent.to_string_lossy())
            ))
        ),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED");
    assert!(
        j["warnings"].as_array().unwrap().iter().any(|x| x
            .as_str()
            .unwrap()
            .starts_with("alert: delivery failed: command exited 1")),
        "{j}"
    );
    assert_eq!(j["verdict"], "DIED", "a failed delivery never changes the verdict");
    std::fs::write(&ok, "").unwrap();
    // the next tick comes sooner than the retry: no attempt (no storm)
    let j = tick_json(&sshd, &p).one();
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    assert!(!sent.exists(), "retried before its backoff");
    // a minute later (the saved retry time moved into the past)
    let state = sshd.state_dir().join("af.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(v["alert"]["failures"], 1, "{v}");
    v["alert"]["retry_at"] = serde_json::json!(0);
    std::fs::write(&state, v.to_string()).unwrap();
    let j = tick_json(&sshd, &p).one();
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    assert_eq!(
        std::fs::read_to_string(&sent).unwrap(),
        "DIED\n",
        "retried, delivered once"
    );
    tick_json(&sshd, &p);
    assert_eq!(
        std::fs::read_to_string(&sent).unwrap(),
        "DIED\n",
        "within the cooldown: once"
    );
    // the box goes away; a waiter sees it first and records UNREACHABLE
    sshd.stop();
    let r = run(
        wait_cmd(
            &sshd,
            &p,
            &["--marker", "/nope", "--max-ticks", "1", "--interval", "100ms"],
        ),
        Duration::from_secs(30),
    );
    assert!(r.stdout.contains(" af UNREACHABLE"), "{}", r.stdout);
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "UNREACHABLE");
    assert_eq!(j["changed"], false, "the waiter saw it first");
    // not more urgent than the DIED delivered within the cooldown: held back
    assert_eq!(std::fs::read_to_string(&sent).unwrap(), "DIED\n");
    // a profile with nothing delivered yet: the waiter's sighting is still news to tick
    let seen = sshd.path("alerts2.txt");
    let p2 = sshd.run_profile(
        "aw",
        "nosession",
        &format!(
            "alert:\n  command: {}\n  cooldown: 1h\n",
            yd(&format!(
                "echo \"$GPUPATROL_VERDICT\" >> {}",
                q(&seen.to_string_lossy())
            ))
        ),
    );
    let r = run(
        wait_cmd(
            &sshd,
            &p2,
            &["--marker", "/nope", "--max-ticks", "1", "--interval", "100ms"],
        ),
        Duration::from_secs(30),
    );
    assert!(r.stdout.contains(" aw UNREACHABLE"), "{}", r.stdout);
    assert!(!seen.exists(), "wait does not alert");
    let j = tick_json(&sshd, &p2).one();
    assert_eq!(j["changed"], false);
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "UNREACHABLE\n",
        "tick alerts what wait saw first"
    );
}

/// A waiter whose output lines arrive on a channel, to act between its ticks.
fn spawn_waiter(
    sshd: &Sshd,
    p: &std::path::Path,
    pattern: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = wait_cmd(
        sshd,
        p,
        &["--pattern", pattern, "--interval", "200ms", "--max-ticks", "100"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Wait (bounded) for `n` more tick lines from the waiter.
fn ticks_seen(rx: &std::sync::mpsc::Receiver<String>, n: usize) {
    for _ in 0..n {
        rx.recv_timeout(Duration::from_secs(20)).expect("the waiter ticks");
    }
}

fn end_of(mut child: std::process::Child) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the waiter did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn wait_pattern_finds_text_half_written_at_a_tick() {
    let sshd = Sshd::start();
    sshd.start_job(
        "train",
        &sshd.box_dir().join("unused.log"),
        "forever",
        0,
        "0.3",
        None,
        None,
    );
    let log = sshd.box_dir().join("wh.log");
    std::fs::write(&log, "Epoch 1\n").unwrap();
    // the profile's per-run log is box/wh.log; the job keeps the run alive
    let p = sshd.run_profile("wh", "train", "");
    let (child, rx) = spawn_waiter(&sshd, &p, "Training completed");
    ticks_seen(&rx, 1);
    // the job is in the middle of writing the line when the next ticks look
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    use std::io::Write;
    write!(f, "Epoch 2\nTraining comp").unwrap();
    ticks_seen(&rx, 2);
    writeln!(f, "leted in 3h").unwrap();
    drop(f);
    assert_eq!(end_of(child), 0, "the waiter found the text");
}

#[test]
fn wait_pattern_sees_a_copytruncate_that_grew_past_its_offset() {
    let sshd = Sshd::start();
    let log = sshd.box_dir().join("wc.log");
    std::fs::write(&log, "config A\nEpoch 1\nEpoch 2\nEpoch 3\n").unwrap();
    let p = sshd.run_profile("wc", "train", "");
    sshd.start_job(
        "train",
        &sshd.box_dir().join("other.log"),
        "forever",
        0,
        "0.3",
        None,
        None,
    );
    let (child, rx) = spawn_waiter(&sshd, &p, "Training completed");
    ticks_seen(&rx, 2);
    // logrotate's copytruncate, then the run writes more than was there (same inode)
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"config B\nTraining completed\nEpoch 9 eval\nEpoch 9 eval done, writing summary\n")
        })
        .unwrap();
    assert_eq!(end_of(child), 0, "the waiter read the new file from its start");
}

#[test]
fn a_finished_run_alerts_once() {
    let sshd = Sshd::start();
    let sent = sshd.path("done-alerts.txt");
    let p = sshd.run_profile(
        "ad",
        "nosession",
        &format!(
            "alert:\n  command: {}\n  cooldown: 1h\n",
            yd(&format!(
                "echo \"$GPUPATROL_VERDICT\" >> {}",
                q(&sent.to_string_lossy())
            ))
        ),
    );
    std::fs::write(sshd.box_dir().join("ad.log"), "Epoch 9\nTraining completed\n").unwrap();
    std::fs::write(sshd.box_dir().join("ad.DONE"), "").unwrap();
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "DONE");
    tick_json(&sshd, &p);
    assert_eq!(std::fs::read_to_string(&sent).unwrap_or_default(), "DONE\n");
}
