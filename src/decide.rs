//! The decision table: probe facts + the previous state → one verdict, its
//! fixed remediation, warnings, and the next state. Pure and synchronous; the
//! table is the ordered list [`TABLE`], one named row per case, first match
//! wins. `docs/decision-table.md` documents it for users.

use serde::Serialize;

use crate::probe::facts::{Facts, Gpus, Liveness, LogStatus, NumberedLine};
use crate::profile::Profile;
use crate::state::{LastTick, State};
use crate::triage::{self, Class, Classification, Confidence};
use crate::verdict::{Severity, Verdict};

/// What one tick observed.
#[derive(Debug, Clone)]
pub enum Observation {
    /// The probe ran and its output was understood.
    Facts(Box<Facts>),
    /// The transport failed before or during the probe.
    Transport { verdict: Verdict, message: String },
    /// Connected, but the output could not be understood.
    ProbeError(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Crash {
    pub class: Class,
    pub confidence: Confidence,
    pub evidence: String,
    pub excerpt: String,
    /// The per-run log holds the signature (not only a counter or the scheduler).
    #[serde(skip)]
    pub in_log: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressView {
    pub step: Option<u64>,
    pub line: Option<String>,
    pub stalled_for_s: Option<i64>,
    /// Steps gained since the previous tick.
    pub delta: Option<i64>,
    /// RFC 3339 time of the previous tick.
    pub since: Option<String>,
    pub advanced_this_tick: bool,
    /// The step went beyond the highest step ever seen (the restart budget
    /// resets on this, not on any change).
    pub new_best: bool,
    /// What the line says about progress when there is no step to show.
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub verdict: Verdict,
    pub remediation: String,
    /// Which table row decided.
    pub rule: &'static str,
    /// A short fact behind the verdict ("no tmux session", "connection refused").
    pub detail: Option<String>,
    pub warnings: Vec<String>,
    /// Facts worth a word in the line that do not raise the severity
    /// ("stale done marker").
    pub notes: Vec<String>,
    pub crash: Option<Crash>,
    pub progress: ProgressView,
    /// The cgroup oom_kill counter rose since the previous tick.
    pub oom_rose: bool,
    pub next: State,
}

impl Decision {
    /// Derived, never stored: the verdict's severity, raised by warnings.
    pub fn severity(&self) -> Severity {
        self.verdict.severity(!self.warnings.is_empty())
    }
}

/// Everything a table row may look at.
pub struct Ctx<'a> {
    pub profile: &'a Profile,
    pub facts: &'a Facts,
    pub done: bool,
    /// Artifacts below their expected count: `path n/expected`.
    pub short: Vec<String>,
    pub crash: Option<Crash>,
    pub stalled_for: Option<i64>,
    pub log_age: Option<i64>,
    pub checkpoints_advance: bool,
    pub slurm_state: Option<String>,
    pub slurm_reason: Option<String>,
    pub oom_rose: bool,
    /// How the chain ended when it is not running and not DONE.
    pub chain_end: Option<ChainEnd>,
    /// "chain stage train: no output for 40m" when a running stage went quiet.
    pub chain_stalled: Option<String>,
}

/// How an on-box chain that is not running (and not DONE) ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainEnd {
    /// A stage exited non-zero ("chain stage eval FAILED 3").
    Failed(String),
    /// A stage hit its own timeout (`timeout` exits 124).
    TimedOut(String),
    /// Stopped by a signal (ABORTED), or lost: no status and its process
    /// gone (a reboot, a kill -9). Nothing says the work itself failed.
    Stopped(String),
}

/// A row's answer: verdict, the detail to print, and extra warnings.
pub struct Outcome {
    pub verdict: Verdict,
    pub detail: Option<String>,
    pub warning: Option<String>,
}

fn out(verdict: Verdict, detail: Option<String>) -> Option<Outcome> {
    Some(Outcome {
        verdict,
        detail,
        warning: None,
    })
}

type Row = (&'static str, fn(&Ctx) -> Option<Outcome>);

/// The decision table, in order. Transport failures (UNREACHABLE,
/// AUTH_FAILED, HOSTKEY_MISMATCH) and unreadable output (PROBE_ERROR) are
/// decided before it, because without facts no row can be honest.
pub const TABLE: &[Row] = &[
    ("done marker/text present and every artifact count met", |c| {
        (c.done && c.short.is_empty()).then_some(Outcome {
            verdict: Verdict::Done,
            detail: None,
            warning: None,
        })
    }),
    ("done marker/text present but an artifact count is short", |c| {
        (c.done && !c.short.is_empty()).then(|| Outcome {
            verdict: Verdict::Incomplete,
            detail: Some(format!("artifacts short: {}", c.short.join(", "))),
            warning: None,
        })
    }),
    ("scheduler reports preemption or node failure", |c| {
        let s = c.slurm_state.as_deref()?;
        ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"]
            .iter()
            .any(|p| s.starts_with(p))
            .then(|| Outcome {
                verdict: Verdict::Preempted,
                detail: Some(format!("slurm {s}")),
                warning: None,
            })
    }),
    ("queued behind a dependency that can never be satisfied", |c| {
        let r = c.slurm_reason.as_deref()?;
        (c.facts.alive.state == Liveness::Pending && r.contains("DependencyNeverSatisfied")).then(|| Outcome {
            verdict: Verdict::Died,
            detail: Some(
                "slurm PENDING DependencyNeverSatisfied: an upstream job failed, this one will never start".into(),
            ),
            warning: None,
        })
    }),
    ("queued, not started", |c| {
        (c.facts.alive.state == Liveness::Pending).then(|| Outcome {
            verdict: Verdict::Pending,
            detail: c.facts.alive.slurm.clone().map(|s| format!("slurm {s}")),
            warning: None,
        })
    }),
    ("the alive check could not run on the box", |c| {
        (c.facts.alive.state == Liveness::Error).then(|| Outcome {
            verdict: Verdict::ProbeError,
            detail: Some(format!(
                "alive check failed: {}",
                humanize(c.facts.alive.why.as_deref().unwrap_or("unknown"))
            )),
            warning: None,
        })
    }),
    ("not alive and the scheduler says TIMEOUT/DEADLINE", |c| {
        let s = c.slurm_state.as_deref()?;
        (c.facts.alive.state == Liveness::No && (s.starts_with("TIMEOUT") || s.starts_with("DEADLINE"))).then(|| {
            Outcome {
                verdict: Verdict::Timeout,
                detail: Some(format!("slurm {s}")),
                warning: None,
            }
        })
    }),
    ("an on-box chain stage hit its own timeout", |c| {
        let Some(ChainEnd::TimedOut(f)) = c.chain_end.as_ref() else {
            return None;
        };
        (c.facts.alive.state != Liveness::Yes).then(|| Outcome {
            verdict: Verdict::Timeout,
            detail: Some(f.clone()),
            warning: None,
        })
    }),
    (
        "the on-box chain was stopped by a signal or lost (a reboot, a kill -9)",
        |c| {
            let Some(ChainEnd::Stopped(f)) = c.chain_end.as_ref() else {
                return None;
            };
            (c.facts.alive.state != Liveness::Yes).then(|| Outcome {
                verdict: Verdict::Died,
                detail: Some(f.clone()),
                warning: None,
            })
        },
    ),
    (
        "not alive, crash signature in the per-run log (or oom_kill rose)",
        |c| {
            if c.facts.alive.state != Liveness::No {
                return None;
            }
            // evidence of its own, not only the chain's or the scheduler's word
            let crash = c.crash.as_ref().filter(|x| x.in_log || x.class != Class::Unknown)?;
            out(Verdict::Crashed, Some(crash.class.to_string()))
        },
    ),
    (
        "not alive and the scheduler says FAILED, CANCELLED or OUT_OF_MEMORY",
        |c| {
            let s = c.slurm_state.as_deref()?;
            let failed = ["FAILED", "CANCELLED", "OUT_OF_MEMORY"]
                .iter()
                .any(|p| s.starts_with(p));
            (c.facts.alive.state == Liveness::No && failed && c.crash.is_some()).then(|| Outcome {
                verdict: Verdict::Crashed,
                detail: Some(format!(
                    "slurm {s}{}",
                    c.slurm_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                )),
                warning: None,
            })
        },
    ),
    ("an on-box chain stage failed and the chain is not running", |c| {
        let Some(ChainEnd::Failed(f)) = c.chain_end.as_ref() else {
            return None;
        };
        (c.facts.alive.state != Liveness::Yes && c.crash.is_some()).then(|| Outcome {
            verdict: Verdict::Crashed,
            detail: Some(f.clone()),
            warning: None,
        })
    }),
    ("not alive, scheduler says COMPLETED but no completion marker", |c| {
        let s = c.slurm_state.as_deref()?;
        (c.facts.alive.state == Liveness::No && s.starts_with("COMPLETED")).then(|| Outcome {
            verdict: Verdict::Incomplete,
            detail: Some("slurm COMPLETED but no done marker (exit codes lie)".into()),
            warning: None,
        })
    }),
    ("not alive, no completion marker, no crash signature", |c| {
        (c.facts.alive.state == Liveness::No).then(|| Outcome {
            verdict: Verdict::Died,
            detail: c.facts.alive.why.as_deref().map(humanize),
            warning: None,
        })
    }),
    ("alive longer than max_runtime", |c| {
        let max = c.profile.job.max_runtime?;
        let ran = c.facts.alive.running_for_s?;
        (ran > max.as_secs() as i64).then(|| Outcome {
            verdict: Verdict::Timeout,
            detail: Some(format!(
                "running {} > max_runtime {}",
                crate::duration::human_secs(ran),
                crate::duration::human(max)
            )),
            warning: None,
        })
    }),
    ("a running chain stage's output is older than its stall_after", |c| {
        let s = c.chain_stalled.as_ref()?;
        out(Verdict::Stalled, Some(s.clone()))
    }),
    (
        "no progress for stall_after, but checkpoints advance (block-buffered stdout)",
        |c| {
            let stall = c.profile.job.stall_after.as_secs() as i64;
            let frozen = c.log_age.is_some_and(|a| a > stall);
            (c.stalled_for.is_some_and(|s| s > stall) && frozen && c.checkpoints_advance).then(|| Outcome {
                verdict: Verdict::Running,
                detail: None,
                warning: Some(format!(
                    "{}: log frozen but checkpoints advance — {}",
                    Class::BlockBufferedStdout,
                    Class::BlockBufferedStdout.remediation()
                )),
            })
        },
    ),
    ("alive but no progress for longer than stall_after", |c| {
        let stall = c.profile.job.stall_after.as_secs() as i64;
        let s = c.stalled_for?;
        (s > stall).then(|| Outcome {
            verdict: Verdict::Stalled,
            detail: Some(format!("no progress for {}", crate::duration::human_secs(s))),
            warning: None,
        })
    }),
    ("otherwise", |_| out(Verdict::Running, None)),
];

/// `no-tmux-session` → `no tmux session`.
fn humanize(code: &str) -> String {
    code.replace('-', " ")
}

/// Decide one tick. `ts` is this tick's RFC 3339 time (our clock, for the report).
pub fn decide(profile: &Profile, prev: &State, obs: &Observation, ts: &str) -> Decision {
    match obs {
        Observation::Transport { verdict, message } => failed(profile, prev, *verdict, message, ts),
        Observation::ProbeError(message) => failed(profile, prev, Verdict::ProbeError, message, ts),
        Observation::Facts(facts) => from_facts(profile, prev, facts, ts),
    }
}

fn failed(_profile: &Profile, prev: &State, verdict: Verdict, message: &str, ts: &str) -> Decision {
    let mut next = prev.clone();
    next.failures_in_a_row = prev.failures_in_a_row.saturating_add(1);
    next.last = Some(LastTick {
        ts: ts.to_string(),
        verdict: Some(verdict),
        step: prev.progress.step,
        box_now: prev.last.as_ref().and_then(|l| l.box_now),
    });
    Decision {
        verdict,
        remediation: verdict.remediation().to_string(),
        rule: "transport or probe failure (decided before the table)",
        detail: Some(message.to_string()),
        warnings: vec![],
        notes: vec![],
        crash: None,
        progress: ProgressView {
            step: prev.progress.step,
            line: prev.progress.line.clone(),
            ..Default::default()
        },
        oom_rose: false,
        next,
    }
}

/// A progress line: its line number in the scanned stretch, step and text.
struct StepLine {
    nr: u64,
    step: u64,
    text: String,
}

/// Every line matching the progress regex, oldest first.
fn step_lines(profile: &Profile, lines: &[&NumberedLine]) -> Vec<StepLine> {
    let Some(re) = profile.job.progress.as_ref() else {
        return vec![];
    };
    let mut sorted: Vec<&&NumberedLine> = lines.iter().collect();
    sorted.sort_by_key(|l| l.nr);
    sorted.dedup_by_key(|l| l.nr);
    sorted
        .iter()
        .filter_map(|l| {
            let caps = re.captures(&l.text)?;
            // a step too big for u64 is not a step (a hostile or garbled line)
            let step = caps.get(1)?.as_str().trim().parse::<u64>().ok()?;
            Some(StepLine {
                nr: l.nr,
                step,
                text: triage::clean_line(&l.text),
            })
        })
        .collect()
}

/// A done marker left from an earlier run: older than this run's start.
/// When the run's start is unknown (gpupatrol did not see it alive since the
/// marker last counted), a per-run log that was replaced since says the same.
fn marker_is_stale(facts: &Facts, run_started: Option<i64>, done_log: Option<&crate::state::LogCursor>) -> bool {
    if facts.markers.done_marker != Some(true) {
        return false;
    }
    let Some(m) = facts.markers.done_marker_mtime else {
        return false;
    };
    match run_started {
        Some(start) => m < start,
        None => match (done_log, &facts.log) {
            (Some(was), Some(log)) if log.status == LogStatus::Present => {
                was.inode != log.inode || (!was.fp.is_empty() && was.fp_len == log.fp_len && was.fp != log.fp)
            }
            _ => false,
        },
    }
}

fn from_facts(profile: &Profile, prev: &State, facts: &Facts, ts: &str) -> Decision {
    let now = facts.now;
    let mut next = prev.clone();
    next.failures_in_a_row = 0;
    next.first_seen = prev.first_seen.or(Some(now));
    let mut warnings: Vec<String> = Vec::new();

    // the evidence, one kind at a time; each reads the facts and moves its
    // own part of the next state
    let progress = progress_evidence(profile, prev, facts, &mut next, &mut warnings);
    let completion = completion_evidence(profile, prev, facts, progress.done_now, &mut next);
    let stalled_for = stall_clock(profile, facts, &next, progress.log_age);
    let failure = failure_evidence(profile, prev, facts, &mut next);
    warnings.extend(resource_warnings(profile, prev, facts, &progress, &failure, &mut next));
    let mut notes = Vec::new();
    if completion.stale_marker {
        notes.push("stale done marker (older than this run's start)".into());
    }

    // ---- the table -------------------------------------------------------
    let ctx = Ctx {
        profile,
        facts,
        done: completion.done,
        short: completion.short,
        crash: failure.crash,
        stalled_for,
        log_age: progress.log_age,
        checkpoints_advance: completion.checkpoints_advance,
        slurm_state: failure.slurm_state,
        slurm_reason: failure.slurm_reason,
        oom_rose: failure.oom_rose,
        chain_end: failure.chain_end,
        chain_stalled: failure.chain_stalled,
    };
    let (rule, outcome) = TABLE
        .iter()
        .find_map(|(name, row)| row(&ctx).map(|o| (*name, o)))
        .expect("the last row always matches");
    if let Some(w) = outcome.warning {
        warnings.push(w);
    }
    let verdict = outcome.verdict;
    after_verdict(verdict, facts, &mut next);
    let crash = if verdict == Verdict::Crashed { ctx.crash } else { None };
    let remediation = match &crash {
        Some(c) => c.class.remediation().to_string(),
        None => verdict.remediation().to_string(),
    };
    let view = progress_view(
        profile,
        prev,
        &mut next,
        stalled_for,
        progress.advanced,
        progress.log_age,
    );
    next.last = Some(LastTick {
        ts: ts.to_string(),
        verdict: Some(verdict),
        step: next.progress.step,
        box_now: Some(now),
    });
    Decision {
        verdict,
        remediation,
        rule,
        detail: outcome.detail,
        warnings,
        notes,
        crash,
        progress: view,
        oom_rose: failure.oom_rose,
        next,
    }
}

/// What the per-run log says about progress this tick.
struct Progress {
    /// The step changed since the previous tick.
    advanced: bool,
    /// The done text is in this tick's new stretch (and no new run wrote after it).
    done_now: bool,
    /// Seconds since the per-run log was written (box clock).
    log_age: Option<i64>,
}

/// Progress: the log cursor (offset, inode, fingerprint), the newest step,
/// the done text in the new stretch, and the master log's cursor.
fn progress_evidence(
    profile: &Profile,
    prev: &State,
    facts: &Facts,
    next: &mut State,
    warnings: &mut Vec<String>,
) -> Progress {
    let now = facts.now;
    let alive = facts.alive.state == Liveness::Yes;
    // A job process that started since the previous tick is a new process.
    let new_process = alive
        && matches!((facts.alive.started, prev.last.as_ref().and_then(|l| l.box_now)), (Some(s), Some(t)) if s > t);
    let mut advanced = false;
    let mut done_now = false;
    let mut log_age = None;
    match &facts.log {
        Some(log) if log.status == LogStatus::Present => {
            log_age = Some(now.saturating_sub(log.mtime));
            let region = log.size.saturating_sub(log.start);
            let partial = if log.ends_with_newline { 0 } else { log.last_len };
            // Stop before an unfinished last line so it is read whole next
            // time, unless it reached the box's line cap (a line that long is
            // no progress line; holding it back would blind the scan).
            let cap = crate::probe::script::LINE_CAP;
            next.log.offset = if partial > 0 && partial < region && partial < cap {
                log.size - partial
            } else if partial >= region && partial < cap {
                log.start
            } else {
                log.size
            };
            if log.scan_timed_out {
                warnings.push(format!(
                    "log scan timed out on the box: skipped {} bytes of the per-run log to keep the next tick on time",
                    log.size.saturating_sub(log.start)
                ));
            }
            next.log.inode = log.inode;
            next.log.fp = log.fp.clone();
            next.log.fp_len = log.fp_len;
            if log.rotated || (prev.log.inode != 0 && prev.log.inode != log.inode) {
                // a new log is a new run: its stall clock starts now, and
                // nothing the old one said (done, best step, start) is about it
                next.done_seen = false;
                next.master_done_seen = false;
                next.done_seen_at = None;
                next.progress = Default::default();
                next.best_step = None;
                next.run_started = None;
                next.first_seen = Some(now);
                // a new run may have a new box (fewer GPUs is no loss then)
                next.gpu_count_seen = None;
            }
            // An unfinished last line ("Epoch 2000" on its way to "Epoch
            // 20001") is read whole on the next tick, never half now.
            let unfinished = (!log.ends_with_newline).then_some(log.lines);
            let lines: Vec<&NumberedLine> = log
                .candidates
                .iter()
                .chain(log.tail.iter())
                .filter(|l| Some(l.nr) != unfinished)
                .collect();
            let steps = step_lines(profile, &lines);
            let done_line = log.done_line.filter(|d| Some(*d) != unfinished);
            // Done text counts unless a new run wrote after it: a job process
            // started since the previous tick printed progress after the text
            // (an eval bar from the same process is not a new run).
            if let Some(d) = done_line {
                done_now = !(new_process && steps.iter().any(|l| l.nr > d));
            }
            if let Some(last) = steps.last() {
                if prev.progress.step != Some(last.step) {
                    advanced = prev.progress.step.is_some();
                    next.progress.advanced_at = Some(log.mtime.min(now));
                }
                next.progress.step = Some(last.step);
                next.progress.line = Some(last.text.clone());
            }
        }
        Some(log) => {
            next.log = Default::default();
            if alive {
                warnings.push(format!(
                    "per-run log {}",
                    if log.status == LogStatus::Missing {
                        "missing"
                    } else {
                        "unreadable"
                    }
                ));
            }
        }
        None => {}
    }
    if let (Some(size), Some(inode)) = (facts.markers.master_size, facts.markers.master_inode) {
        if facts.markers.master_replaced || inode != prev.master.inode || size < prev.master.offset {
            // a new or truncated master log: what we saw in the old one is gone
            next.master_done_seen = false;
        }
        next.master.offset = size;
        next.master.inode = inode;
        next.master.fp = facts.markers.master_fp.clone().unwrap_or_default();
        next.master.fp_len = facts.markers.master_fp_len.unwrap_or(0);
    }
    Progress {
        advanced,
        done_now,
        log_age,
    }
}

/// What says the run is finished.
struct Completion {
    done: bool,
    stale_marker: bool,
    /// Artifacts below their expected count: `path n/expected`.
    short: Vec<String>,
    checkpoints_advance: bool,
}

/// Completion: done text remembered across ticks (and forgotten for a
/// re-run), the run's start, the done marker (stale when older than the
/// run), the chain's DONE, and the artifact counts.
fn completion_evidence(profile: &Profile, prev: &State, facts: &Facts, done_now: bool, next: &mut State) -> Completion {
    let now = facts.now;
    let alive = facts.alive.state == Liveness::Yes;
    // Done text seen at an earlier tick is stale once a job process that
    // started after that tick is alive: a re-run writing to the same logs.
    if alive && matches!((facts.alive.started, prev.done_seen_at), (Some(s), Some(d)) if s > d) {
        next.done_seen = false;
        next.master_done_seen = false;
        next.done_seen_at = None;
    }
    next.done_seen |= done_now;
    next.master_done_seen |= facts.markers.master_done == Some(true);
    if next.done_seen || next.master_done_seen {
        next.done_seen_at = next.done_seen_at.or(Some(now));
    }
    if alive {
        // the run's start (box clock): its process start; else the first tick that saw it alive
        next.run_started = facts.alive.started.or(next.run_started).or(Some(now));
    }
    let chain_done = profile.job.done_marker.is_none() && facts.chain.as_ref().is_some_and(|c| c.done);
    let stale_marker = marker_is_stale(facts, next.run_started, prev.done_log.as_ref());
    let marker_done = facts.markers.done_marker == Some(true) && !stale_marker;
    let done = marker_done || next.done_seen || next.master_done_seen || chain_done;
    let mut short = Vec::new();
    let mut checkpoints_advance = false;
    for (a, f) in profile.artifacts.iter().zip(&facts.artifacts) {
        match f {
            Some(f) => {
                checkpoints_advance |= f.written_lately(now, profile.job.stall_after.as_secs() as i64);
                if let Some(exp) = a.expect_count
                    && f.count < exp
                {
                    short.push(format!("{} {}/{}", a.path, f.count, exp));
                }
            }
            None => {
                if a.expect_count.is_some() {
                    short.push(format!("{} ?/{}", a.path, a.expect_count.unwrap_or(0)));
                }
            }
        }
    }
    Completion {
        done,
        stale_marker,
        short,
        checkpoints_advance,
    }
}

/// Seconds without progress: from the last step change (or the first tick),
/// never from before this process started (a resumed or re-run job is not
/// stalled from birth); without a progress pattern, the log's age.
fn stall_clock(profile: &Profile, facts: &Facts, next: &State, log_age: Option<i64>) -> Option<i64> {
    if profile.job.progress.is_none() {
        return log_age;
    }
    let started = if facts.alive.state == Liveness::Yes {
        facts.alive.started
    } else {
        None
    };
    let from = match (next.progress.advanced_at.or(next.first_seen), started) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    from.map(|t| facts.now.saturating_sub(t))
}

/// What says the run failed, and the scheduler's and the chain's word.
struct Failure {
    crash: Option<Crash>,
    oom_rose: bool,
    slurm_state: Option<String>,
    slurm_reason: Option<String>,
    chain_end: Option<ChainEnd>,
    chain_stalled: Option<String>,
}

/// Crash and scheduler evidence: the log's crash signature, the cgroup's
/// oom_kill counter, the scheduler's final state, the chain's end. Without
/// crash text, a scheduler FAILED or a chain stage's failure is the evidence.
fn failure_evidence(profile: &Profile, prev: &State, facts: &Facts, next: &mut State) -> Failure {
    let oom_rose = match (prev.oom_kills, facts.cgroup.oom_kills) {
        (Some(a), Some(b)) => b > a,
        _ => false,
    };
    if let Some(k) = facts.cgroup.oom_kills {
        next.oom_kills = Some(k);
    }
    let slurm_state = facts.alive.slurm_state().map(str::to_string);
    let slurm_reason = facts.alive.slurm_reason().map(str::to_string);
    let (chain_end, chain_stalled) = chain_state(profile, facts);
    let chain_failure = match &chain_end {
        Some(ChainEnd::Failed(f)) => Some(f.clone()),
        _ => None,
    };
    let mut crash = crash_of(facts, oom_rose, slurm_state.as_deref());
    let scheduler_failed = facts.alive.state == Liveness::No
        && slurm_state.as_deref().is_some_and(|s| {
            ["FAILED", "CANCELLED", "OUT_OF_MEMORY"]
                .iter()
                .any(|p| s.starts_with(p))
        });
    if crash.is_none() && (scheduler_failed || chain_failure.is_some()) {
        // No crash text in the log: the scheduler's or the chain's word is the evidence.
        let evidence = chain_failure.clone().unwrap_or_else(|| {
            format!(
                "slurm {}",
                facts
                    .alive
                    .slurm_final
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| slurm_state.clone().unwrap_or_default())
            )
        });
        crash = Some(Crash {
            class: Class::Unknown,
            confidence: Confidence::Low,
            evidence,
            excerpt: facts
                .crash
                .end
                .iter()
                .map(|l| triage::clean_line(&l.text))
                .collect::<Vec<_>>()
                .join("\n"),
            in_log: false,
        });
    }
    Failure {
        crash,
        oom_rose,
        slurm_state,
        slurm_reason,
        chain_end,
        chain_stalled,
    }
}

/// Resources: disk, inodes, memory, the oom_kill counter, the GPUs (idle
/// ranks, a collective hang, data-bound), a traceback while alive, and
/// what the probe could not read.
fn resource_warnings(
    profile: &Profile,
    prev: &State,
    facts: &Facts,
    progress: &Progress,
    failure: &Failure,
    next: &mut State,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let alive = facts.alive.state == Liveness::Yes;
    let th = &profile.thresholds;
    if let Some(d) = &facts.disk {
        if let Some(p) = d.used_pct.filter(|p| *p >= th.disk_pct) {
            warnings.push(format!("disk {p:.0}% >= {:.0}%", th.disk_pct));
        }
        if let Some(p) = d.inodes_used_pct.filter(|p| *p >= th.inodes_pct) {
            warnings.push(format!("inodes {p:.0}% >= {:.0}%", th.inodes_pct));
        }
    }
    if let Some(p) = mem_pct(facts).filter(|p| *p >= th.mem_pct) {
        warnings.push(format!("mem {p:.0}% >= {:.0}% (OOM risk)", th.mem_pct));
    }
    if failure.oom_rose {
        warnings.push(format!(
            "oom_kill counter rose {} -> {}",
            prev.oom_kills.unwrap_or(0),
            facts.cgroup.oom_kills.unwrap_or(0)
        ));
    }
    if progress.advanced
        && let Gpus::Present { gpus, .. } = &facts.gpus
        && !gpus.is_empty()
        && gpus.iter().all(|g| g.util_pct.is_some_and(|u| u < th.gpu_idle_pct))
    {
        warnings.push("gpu util near 0% while steps advance: data-bound (CPU/IO), not idle".into());
    }
    match &facts.gpus {
        Gpus::Failed { why } if crate::triage::gpu_hardware_text(why) => warnings.push(format!(
            "{}: nvidia-smi says \"{why}\" — {}",
            Class::GpuHardware,
            Class::GpuHardware.remediation()
        )),
        Gpus::Failed { why } => warnings.push(format!("nvidia-smi failed: {why}")),
        Gpus::Present { gpus, errors, .. } => {
            let n = gpus.len() as u32;
            let seen = next.gpu_count_seen.unwrap_or(0);
            let said = errors.iter().find(|e| crate::triage::gpu_hardware_text(e));
            if let Some(e) = said {
                warnings.push(format!(
                    "{}: nvidia-smi says \"{e}\" — {}",
                    Class::GpuHardware,
                    Class::GpuHardware.remediation()
                ));
            } else if n < seen {
                warnings.push(format!(
                    "{}: {n} of the {seen} GPUs seen earlier answer — a GPU fell off the bus? {}",
                    Class::GpuHardware,
                    Class::GpuHardware.remediation()
                ));
            }
            next.gpu_count_seen = Some(seen.max(n));
        }
        _ => {}
    }
    next.gpu_spin = false;
    next.gpu_idle_prev.clear();
    if alive {
        let g = gpu_warnings(&facts.gpus, th, prev, progress.advanced);
        warnings.extend(g.warnings);
        next.gpu_spin = g.spin;
        next.gpu_idle_prev = g.idle;
        for i in g.busy {
            if !next.gpu_busy_seen.contains(&i) {
                next.gpu_busy_seen.push(i);
            }
        }
        if let Some(c) = failure.crash.as_ref().filter(|c| c.in_log) {
            warnings.push(format!(
                "traceback in the log while alive ({}: {}): a rank or worker may have died",
                c.class, c.evidence
            ));
        }
    }
    warnings.extend(facts.problems.iter().cloned());
    warnings
}

/// The next state a verdict implies: after DONE the next run's start decides
/// about this marker, and a marker beside another log later is an earlier run's.
fn after_verdict(verdict: Verdict, facts: &Facts, next: &mut State) {
    if verdict != Verdict::Done {
        // a run that is not done (any more) makes the next DONE news: a
        // re-run's finish alerts as the first run's did
        if next.alert.last_verdict == Some(Verdict::Done) {
            next.alert.last_verdict = None;
        }
        return;
    }
    next.run_started = None;
    if let Some(l) = facts.log.as_ref().filter(|l| l.status == LogStatus::Present) {
        next.done_log = Some(crate::state::LogCursor {
            offset: 0,
            inode: l.inode,
            fp: l.fp.clone(),
            fp_len: l.fp_len,
        });
    }
}

/// The progress the line shows, and the best step (the restart budget
/// resets on a step beyond any seen before).
fn progress_view(
    profile: &Profile,
    prev: &State,
    next: &mut State,
    stalled_for: Option<i64>,
    advanced: bool,
    log_age: Option<i64>,
) -> ProgressView {
    let new_best = matches!((next.progress.step, prev.best_step), (Some(s), Some(b)) if s > b);
    next.best_step = next.progress.step.max(prev.best_step);
    if new_best {
        // the restart budget resets on verified progress (a step beyond any
        // seen before), not on "a process exists" nor on a restart from an
        // older checkpoint; a resume made this tick counts against the next death
        next.restarts.clear();
    }
    let last = prev.last.as_ref();
    let delta = match (next.progress.step, last.and_then(|l| l.step)) {
        // steps come from the box: any u64 difference fits i128, then clamp
        (Some(a), Some(b)) => Some((i128::from(a) - i128::from(b)).clamp(i64::MIN.into(), i64::MAX.into()) as i64),
        _ => None,
    };
    ProgressView {
        step: next.progress.step,
        line: next.progress.line.clone(),
        stalled_for_s: stalled_for.map(|s| s.max(0)),
        delta,
        since: last.map(|l| l.ts.clone()),
        advanced_this_tick: advanced,
        new_best,
        note: match (next.progress.step, profile.job.progress.is_some(), log_age) {
            (Some(_), _, _) => None,
            (None, true, _) => Some("no progress line yet".into()),
            (None, false, Some(age)) => Some(format!("log {} old", crate::duration::human_secs(age))),
            (None, false, None) => None,
        },
    }
}

/// From the chain's sentinels: how it ended when nothing of it runs and it
/// is not DONE, and a stall (a running stage whose own output is older than
/// its `stall_after`: the heartbeat only proves the wrapper is alive).
fn chain_state(profile: &Profile, facts: &Facts) -> (Option<ChainEnd>, Option<String>) {
    use crate::probe::facts::StageState;
    let (Some(cfg), Some(ch)) = (&profile.chain, &facts.chain) else {
        return (None, None);
    };
    if !ch.present || ch.alive_error.is_some() {
        return (None, None);
    }
    let mut end = None;
    if !ch.alive && !ch.done {
        let dir = cfg.dir.trim_end_matches('/');
        end = ch.stages.iter().find_map(|s| match s.state {
            StageState::Failed(124) => {
                let limit = cfg
                    .stages
                    .iter()
                    .find(|c| c.name == s.name)
                    .and_then(|c| c.timeout)
                    .map(|t| format!(" {}", crate::duration::human(t)))
                    .unwrap_or_default();
                Some(ChainEnd::TimedOut(format!(
                    "chain stage {} hit its timeout{limit} (FAILED 124); its output: {dir}/{}.log",
                    s.name, s.name
                )))
            }
            StageState::Failed(_) => {
                let mut text = format!("chain stage {} {}", s.name, s.state);
                for o in &ch.stages {
                    if let Some(sl) = &o.slurm
                        && sl.reason.contains("DependencyNeverSatisfied")
                    {
                        text.push_str(&format!("; {} cancelled (DependencyNeverSatisfied)", o.name));
                    }
                }
                Some(ChainEnd::Failed(text))
            }
            StageState::Aborted => Some(ChainEnd::Stopped(format!(
                "chain stage {} ABORTED (the chain was stopped by a signal)",
                s.name
            ))),
            StageState::Lost => Some(ChainEnd::Stopped(format!(
                "chain lost: stage {} has no status and its process is gone (a reboot, or kill -9)",
                s.name
            ))),
            _ => None,
        });
    }
    let stalled = ch.stages.iter().zip(&cfg.stages).find_map(|(s, c)| {
        let limit = c.stall_after?.as_secs() as i64;
        let age = s.output_age_s.or(s.heartbeat_age_s)?;
        (s.state == StageState::Running && age > limit).then(|| {
            format!(
                "chain stage {}: no output for {} (stall_after {})",
                s.name,
                crate::duration::human_secs(age),
                crate::duration::human_secs(limit)
            )
        })
    });
    (end, stalled)
}

/// cgroup working-set share of its limit, else the host's memory in use.
pub fn mem_pct(facts: &Facts) -> Option<f64> {
    facts.cgroup.mem_used_pct.or(facts.cgroup.host_mem_used_pct)
}

/// Crash evidence from the per-run log's last stretch. Evidence older than
/// the last progress line is stale (an earlier attempt's traceback in a log
/// the run kept appending to) and does not count.
fn crash_of(facts: &Facts, oom_rose: bool, slurm_state: Option<&str>) -> Option<Crash> {
    let ev = &facts.crash;
    let lastprog = ev.last_progress_nr;
    let tb_end = ev.traceback.last().map(|l| l.nr).unwrap_or(0);
    let traceback: Vec<&NumberedLine> = if tb_end >= lastprog {
        ev.traceback.iter().collect()
    } else {
        vec![]
    };
    let fresh = |v: &Vec<NumberedLine>| -> Vec<String> {
        v.iter().filter(|l| l.nr >= lastprog).map(|l| l.text.clone()).collect()
    };
    let mut lines: Vec<String> = traceback.iter().map(|l| l.text.clone()).collect();
    let sig = fresh(&ev.signatures);
    let end = fresh(&ev.end);
    for l in sig.iter().chain(end.iter()) {
        if !lines.contains(l) {
            lines.push(l.clone());
        }
    }
    let slurm_says_oom = slurm_state.is_some_and(|s| s.starts_with("OUT_OF_MEMORY"));
    let signature = triage::has_crash_signature(&lines);
    let killed = facts.recorded_exit_code() == Some(137);
    if !signature && !oom_rose && !slurm_says_oom && !killed {
        return None;
    }
    let ctx = triage::Context {
        oom_kill_rose: oom_rose || slurm_says_oom,
        exit_code: facts.recorded_exit_code(),
        disk_used_pct: facts.disk.as_ref().and_then(|d| d.used_pct),
        inodes_used_pct: facts.disk.as_ref().and_then(|d| d.inodes_used_pct),
    };
    let Classification {
        class,
        confidence,
        evidence,
    } = triage::classify(&lines, &ctx);
    let excerpt_src: Vec<String> = if traceback.is_empty() {
        end
    } else {
        traceback.iter().map(|l| l.text.clone()).collect()
    };
    let mut excerpt = excerpt_src
        .iter()
        .map(|l| triage::clean_line(l))
        .collect::<Vec<_>>()
        .join("\n");
    if excerpt.len() > 4000 {
        let cut = excerpt
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|i| *i <= 4000)
            .last()
            .unwrap_or(0);
        excerpt.truncate(cut);
    }
    Some(Crash {
        class,
        confidence,
        evidence,
        excerpt,
        in_log: signature,
    })
}

/// A GPU this busy counts as working for the idle-rank check.
const BUSY_PCT: f64 = 50.0;
/// An idle GPU holding this share of its memory is in the job's use.
const HELD_MEM_SHARE: f64 = 0.10;

/// What the multi-GPU checks found this tick.
struct GpuSignals {
    warnings: Vec<String>,
    /// Every GPU busy at near-idle power in every sample.
    spin: bool,
    /// GPUs idle among busy ones that the job uses (candidates for the warning).
    idle: Vec<u32>,
    busy: Vec<u32>,
}

/// Multi-GPU signals while the job is alive: a GPU the job uses (seen busy
/// before, or holding memory) idle among busy ones two ticks in a row (a dead
/// or hung data-parallel rank), and every GPU of several busy at near-idle
/// power while no step advanced (NCCL's busy-wait in a collective hang; two
/// samples in a row, in this tick or across two). `[N/A]` utilisation is
/// unknown, never idle.
fn gpu_warnings(gpus: &Gpus, th: &crate::profile::Thresholds, prev: &State, advanced: bool) -> GpuSignals {
    let mut out = GpuSignals {
        warnings: vec![],
        spin: false,
        idle: vec![],
        busy: vec![],
    };
    let Gpus::Present {
        gpus,
        samples,
        spin_samples,
        ..
    } = gpus
    else {
        return out;
    };
    out.busy = gpus
        .iter()
        .filter(|g| g.util_pct.is_some_and(|u| u >= BUSY_PCT))
        .map(|g| g.index)
        .collect();
    out.idle = gpus
        .iter()
        .filter(|g| g.util_pct.is_some_and(|u| u < th.gpu_idle_pct))
        .filter(|g| {
            prev.gpu_busy_seen.contains(&g.index)
                || (g.mem_total_mib > 0.0 && g.mem_used_mib >= g.mem_total_mib * HELD_MEM_SHARE)
        })
        .map(|g| g.index)
        .collect();
    let named: Vec<String> = out
        .idle
        .iter()
        .filter(|i| prev.gpu_idle_prev.contains(i))
        .map(|i| {
            // on a multi-node job: the node and its own index
            match gpus.iter().find(|g| g.index == *i) {
                Some(crate::probe::facts::Gpu {
                    node: Some(n),
                    node_index: Some(k),
                    ..
                }) => format!("{n}:gpu{k}"),
                _ => format!("gpu{i}"),
            }
        })
        .collect();
    let busy = out.busy.len();
    if busy >= 2 && !named.is_empty() && out.idle.len() < busy {
        out.warnings.push(format!(
            "{} idle while {busy} busy: a data-parallel rank may be dead or hung",
            named.join(",")
        ));
    }
    out.spin = gpus.len() >= 2 && *samples > 0 && spin_samples == samples;
    if out.spin && !advanced && (*samples >= 2 || prev.gpu_spin) {
        let top = gpus
            .iter()
            .filter_map(|g| Some((g.power_w?, g.power_limit_w?)))
            .fold((0.0f64, 0.0f64), |a, (p, l)| if p > a.0 { (p, l) } else { a });
        out.warnings.push(format!(
            "collective hang suspected: all {} GPUs at >={:.0}% util on <{:.0}% of their power limit (max {:.0}/{:.0}W) and no new step: NCCL busy-wait; check every rank's log",
            gpus.len(),
            crate::probe::facts::SPIN_UTIL_PCT,
            crate::probe::facts::SPIN_POWER_SHARE * 100.0,
            top.0,
            top.1
        ));
    }
    out
}

#[cfg(test)]
mod tests;
