//! `alive`: is the job running, by the profile's one method (tmux, pgrep,
//! pidfile, Slurm), and for a live job its process, start and threads.

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Yes,
    No,
    /// Queued (Slurm PENDING/CONFIGURING).
    Pending,
    /// No alive check configured.
    Unknown,
    /// The check itself could not run (tool missing, section failed).
    Error,
}

/// A job in Slurm's queue (`squeue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlurmJob {
    pub id: String,
    pub state: String,
    /// `[D-]HH:MM:SS`, as squeue prints it.
    pub elapsed: String,
    pub reason: String,
}

/// A job that left the queue, as `scontrol`/`sacct` remember it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlurmFinal {
    pub id: String,
    pub state: String,
    /// `EXIT:SIGNAL`.
    pub exit: String,
    pub reason: String,
}

impl std::fmt::Display for SlurmJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} {}", self.id, self.state, self.elapsed, self.reason)
    }
}

impl std::fmt::Display for SlurmFinal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.id, self.state, self.exit)?;
        if !self.reason.is_empty() && self.reason != "None" {
            write!(f, " {}", self.reason)?;
        }
        Ok(())
    }
}

impl SlurmFinal {
    /// The exit status, a signal n read as 128+n.
    pub fn exit_code(&self) -> Option<i32> {
        let (e, sig) = self.exit.split_once(':')?;
        let (e, sig): (i32, i32) = (e.parse().ok()?, sig.parse().ok()?);
        Some(if sig != 0 { 128i32.saturating_add(sig) } else { e })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Alive {
    pub state: Liveness,
    pub method: String,
    pub why: Option<String>,
    pub pid: Option<u32>,
    /// When the job's process started (epoch s, box clock), from /proc.
    pub started: Option<i64>,
    /// Seconds the job has been running, by the box's clock.
    pub running_for_s: Option<i64>,
    pub slurm: Option<SlurmJob>,
    pub slurm_final: Option<SlurmFinal>,
    /// Threads of the job's process and its children.
    pub threads: Option<u32>,
}

impl Alive {
    /// Nothing was asked (chain status) or nothing answered.
    pub fn unknown() -> Alive {
        Alive {
            state: Liveness::Unknown,
            method: "none".into(),
            why: None,
            pid: None,
            started: None,
            running_for_s: None,
            slurm: None,
            slurm_final: None,
            threads: None,
        }
    }

    /// The scheduler's word on the job: queue state, else its final state.
    pub fn slurm_state(&self) -> Option<&str> {
        self.slurm
            .as_ref()
            .map(|j| j.state.as_str())
            .or(self.slurm_final.as_ref().map(|f| f.state.as_str()))
            .filter(|s| !s.is_empty())
    }

    pub fn slurm_reason(&self) -> Option<&str> {
        self.slurm
            .as_ref()
            .map(|j| j.reason.as_str())
            .or(self.slurm_final.as_ref().map(|f| f.reason.as_str()))
            .filter(|r| !r.is_empty() && *r != "None")
    }
}

pub fn parse(f: &Frame, now: i64) -> Result<Alive, String> {
    let state = match f.get("alive") {
        Some("yes") => Liveness::Yes,
        Some("no") => Liveness::No,
        Some("pending") => Liveness::Pending,
        Some("unknown") => Liveness::Unknown,
        Some("error") => Liveness::Error,
        other => return Err(format!("alive section answered {other:?}")),
    };
    // A start after the box's own clock is nonsense (a hostile or broken box).
    let started: Option<i64> = f.get_num("started").filter(|t| *t <= now && *t > 0);
    let s = |k: &str| f.get(k).unwrap_or("").to_string();
    let slurm = f.get("job_id").map(|id| SlurmJob {
        id: id.to_string(),
        state: s("job_state"),
        elapsed: s("job_elapsed"),
        reason: s("job_reason"),
    });
    let slurm_final = f.get("final_id").map(|id| SlurmFinal {
        id: id.to_string(),
        state: s("final_state"),
        exit: s("final_exit"),
        reason: s("final_reason"),
    });
    let slurm_elapsed = slurm.as_ref().and_then(|j| slurm_duration(&j.elapsed));
    let running_for_s = started.map(|t| now.saturating_sub(t)).or(slurm_elapsed);
    Ok(Alive {
        state,
        method: f.get("method").unwrap_or("none").to_string(),
        why: f.get("why").filter(|w| !w.is_empty()).map(str::to_string),
        pid: f.get_num("pid"),
        started: started.or_else(|| running_for_s.map(|r| now.saturating_sub(r))),
        running_for_s,
        slurm,
        slurm_final,
        threads: f.get_num("threads"),
    })
}

/// Slurm's elapsed time: `[D-]HH:MM:SS`, `MM:SS` or `SS`.
pub fn slurm_duration(v: &str) -> Option<i64> {
    let (days, rest) = match v.split_once('-') {
        Some((d, r)) => (d.parse::<u32>().ok()?, r),
        None => (0, v),
    };
    // u32 parts and i64 sums: no number a box prints can overflow this.
    let parts: Vec<i64> = rest
        .split(':')
        .map(|p| p.parse::<u32>().ok().map(i64::from))
        .collect::<Option<_>>()?;
    let secs = match parts.as_slice() {
        [h, m, s] => h * 3600 + m * 60 + s,
        [m, s] => m * 60 + s,
        [s] => *s,
        _ => return None,
    };
    Some(i64::from(days) * 86400 + secs)
}

/// "ID STATE EXIT [REASON]", for tests that write a record by hand.
#[cfg(test)]
impl From<&str> for SlurmFinal {
    fn from(s: &str) -> Self {
        let mut w = s.split(' ').map(str::to_string);
        SlurmFinal {
            id: w.next().unwrap_or_default(),
            state: w.next().unwrap_or_default(),
            exit: w.next().unwrap_or_default(),
            reason: w.next().unwrap_or_default(),
        }
    }
}

/// "ID STATE ELAPSED [REASON]", for tests that write a record by hand.
#[cfg(test)]
impl From<&str> for SlurmJob {
    fn from(s: &str) -> Self {
        let mut w = s.split(' ').map(str::to_string);
        SlurmJob {
            id: w.next().unwrap_or_default(),
            state: w.next().unwrap_or_default(),
            elapsed: w.next().unwrap_or_default(),
            reason: w.next().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_elapsed_formats() {
        assert_eq!(slurm_duration("1-02:03:04"), Some(86400 + 7384));
        assert_eq!(slurm_duration("02:03:04"), Some(7384));
        assert_eq!(slurm_duration("03:04"), Some(184));
        assert_eq!(slurm_duration("7"), Some(7));
        assert_eq!(slurm_duration("INVALID"), None);
    }

    #[test]
    fn slurm_records_are_named_fields() {
        let f = Frame {
            rc: Some(0),
            truncated: false,
            lines: [
                "method=slurm",
                "final_id=42",
                "final_state=FAILED",
                "final_exit=0:9",
                "final_reason=NonZeroExitCode",
                "alive=no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        };
        let a = parse(&f, 100).unwrap();
        let fin = a.slurm_final.as_ref().unwrap();
        assert_eq!(fin.exit_code(), Some(137));
        assert_eq!(a.slurm_state(), Some("FAILED"));
        assert_eq!(a.slurm_reason(), Some("NonZeroExitCode"));
    }
}
