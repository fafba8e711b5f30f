//! `gpupatrol demo`: a self-contained demo with no SSH server. It starts a
//! simulated training job on this machine and patrols it through the same
//! probe → decide → report path a real box gets (`transport: local`): a run
//! that finishes (RUNNING … DONE), then one that crashes (CRASHED + triage).
//! Everything lives in a temporary folder that is removed at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::DemoArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::profile::{self, Profile};
use crate::state::Store;
use crate::verdict::Verdict;

const JOB: &str = include_str!("../../templates/demo_job.sh");

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn demo_profile(name: &str, dir: &Path, steps: u32) -> Result<Profile> {
    let d = dir.to_string_lossy();
    let text = format!(
        "name: {name}\ntransport: local\nprobe_timeout: 20s\nsection_timeout: 5s\ngpu: {{ samples: 1 }}\njob:\n  alive: {{ pidfile: {pid} }}\n  log: {log}\n  progress: 'Epoch (\\d+)'\n  done_marker: {done}\n  stall_after: 30s\n  resume: 'sh demo_job.sh --resume'\nartifacts:\n  - {{ path: {ckpt}, expect_count: {steps} }}\ndata_mount: {mount}\n",
        pid = yaml_str(&format!("{d}/job.pid")),
        log = yaml_str(&format!("{d}/train.log")),
        done = yaml_str(&format!("{d}/DONE")),
        ckpt = yaml_str(&format!("{d}/ckpt")),
        mount = yaml_str(&d),
    );
    profile::parse(&dir.join(format!("{name}.yaml")), &text)
}

async fn start_job(dir: &Path, mode: &str, steps: u32, pause: f64) -> Result<tokio::process::Child> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let script = dir.join("demo_job.sh");
    // created here, never written through something already there
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&script)
        .and_then(|mut f| std::io::Write::write_all(&mut f, JOB.as_bytes()))
        .map_err(|source| Error::Write {
            path: script.clone(),
            source,
        })?;
    let child = tokio::process::Command::new("sh")
        .arg(&script)
        .arg(dir)
        .arg(mode)
        .arg(steps.to_string())
        .arg(format!("{pause:.2}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Other(format!("start the demo job: {e}")))?;
    // Wait for its pidfile so the first tick sees it alive.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dir.join("job.pid").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

/// Tick `profile` every `interval` until `stop` says so (at most `max` ticks).
async fn patrol(
    profile: &Profile,
    store: &Store,
    interval: Duration,
    max: u32,
    json: bool,
    child: &mut tokio::process::Child,
) -> Vec<Verdict> {
    let mut seen = Vec::new();
    for _ in 0..max {
        // Reap the job when it exits so its pid really goes away.
        let _ = child.try_wait();
        let t = crate::tick::run(profile, store).await;
        output::report(&t.report, json);
        seen.push(t.report.verdict);
        if t.report.verdict.is_terminal() {
            if let Some(c) = &t.report.crash
                && !json
            {
                output::line(&format!(
                    "# triage: {} ({}) — evidence: {}",
                    c.class, c.confidence, c.evidence
                ));
                output::line(&format!("#   fix: {}", t.report.remediation));
            }
            break;
        }
        tokio::time::sleep(interval).await;
    }
    seen
}

pub async fn run(args: &DemoArgs) -> Result<i32> {
    let started = Instant::now();
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 10.0));
    // a fresh private folder with a random name: a guessable one on a shared
    // /tmp could be another user's, holding a script we would then run
    let tmp = std::env::temp_dir();
    let root = TempDir(
        crate::fsutil::fresh_private_dir(&tmp, "gpupatrol-demo").map_err(|source| Error::Write {
            path: tmp.join("gpupatrol-demo-*"),
            source,
        })?,
    );
    let store = Store::open(root.0.join("state"))?;
    let say = |s: &str| {
        if !args.json {
            output::line(s);
        }
    };
    say(
        "# gpupatrol demo: a simulated training run on this machine, patrolled through the real probe (transport: local)",
    );

    let steps = 5;
    say(&format!(
        "# run 1: trains {steps} epochs, checkpoints each one, then writes DONE"
    ));
    let dir1 = root.0.join("run1");
    let mut job1 = start_job(&dir1, "finish", steps, interval.as_secs_f64() * 0.8).await?;
    let p1 = demo_profile("demo-finish", &dir1, steps)?;
    let v1 = patrol(&p1, &store, interval, 40, args.json, &mut job1).await;

    say("# run 2: crashes with a CUDA out-of-memory error at epoch 3");
    let dir2 = root.0.join("run2");
    let mut job2 = start_job(&dir2, "crash", steps, interval.as_secs_f64() * 0.8).await?;
    let p2 = demo_profile("demo-crash", &dir2, steps)?;
    let v2 = patrol(&p2, &store, interval, 40, args.json, &mut job2).await;

    let _ = job1.kill().await;
    let _ = job2.kill().await;
    let ok =
        v1.contains(&Verdict::Running) && v1.last() == Some(&Verdict::Done) && v2.last() == Some(&Verdict::Crashed);
    say(&format!(
        "# demo finished in {:.0}s; its files and state lived in {} (removed)",
        started.elapsed().as_secs_f64(),
        root.0.display()
    ));
    if ok {
        Ok(exit_codes::OK)
    } else {
        eprintln!("gpupatrol: demo did not see RUNNING…DONE and CRASHED (run 1: {v1:?}, run 2: {v2:?})");
        Ok(exit_codes::CRITICAL)
    }
}
