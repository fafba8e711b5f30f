//! The on-box chain under each detach method, against a real sshd, tmux and
//! (where its daemons start) a real single-node Slurm.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn chain_profile(sshd: &Sshd, name: &str, detach: &str, eval_cmd: &str, extra: &str) -> (PathBuf, PathBuf) {
    let dir = sshd.box_dir().join(format!("{name}-chain"));
    let notify = sshd.box_dir().join(format!("{name}-notify.txt"));
    let p = sshd.profile(
        name,
        &format!(
            "chain:\n  dir: {}\n  detach: {detach}\n  heartbeat: 1s\n  poll: 1s\n  notify: {}\n{extra}  stages:\n    - {{ name: train, run: 'for i in 1 2 3; do echo \"Epoch $i\"; sleep 0.4; done; echo Training completed' }}\n    - {{ name: eval, run: {} }}\n    - {{ name: summarise, run: 'echo summary written' }}\n",
            yq(&dir.to_string_lossy()),
            yd(&format!("echo \"$GPUPATROL_CHAIN_STATUS $GPUPATROL_CHAIN_STAGE\" >> {}", q(&notify.to_string_lossy()))),
            yq(eval_cmd),
        ),
    );
    (p, dir)
}

fn gp(sshd: &Sshd, args: &[&str], p: &Path) -> Run {
    let mut c = sshd.gpupatrol();
    c.args(args).arg("-p").arg(p);
    run(c, Duration::from_secs(60))
}

/// The chain's pid: the first word of chain.pid ("PID START BOOT").
fn chain_pid(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("chain.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn status_of(dir: &Path, stage: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(format!("{stage}.status")))
        .ok()
        .map(|s| s.trim().to_string())
}

fn check_success(sshd: &Sshd, p: &Path, dir: &Path, name: &str) {
    // the installing SSH session is long gone when the chain finishes
    assert!(!dir.join("DONE").exists(), "install returned before the chain finished");
    assert!(
        wait_for(Duration::from_secs(30), || dir.join("DONE").exists()),
        "chain never finished"
    );
    for s in ["train", "eval", "summarise"] {
        assert_eq!(status_of(dir, s).as_deref(), Some("SUCCESS"), "{s}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("eval.result")).unwrap().trim(),
        "acc=0.91"
    );
    let r = gp(sshd, &["chain", "status", "--json"], p);
    let j = r.one();
    assert_eq!(j["chain"], "DONE", "{j}");
    assert_eq!(r.code, 0);
    let t = tick_json(sshd, p).one();
    assert_eq!(
        t["verdict"], "DONE",
        "the chain's DONE is the run's DONE without a job.done_marker: {t}"
    );
    let notes = std::fs::read_to_string(sshd.box_dir().join(format!("{name}-notify.txt"))).unwrap();
    assert_eq!(notes.lines().last().unwrap(), "SUCCESS summarise", "{notes}");
}

#[test]
fn nohup_chain_completes_after_the_session_ends() {
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "cn", "nohup", "echo acc=0.91", "");
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("chain installed"), "{}", r.stdout);
    assert_eq!(sshd.accepted(), 1, "one connection, no scp");
    check_success(&sshd, &p, &dir, "cn");
}

#[test]
fn tmux_chain_completes() {
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "ct", "tmux", "echo acc=0.91", "");
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        sshd.tmux()
            .args(["has-session", "-t", "=gpupatrol-chain-ct"])
            .status()
            .unwrap()
            .success()
    );
    check_success(&sshd, &p, &dir, "ct");
}

#[test]
fn a_failing_middle_stage_stops_the_chain_and_tick_reports_it() {
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "cf", "nohup", "echo bad; exit 3", "");
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(20), || status_of(&dir, "eval").is_some()
        && !dir.join("chain.pid").exists()));
    assert_eq!(status_of(&dir, "train").as_deref(), Some("SUCCESS"));
    assert_eq!(status_of(&dir, "eval").as_deref(), Some("FAILED 3"));
    assert_eq!(status_of(&dir, "summarise"), None, "the third stage never ran");
    assert!(!dir.join("DONE").exists());
    let r = gp(&sshd, &["chain", "status", "--oneline"], &p);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("chain failed | train SUCCESS | eval FAILED 3 | summarise skipped"),
        "{}",
        r.stdout
    );
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "CRASHED", "{t}");
    assert!(
        t["detail"].as_str().unwrap().contains("chain stage eval FAILED 3"),
        "{t}"
    );
    let notes = std::fs::read_to_string(sshd.box_dir().join("cf-notify.txt")).unwrap();
    assert_eq!(notes.trim(), "FAILED eval");
}

#[test]
fn term_aborts_the_running_stage_and_install_is_idempotent() {
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "ca", "nohup", "sleep 30", "");
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || dir.join("eval.pid").exists()));
    let pid = chain_pid(&dir);
    // a second install is refused, naming the running chain
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains(&format!("pid {pid}")), "{}", r.stderr);
    // TERM → the running stage is ABORTED, no DONE
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(wait_for(Duration::from_secs(10), || status_of(&dir, "eval").as_deref()
        == Some("ABORTED")));
    assert!(!dir.join("DONE").exists());
    assert!(wait_for(Duration::from_secs(5), || !dir.join("chain.pid").exists()));
    // stopped by a signal: nothing says the work failed, so DIED (resumable)
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "DIED", "{t}");
    assert!(t["detail"].as_str().unwrap().contains("eval ABORTED"), "{t}");
}

#[test]
fn force_replaces_a_running_chain() {
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "cr", "nohup", "sleep 30", "");
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || dir.join("eval.pid").exists()));
    let old = std::fs::read_to_string(dir.join("chain.pid"))
        .unwrap()
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("'sleep 30'", "'echo acc=0.91'");
    std::fs::write(&p, text).unwrap();
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        !Path::new(&format!("/proc/{old}")).exists(),
        "the old chain is gone before the new one starts"
    );
    check_success(&sshd, &p, &dir, "cr");
}

#[test]
fn a_quiet_running_stage_is_stalled() {
    let sshd = Sshd::start();
    let dir = sshd.box_dir().join("cs-chain");
    let p = sshd.profile(
        "cs",
        &format!(
            "chain:\n  dir: {}\n  heartbeat: 30s\n  stages:\n    - {{ name: train, run: 'sleep 20', stall_after: 2s }}\n",
            yq(&dir.to_string_lossy())
        ),
    );
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(5), || dir
        .join("train.heartbeat")
        .exists()));
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "RUNNING");
    // the heartbeat (touched every 30s) grows older than stall_after (2s)
    let hb_age = || {
        std::fs::metadata(dir.join("train.heartbeat"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default()
    };
    assert!(wait_for(Duration::from_secs(10), || hb_age() > Duration::from_millis(3100)));
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "STALLED", "{t}");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("chain stage train: no output for"),
        "{t}"
    );
    let pid = chain_pid(&dir);
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
}

#[test]
fn slurm_afterok_chain_completes() {
    if !slurm_ready() {
        return;
    }
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "csl", "slurm", "echo acc=0.91", "");
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("started: slurm jobs"), "{}", r.stdout);
    let jobs = std::fs::read_to_string(dir.join("slurm.jobs")).unwrap();
    assert_eq!(jobs.lines().count(), 3, "{jobs}");
    assert!(
        wait_for(Duration::from_secs(60), || dir.join("DONE").exists()),
        "slurm chain never finished"
    );
    for s in ["train", "eval", "summarise"] {
        assert_eq!(status_of(&dir, s).as_deref(), Some("SUCCESS"), "{s}");
    }
    let j = gp(&sshd, &["chain", "status", "--json"], &p).one();
    assert_eq!(j["chain"], "DONE", "{j}");
    assert_eq!(j["detail"]["stages"][0]["slurm"]["state"], "COMPLETED", "{j}");
}

#[test]
fn slurm_failed_first_job_cancels_the_rest_and_tick_reports_it() {
    if !slurm_ready() {
        return;
    }
    let sshd = Sshd::start();
    let dir = sshd.box_dir().join("csf-chain");
    let p = sshd.profile(
        "csf",
        &format!(
            "chain:\n  dir: {}\n  detach: slurm\n  heartbeat: 1s\n  stages:\n    - {{ name: train, run: 'echo oops; exit 7' }}\n    - {{ name: eval, run: 'echo never' }}\n",
            yq(&dir.to_string_lossy())
        ),
    );
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    let jobs = std::fs::read_to_string(dir.join("slurm.jobs")).unwrap();
    let eval_id = jobs.lines().nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert!(wait_for(Duration::from_secs(60), || {
        let o = Command::new("scontrol")
            .args(["show", "job", &eval_id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("JobState=CANCELLED")
    }));
    assert_eq!(status_of(&dir, "train").as_deref(), Some("FAILED 7"));
    assert_eq!(status_of(&dir, "eval"), None, "eval never ran");
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "CRASHED", "{t}");
    let d = t["detail"].as_str().unwrap();
    assert!(
        d.contains("chain stage train FAILED 7") && d.contains("DependencyNeverSatisfied"),
        "{t}"
    );
}

#[test]
fn slurm_alive_check_maps_job_states() {
    if !slurm_ready() {
        return;
    }
    let sshd = Sshd::start();
    let log = sshd.box_dir().join("sj.log");
    std::fs::write(&log, "step=1\n").unwrap();
    let name = format!("gp-sj-{}", sshd.port);
    let out = Command::new("sbatch")
        .args([
            "--parsable",
            "-J",
            &name,
            "-o",
            &sshd.box_dir().join("sj.slurm.out").to_string_lossy(),
            "--wrap",
            &format!("sleep 3; echo step=2 >> {}", log.display()),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let p = sshd.profile(
        "sj",
        &format!(
            "job:\n  alive: {{ slurm: {name} }}\n  log: {}\n  progress: 'step=(\\d+)'\n  done_marker: {}\n",
            yq(&log.to_string_lossy()),
            yq(&sshd.box_dir().join("sj.DONE").to_string_lossy())
        ),
    );
    let v = tick_json(&sshd, &p).one();
    assert!(v["verdict"] == "RUNNING" || v["verdict"] == "PENDING", "{v}");
    assert!(wait_for(Duration::from_secs(30), || count_in(&log, "step=2") == 1));
    // the job has left the queue
    assert!(wait_for(Duration::from_secs(30), || Command::new("squeue")
        .args(["-h", "-n", &name])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.is_empty())));
    // COMPLETED but no done marker: exit codes lie
    let v = tick_json(&sshd, &p).one();
    assert_eq!(v["verdict"], "INCOMPLETE", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("COMPLETED"), "{v}");
}

#[test]
fn tmux_chain_failing_middle_stage_and_term() {
    let sshd = Sshd::start();
    let (p, dir) = chain_profile(&sshd, "ctf", "tmux", "echo bad; exit 4", "");
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(20), || status_of(&dir, "eval").is_some()
        && !dir.join("chain.pid").exists()));
    assert_eq!(status_of(&dir, "eval").as_deref(), Some("FAILED 4"));
    assert_eq!(status_of(&dir, "summarise"), None);
    assert!(!dir.join("DONE").exists());
    // a plain install would redo the stage that succeeded: refused, with the way on
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("'echo bad; exit 4'", "'sleep 30'");
    std::fs::write(&p, text).unwrap();
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("stopped at stage eval (FAILED 4) after train succeeded; --from eval continues"),
        "{}",
        r.stderr
    );
    assert_eq!(
        status_of(&dir, "eval").as_deref(),
        Some("FAILED 4"),
        "refused: nothing touched"
    );
    // --from eval keeps train's result and runs eval on; then TERM it
    let r = gp(&sshd, &["chain", "install", "--from", "eval"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        status_of(&dir, "eval"),
        None,
        "the re-run stage's old sentinels are cleared"
    );
    assert_eq!(
        status_of(&dir, "train").as_deref(),
        Some("SUCCESS"),
        "the earlier stage's stay"
    );
    assert!(wait_for(Duration::from_secs(10), || dir.join("eval.pid").exists()));
    let pid = chain_pid(&dir);
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(wait_for(Duration::from_secs(10), || status_of(&dir, "eval").as_deref()
        == Some("ABORTED")));
    assert!(!dir.join("DONE").exists());
}
