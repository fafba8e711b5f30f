//! One patrol tick for one profile: lock → load state → ONE transport call
//! running ONE probe → parse → decide → save state → report. Every other
//! command (tick, patrol, wait, demo) is built from this.

use std::time::{Duration, Instant};

use crate::decide::{self, Decision, Observation};
use crate::probe::{self, Facts, facts, frames};
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::state::Store;
use crate::transport::{Limits, Transport};
use crate::verdict::{Severity, Verdict};

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

/// Current time as the report prints it: RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Run one tick. Never fails: every problem becomes a verdict.
pub async fn run(profile: &Profile, store: &Store) -> Tick {
    let started = Instant::now();
    // Two ticks of one profile wait for each other (bounded) rather than
    // interleave their offsets.
    let wait = profile.connect_timeout * 2 + profile.probe_timeout + Duration::from_secs(5);
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
    let obs = match (&lock, transport) {
        (Err(e), _) => Observation::ProbeError(format!("cannot take the profile lock: {e}")),
        (Ok(_), Err(f)) => Observation::Transport {
            verdict: f.verdict(),
            message: f.message().to_string(),
        },
        (Ok(_), Ok(t)) => {
            let p = probe::render(profile, &prev);
            let limits = Limits {
                deadline: profile.probe_timeout,
                max_stdout: probe::script::MAX_PROBE_BYTES,
            };
            match t.exec(PROBE_COMMAND, p.script.as_bytes(), limits).await {
                Err(f) => {
                    if !matches!(f, crate::transport::Failure::HostKey(_)) && t.kind() == "ssh" {
                        connections = 1;
                    }
                    Observation::Transport {
                        verdict: f.verdict(),
                        message: f.message().to_string(),
                    }
                }
                Ok(out) => {
                    connections = out.connections;
                    trace(profile, &p.script, &out.stdout);
                    observe(&out.stdout, &out.stderr, &p.nonce, profile)
                }
            }
        }
    };
    let ts = now_rfc3339();
    let mut decision = decide::decide(profile, &prev, &obs, &ts);
    if let Some(w) = state_warning {
        decision.warnings.push(w);
    }
    if lock.is_ok()
        && let Err(e) = store.save(&decision.next)
    {
        decision.warnings.push(format!("state not saved: {}", e.render()));
    }
    if decision.severity == Severity::Ok && !decision.warnings.is_empty() {
        decision.severity = Severity::Warning;
    }
    drop(lock);
    let facts = match obs {
        Observation::Facts(f) => Some(*f),
        _ => None,
    };
    let report = report::build(report::Inputs {
        ts: &ts,
        profile: &profile.name,
        previous: prev.last.as_ref().and_then(|l| l.verdict),
        decision: &decision,
        facts: facts.as_ref(),
        transport: transport_kind,
        connections,
        elapsed_ms: started.elapsed().as_millis() as u64,
        resume: profile.job.resume.as_deref(),
    });
    Tick {
        report,
        decision,
        facts,
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
    match facts::read(&frames, profile.artifacts.len()) {
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

/// Is this verdict the end of the run (nothing more to watch)?
pub fn is_terminal(v: Verdict) -> bool {
    matches!(
        v,
        Verdict::Done
            | Verdict::Incomplete
            | Verdict::Crashed
            | Verdict::Died
            | Verdict::Preempted
            | Verdict::HostkeyMismatch
            | Verdict::AuthFailed
    )
}

/// With `GPUPATROL_TRACE_DIR` set, keep the last probe script and its raw
/// output per profile there (for bug reports and `doctor`-style digging).
fn trace(profile: &Profile, script: &str, stdout: &[u8]) {
    if let Some(dir) = std::env::var_os("GPUPATROL_TRACE_DIR") {
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{}.probe.sh", profile.name)), script);
        let _ = std::fs::write(dir.join(format!("{}.out", profile.name)), stdout);
    }
}
