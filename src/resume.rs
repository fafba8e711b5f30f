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
    matches!(class, Class::Preempted | Class::Nccl)
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
    let recent: Vec<i64> = state.restarts.iter().copied().filter(|t| now - t < window).collect();
    if recent.len() as u32 >= job.max_restarts {
        return Plan::Refuse(format!(
            "restart budget spent ({}/{} within {}); not resuming",
            recent.len(),
            job.max_restarts,
            crate::duration::human(job.restart_window)
        ));
    }
    if let Some(last) = recent.last() {
        let wait = job.restart_cooldown.as_secs() as i64 - (now - last);
        if wait > 0 {
            return Plan::Refuse(format!(
                "last resume {} ago, restart_cooldown {}; not resuming yet",
                crate::duration::human_secs(now - last),
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
    let mut s = String::from(
        "# gpupatrol guarded resume (read from stdin by sh -s)\n# shellcheck disable=SC2089,SC2090\nLC_ALL=C; export LC_ALL\n",
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
    s.push_str(&export("GP_LIB", crate::probe::script::LIB));
    s.push_str(include_str!("../templates/resume.sh"));
    s
}
