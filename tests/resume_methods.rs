//! Auto-resume with every alive method (tmux, pgrep, pidfile, Slurm): one
//! death is resumed once, the resumed job is seen alive at the next tick and
//! runs in the login's environment, not the probe's.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Tmux,
    Pgrep,
    Pidfile,
    Slurm,
}

fn job(sshd: &Sshd, name: &str) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let log = sshd.box_dir().join(format!("{name}.log"));
    let pidf = sshd.box_dir().join(format!("{name}.pid"));
    let cmd = format!(
        "sh {} progress {} {}",
        q(&fixtures().join("matrix_job.sh").to_string_lossy()),
        q(&log.to_string_lossy()),
        q(&pidf.to_string_lossy())
    );
    (cmd, log, pidf)
}

fn pid_of(pidf: &Path) -> Option<u32> {
    std::fs::read_to_string(pidf).ok()?.trim().parse().ok()
}

fn environ(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
        .unwrap_or_default()
}

/// Whatever the test started dies with it, even when an assertion fails.
struct Cleanup {
    pattern: String,
    slurm_name: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-9", "-f", &self.pattern]).status();
        let _ = Command::new("scancel").args(["-n", &self.slurm_name]).status();
    }
}

fn resumes_once(method: Method) {
    let sshd = Sshd::start();
    let name = format!("rs{}", format!("{method:?}").to_lowercase());
    let (cmd, log, pidf) = job(&sshd, &name);
    let slurm_name = format!("gpr-{}-{name}", sshd.port);
    let _cleanup = Cleanup {
        pattern: format!("matrix_job.sh progress {}", log.display()),
        slurm_name: slurm_name.clone(),
    };
    let (alive, resume) = match method {
        Method::Tmux => (
            format!("{{ tmux: {name} }}"),
            format!("tmux new-session -d -s {name} {}", q(&cmd)),
        ),
        Method::Pgrep => (
            format!(
                "{{ pgrep: {} }}",
                yq(&format!("matrix_job.sh progress {}", log.display()))
            ),
            format!("nohup {cmd} >/dev/null 2>&1 &"),
        ),
        Method::Pidfile => (
            format!("{{ pidfile: {} }}", yq(&pidf.to_string_lossy())),
            format!("nohup {cmd} >/dev/null 2>&1 &"),
        ),
        Method::Slurm => (
            format!("{{ slurm: {slurm_name} }}"),
            format!(
                "sbatch --oversubscribe -J {slurm_name} -o {} --wrap {}",
                q(&sshd.box_dir().join("slurm-%j.out").to_string_lossy()),
                q(&cmd)
            ),
        ),
    };
    let p = sshd.profile(
        &name,
        &format!(
            "job:\n  alive: {alive}\n  log: {}\n  progress: 'Epoch (\\d+)'\n  stall_after: 1h\n  resume: {}\n  auto_resume: true\n  max_restarts: 3\n  restart_cooldown: 1h\n",
            yq(&log.to_string_lossy()),
            yd(&resume),
        ),
    );
    // a run that was training and is gone now (Slurm: it left the queue)
    std::fs::write(&log, "Epoch 1 loss 0.9\n").unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED", "{method:?}: {j}");
    assert_eq!(j["action"], "resumed (restart 1/3) with job.resume", "{method:?}: {j}");
    assert!(
        wait_for(Duration::from_secs(30), || pid_of(&pidf).is_some()
            && count_in(&log, "Epoch ") >= 3),
        "{method:?}: the resumed job never ran"
    );
    let pid = pid_of(&pidf).unwrap();
    let env = environ(pid);
    assert!(
        !env.contains("GPUPATROL_PROBE")
            && ![
                "GP_LIB=",
                "GP_ALIVE_KIND=",
                "GP_ALIVE_ARG=",
                "GP_RESUME=",
                "GP_MAIN_PID="
            ]
            .iter()
            .any(|v| env.lines().any(|l| l.starts_with(v))),
        "{method:?}: the resumed job inherited the probe's environment:\n{env}"
    );
    if method != Method::Slurm {
        // the login's environment is still there (sshd's SetEnv)
        assert!(env.contains("TMUX_TMPDIR="), "{method:?}: {env}");
    }
    let j = tick_json(&sshd, &p).one();
    assert!(
        j["verdict"] == "RUNNING" || (method == Method::Slurm && j["verdict"] == "PENDING"),
        "{method:?}: the resumed job is alive: {j}"
    );
    assert!(j["action"].is_null(), "{method:?}: never a second resume: {j}");
    // exactly one copy of the job runs
    let copies = Command::new("pgrep")
        .args(["-c", "-f", &format!("matrix_job.sh progress {}", log.display())])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&copies.stdout).trim(), "1", "{method:?}");
}

#[test]
fn auto_resume_with_tmux_starts_once() {
    resumes_once(Method::Tmux);
}

#[test]
fn auto_resume_with_pgrep_starts_once() {
    resumes_once(Method::Pgrep);
}

#[test]
fn auto_resume_with_pidfile_starts_once() {
    resumes_once(Method::Pidfile);
}

#[test]
fn auto_resume_with_slurm_starts_once() {
    if !slurm_ready() {
        return;
    }
    resumes_once(Method::Slurm);
}
