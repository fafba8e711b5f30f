//! The one-line report and its JSON twin. One line per profile per tick,
//! always, even when nothing changed: timestamp, profile, verdict, facts,
//! `unchanged` / `was X`, then warnings and the remediation when there are any.

use serde::Serialize;

use crate::decide::{Decision, mem_pct};
use crate::probe::facts::{Facts, Gpus};
use crate::verdict::{Severity, Verdict};

#[derive(Debug, Clone, Serialize)]
pub struct ProgressJson {
    pub step: Option<u64>,
    pub line: Option<String>,
    pub stalled_for_s: Option<i64>,
    pub delta: Option<i64>,
    /// The last step (from the progress line, else `job.total_steps`).
    pub total: Option<u64>,
    /// Steps per hour over the last ticks of this run (history).
    pub rate_per_h: Option<f64>,
    pub eta_s: Option<i64>,
    /// RFC 3339, by the box's clock.
    pub eta_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskJson {
    pub used_pct: Option<f64>,
    pub inodes_used_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupJson {
    pub mem_used_pct: Option<f64>,
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrashJson {
    pub class: String,
    pub confidence: String,
    pub evidence: String,
    pub excerpt: String,
}

/// One tick's report for one profile. Field names are part of the contract.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ts: String,
    pub profile: String,
    pub verdict: Verdict,
    pub severity: Severity,
    pub exit_code: i32,
    pub changed: bool,
    pub previous: Option<Verdict>,
    pub remediation: String,
    pub warnings: Vec<String>,
    /// Facts worth a word that do not raise the severity ("stale done marker").
    pub notes: Vec<String>,
    pub detail: Option<String>,
    pub rule: &'static str,
    pub progress: ProgressJson,
    pub alive: Option<String>,
    /// Every GPU, as the probe read it (the same fields as `probe::facts::Gpu`).
    pub gpus: Vec<crate::probe::facts::Gpu>,
    pub gpu_status: &'static str,
    pub disk: Option<DiskJson>,
    pub cgroup: Option<CgroupJson>,
    pub crash: Option<CrashJson>,
    /// What gpupatrol did about it this tick (an auto-resume, or why not).
    pub action: Option<String>,
    pub transport: &'static str,
    pub connections: u32,
    pub elapsed_ms: u64,
    /// Null without `cost_per_hour`.
    pub cost: Option<crate::history::Cost>,
    /// The human line, so a JSON consumer can show exactly what a person sees.
    pub line: String,
}

pub struct Inputs<'a> {
    pub ts: &'a str,
    pub profile: &'a str,
    pub previous: Option<Verdict>,
    pub decision: &'a Decision,
    pub facts: Option<&'a Facts>,
    pub transport: &'static str,
    pub connections: u32,
    pub elapsed_ms: u64,
    /// What gpupatrol did about it this tick (an auto-resume, or why not).
    pub action: Option<&'a str>,
    /// Warnings from outside the decision (state file, alert delivery, history).
    pub extra_warnings: &'a [String],
    /// Rate, ETA and cost from the history.
    pub pace: Option<&'a crate::history::Pace>,
}

/// The report of one tick, built once, from everything it tells.
pub fn build(i: Inputs) -> Report {
    let d = i.decision;
    let mut warnings = d.warnings.clone();
    warnings.extend(i.extra_warnings.iter().cloned());
    let severity = d.verdict.severity(!warnings.is_empty());
    let gpus = match i.facts.map(|f| &f.gpus) {
        Some(Gpus::Present { gpus, .. }) => gpus.clone(),
        _ => vec![],
    };
    let gpu_status = match i.facts.map(|f| &f.gpus) {
        Some(Gpus::Present { .. }) => "present",
        Some(Gpus::Absent) => "absent",
        Some(Gpus::Failed { .. }) => "failed",
        Some(Gpus::NotVisible { .. }) => "not-visible",
        Some(Gpus::Unknown) | None => "unknown",
    };
    let mut r = Report {
        ts: i.ts.to_string(),
        profile: i.profile.to_string(),
        verdict: d.verdict,
        severity,
        exit_code: severity.exit_code(),
        changed: i.previous != Some(d.verdict),
        previous: i.previous,
        remediation: d.remediation.clone(),
        warnings,
        notes: d.notes.clone(),
        detail: d.detail.clone(),
        rule: d.rule,
        progress: ProgressJson {
            step: d.progress.step,
            line: d.progress.line.clone(),
            stalled_for_s: d.progress.stalled_for_s,
            delta: d.progress.delta,
            total: i.pace.and_then(|p| p.total),
            rate_per_h: i.pace.and_then(|p| p.rate_per_h).map(|r| (r * 10.0).round() / 10.0),
            eta_s: i.pace.and_then(|p| p.eta_s),
            eta_at: i.pace.and_then(|p| p.eta_at).and_then(crate::tick::rfc3339),
        },
        alive: i.facts.map(|f| format!("{:?}", f.alive.state).to_lowercase()),
        gpus,
        gpu_status,
        disk: i.facts.and_then(|f| f.disk.as_ref()).map(|d| DiskJson {
            used_pct: d.used_pct,
            inodes_used_pct: d.inodes_used_pct,
        }),
        cgroup: i.facts.map(|f| CgroupJson {
            mem_used_pct: mem_pct(f),
            oom_kills: f.cgroup.oom_kills,
        }),
        crash: d.crash.as_ref().map(|c| CrashJson {
            class: c.class.to_string(),
            confidence: format!("{:?}", c.confidence).to_lowercase(),
            evidence: c.evidence.clone(),
            excerpt: c.excerpt.clone(),
        }),
        action: i.action.map(str::to_string),
        transport: i.transport,
        connections: i.connections,
        elapsed_ms: i.elapsed_ms,
        cost: i.pace.and_then(|p| p.cost.clone()),
        line: String::new(),
    };
    r.line = line(&r, i.facts, d);
    r
}

/// `/100` after the step when the total is known.
fn of_total(r: &Report) -> String {
    r.progress.total.map(|t| format!("/{t}")).unwrap_or_default()
}

/// `2.1/min, ETA 30m` from the history, while the run goes.
fn pace_words(r: &Report, words: &mut Vec<String>) {
    if let Some(rate) = r.progress.rate_per_h {
        words.push(crate::history::rate_words(rate));
    }
    if let Some(eta) = r.progress.eta_s {
        words.push(format!("ETA {}", crate::duration::human_secs(eta)));
    }
}

fn gib(mib: f64) -> String {
    format!("{:.1}", mib / 1024.0)
}

pub(crate) fn hhmm(rfc3339: &str) -> String {
    // "2026-11-24T12:00:03Z" → "12:00"
    rfc3339.get(11..16).unwrap_or("?").to_string()
}

fn line(r: &Report, facts: Option<&Facts>, d: &Decision) -> String {
    let mut head = format!("{} {} {}", r.ts, r.profile, r.verdict);
    let mut words: Vec<String> = Vec::new();
    if let Some(det) = &r.detail {
        words.push(det.clone());
    }
    if facts.is_some() {
        match (r.progress.step, &d.progress.since) {
            (Some(step), Some(since)) if r.progress.delta.is_some() => {
                let delta = r.progress.delta.unwrap_or(0);
                let of = of_total(r);
                words.push(if delta == 0 {
                    format!("step {step}{of} (no new step since {})", hhmm(since))
                } else {
                    format!("step {step}{of} ({delta:+} since {})", hhmm(since))
                });
                pace_words(r, &mut words);
            }
            (Some(step), _) => {
                words.push(format!("step {step}{}", of_total(r)));
                pace_words(r, &mut words);
            }
            (None, _) => {
                if let Some(n) = &d.progress.note {
                    words.push(n.clone());
                }
            }
        }
        if let Some(c) = &r.crash
            && !words.iter().any(|w| w == &c.class)
        {
            words.push(c.class.clone());
        }
    }
    words.extend(r.notes.iter().cloned());
    if !words.is_empty() {
        head.push(' ');
        head.push_str(&words.join(", "));
    }
    let mut parts = vec![head];
    if let Some(f) = facts {
        parts.push(gpu_part(&f.gpus));
        let disk = match &f.disk {
            Some(dk) => format!(
                "disk {} inodes {}",
                dk.used_pct.map(|p| format!("{p:.0}%")).unwrap_or("?".into()),
                dk.inodes_used_pct.map(|p| format!("{p:.0}%")).unwrap_or("?".into())
            ),
            None => "disk ?".into(),
        };
        parts.push(disk);
        parts.push(match mem_pct(f) {
            Some(p) => format!("mem {p:.0}%"),
            None => "mem ?".into(),
        });
    }
    parts.push(match (r.changed, r.previous) {
        (false, _) => "unchanged".into(),
        (true, Some(p)) => format!("was {p}"),
        (true, None) => "first tick".into(),
    });
    if let Some(a) = &r.action {
        parts.push(format!("action: {a}"));
    }
    if !r.warnings.is_empty() {
        parts.push(format!("warn: {}", r.warnings.join("; ")));
    }
    if r.verdict.base_severity() != Severity::Ok {
        parts.push(format!("fix: {}", r.remediation));
    }
    // the last guard: whatever a box or a server said, the line is plain text
    crate::text::plain(&parts.join(" | "))
}

/// "97%", or "?%" where the GPU does not report it.
fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}%")).unwrap_or_else(|| "?%".into())
}

fn gpu_part(g: &Gpus) -> String {
    match g {
        Gpus::Absent => "no gpu".into(),
        Gpus::Failed { .. } => "gpu error".into(),
        Gpus::Unknown => "gpu ?".into(),
        Gpus::NotVisible { why } if why == crate::probe::sections::node::NOT_RUNNING => {
            "gpu n/a (job not running)".into()
        }
        Gpus::NotVisible { why } => format!("gpu not visible from the login node: {why}"),
        Gpus::Present { gpus, .. } if gpus.len() <= 2 => gpus
            .iter()
            .map(|x| {
                format!(
                    "gpu{} {} {}/{}GiB",
                    x.index,
                    pct(x.util_pct),
                    gib(x.mem_used_mib),
                    gib(x.mem_total_mib)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        Gpus::Present { gpus, .. } => {
            let known: Vec<f64> = gpus.iter().filter_map(|x| x.util_pct).collect();
            let avg = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
            let min = known.iter().copied().reduce(f64::min);
            let (avg, min) = (pct(avg), pct(min));
            let used = gpus.iter().map(|x| x.mem_used_mib).fold(0.0, f64::max);
            let total = gpus.iter().map(|x| x.mem_total_mib).fold(0.0, f64::max);
            format!(
                "{} gpus {avg} avg {min} min {}/{}GiB max",
                gpus.len(),
                gib(used),
                gib(total)
            )
        }
    }
}
