//! The probe in every userland it meets: the same rendered script runs under
//! dash, `bash --posix`, busybox `sh` with only busybox applets on PATH (as
//! in Alpine-based or slim images), and a PATH without procps (no pgrep, no
//! ps: `python:*-slim`), against one fixture box. The facts must be equal
//! except for what a userland documents as unavailable.

mod common;

use common::*;
use gpupatrol::probe::{self, Facts, Request};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Box_ {
    dir: tempfile::TempDir,
    job: std::process::Child,
    tag: String,
}

impl Drop for Box_ {
    fn drop(&mut self) {
        let _ = self.job.kill();
        let _ = self.job.wait();
    }
}

/// Logs, a marker, checkpoints, a job whose command line names the box, and
/// a fake nvidia-smi.
fn fixture_box() -> Box_ {
    let dir = tempfile::Builder::new().prefix("gp-shells-").tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ckpt")).unwrap();
    std::fs::create_dir_all(d.join("gpu")).unwrap();
    std::fs::create_dir_all(d.join("fakebin")).unwrap();
    for n in ["epoch_1.pt", "epoch_2.pt", "with\nnewline.pt", ".hidden"] {
        std::fs::write(d.join("ckpt").join(n), "").unwrap();
    }
    std::fs::write(d.join("DONE.old"), "").unwrap();
    let mut log = String::from("config: {on_error: skip}\n");
    for i in 1..=30 {
        log.push_str(&format!("Epoch {i} loss 0.{:02}\n", 99 - i));
    }
    log.push_str("\rEpoch 31: 40%|####   | 40/100\rEpoch 31: 50%|#####  | 50/100");
    std::fs::write(d.join("train.log"), log).unwrap();
    std::os::unix::fs::symlink(fixtures().join("fake-nvidia-smi"), d.join("fakebin/nvidia-smi")).unwrap();
    std::fs::write(
        d.join("gpu/rows"),
        "0 97 72908 81920 64 NVIDIA-A100 310.5 400.0\n1 12 1200 81920 40 NVIDIA-A100 80.0 400.0\n",
    )
    .unwrap();
    std::fs::write(d.join("gpu/mode"), "ok\n").unwrap();
    // one tag per fixture: the tests of this file run at once, in one process
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("gp-shells-job-{}x{n}x", std::process::id());
    let script = d.join(format!("{tag}.sh"));
    std::fs::write(&script, "while :; do sleep 1; done\n").unwrap();
    let job = Command::new("sh").arg(&script).stdin(Stdio::null()).spawn().unwrap();
    std::fs::write(d.join("job.pid"), format!("{}\n", job.id())).unwrap();
    Box_ { dir, job, tag }
}

fn profile(b: &Box_, alive: &str) -> gpupatrol::profile::Profile {
    profile_with(b, alive, "")
}

/// The fixture's profile with `extra` top-level keys.
fn profile_with(b: &Box_, alive: &str, extra: &str) -> gpupatrol::profile::Profile {
    let d = b.dir.path().to_string_lossy().to_string();
    let text = format!(
        "name: sh\ntransport: local\ngpu: {{ samples: 2, interval: 100ms }}\njob:\n  alive: {alive}\n  log: {d}/train.log\n  progress: 'Epoch (\\d+)'\n  done_marker: {d}/DONE.old\n  done_pattern: 'Training completed'\nartifacts:\n  - {{ path: {d}/ckpt, expect_count: 4 }}\ndata_mount: {d}\n{extra}"
    );
    gpupatrol::profile::parse(Path::new("sh.yaml"), &text).unwrap()
}

/// A PATH of links to just these tools (busybox applets, or the system's).
fn path_of(dir: &Path, name: &str, tools: &[(String, PathBuf)]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).unwrap();
    for (t, target) in tools {
        let _ = std::os::unix::fs::symlink(target, p.join(t));
    }
    p
}

fn system_tools(except: &[&str]) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    for dir in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if !except.contains(&n.as_str()) && !v.iter().any(|(m, _): &(String, PathBuf)| *m == n) {
                v.push((n, e.path()));
            }
        }
    }
    v
}

/// This machine's path of `tool`.
fn which(tool: &str) -> String {
    let o = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Run the rendered probe under `shell` with `path` and read its facts.
fn facts_under(shell: &[&str], path: &str, b: &Box_, p: &gpupatrol::profile::Profile) -> Facts {
    facts_as(&[], shell, path, b, p)
}

/// The same, run through `prefix` (absolute paths: another user's
/// `setpriv`), and never for longer than a minute.
fn facts_as(prefix: &[&str], shell: &[&str], path: &str, b: &Box_, p: &gpupatrol::profile::Profile) -> Facts {
    let state = gpupatrol::state::State::new("sh");
    let probe = probe::script::render_for(p, &state, &Request::tick());
    let mut c = Command::new(which("timeout"));
    c.arg("60")
        .args(prefix)
        .args(shell)
        .env_clear()
        .env("PATH", path)
        .env("GPUPATROL_PROBE", "1")
        .env("GP_FAKE_GPU_DIR", b.dir.path().join("gpu"))
        .env("HOME", b.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(probe.script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    probe::observe(&out.stdout, &out.stderr, &probe, p).unwrap_or_else(|e| {
        panic!(
            "{shell:?}: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The facts every userland must agree on (the rest may differ in
/// precision: disk and memory numbers move while the test runs).
fn essentials(f: &Facts) -> String {
    let log = f
        .log
        .as_ref()
        .unwrap_or_else(|| panic!("no log facts: {:?}", f.problems));
    let gpus = match &f.gpus {
        gpupatrol::probe::facts::Gpus::Present { gpus, samples, .. } => format!("{gpus:?} x{samples}"),
        other => format!("{other:?}"),
    };
    format!(
        "alive={:?} pid={:?} threads={:?}\nmarker={:?}\nlog size={} inode={} ends_nl={} last_len={} lines={} done={:?}\ncandidates={:?}\ntail={:?}\ncrash end={:?}\nartifacts={:?}\ndisk={}\ngpus={gpus}\ncgroup v{:?} nproc={:?} oom={:?}\nproblems={:?}",
        f.alive.state,
        f.alive.pid,
        f.alive.threads,
        f.markers.done_marker,
        log.size,
        log.inode,
        log.ends_with_newline,
        log.last_len,
        log.lines,
        log.done_line,
        log.candidates.iter().map(|l| &l.text).collect::<Vec<_>>(),
        log.tail.iter().map(|l| &l.text).collect::<Vec<_>>(),
        f.crash.end.iter().map(|l| &l.text).collect::<Vec<_>>(),
        f.artifacts,
        f.disk.is_some(),
        f.cgroup.version,
        f.cgroup.nproc,
        f.cgroup.oom_kills,
        f.problems,
    )
}

/// The userlands a probe meets: (name, shell argv, PATH), each PATH with the
/// box's fake tools first.
fn userlands(b: &Box_, tmp: &Path) -> Vec<(&'static str, Vec<String>, String)> {
    let fake = b.dir.path().join("fakebin");
    let full = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let procps = [
        "pgrep", "pkill", "ps", "pidof", "top", "free", "uptime", "w", "watch", "vmstat", "pmap", "pwdx", "slabtop",
        "sysctl", "tload", "skill", "snice",
    ];
    let noprocps = path_of(tmp, "noprocps", &system_tools(&procps));
    let noprocps = format!("{}:{}", fake.display(), noprocps.display());
    let sh = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut v = vec![
        ("dash", sh(&["dash", "-s"]), full.clone()),
        ("bash --posix", sh(&["bash", "--posix", "-s"]), full),
        ("dash, no procps", sh(&["dash", "-s"]), noprocps),
    ];
    if have("busybox") || !peer_missing("busybox not installed; the busybox userland was not tried") {
        let out = Command::new("busybox").arg("--list").output().unwrap();
        let bin = Command::new("sh").args(["-c", "command -v busybox"]).output().unwrap();
        let bin = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim());
        let applets: Vec<(String, PathBuf)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|a| (a.to_string(), bin.clone()))
            .collect();
        v.push((
            "busybox sh, busybox applets only",
            vec![bin.to_string_lossy().to_string(), "sh".into(), "-s".into()],
            format!("{}:{}", fake.display(), path_of(tmp, "busybox", &applets).display()),
        ));
    }
    v
}

#[test]
fn the_probe_reads_the_same_box_under_every_userland() {
    let b = fixture_box();
    let tmp = tempfile::tempdir().unwrap();
    let lands = userlands(&b, tmp.path());
    for alive in [
        format!("{{ pidfile: {}/job.pid }}", b.dir.path().display()),
        format!("{{ pgrep: '{}' }}", b.tag),
        // anchored at the end: /proc's argv ends in a NUL, not a space
        format!("{{ pgrep: '{}\\.sh$' }}", b.tag),
    ] {
        let p = profile(&b, &alive);
        let runs: Vec<(&str, Facts)> = lands
            .iter()
            .map(|(name, shell, path)| {
                let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
                (*name, facts_under(&shell, path, &b, &p))
            })
            .collect();
        let (first_name, first) = &runs[0];
        let want = essentials(first);
        // what the fixture box holds, so "equal" cannot mean "equally empty"
        assert_eq!(first.alive.pid, Some(b.job.id()), "{alive}\n{want}");
        assert_eq!(
            first.artifacts[0].as_ref().unwrap().count,
            4,
            "a name with a newline counts once: {want}"
        );
        assert!(first.log.as_ref().unwrap().candidates.len() >= 20, "{want}");
        assert!(!first.log.as_ref().unwrap().ends_with_newline, "{want}");
        assert!(
            matches!(first.gpus, gpupatrol::probe::facts::Gpus::Present { samples: 2, .. }),
            "{want}"
        );
        assert!(first.problems.is_empty(), "{want}");
        assert!(!first.crash.end.is_empty(), "the log's last lines: {want}");
        for (name, f) in &runs[1..] {
            assert_eq!(essentials(f), want, "{name} differs from {first_name} ({alive})");
            // a start time, by the box's clock, to the second
            let (a, b) = (first.alive.started.unwrap(), f.alive.started.unwrap());
            assert!((a - b).abs() <= 1, "{name}: started {b} vs {a}");
        }
    }
}

#[test]
fn the_probe_is_light_on_the_box() {
    // count the processes one probe starts (strace where it exists)
    if !have("strace") && peer_missing("strace not installed; the probe's processes were not counted") {
        return;
    }
    let b = fixture_box();
    let p = profile(&b, &format!("{{ pidfile: {}/job.pid }}", b.dir.path().display()));
    let trace = b.dir.path().join("strace.out");
    let fake = b.dir.path().join("fakebin");
    // the fake nvidia-smi is a script of its own: a real one is one process
    write_exe(
        &fake.join("nvidia-smi"),
        "#!/bin/sh\necho '0, 97, 72908, 81920, 64, 310.5, 400.0'\n",
    );
    let strace = which("strace");
    let trace_s = trace.to_string_lossy().to_string();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    // the facts are read as every other test reads them (a probe that fails is no count)
    facts_as(
        &[
            &strace,
            "-f",
            "-qq",
            "-e",
            "trace=clone,clone3,fork,vfork",
            "-o",
            &trace_s,
        ],
        &["dash", "-s"],
        &path,
        &b,
        &p,
    );
    let forks = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("resumed") && (l.contains("clone") || l.contains("fork")))
        .count();
    // the seeds' hand-written probe starts ~12; v1 of this one started ~116
    assert!(forks <= 30, "one probe started {forks} processes");
}

fn write_exe(path: &Path, text: &str) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn a_wedged_driver_and_a_wedged_mount_cost_one_timeout_each_in_every_userland() {
    // busybox's timeout exits 143 (the TERM it sent), GNU's 124: both are "timed out"
    let b = fixture_box();
    let tmp = tempfile::tempdir().unwrap();
    let d = b.dir.path();
    std::fs::write(d.join("gpu/mode"), "hang\n").unwrap();
    let df_calls = d.join("df.calls");
    write_exe(
        &d.join("fakebin/df"),
        &format!("#!/bin/sh\necho call >>'{}'\nexec sleep 3600\n", df_calls.display()),
    );
    let p = profile_with(
        &b,
        &format!("{{ pidfile: {}/job.pid }}", d.display()),
        "section_timeout: 1s\n",
    );
    for (name, shell, path) in userlands(&b, tmp.path()) {
        std::fs::write(&df_calls, "").unwrap();
        std::fs::write(d.join("gpu/count"), "").unwrap();
        let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
        let f = facts_under(&shell, &path, &b, &p);
        for want in ["gpu: timed out on the box", "disk: timed out on the box"] {
            assert!(f.problems.iter().any(|w| w == want), "{name}: {want}: {:?}", f.problems);
        }
        assert_eq!(f.alive.state, gpupatrol::probe::facts::Liveness::Yes, "{name}");
        // one df (not a second for inodes into the same wedge), one sample
        // (not a second into the same wedged driver)
        let n = |f: &Path| std::fs::read_to_string(f).unwrap().lines().count();
        assert_eq!(n(&df_calls), 1, "{name}: df calls");
        assert_eq!(n(&d.join("gpu/count")), 1, "{name}: nvidia-smi calls");
    }
}

#[test]
fn a_log_that_is_a_fifo_or_on_a_dead_mount_costs_the_log_not_the_probe() {
    let b = fixture_box();
    let tmp = tempfile::tempdir().unwrap();
    let d = b.dir.path();
    let alive = format!("{{ pidfile: {}/job.pid }}", d.display());
    let lands = userlands(&b, tmp.path());
    // a stat that never answers for the log (a hard NFS mount whose server
    // is gone), the box's own stat for everything else
    write_exe(
        &d.join("fakebin/stat"),
        "#!/bin/sh\nfor a; do case $a in *train.log) exec sleep 3600 ;; esac; done\nPATH=${PATH#*:}\nexec stat \"$@\"\n",
    );
    let p = profile_with(&b, &alive, "section_timeout: 1s\n");
    for (name, shell, path) in &lands {
        let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
        let f = facts_under(&shell, path, &b, &p);
        assert!(
            f.problems.iter().any(|w| w == "log: timed out on the box"),
            "{name}: {:?}",
            f.problems
        );
        assert_eq!(f.alive.state, gpupatrol::probe::facts::Liveness::Yes, "{name}");
        assert!(
            matches!(f.gpus, gpupatrol::probe::facts::Gpus::Present { .. }),
            "{name}: the other sections still count"
        );
    }
    std::fs::remove_file(d.join("fakebin/stat")).unwrap();
    // a log that is a FIFO: opening it would block until a writer comes
    std::fs::remove_file(d.join("train.log")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(d.join("train.log"))
            .status()
            .unwrap()
            .success()
    );
    let p = profile(&b, &alive);
    for (name, shell, path) in &lands {
        let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
        let f = facts_under(&shell, path, &b, &p);
        let log = f.log.as_ref().unwrap_or_else(|| panic!("{name}: {:?}", f.problems));
        assert_eq!(
            log.status,
            gpupatrol::probe::sections::log::LogStatus::Unreadable,
            "{name}"
        );
        assert_eq!(f.alive.state, gpupatrol::probe::facts::Liveness::Yes, "{name}");
    }
}

#[test]
fn a_pidfile_naming_pid_0_or_written_before_the_last_boot_names_no_job() {
    let b = fixture_box();
    let tmp = tempfile::tempdir().unwrap();
    let d = b.dir.path();
    let pidfile = d.join("job.pid");
    let p = profile(&b, &format!("{{ pidfile: {} }}", pidfile.display()));
    let lands = userlands(&b, tmp.path());
    let check = |want_alive: bool, why: Option<&str>| {
        for (name, shell, path) in &lands {
            let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
            let f = facts_under(&shell, path, &b, &p);
            let alive = f.alive.state == gpupatrol::probe::facts::Liveness::Yes;
            assert_eq!(alive, want_alive, "{name}: {:?}", f.alive);
            if let Some(w) = why {
                assert_eq!(f.alive.why.as_deref(), Some(w), "{name}");
            }
        }
    };
    // the job's own pidfile, written after it started: the job
    check(true, None);
    // `kill -0 0` signals the probe's own group: pid 0 is no job
    std::fs::write(&pidfile, "0\n").unwrap();
    check(false, Some("pidfile-not-a-pid"));
    // written a day before this boot: the pid counter restarted since, and
    // whatever has that pid now is not the job
    std::fs::write(&pidfile, format!("{}\n", b.job.id())).unwrap();
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let before_boot = std::time::SystemTime::now() - std::time::Duration::from_secs(up as u64 + 86_400);
    let set_mtime = |t: std::time::SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(&pidfile)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    set_mtime(before_boot);
    check(false, Some("pidfile-from-before-the-last-boot"));
    // written well before the job started (an hour ago, or at boot on a box
    // up for less), and since the last boot: the job, whatever its start says
    let ago = (up as u64).min(3600);
    set_mtime(std::time::SystemTime::now() - std::time::Duration::from_secs(ago));
    check(true, None);
}

#[test]
fn a_checkpoint_folder_the_box_cannot_list_is_unknown_not_empty() {
    let b = fixture_box();
    let tmp = tempfile::tempdir().unwrap();
    let d = b.dir.path();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    // root reads any folder: the probe runs as nobody there
    let setpriv = which("setpriv");
    let prefix: Vec<&str> = if root {
        if setpriv.is_empty() && peer_missing("setpriv (util-linux) not installed") {
            return;
        }
        vec![&setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    } else {
        vec![]
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join("ckpt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let p = profile(&b, &format!("{{ pidfile: {}/job.pid }}", d.display()));
    for (name, shell, path) in userlands(&b, tmp.path()) {
        let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
        let f = facts_as(&prefix, &shell, &path, &b, &p);
        assert_eq!(f.artifacts, vec![None], "{name}: never a measured 0");
        assert!(f.log.is_some(), "{name}: the rest is read: {:?}", f.problems);
    }
    std::fs::set_permissions(d.join("ckpt"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_chain_stage_that_runs_out_its_time_is_failed_124_in_every_userland() {
    // busybox's timeout passes on the TERM it sent (143): still "hit its timeout"
    let b = fixture_box();
    let tmp = tempfile::tempdir().unwrap();
    for (i, (name, shell, path)) in userlands(&b, tmp.path()).into_iter().enumerate() {
        let dir = tmp.path().join(format!("chain{i}"));
        let text = format!(
            "name: c{i}\ntransport: local\njob:\n  alive: {{ pgrep: 'nothing-runs-this' }}\nchain:\n  dir: {}\n  stages:\n    - {{ name: train, run: 'sleep 30', timeout: 1s }}\n    - {{ name: eval, run: 'true' }}\n",
            dir.display()
        );
        let p = gpupatrol::profile::parse(Path::new("c.yaml"), &text).unwrap();
        let script = gpupatrol::chain::render(p.chain.as_ref().unwrap(), &p.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("chain.sh"), script).unwrap();
        let mut argv: Vec<String> = shell.clone();
        argv.retain(|a| a != "-s");
        let out = Command::new(which("timeout"))
            .arg("60")
            .args(&argv)
            .arg(dir.join("chain.sh"))
            .env_clear()
            .env("PATH", &path)
            .env("HOME", tmp.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let status = std::fs::read_to_string(dir.join("train.status")).unwrap_or_default();
        assert_eq!(
            status.trim(),
            "FAILED 124",
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!dir.join("eval.status").exists(), "{name}: later stages skipped");
    }
}
