//! `chain`: the on-box chain's sentinels — its process, its Slurm jobs,
//! DONE, and per stage its status, heartbeat and output ages, and result.

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "code")]
pub enum StageState {
    Pending,
    /// Never started because a stage before it failed.
    Skipped,
    Running,
    Success,
    Failed(i32),
    Aborted,
    /// Started, no status, process gone (killed without its trap running,
    /// or the box rebooted).
    Lost,
}

impl std::fmt::Display for StageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageState::Pending => f.write_str("pending"),
            StageState::Skipped => f.write_str("skipped"),
            StageState::Running => f.write_str("running"),
            StageState::Success => f.write_str("SUCCESS"),
            StageState::Failed(c) => write!(f, "FAILED {c}"),
            StageState::Aborted => f.write_str("ABORTED"),
            StageState::Lost => f.write_str("lost (no status, process gone)"),
        }
    }
}

/// A stage's Slurm job: in the queue (state, reason) or gone (state, exit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageJob {
    pub id: String,
    pub state: String,
    pub reason: String,
    pub exit: Option<String>,
}

impl std::fmt::Display for StageJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.state)?;
        if let Some(e) = &self.exit {
            write!(f, " {e}")?;
        }
        if !self.reason.is_empty() && self.reason != "None" {
            write!(f, " {}", self.reason)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageFacts {
    pub name: String,
    pub state: StageState,
    /// Seconds since the heartbeat was touched (box clock).
    pub heartbeat_age_s: Option<i64>,
    /// Seconds since the stage's own output (STAGE.log) last grew (box clock).
    pub output_age_s: Option<i64>,
    pub result: Option<String>,
    pub slurm: Option<StageJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainFacts {
    pub present: bool,
    pub alive: bool,
    /// Whether the chain runs could not be told (squeue failed): why.
    pub alive_error: Option<String>,
    pub pid: Option<u32>,
    /// When the chain's process started (box clock).
    pub started: Option<i64>,
    pub done: bool,
    pub stages: Vec<StageFacts>,
}

/// Read the chain section; `names` are the profile's stage names in order.
pub fn parse(f: &Frame, now: i64, names: &[String]) -> ChainFacts {
    let present = f.get("chain") == Some("present");
    let alive_error =
        (f.get("chain_alive") == Some("unknown")).then(|| f.get("slurm_error").unwrap_or("squeue failed").to_string());
    let alive = f.get("chain_alive") == Some("yes");
    let age = |t: Option<i64>| t.map(|t| now.saturating_sub(t));
    // "mtime EPOCH NAME" lines from one stat over the stages' files
    let mtime = |file: &str| -> Option<i64> {
        f.lines.iter().find_map(|l| {
            let rest = l.strip_prefix("mtime ")?;
            let (t, n) = rest.split_once(' ')?;
            (n == file).then(|| t.parse().ok()).flatten()
        })
    };
    let mut failed_before = false;
    let stages = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let raw = f.get(&format!("stage_{}", i + 1)).unwrap_or("NONE|no");
            let mut parts = raw.split('|');
            let status = parts.next().unwrap_or("NONE").trim();
            let pid_alive = parts.next() == Some("yes");
            let hb = mtime(&format!("{name}.heartbeat"));
            let key = |k: &str| f.get(&format!("slurm_{name}_{k}")).map(str::to_string);
            // a job id that now names another job (ids restarted) is not the stage's
            let slurm = key("id").filter(|_| key("foreign").is_none()).map(|id| StageJob {
                id,
                state: key("state").unwrap_or_default(),
                reason: key("reason").unwrap_or_default(),
                exit: key("exit").filter(|e| !e.is_empty()),
            });
            let slurm_running = slurm.as_ref().is_some_and(|j| j.state == "RUNNING");
            let state = if status == "SUCCESS" {
                StageState::Success
            } else if let Some(code) = status.strip_prefix("FAILED") {
                StageState::Failed(code.trim().parse().unwrap_or(1))
            } else if status == "ABORTED" {
                StageState::Aborted
            } else if hb.is_some() && (pid_alive || slurm_running) {
                StageState::Running
            } else if hb.is_some() && !alive {
                StageState::Lost
            } else if hb.is_some() {
                StageState::Running
            } else if failed_before {
                StageState::Skipped
            } else {
                StageState::Pending
            };
            failed_before |= matches!(state, StageState::Failed(_) | StageState::Aborted | StageState::Lost);
            StageFacts {
                name: name.clone(),
                state,
                heartbeat_age_s: age(hb),
                output_age_s: age(mtime(&format!("{name}.log"))),
                result: f
                    .get(&format!("stage_{}_result", i + 1))
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
                slurm,
            }
        })
        .collect();
    ChainFacts {
        present,
        alive,
        alive_error,
        pid: f.get_num("chain_pid"),
        started: f.get_num::<i64>("chain_started").filter(|t| *t <= now),
        done: f.get("done") == Some("yes"),
        stages,
    }
}
