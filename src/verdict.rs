//! The contract's verdict words, their severities, exit codes and fixed
//! remediation sentences.

use serde::{Deserialize, Serialize};

use crate::exit_codes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Running,
    Pending,
    Done,
    Incomplete,
    Stalled,
    Timeout,
    Crashed,
    Died,
    Preempted,
    Unreachable,
    AuthFailed,
    HostkeyMismatch,
    ProbeError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Severity {
    /// How urgent it is for a person, least first: a dead run beats a box
    /// we cannot see (alerts, the order of `status`).
    pub fn urgency(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Unknown => 2,
            Severity::Critical => 3,
        }
    }

    pub fn exit_code(self) -> i32 {
        match self {
            Severity::Ok => exit_codes::OK,
            Severity::Warning => exit_codes::WARNING,
            Severity::Critical => exit_codes::CRITICAL,
            Severity::Unknown => exit_codes::UNKNOWN,
        }
    }
}

impl Verdict {
    /// Every verdict, in the contract's order.
    pub const ALL: [Verdict; 13] = [
        Verdict::Running,
        Verdict::Pending,
        Verdict::Done,
        Verdict::Incomplete,
        Verdict::Stalled,
        Verdict::Timeout,
        Verdict::Crashed,
        Verdict::Died,
        Verdict::Preempted,
        Verdict::Unreachable,
        Verdict::AuthFailed,
        Verdict::HostkeyMismatch,
        Verdict::ProbeError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Running => "RUNNING",
            Verdict::Pending => "PENDING",
            Verdict::Done => "DONE",
            Verdict::Incomplete => "INCOMPLETE",
            Verdict::Stalled => "STALLED",
            Verdict::Timeout => "TIMEOUT",
            Verdict::Crashed => "CRASHED",
            Verdict::Died => "DIED",
            Verdict::Preempted => "PREEMPTED",
            Verdict::Unreachable => "UNREACHABLE",
            Verdict::AuthFailed => "AUTH_FAILED",
            Verdict::HostkeyMismatch => "HOSTKEY_MISMATCH",
            Verdict::ProbeError => "PROBE_ERROR",
        }
    }

    /// Severity before warnings are taken into account.
    pub fn base_severity(self) -> Severity {
        match self {
            Verdict::Running | Verdict::Pending | Verdict::Done => Severity::Ok,
            Verdict::Incomplete => Severity::Warning,
            Verdict::Stalled | Verdict::Timeout | Verdict::Crashed | Verdict::Died | Verdict::Preempted => {
                Severity::Critical
            }
            Verdict::Unreachable | Verdict::AuthFailed | Verdict::HostkeyMismatch | Verdict::ProbeError => {
                Severity::Unknown
            }
        }
    }

    /// The severity users see: an ok verdict with warnings is a warning.
    pub fn severity(self, has_warnings: bool) -> Severity {
        match self.base_severity() {
            Severity::Ok if has_warnings => Severity::Warning,
            s => s,
        }
    }

    /// The end of the run: nothing more to watch (`patrol --until-terminal`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Verdict::Done
                | Verdict::Incomplete
                | Verdict::Crashed
                | Verdict::Died
                | Verdict::Preempted
                | Verdict::HostkeyMismatch
                | Verdict::AuthFailed
        )
    }

    /// A failure that a sentinel `wait` stops on.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Verdict::Crashed | Verdict::Died | Verdict::Stalled | Verdict::Timeout | Verdict::Preempted
        )
    }

    /// The fixed remediation (CRASHED's comes from its triage class).
    pub fn remediation(self) -> &'static str {
        match self {
            Verdict::Running => "nothing to do: the run is alive and progressing",
            Verdict::Pending => "nothing to do yet: the job is queued; check the queue reason if it waits long",
            Verdict::Done => "collect the results and stop patrolling this run",
            Verdict::Incomplete => {
                "the completion marker exists but artifacts are missing: compare counts with the source and redo the missing part; do not trust the marker alone"
            }
            Verdict::Stalled => {
                "alive but not progressing: read the log tail and look at the process (py-spy dump, nvidia-smi) before killing it, then resume from the latest checkpoint with the profile's resume command"
            }
            Verdict::Timeout => {
                "running past max_runtime: check whether it still progresses; stop it and resume from the latest checkpoint, or raise job.max_runtime"
            }
            Verdict::Crashed => {
                "read the traceback, fix the cause, then resume from the latest checkpoint; never blind-retry"
            }
            Verdict::Died => {
                "not alive, not done, no crash in the per-run log: resume from the latest checkpoint with the profile's resume command (gpupatrol verifies it is not running first); never blind-restart"
            }
            Verdict::Preempted => {
                "the scheduler or provider ended the job: resume from the latest checkpoint once capacity returns (resubmit on Slurm)"
            }
            Verdict::Unreachable => {
                "SSH could not reach the box: check the provider console (balance, power state, preemption); the run itself may be fine"
            }
            Verdict::AuthFailed => {
                "the box refused our credentials: check user, identity_file or ssh-agent, and the box's authorized_keys"
            }
            Verdict::HostkeyMismatch => {
                "the box's host key changed and nothing was run: confirm the new key with the provider (a rebuilt box gets a new key), then update known_hosts deliberately"
            }
            Verdict::ProbeError => {
                "connected, but the probe's answer made no sense: run gpupatrol doctor on this profile and check the box's shell and tools"
            }
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
