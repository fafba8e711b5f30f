//! The combined probe: one POSIX `sh` script sent on the channel's stdin
//! ([`script`]), its sections ([`sections`]: each one's shell code and
//! parser together), its framed output ([`frames`]) and the typed facts read
//! from it ([`facts`]). Rendering and parsing are pure; running it is the
//! transport's job.

pub mod facts;
pub mod frames;
pub mod script;
pub mod sections;

pub use facts::Facts;
pub use script::{Probe, render};
pub use sections::{Ask, Plan, Section};

use crate::state::LogCursor;

/// What `gpupatrol wait` asks the probe to look for, and its own cursor in
/// the per-run log (a waiter reads the log independently of the tick's).
#[derive(Debug, Clone, Default)]
pub struct WaitFor {
    pub marker: Option<String>,
    pub pattern: Option<String>,
    pub cursor: LogCursor,
}

/// What a command asks of the box in one probe.
#[derive(Debug, Clone)]
pub struct Request {
    pub ask: Ask,
    pub wait: WaitFor,
}

impl Request {
    pub fn tick() -> Request {
        Request {
            ask: Ask::Tick,
            wait: WaitFor::default(),
        }
    }

    pub fn new(ask: Ask) -> Request {
        Request {
            ask,
            wait: WaitFor::default(),
        }
    }

    pub fn plan(&self, p: &crate::profile::Profile) -> Plan {
        Plan::for_profile(p, self.ask)
    }
}

/// Run a probe's output through the frames and the facts: one observation.
pub fn observe(stdout: &[u8], stderr: &[u8], probe: &Probe, p: &crate::profile::Profile) -> Result<Facts, String> {
    let frames = frames::parse(stdout, &probe.nonce).map_err(|why| {
        let err = String::from_utf8_lossy(stderr);
        let err = err.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        if err.is_empty() {
            why
        } else {
            format!(
                "{why}; stderr: {}",
                crate::text::plain(&err.chars().take(160).collect::<String>())
            )
        }
    })?;
    let stages: Vec<String> = p
        .chain
        .iter()
        .flat_map(|c| c.stages.iter().map(|s| s.name.clone()))
        .collect();
    facts::read(
        &frames,
        &probe.plan,
        facts::Shape {
            artifacts: p.artifacts.len(),
            stages: &stages,
        },
    )
}
