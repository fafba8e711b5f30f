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
    /// "chain stage eval FAILED 1" when a stage failed and the chain is not running.
    pub chain_failure: Option<String>,
    /// "chain stage train: heartbeat 40m old" when a running stage went quiet.
    pub chain_stalled: Option<String>,
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
    (
        "not alive, crash signature in the per-run log (or oom_kill rose)",
        |c| {
            if c.facts.alive.state != Liveness::No {
                return None;
            }
            let crash = c.crash.as_ref()?;
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
        let f = c.chain_failure.as_ref()?;
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
    ("a running chain stage's heartbeat is older than its stall_after", |c| {
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

/// The latest line matching the progress regex, by line number.
fn latest_step(profile: &Profile, lines: &[&NumberedLine]) -> Option<(u64, String)> {
    let re = profile.job.progress.as_ref()?;
    let mut sorted: Vec<&&NumberedLine> = lines.iter().collect();
    sorted.sort_by_key(|l| l.nr);
    sorted.iter().rev().find_map(|l| {
        let caps = re.captures(&l.text)?;
        let step = caps.get(1)?.as_str().trim().parse::<u64>().ok()?;
        Some((step, triage::clean_line(&l.text)))
    })
}

fn from_facts(profile: &Profile, prev: &State, facts: &Facts, ts: &str) -> Decision {
    let now = facts.now;
    let mut next = prev.clone();
    next.failures_in_a_row = 0;
    next.first_seen = prev.first_seen.or(Some(now));
    let mut warnings: Vec<String> = Vec::new();

    // ---- log cursor and progress -------------------------------------
    let mut advanced = false;
    let mut log_age = None;
    match &facts.log {
        Some(log) if log.status == LogStatus::Present => {
            log_age = Some(now - log.mtime);
            let region = log.size.saturating_sub(log.start);
            let partial = if log.ends_with_newline { 0 } else { log.last_len };
            // Stop before an unfinished last line so it is read whole next
            // time, unless it is enormous (a `\r` progress bar that never ends).
            next.log.offset = if partial > 0 && partial < region && partial < 1024 * 1024 {
                log.size - partial
            } else if partial >= region && partial < 1024 * 1024 {
                log.start
            } else {
                log.size
            };
            next.log.inode = log.inode;
            if log.rotated || (prev.log.inode != 0 && prev.log.inode != log.inode) {
                // a new log is a new run: its stall clock starts now
                next.done_seen = false;
                next.progress = Default::default();
                next.first_seen = Some(now);
            }
            next.done_seen |= log.done_seen;
            // An unfinished last line ("Epoch 2000" on its way to "Epoch
            // 20001") is read whole on the next tick, never half now.
            let unfinished = (!log.ends_with_newline).then_some(log.lines);
            let lines: Vec<&NumberedLine> = log
                .candidates
                .iter()
                .chain(log.tail.iter())
                .filter(|l| Some(l.nr) != unfinished)
                .collect();
            if let Some((step, line)) = latest_step(profile, &lines) {
                if prev.progress.step != Some(step) {
                    advanced = prev.progress.step.is_some();
                    next.progress.advanced_at = Some(log.mtime.min(now));
                }
                next.progress.step = Some(step);
                next.progress.line = Some(line);
            }
        }
        Some(log) => {
            next.log = Default::default();
            if facts.alive.state == Liveness::Yes {
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
        if inode != prev.master.inode || size < prev.master.offset {
            // a new or truncated master log: what we saw in the old one is gone
            next.master_done_seen = false;
        }
        next.master.offset = size;
        next.master.inode = inode;
    }
    next.master_done_seen |= facts.markers.master_done == Some(true);

    let stalled_for = if profile.job.progress.is_some() {
        match next.progress.advanced_at {
            Some(t) => Some(now - t),
            None => next.first_seen.map(|t| now - t),
        }
    } else {
        log_age
    };

    // ---- done, artifacts ----------------------------------------------
    let chain_done = profile.job.done_marker.is_none() && facts.chain.as_ref().is_some_and(|c| c.done);
    let done = facts.markers.done_marker == Some(true) || next.done_seen || next.master_done_seen || chain_done;
    let mut short = Vec::new();
    let mut checkpoints_advance = false;
    for (a, f) in profile.artifacts.iter().zip(&facts.artifacts) {
        match f {
            Some(f) => {
                checkpoints_advance |= f.newer_than_log;
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

    // ---- crash evidence ------------------------------------------------
    let oom_rose = match (prev.oom_kills, facts.cgroup.oom_kills) {
        (Some(a), Some(b)) => b > a,
        _ => false,
    };
    if let Some(k) = facts.cgroup.oom_kills {
        next.oom_kills = Some(k);
    }
    let slurm_state = facts
        .alive
        .slurm
        .as_deref()
        .and_then(|s| s.split(' ').nth(1))
        .or_else(|| facts.alive.slurm_final.as_deref().and_then(|s| s.split(' ').nth(1)))
        .map(str::to_string);
    let slurm_reason = facts
        .alive
        .slurm
        .as_deref()
        .and_then(|s| s.split(' ').nth(3))
        .or_else(|| facts.alive.slurm_final.as_deref().and_then(|s| s.split(' ').nth(3)))
        .filter(|r| !r.is_empty() && *r != "None")
        .map(str::to_string);
    let (chain_failure, chain_stalled) = chain_state(profile, facts);
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
                    .as_deref()
                    .unwrap_or(slurm_state.as_deref().unwrap_or(""))
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
        });
    }

    // ---- warnings ------------------------------------------------------
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
    if oom_rose {
        warnings.push(format!(
            "oom_kill counter rose {} -> {}",
            prev.oom_kills.unwrap_or(0),
            facts.cgroup.oom_kills.unwrap_or(0)
        ));
    }
    if advanced
        && let Gpus::Present { gpus, .. } = &facts.gpus
        && !gpus.is_empty()
        && gpus.iter().all(|g| g.util_pct < th.gpu_idle_pct)
    {
        warnings.push("gpu util near 0% while steps advance: data-bound (CPU/IO), not idle".into());
    }
    if let Gpus::Failed { why } = &facts.gpus {
        warnings.push(format!("nvidia-smi failed: {why}"));
    }
    for p in &facts.problems {
        warnings.push(p.clone());
    }

    // ---- the table -------------------------------------------------------
    let ctx = Ctx {
        profile,
        facts,
        done,
        short,
        crash,
        stalled_for,
        log_age,
        checkpoints_advance,
        slurm_state,
        slurm_reason,
        oom_rose,
        chain_failure,
        chain_stalled,
    };
    let (rule, outcome) = TABLE
        .iter()
        .find_map(|(name, row)| row(&ctx).map(|o| (*name, o)))
        .expect("the last row always matches");
    if let Some(w) = outcome.warning {
        warnings.push(w);
    }
    let verdict = outcome.verdict;
    let crash = if verdict == Verdict::Crashed { ctx.crash } else { None };
    let remediation = match &crash {
        Some(c) => c.class.remediation().to_string(),
        None => verdict.remediation().to_string(),
    };

    let last = prev.last.as_ref();
    let delta = match (next.progress.step, last.and_then(|l| l.step)) {
        (Some(a), Some(b)) => Some(a as i64 - b as i64),
        _ => None,
    };
    let progress = ProgressView {
        step: next.progress.step,
        line: next.progress.line.clone(),
        stalled_for_s: stalled_for.map(|s| s.max(0)),
        delta,
        since: last.map(|l| l.ts.clone()),
        advanced_this_tick: advanced,
        note: match (next.progress.step, profile.job.progress.is_some(), log_age) {
            (Some(_), _, _) => None,
            (None, true, _) => Some("no progress line yet".into()),
            (None, false, Some(age)) => Some(format!("log {} old", crate::duration::human_secs(age))),
            (None, false, None) => None,
        },
    };
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
        crash,
        progress,
        oom_rose,
        next,
    }
}

/// From the chain's sentinels: a failure (a stage FAILED / ABORTED / lost
/// while nothing of the chain runs) and a stall (a running stage whose
/// heartbeat is older than its `stall_after`).
fn chain_state(profile: &Profile, facts: &Facts) -> (Option<String>, Option<String>) {
    use crate::probe::facts::StageState;
    let (Some(cfg), Some(ch)) = (&profile.chain, &facts.chain) else {
        return (None, None);
    };
    if !ch.present {
        return (None, None);
    }
    let mut failure = None;
    if !ch.alive && !ch.done {
        let bad: Vec<String> = ch
            .stages
            .iter()
            .filter(|s| matches!(s.state, StageState::Failed(_) | StageState::Aborted | StageState::Lost))
            .map(|s| format!("chain stage {} {}", s.name, s.state))
            .collect();
        if !bad.is_empty() {
            let mut text = bad.join(", ");
            for s in &ch.stages {
                if let Some(sl) = &s.slurm
                    && sl.contains("DependencyNeverSatisfied")
                {
                    text.push_str(&format!("; {} cancelled (DependencyNeverSatisfied)", s.name));
                }
            }
            failure = Some(text);
        }
    }
    let stalled = ch.stages.iter().zip(&cfg.stages).find_map(|(s, c)| {
        let limit = c.stall_after?.as_secs() as i64;
        let age = s.heartbeat_age_s?;
        (s.state == StageState::Running && age > limit).then(|| {
            format!(
                "chain stage {}: heartbeat {} old (stall_after {})",
                s.name,
                crate::duration::human_secs(age),
                crate::duration::human_secs(limit)
            )
        })
    });
    (failure, stalled)
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
    })
}

#[cfg(test)]
mod tests;
