//! One patrol tick for one profile: lock → load state → ONE connection → ONE
//! probe → parse → decide → (opt-in guarded resume, same connection) → save
//! state → report → alert. Every command that watches (tick, patrol, wait,
//! demo) is built from this.

use std::time::{Duration, Instant};

use crate::decide::{self, Decision, Observation};
use crate::probe::{self, Facts, facts, frames};
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::resume::{self, Plan};
use crate::state::Store;
use crate::transport::{Conn, Failure, Limits, Transport};

/// The command the probe runs under: the script arrives on stdin, so
/// nothing of it (or of the profile) is in any process's argv. The
/// environment marker lets a `pgrep` alive check skip gpupatrol probes
/// (ours or a second watcher's).
pub const PROBE_COMMAND: &str = "env GPUPATROL_PROBE=1 sh -s";

/// The outcome of one tick.
#[derive(Debug, Clone)]
pub struct Tick {
    pub report: Report,
    pub decision: Decision,
    pub facts: Option<Facts>,
}

/// Extra work a caller wants done inside the tick (on the same connection).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `wait --marker`: does this path exist on the box?
    pub wait_marker: Option<String>,
    /// `wait --pattern`: literal text in the per-run log, scanned from `wait_offset`.
    pub wait_pattern: Option<String>,
    pub wait_offset: u64,
    pub wait_inode: u64,
    /// Alerts and auto-resume apply (tick, patrol) or not (wait, demo).
    pub act: bool,
    /// Also read the kernel's OOM-killer lines (triage).
    pub triage: bool,
    /// Run only these sections after `now` and `alive` (chain status).
    pub only_sections: Option<Vec<&'static str>>,
}

/// Current time as the report prints it: RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One tick with alerts and auto-resume (the `tick` and `patrol` commands).
pub async fn run(profile: &Profile, store: &Store) -> Tick {
    run_with(
        profile,
        store,
        &Extras {
            act: true,
            ..Default::default()
        },
    )
    .await
}

/// Run one tick. Never fails: every problem becomes a verdict.
pub async fn run_with(profile: &Profile, store: &Store, extras: &Extras) -> Tick {
    let started = Instant::now();
    // Two ticks of one profile wait for each other (bounded) rather than
    // interleave their offsets or resume one death twice.
    let wait = profile.connect_timeout * 2 + profile.probe_timeout + Duration::from_secs(100);
    let lock = {
        let store = store.clone();
        let name = profile.name.clone();
        tokio::task::spawn_blocking(move || store.lock(&name, wait))
            .await
            .unwrap_or_else(|e| Err(crate::error::Error::Other(format!("lock task failed: {e}"))))
    };
    let (prev, state_warning) = store.load(&profile.name);
    let transport = Transport::for_profile(profile);
    let transport_kind = match &transport {
        Ok(t) => t.kind(),
        Err(_) => "ssh",
    };
    let mut connections = 0;
    let mut conn: Option<Conn> = None;
    let obs = match (&lock, transport) {
        (Err(e), _) => Observation::ProbeError(format!("cannot take the profile lock: {e}")),
        (Ok(_), Err(f)) => failure(f),
        (Ok(_), Ok(t)) => match t.connect().await {
            Err(f) => {
                if matches!(f, Failure::Auth(_)) {
                    connections = 1;
                }
                failure(f)
            }
            Ok(c) => {
                connections = c.connections();
                let p = probe::script::render_with(profile, &prev, extras);
                let limits = Limits {
                    deadline: profile.probe_timeout,
                    max_stdout: probe::script::MAX_PROBE_BYTES,
                };
                let o = match c.exec(PROBE_COMMAND, p.script.as_bytes(), limits).await {
                    Err(f) => failure(f),
                    Ok(out) => {
                        trace(profile, &p.script, &out.stdout);
                        observe(&out.stdout, &out.stderr, &p.nonce, profile)
                    }
                };
                conn = Some(c);
                o
            }
        },
    };
    let ts = now_rfc3339();
    let mut decision = decide::decide(profile, &prev, &obs, &ts);

    if decision.progress.advanced_this_tick {
        // The budget resets on verified progress, not on "a process exists".
        // Before planning: a resume made now must count against the next death.
        decision.next.restarts.clear();
    }
    // Opt-in auto-resume, on the same connection, after this tick's probe
    // verified the run is not alive and not done.
    let mut action = None;
    if let (true, Some(c), Observation::Facts(f)) = (extras.act, &conn, &obs) {
        match resume::plan(profile, &decision.next, &decision, f.now) {
            Plan::None => {}
            Plan::Refuse(why) => action = Some(why),
            Plan::Resume { n, max } => {
                let limits = Limits {
                    deadline: Duration::from_secs(90),
                    max_stdout: 64 * 1024,
                };
                action = Some(
                    match c.exec(PROBE_COMMAND, resume::script(profile).as_bytes(), limits).await {
                        Ok(out) if out.exit_status == Some(0) => {
                            decision.next.restarts.push(f.now);
                            // the resumed run gets a full stall_after to print its first step
                            decision.next.progress.advanced_at = Some(f.now);
                            format!("resumed (restart {n}/{max}) with job.resume")
                        }
                        Ok(out) => {
                            let said = String::from_utf8_lossy(&out.stdout);
                            let said = said.lines().next().unwrap_or("").trim().to_string();
                            match out.exit_status {
                                Some(3) | Some(4) => format!("resume skipped on the box: {said}"),
                                other => {
                                    // A failed resume still counts against the budget.
                                    decision.next.restarts.push(f.now);
                                    format!(
                                        "resume command failed (exit {}); see ~/.gpupatrol-resume-{}.log on the box",
                                        other.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
                                        profile.name
                                    )
                                }
                            }
                        }
                        Err(e) => format!("resume not run: {}", e.message()),
                    },
                );
            }
        }
    }
    if let Some(c) = conn.take() {
        c.close().await;
    }
    if let Some(w) = state_warning {
        decision.warnings.push(w);
    }
    let facts = match obs {
        Observation::Facts(f) => Some(*f),
        _ => None,
    };
    let mut report = report::build(report::Inputs {
        ts: &ts,
        profile: &profile.name,
        previous: prev.last.as_ref().and_then(|l| l.verdict),
        decision: &decision,
        facts: facts.as_ref(),
        transport: transport_kind,
        connections,
        elapsed_ms: 0,
        resume: profile.job.resume.as_deref(),
    });
    report.action = action;

    // Decide the alert before saving, so the state records it (at most once).
    let now_ours = chrono::Utc::now().timestamp();
    let alert_cfg = profile.alert.as_ref().filter(|_| extras.act);
    let alerting = alert_cfg.is_some_and(|cfg| crate::alert::due(cfg, &decision.next.alert, &report, now_ours));
    if alerting {
        decision.next.alert.last_at = Some(now_ours);
        decision.next.alert.last_verdict = Some(report.verdict);
        decision.next.alert.last_action = report.action.clone();
    }
    if lock.is_ok()
        && let Err(e) = store.save(&decision.next)
    {
        report.warnings.push(format!("state not saved: {}", e.render()));
    }
    drop(lock);
    report.refresh(facts.as_ref(), &decision);
    if let (true, Some(cfg)) = (alerting, alert_cfg)
        && let Some(problem) = crate::alert::send(cfg, &report, &report.line.clone()).await
    {
        report.warnings.push(problem);
        report.refresh(facts.as_ref(), &decision);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Tick {
        report,
        decision,
        facts,
    }
}

fn failure(f: Failure) -> Observation {
    Observation::Transport {
        verdict: f.verdict(),
        message: f.message().to_string(),
    }
}

/// Parse the probe's output into an observation.
pub fn observe(stdout: &[u8], stderr: &[u8], nonce: &str, profile: &Profile) -> Observation {
    let frames = match frames::parse(stdout, nonce) {
        Ok(f) => f,
        Err(why) => {
            let err = String::from_utf8_lossy(stderr);
            let err = err.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            let msg = if err.is_empty() {
                why
            } else {
                format!("{why}; stderr: {}", err.chars().take(160).collect::<String>())
            };
            return Observation::ProbeError(msg);
        }
    };
    let names: Vec<String> = profile
        .chain
        .iter()
        .flat_map(|c| c.stages.iter().map(|s| s.name.clone()))
        .collect();
    match facts::read_with(&frames, profile.artifacts.len(), &names) {
        Ok(f) => Observation::Facts(Box::new(f)),
        Err(why) => Observation::ProbeError(why),
    }
}

/// The worst exit code of several reports (monitoring-plugin convention).
pub fn worst_exit(reports: &[&Report]) -> i32 {
    reports
        .iter()
        .map(|r| r.exit_code)
        .max()
        .unwrap_or(crate::exit_codes::UNKNOWN)
}

/// With `GPUPATROL_TRACE_DIR` set, keep the last probe script and its raw
/// output per profile there (for bug reports).
fn trace(profile: &Profile, script: &str, stdout: &[u8]) {
    if let Some(dir) = std::env::var_os("GPUPATROL_TRACE_DIR") {
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{}.probe.sh", profile.name)), script);
        let _ = std::fs::write(dir.join(format!("{}.out", profile.name)), stdout);
    }
}
