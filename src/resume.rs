//! Opt-in auto-resume. Pure policy ([`plan`]) plus the guarded on-box script
//! ([`script`]). Never blind-restart: the resume only runs after the same
//! tick's probe found the run not alive and not done, inside a script that
//! checks both again on the box right before it starts anything, under the
//! profile lock, within a restart budget.

use crate::decide::Decision;
use crate::profile::Profile;
use crate::shell::export;
use crate::state::State;
use crate::triage::Class;
use crate::verdict::Verdict;

/// What to do about a dead run this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to resume (alive, done, not opted in, not resumable).
    None,
    /// Run the resume command; this will be restart `n` of `max` in the window.
    Resume { n: u32, max: u32 },
    /// Would resume, but the budget or the cooldown says no.
    Refuse(String),
}

/// Crash classes a resume can fix without a human (transient causes).
pub fn resumable(class: Class) -> bool {
    // transient: the box is fine and the same command can work (shm_full:
    // once its size is raised; the restart budget bounds a repeat)
    matches!(class, Class::Preempted | Class::Nccl | Class::Network | Class::ShmFull)
}

/// Decide whether this tick may resume. `now` is the box's clock.
pub fn plan(profile: &Profile, state: &State, d: &Decision, now: i64) -> Plan {
    let job = &profile.job;
    if !job.auto_resume || job.resume.is_none() {
        return Plan::None;
    }
    let eligible = match d.verdict {
        Verdict::Died | Verdict::Preempted => true,
        Verdict::Crashed => d.crash.as_ref().is_some_and(|c| resumable(c.class)),
        _ => false,
    };
    if !eligible {
        return Plan::None;
    }
    let window = job.restart_window.as_secs() as i64;
    let recent: Vec<i64> = state
        .restarts
        .iter()
        .copied()
        .filter(|t| now.saturating_sub(*t) < window)
        .collect();
    if recent.len() as u32 >= job.max_restarts {
        return Plan::Refuse(format!(
            "restart budget spent ({}/{} within {}); not resuming",
            recent.len(),
            job.max_restarts,
            crate::duration::human(job.restart_window)
        ));
    }
    if let Some(last) = recent.last() {
        let wait = (job.restart_cooldown.as_secs() as i64).saturating_sub(now.saturating_sub(*last));
        if wait > 0 {
            return Plan::Refuse(format!(
                "last resume {} ago, restart_cooldown {}; not resuming yet",
                crate::duration::human_secs(now.saturating_sub(*last)),
                crate::duration::human(job.restart_cooldown)
            ));
        }
    }
    Plan::Resume {
        n: recent.len() as u32 + 1,
        max: job.max_restarts,
    }
}

/// The on-box script: re-check alive and done, then run the resume command
/// detached from our channel, its output appended to
/// `~/.gpupatrol-resume-NAME.log`. Exit 0 started, 3 alive, 4 done.
pub fn script(profile: &Profile) -> String {
    let job = &profile.job;
    // The login's LC_ALL, kept for the resumed job before ours replaces it.
    let mut s = String::from(
        "# gpupatrol guarded resume (read from stdin by sh -s)\n# shellcheck disable=SC2089,SC2090\nGP_ORIG_LC_ALL=${LC_ALL-}; GP_ORIG_LC_ALL_SET=${LC_ALL+1}\nLC_ALL=C; export LC_ALL\n",
    );
    s.push_str(&export(
        "GP_ALIVE_KIND",
        job.alive.as_ref().map(|a| a.kind()).unwrap_or("none"),
    ));
    s.push_str(&export(
        "GP_ALIVE_ARG",
        job.alive.as_ref().map(|a| a.arg()).unwrap_or(""),
    ));
    s.push_str(&export("GP_DONE_MARKER", job.done_marker.as_deref().unwrap_or("")));
    s.push_str(&export("GP_RESUME", job.resume.as_deref().unwrap_or("false")));
    s.push_str(&export(
        "GP_RESUME_LOG",
        &format!(".gpupatrol-resume-{}.log", profile.name),
    ));
    s.push_str(crate::probe::script::LIB);
    s.push_str(include_str!("../templates/resume.sh"));
    s
}

/// What one resume attempt did, and the state change it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The line's `action:` text.
    pub action: String,
    /// The run was started again.
    pub resumed: bool,
    /// Count this attempt against the budget (a started or a failed resume;
    /// not one the box refused because the run was alive or done).
    pub counts: bool,
}

impl Outcome {
    /// The state change the attempt asks for (`now`: the box's clock).
    pub fn apply(&self, next: &mut State, now: i64) {
        if self.counts {
            next.restarts.push(now);
        }
        if self.resumed {
            // the resumed run gets a full stall_after to print its first step
            next.progress.advanced_at = Some(now);
        }
    }
}

/// Run the guarded resume over the tick's own connection and read what the
/// box said. `n` of `max` is the restart this would be.
pub async fn run(c: &crate::transport::Conn, profile: &Profile, n: u32, max: u32) -> Outcome {
    let limits = crate::transport::Limits {
        deadline: std::time::Duration::from_secs(90),
        max_stdout: 64 * 1024,
    };
    match c
        .exec(crate::transport::PROBE_COMMAND, script(profile).as_bytes(), limits)
        .await
    {
        Ok(out) if out.exit_status == Some(0) => Outcome {
            action: format!("resumed (restart {n}/{max}) with job.resume"),
            resumed: true,
            counts: true,
        },
        Ok(out) => {
            let said = crate::text::plain_lines(&String::from_utf8_lossy(&out.stdout));
            let said = said.lines().next().unwrap_or("").trim().to_string();
            match out.exit_status {
                Some(3) | Some(4) => Outcome {
                    action: format!("resume skipped on the box: {said}"),
                    resumed: false,
                    counts: false,
                },
                // a failed resume still counts against the budget
                other => Outcome {
                    action: format!(
                        "resume command failed (exit {}); see ~/.gpupatrol-resume-{}.log on the box",
                        other.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
                        profile.name
                    ),
                    resumed: false,
                    counts: true,
                },
            }
        }
        Err(e) => Outcome {
            action: format!("resume not run: {}", e.message()),
            resumed: false,
            counts: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_classes_are_resumed() {
        for c in [Class::Preempted, Class::Nccl, Class::Network, Class::ShmFull] {
            assert!(resumable(c), "{c}");
        }
        // the box is bad, or the code is: never on its own
        for c in [
            Class::GpuHardware,
            Class::CudaError,
            Class::CudaOom,
            Class::ConfigMismatch,
            Class::DiskFull,
            Class::Unknown,
        ] {
            assert!(!resumable(c), "{c}");
        }
    }
}
