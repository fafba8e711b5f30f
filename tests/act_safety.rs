//! Never act twice, never act on a stranger: the parts of gpupatrol that act
//! (the chain installer, auto-resume) against a real sshd, tmux and Slurm,
//! in the situations real boxes have: a scheduler outage, a chain whose stage
//! outlives it, a stale chain.pid after a reboot, a finished chain.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn gp(sshd: &Sshd, args: &[&str], p: &Path) -> Run {
    let mut c = sshd.gpupatrol();
    c.args(args).arg("-p").arg(p);
    run(c, Duration::from_secs(90))
}

fn chain(sshd: &Sshd, name: &str, stages: &str, extra: &str) -> (PathBuf, PathBuf) {
    let dir = sshd.box_dir().join(format!("{name}-chain"));
    let notify = sshd.box_dir().join(format!("{name}-notify.txt"));
    let p = sshd.profile(
        name,
        &format!(
            "{extra}chain:\n  dir: {}\n  detach: nohup\n  heartbeat: 1s\n  poll: 1s\n  notify: {}\n  stages:\n{stages}",
            yq(&dir.to_string_lossy()),
            yd(&format!(
                "echo \"$GPUPATROL_CHAIN_STATUS $GPUPATROL_CHAIN_STAGE\" >> {}",
                q(&notify.to_string_lossy())
            )),
        ),
    );
    (p, dir)
}

fn pgrep(pattern: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Processes a test started die with it, even when an assertion fails.
struct Reap(&'static str);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-9", "-f", self.0]).status();
    }
}

/// A Slurm controller that does not answer (the client's real error): the
/// box's login environment points Slurm's clients at a dead port.
fn outage_conf(sshd_dir: &Path) -> PathBuf {
    let conf = std::fs::read_to_string("/etc/slurm/slurm.conf").expect("a single-node Slurm (tests/slurm/start.sh)");
    let bad: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("SlurmctldPort=") {
                "SlurmctldPort=1".to_string()
            } else if l.starts_with("SlurmctldTimeout=") {
                "SlurmctldTimeout=1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = sshd_dir.join("slurm-outage.conf");
    std::fs::write(&p, format!("{bad}\nMessageTimeout=1\n")).unwrap();
    p
}

#[test]
fn a_scheduler_outage_is_unknown_and_never_resubmits() {
    if !slurm_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = outage_conf(tmp.path());
    let sshd = Sshd::start_with(Options {
        env: vec![("SLURM_CONF", conf.to_string_lossy().to_string())],
        ..Default::default()
    });
    let name = format!("gpo-{}", sshd.port);
    let _cancel = scopeguard(&name);
    // the job runs; the controller then stops answering the box's clients
    let out = Command::new("sbatch")
        .args(["--parsable", "--oversubscribe", "-J", &name, "-o"])
        .arg(sshd.box_dir().join("o-%j.out"))
        .args(["--wrap", "sleep 60"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = sshd.box_dir().join("o.log");
    std::fs::write(&log, "step=1\n").unwrap();
    // the resume reaches the controller by itself: a duplicate would be real
    let resume = format!("SLURM_CONF=/etc/slurm/slurm.conf sbatch --oversubscribe -J {name} --wrap 'sleep 60'");
    let p = sshd.profile(
        "o",
        &format!(
            "job:\n  alive: {{ slurm: {name} }}\n  log: {}\n  progress: 'step=(\\d+)'\n  resume: {}\n  auto_resume: true\n",
            yq(&log.to_string_lossy()),
            yd(&resume)
        ),
    );
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("section_timeout: 5s", "section_timeout: 15s");
    std::fs::write(&p, text).unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "PROBE_ERROR", "{j}");
    assert!(
        j["detail"]
            .as_str()
            .unwrap()
            .contains("Unable to contact slurm controller"),
        "{j}"
    );
    assert!(j["action"].is_null(), "nothing is resumed on an unknown: {j}");
    assert_eq!(sshd.resumes("o"), 0);
    let queued = Command::new("squeue").args(["-h", "-n", &name]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&queued.stdout).lines().count(),
        1,
        "one job, not two"
    );
}

fn scopeguard(name: &str) -> impl Drop {
    struct Cancel(String);
    impl Drop for Cancel {
        fn drop(&mut self) {
            let _ = Command::new("scancel").args(["-n", &self.0]).status();
        }
    }
    Cancel(name.to_string())
}

#[test]
fn a_slurm_chain_during_an_outage_is_unknown_and_not_reinstalled() {
    if !slurm_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = outage_conf(tmp.path());
    let sshd = Sshd::start_with(Options {
        env: vec![("SLURM_CONF", conf.to_string_lossy().to_string())],
        ..Default::default()
    });
    let dir = sshd.box_dir().join("so-chain");
    std::fs::create_dir_all(&dir).unwrap();
    // a chain installed earlier: its first stage is queued and running
    let out = Command::new("sbatch")
        .args(["--parsable", "--oversubscribe", "-J", "so-train", "-o"])
        .arg(dir.join("train.slurm.out"))
        .args(["--wrap", "sleep 60"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _cancel = scopeguard("so-train");
    std::fs::write(dir.join("slurm.jobs"), format!("{id} train\n")).unwrap();
    let p = sshd.profile(
        "so",
        &format!(
            "chain:\n  dir: {}\n  detach: slurm\n  stages:\n    - {{ name: train, run: 'sleep 60' }}\n",
            yq(&dir.to_string_lossy())
        ),
    );
    let r = gp(&sshd, &["chain", "status", "--oneline"], &p);
    assert_eq!(r.code, 3, "unknown, never 'stopped': {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("chain unknown"), "{}", r.stdout);
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "PROBE_ERROR", "{t}");
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("cannot tell whether the chain's Slurm jobs still run"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("slurm.jobs")).unwrap().trim(),
        format!("{id} train"),
        "nothing was resubmitted"
    );
}

#[test]
fn stopping_a_chain_stops_every_process_of_its_stage() {
    let sshd = Sshd::start();
    let _reap = Reap("sleep 3001|sleep 3002");
    // the stage's command has children of its own, as `python train.py | tee` has
    let (p, dir) = chain(
        &sshd,
        "st",
        "    - { name: train, run: 'sleep 3001 & sleep 3002; wait' }\n",
        "",
    );
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || pgrep("^sleep 3001$").len() == 1
        && pgrep("^sleep 3002$").len() == 1));
    // replacing it stops all of it before anything new starts
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("sleep 3001 & sleep 3002; wait", "sleep 5");
    std::fs::write(&p, text).unwrap();
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        pgrep("^sleep 3001$").is_empty() && pgrep("^sleep 3002$").is_empty(),
        "the old stage survived"
    );
    // TERM to the chain (a person's kill): the stage's whole tree goes too
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("sleep 5", "sleep 3001 & sleep 3002; wait");
    std::fs::write(&p, text).unwrap();
    assert_eq!(gp(&sshd, &["chain", "install", "--force"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || pgrep("^sleep 3002$").len() == 1));
    let chain_pid = std::fs::read_to_string(dir.join("chain.pid")).unwrap();
    let chain_pid = chain_pid.split_whitespace().next().unwrap();
    assert!(
        Command::new("kill")
            .args(["-TERM", chain_pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait_for(Duration::from_secs(15), || pgrep("^sleep 3001$").is_empty()
            && pgrep("^sleep 3002$").is_empty()),
        "TERM left the stage's children running"
    );
    assert!(wait_for(Duration::from_secs(10), || std::fs::read_to_string(
        dir.join("train.status")
    )
    .is_ok_and(|s| s.trim() == "ABORTED")));
}

#[test]
fn a_stale_chain_pid_after_a_reboot_is_lost_and_its_process_is_left_alone() {
    let sshd = Sshd::start();
    let _reap = Reap("sleep 3003");
    let (p, dir) = chain(&sshd, "sp", "    - { name: train, run: 'sleep 30' }\n", "");
    // before the reboot: the chain ran stage train; after it, its pid names
    // an unrelated process (same pid, another start time and boot)
    let mut stranger = Command::new("sleep").arg("3003").spawn().unwrap();
    let spid = stranger.id();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("chain.pid"),
        format!("{spid} 12 00000000-0000-0000-0000-000000000000\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("train.pid"),
        format!("{spid} 13 00000000-0000-0000-0000-000000000000\n"),
    )
    .unwrap();
    std::fs::write(dir.join("train.heartbeat"), "").unwrap();
    let r = gp(&sshd, &["chain", "status", "--oneline"], &p);
    assert!(r.stdout.contains("chain lost"), "{}", r.stdout);
    assert!(r.stdout.contains("train lost"), "{}", r.stdout);
    assert_eq!(r.code, 1);
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "DIED", "lost to a reboot is resumable: {t}");
    assert!(t["detail"].as_str().unwrap().contains("chain lost"), "{t}");
    // install neither refuses (nothing of the chain runs) nor signals the stranger
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("stopping"), "{}", r.stdout);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "install signalled an unrelated process"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn install_is_idempotent_a_done_chain_is_left_alone() {
    let sshd = Sshd::start();
    let (p, dir) = chain(&sshd, "sd", "    - { name: train, run: 'echo trained' }\n", "");
    // a job's own pidfile in the chain's folder is not the chain's to delete
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("job.pid"), "4242\n").unwrap();
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let pid_word = r
        .stdout
        .split("started: nohup, pid ")
        .nth(1)
        .unwrap_or_else(|| panic!("no pid: {}", r.stdout))
        .trim()
        .to_string();
    assert!(
        pid_word.parse::<u32>().is_ok(),
        "a fast chain still names its pid: {}",
        r.stdout
    );
    assert!(wait_for(Duration::from_secs(10), || dir.join("DONE").exists()));
    let notes = sshd.box_dir().join("sd-notify.txt");
    assert!(wait_for(Duration::from_secs(5), || count_in(&notes, "SUCCESS") == 1));
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("already DONE"), "{}", r.stdout);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count_in(&notes, "SUCCESS"), 1, "the chain ran once");
    assert_eq!(std::fs::read_to_string(dir.join("job.pid")).unwrap(), "4242\n");
    // --force runs it again
    assert_eq!(gp(&sshd, &["chain", "install", "--force"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || count_in(&notes, "SUCCESS") == 2));
    assert_eq!(std::fs::read_to_string(dir.join("job.pid")).unwrap(), "4242\n");
}

#[test]
fn a_stage_stall_follows_its_output_not_its_heartbeat() {
    let sshd = Sshd::start();
    // the heartbeat is touched every second; the stage itself went quiet
    let (p, dir) = chain(
        &sshd,
        "sq",
        "    - { name: train, run: 'echo Epoch 1; sleep 30', stall_after: 2s }\n",
        "",
    );
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || count_in(
        &dir.join("train.log"),
        "Epoch 1"
    ) == 1));
    let out_age = || {
        std::fs::metadata(dir.join("train.log"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default()
    };
    assert!(wait_for(Duration::from_secs(10), || out_age() > Duration::from_millis(3100)));
    let hb = std::fs::metadata(dir.join("train.heartbeat"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(hb.elapsed().unwrap() < Duration::from_secs(2), "the heartbeat is fresh");
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "STALLED", "{t}");
    assert!(t["detail"].as_str().unwrap().contains("no output for"), "{t}");
    let pid = std::fs::read_to_string(dir.join("chain.pid")).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", pid.split_whitespace().next().unwrap()])
        .status();
}

#[test]
fn a_timed_out_stage_is_named_and_later_stages_are_skipped() {
    let sshd = Sshd::start();
    let (p, dir) = chain(
        &sshd,
        "so2",
        "    - { name: train, run: 'sleep 30', timeout: 1s }\n    - { name: eval, run: 'true' }\n",
        "",
    );
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(15), || std::fs::read_to_string(
        dir.join("train.status")
    )
    .is_ok_and(|s| s.trim() == "FAILED 124")
        && !dir.join("chain.pid").exists()));
    let r = gp(&sshd, &["chain", "status", "--oneline"], &p);
    assert!(r.stdout.contains("train FAILED 124 | eval skipped"), "{}", r.stdout);
    let t = tick_json(&sshd, &p).one();
    assert_eq!(t["verdict"], "TIMEOUT", "{t}");
    let d = t["detail"].as_str().unwrap();
    assert!(d.contains("chain stage train hit its timeout 1s"), "{t}");
    assert!(d.contains("so2-chain/train.log"), "points at the stage log: {t}");
}

#[test]
fn a_chain_runs_in_the_login_environment_not_the_probes() {
    let _reap = Reap("^sleep 300[89]$");
    for (detach, secs) in [("nohup", "3008"), ("tmux", "3009")] {
        let sshd = Sshd::start();
        let dir = sshd.box_dir().join("ce-chain");
        let p = sshd.profile(
            "ce",
            &format!(
                "chain:\n  dir: {}\n  detach: {detach}\n  stages:\n    - {{ name: train, run: 'sleep {secs}' }}\n",
                yq(&dir.to_string_lossy())
            ),
        );
        let r = gp(&sshd, &["chain", "install"], &p);
        assert_eq!(r.code, 0, "{detach}: {}{}", r.stdout, r.stderr);
        let pattern = format!("^sleep {secs}$");
        assert!(
            wait_for(Duration::from_secs(10), || pgrep(&pattern).len() == 1),
            "{detach}"
        );
        let pid = pgrep(&pattern)[0];
        let env = std::fs::read(format!("/proc/{pid}/environ"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
            .unwrap();
        assert!(!env.lines().any(|l| l == "GPUPATROL_PROBE=1"), "{detach}: {env}");
        assert!(!env.lines().any(|l| l.starts_with("GP_CHAIN=")), "{detach}: {env}");
        assert!(
            env.contains("TMUX_TMPDIR="),
            "{detach}: the login's environment is kept"
        );
        // a job started later in that tmux server does not inherit it either
        if detach == "tmux" {
            let out = sshd
                .tmux()
                .args(["show-environment", "-g", "GPUPATROL_PROBE"])
                .output()
                .unwrap();
            assert!(!String::from_utf8_lossy(&out.stdout).contains("GPUPATROL_PROBE=1"));
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

#[test]
fn concurrent_installs_start_one_chain_and_a_hand_run_copy_refuses() {
    let sshd = Sshd::start();
    let _reap = Reap("^sleep 3011$");
    let (p, dir) = chain(&sshd, "cc", "    - { name: train, run: 'sleep 3011' }\n", "");
    // two agents, cron and a person: three installs at the same moment
    let runs: Vec<Run> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| gp(&sshd, &["chain", "install"], &p)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let started = runs.iter().filter(|r| r.code == 0).count();
    assert_eq!(
        started,
        1,
        "{:?}",
        runs.iter()
            .map(|r| format!("{} {}{}", r.code, r.stdout, r.stderr))
            .collect::<Vec<_>>()
    );
    for r in runs.iter().filter(|r| r.code != 0) {
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("refused"), "{}", r.stderr);
    }
    let state = || {
        format!(
            "{:?} train(s); {}; {:?}",
            pgrep("^sleep 3011$"),
            std::fs::read_to_string(dir.join("chain.out")).unwrap_or_default(),
            runs.iter()
                .map(|r| format!("{} {}{}", r.code, r.stdout, r.stderr))
                .collect::<Vec<_>>()
        )
    };
    assert!(
        wait_for(Duration::from_secs(20), || pgrep("^sleep 3011$").len() == 1),
        "{}",
        state()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pgrep("^sleep 3011$").len(), 1, "one chain, one train: {}", state());
    // the rendered script run by hand beside it refuses to be a second copy
    let out = Command::new("sh")
        .arg(dir.join("chain.sh"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another chain runs"));
    assert_eq!(pgrep("^sleep 3011$").len(), 1);
    // --force replaces it: still exactly one
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(wait_for(Duration::from_secs(10), || pgrep("^sleep 3011$").len() == 1));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pgrep("^sleep 3011$").len(), 1, "the old train survived --force");
}

#[test]
fn what_a_stage_starts_in_the_background_or_setsid_stops_with_the_chain() {
    let sshd = Sshd::start();
    let _reap = Reap("^sleep 301[234]$");
    let (p, dir) = chain(
        &sshd,
        "cb",
        "    - { name: prep, run: 'nohup sleep 3012 >/dev/null 2>&1 & echo prepped' }\n    - { name: train, run: '(setsid sleep 3013 >/dev/null 2>&1 &); sleep 3014' }\n",
        "",
    );
    assert_eq!(gp(&sshd, &["chain", "install"], &p).code, 0);
    let all = || ["^sleep 3012$", "^sleep 3013$", "^sleep 3014$"].map(|p| pgrep(p).len());
    assert!(wait_for(Duration::from_secs(10), || all() == [1, 1, 1]), "{:?}", all());
    // a plain install refuses while anything of the run is alive
    let r = gp(&sshd, &["chain", "install"], &p);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    // --force stops all of it, the escaped ones too, before starting anew
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("nohup sleep 3012 >/dev/null 2>&1 & echo prepped", "echo prepped")
        .replace("(setsid sleep 3013 >/dev/null 2>&1 &); sleep 3014", "sleep 3014");
    std::fs::write(&p, text).unwrap();
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(all()[..2], [0, 0], "a stage's background child survived --force");
    assert!(wait_for(Duration::from_secs(10), || all() == [0, 0, 1]), "{:?}", all());
    // TERM to the chain stops its run's processes too (a stage's own sweep)
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("'echo prepped'", "'nohup sleep 3012 >/dev/null 2>&1 & echo prepped'");
    std::fs::write(&p, text).unwrap();
    assert_eq!(gp(&sshd, &["chain", "install", "--force"], &p).code, 0);
    assert!(wait_for(Duration::from_secs(10), || all() == [1, 0, 1]), "{:?}", all());
    let pid = std::fs::read_to_string(dir.join("chain.pid")).unwrap();
    let pid = pid.split_whitespace().next().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(
        wait_for(Duration::from_secs(20), || all() == [0, 0, 0]),
        "TERM left processes of the run: {:?}",
        all()
    );
}

#[test]
fn a_job_id_that_now_names_a_strangers_job_is_never_cancelled() {
    if !slurm_ready() {
        return;
    }
    let sshd = Sshd::start();
    let dir = sshd.box_dir().join("sx-chain");
    std::fs::create_dir_all(&dir).unwrap();
    // the controller's state was lost: the recorded id is now someone else's job
    let out = Command::new("sbatch")
        .args(["--parsable", "--oversubscribe", "-J", "sx-stranger", "-o", "/dev/null"])
        .args(["--wrap", "sleep 60"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _cancel = scopeguard("sx-stranger");
    std::fs::write(dir.join("slurm.jobs"), format!("{id} train\n")).unwrap();
    std::fs::write(dir.join("train.heartbeat"), "").unwrap();
    let p = sshd.profile(
        "sx",
        &format!(
            "chain:\n  dir: {}\n  detach: slurm\n  stages:\n    - {{ name: train, run: 'true' }}\n",
            yq(&dir.to_string_lossy())
        ),
    );
    let r = gp(&sshd, &["chain", "status", "--json"], &p);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_ne!(v["summary"], "running", "a stranger's job is not the chain: {v}");
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("stopping"), "{}", r.stdout);
    let q = Command::new("squeue")
        .args(["-h", "-j", &id, "-o", "%j"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&q.stdout).trim(),
        "sx-stranger",
        "install cancelled a stranger's job"
    );
    let _ = Command::new("scancel").args(["-n", "sx-train"]).status();
}

/// A fake `squeue` first on the box's PATH.
fn fake_squeue(sshd: &Sshd, body: &str) {
    let f = sshd.path("bin/squeue");
    std::fs::write(&f, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_squeue_warning_on_stderr_is_not_a_job() {
    let sshd = Sshd::start();
    // exits 0, lists nothing, warns on stderr (a deprecated option, a config note)
    fake_squeue(&sshd, "echo 'squeue: warning: option -n is deprecated' >&2; exit 0");
    let p = sshd.profile("sw", "job:\n  alive: { slurm: sw-train }\n");
    let v = tick_json(&sshd, &p).one();
    assert_eq!(v["verdict"], "DIED", "a warning is not a running job: {v}");
}

#[test]
fn a_hung_squeue_costs_its_section_not_the_probe() {
    let sshd = Sshd::start();
    fake_squeue(&sshd, "sleep 30");
    let p = sshd.profile("sh", "job:\n  alive: { slurm: sh-train }\n");
    let r = tick_json(&sshd, &p);
    let v = r.one();
    assert_eq!(v["verdict"], "PROBE_ERROR", "{v}");
    assert!(v["detail"].as_str().unwrap_or("").contains("no answer"), "{v}");
    // section_timeout is 5s in the test profiles, probe_timeout 20s
    assert!(r.elapsed < Duration::from_secs(12), "{:?}", r.elapsed);
}

#[test]
fn a_pid_only_chain_pid_names_no_chain() {
    let sshd = Sshd::start();
    let _reap = Reap("^sleep 3015$");
    let (p, dir) = chain(&sshd, "po", "    - { name: train, run: 'true' }\n", "");
    let mut stranger = Command::new("sleep").arg("3015").spawn().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    // hand-written, or an older format: a pid alone proves nothing where /proc exists
    std::fs::write(dir.join("chain.pid"), format!("{}\n", stranger.id())).unwrap();
    let r = gp(&sshd, &["chain", "status", "--oneline"], &p);
    assert!(!r.stdout.contains("chain running"), "{}", r.stdout);
    let r = gp(&sshd, &["chain", "install", "--force"], &p);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("stopping"), "{}", r.stdout);
    std::thread::sleep(Duration::from_millis(200));
    assert!(stranger.try_wait().unwrap().is_none(), "install signalled a stranger");
    let _ = stranger.kill();
    let _ = stranger.wait();
}
