//! The bounded per-profile tick history (`NAME.history` next to the state):
//! one entry per completed tick, by the box's clock. From it: the step rate
//! and the ETA, a throughput regression (`SLOW`), a GPU-utilisation collapse
//! while the step still advances, how long the GPUs have idled, and since
//! when a finished run has been billing for nothing.
//!
//! Pure functions over entries, plus an atomic, versioned, bounded file. A
//! corrupt history is set aside and restarted, never fatal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::verdict::Verdict;

pub const VERSION: u32 = 1;
/// Six days at a 30-minute cadence, a day at 5 minutes.
pub const DEFAULT_KEEP: usize = 288;
/// The most entries a profile may keep (a file of ~1 MB).
pub const MAX_KEEP: usize = 10_000;

/// One tick, as history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The box's clock (epoch seconds).
    pub at: i64,
    pub verdict: Verdict,
    #[serde(default)]
    pub step: Option<u64>,
    #[serde(default)]
    pub total: Option<u64>,
    /// Mean utilisation over the box's GPUs.
    #[serde(default)]
    pub gpu_util: Option<f64>,
    /// Memory used over all GPUs, in % of their total.
    #[serde(default)]
    pub gpu_mem_pct: Option<f64>,
    #[serde(default)]
    pub gpus: u32,
    /// cgroup memory in % of its limit.
    #[serde(default)]
    pub mem_pct: Option<f64>,
    /// When the run seen alive started (box clock): another value is another run.
    #[serde(default)]
    pub run: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub version: u32,
    pub profile: String,
    pub entries: Vec<Entry>,
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.history"))
}

/// The history of `name`: fresh when missing; a corrupt or newer file is
/// set aside (`.corrupt`, `.vN`) and restarted, with a warning.
pub fn load(dir: &Path, name: &str) -> (History, Option<String>) {
    let p = path(dir, name);
    let fresh = History {
        version: VERSION,
        profile: name.to_string(),
        entries: vec![],
    };
    match read(&p) {
        Ok(None) => (fresh, None),
        Ok(Some(mut h)) => {
            h.profile = name.to_string();
            (h, None)
        }
        Err(Bad::Newer(v)) => {
            let aside = p.with_extension(format!("history.v{v}"));
            let _ = std::fs::rename(&p, &aside);
            (
                fresh,
                Some(format!(
                    "history {} is version {v} (newer than this gpupatrol); kept as {} and restarted",
                    p.display(),
                    aside.display()
                )),
            )
        }
        Err(Bad::Corrupt(e)) => {
            let aside = p.with_extension("history.corrupt");
            let _ = std::fs::rename(&p, &aside);
            (
                fresh,
                Some(format!(
                    "history {} was corrupt ({e}); kept as {} and restarted",
                    p.display(),
                    aside.display()
                )),
            )
        }
        Err(Bad::Unreadable(e)) => (fresh, Some(format!("history {} unreadable ({e})", p.display()))),
    }
}

/// Read without touching anything (`history`, `status`).
pub fn peek(dir: &Path, name: &str) -> Result<Option<History>, String> {
    let p = path(dir, name);
    read(&p).map_err(|b| match b {
        Bad::Newer(v) => format!("{}: version {v}, newer than this gpupatrol", p.display()),
        Bad::Corrupt(e) | Bad::Unreadable(e) => format!("{}: {e}", p.display()),
    })
}

enum Bad {
    Newer(u64),
    Corrupt(String),
    Unreadable(String),
}

fn read(p: &Path) -> Result<Option<History>, Bad> {
    let data = match std::fs::read(p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Bad::Unreadable(e.to_string())),
    };
    let v: serde_json::Value = serde_json::from_slice(&data).map_err(|e| Bad::Corrupt(e.to_string()))?;
    let version = v.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if version > u64::from(VERSION) {
        return Err(Bad::Newer(version));
    }
    let mut h: History = serde_json::from_value(v).map_err(|e| Bad::Corrupt(e.to_string()))?;
    sanitize(&mut h);
    Ok(Some(h))
}

/// Box clocks gpupatrol believes: 2020 to 2200. A box that says 1970 (a
/// reboot before NTP) or a hand-edited file says nothing about the run.
const SANE_AT: std::ops::RangeInclusive<i64> = 1_577_836_800..=7_258_118_400;

/// Entries in time order with believable clocks and finite figures.
fn sanitize(h: &mut History) {
    let finite = |x: Option<f64>| x.filter(|v| v.is_finite() && (0.0..=1e6).contains(v));
    h.entries.retain(|e| SANE_AT.contains(&e.at));
    let mut last = i64::MIN;
    h.entries.retain(|e| {
        let ok = e.at > last;
        last = last.max(e.at);
        ok
    });
    for e in &mut h.entries {
        e.run = e.run.filter(|r| SANE_AT.contains(r));
        e.gpu_util = finite(e.gpu_util);
        e.gpu_mem_pct = finite(e.gpu_mem_pct);
        e.mem_pct = finite(e.mem_pct);
    }
}

/// Write atomically (temp file + rename, 0600).
pub fn save(dir: &Path, h: &History) -> std::io::Result<()> {
    let mut data = serde_json::to_vec(h).map_err(std::io::Error::other)?;
    data.push(b'\n');
    crate::fsutil::write_atomic(&path(dir, &h.profile), &data)
}

/// Append a tick, keeping the last `keep`; whether it was recorded. A box clock outside 2020–2200 is
/// not recorded. A tick in the same second as the last replaces it; one a
/// little before the last (clock skew) is not recorded; one more than a day
/// before it (a box replaced, a clock reset for good) starts the history over.
pub fn push(h: &mut History, e: Entry, keep: usize) -> bool {
    h.version = VERSION;
    if !SANE_AT.contains(&e.at) {
        return false;
    }
    match h.entries.last() {
        Some(l) if e.at == l.at => {
            h.entries.pop();
        }
        Some(l) if e.at < l.at && l.at - e.at <= 86_400 => return false,
        Some(l) if e.at < l.at => h.entries.clear(),
        _ => {}
    }
    h.entries.push(e);
    let keep = keep.clamp(1, MAX_KEEP);
    if h.entries.len() > keep {
        let cut = h.entries.len() - keep;
        h.entries.drain(..cut);
    }
    true
}

/// Which entries start another run than the one before: another process
/// start (beyond the second or so a start is read to), a step that went
/// back (a restart from an earlier checkpoint), or a run going again after
/// one that had ended (a re-run in the same folder, counting on).
pub fn run_breaks(entries: &[Entry]) -> Vec<bool> {
    let (mut run, mut step, mut ended) = (None::<i64>, None::<u64>, false);
    entries
        .iter()
        .map(|e| {
            let b = matches!((run, e.run), (Some(a), Some(b)) if a.abs_diff(b) > RUN_SLACK_S as u64)
                || matches!((step, e.step), (Some(a), Some(b)) if b < a)
                || (ended && !e.verdict.is_terminal());
            if b {
                (run, step) = (None, None);
            }
            run = e.run.or(run);
            step = e.step.or(step);
            ended = e.verdict.is_terminal();
            b
        })
        .collect()
}

/// The current run's entries: from the last break.
pub fn current_run(entries: &[Entry]) -> &[Entry] {
    let start = run_breaks(entries).iter().rposition(|b| *b).unwrap_or(0);
    &entries[start..]
}

/// How far two readings of one run's start may differ.
const RUN_SLACK_S: i64 = 10;

/// (box time, step) of the entries that read a step.
fn points(run: &[Entry]) -> Vec<(i64, u64)> {
    run.iter().filter_map(|e| e.step.map(|s| (e.at, s))).collect()
}

/// Steps per hour between two points.
fn rate(a: (i64, u64), b: (i64, u64)) -> Option<f64> {
    let dt = b.0.saturating_sub(a.0);
    (dt > 0 && b.1 >= a.1).then(|| (b.1 - a.1) as f64 * 3600.0 / dt as f64)
}

/// The run's usual gap between ticks (the median): windows are measured in
/// it, so a few ticks by hand in a minute do not make a window of their own.
fn usual_gap(p: &[(i64, u64)]) -> Option<f64> {
    let mut gaps: Vec<f64> = p
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0) as f64)
        .filter(|g| *g > 0.0)
        .collect();
    (!gaps.is_empty()).then(|| median(&mut gaps))
}

/// The point a window of `span` seconds ending at `end` starts from: the
/// latest point at least `span` before it.
fn window_start(p: &[(i64, u64)], end: usize, span: f64) -> Option<usize> {
    (0..end).rev().find(|&i| p[end].0.saturating_sub(p[i].0) as f64 >= span)
}

/// The usual time between two changes of the step in this run (seconds):
/// a log that reports every 500 steps changes once per line, not 500 times.
fn step_time(p: &[(i64, u64)]) -> Option<f64> {
    let (a, z) = (p.first()?, p.last()?);
    let changes = p.windows(2).filter(|w| w[1].1 != w[0].1).count();
    (changes > 0).then(|| z.0.saturating_sub(a.0) as f64 / changes as f64)
}

/// A window long enough to hold `gaps` usual gaps and `steps` usual changes
/// of the step (an epoch that takes four ticks is not a slowdown between epochs).
fn span(p: &[(i64, u64)], gaps: f64, steps: f64) -> Option<f64> {
    Some((gaps * usual_gap(p)?).max(steps * step_time(p).unwrap_or(0.0)))
}

/// The rate is read over the last six usual gaps (and three changes of the step).
const RATE_GAPS: f64 = 6.0;
const WINDOW_STEPS: f64 = 3.0;
/// A slowdown compares the last three usual gaps with the windows of three before them.
const RECENT_GAPS: f64 = 3.0;
const BASELINE_WINDOWS: usize = 3;

/// The current rate (steps per hour) over the last six usual gaps of this
/// run (or all of it when shorter). A missed tick is a longer interval, not
/// a slowdown.
pub fn rate_per_h(run: &[Entry]) -> Option<f64> {
    let p = points(run);
    let end = p.len().checked_sub(1)?;
    let from = window_start(&p, end, span(&p, RATE_GAPS, WINDOW_STEPS)?).unwrap_or(0);
    (from < end).then(|| rate(p[from], p[end])).flatten()
}

/// A throughput regression: the rate over the last three usual gaps below
/// `frac` of the median rate of the three-gap windows before it (at least
/// three of them). (recent, baseline) steps per hour.
pub fn slowdown(run: &[Entry], frac: f64) -> Option<(f64, f64)> {
    let p = points(run);
    let n = p.len();
    let span = span(&p, RECENT_GAPS, WINDOW_STEPS)?;
    let start = window_start(&p, n.checked_sub(1)?, span)?;
    let recent = rate(p[start], p[n - 1])?;
    let mut windows: Vec<f64> = (1..=start)
        .filter_map(|j| window_start(&p, j, span).and_then(|i| rate(p[i], p[j])))
        .collect();
    if windows.len() < BASELINE_WINDOWS {
        return None;
    }
    let base = median(&mut windows);
    (base > 0.0 && recent < frac * base).then_some((recent, base))
}

/// Ticks a GPU collapse is read over, and the fewest before them.
const RECENT: usize = 3;
const BASELINE_MIN: usize = 3;

/// GPU utilisation collapsing while the step still advances: the mean of
/// the last three ticks below `frac` of the median before them, the median
/// at least 50% (it was busy). (recent, baseline) in %.
pub fn gpu_collapse(run: &[Entry], frac: f64) -> Option<(f64, f64)> {
    let u: Vec<(f64, Option<u64>)> = run.iter().filter_map(|e| e.gpu_util.map(|g| (g, e.step))).collect();
    let n = u.len();
    if n < RECENT + BASELINE_MIN {
        return None;
    }
    let (before, last) = u.split_at(n - RECENT);
    let recent = last.iter().map(|x| x.0).sum::<f64>() / RECENT as f64;
    let mut b: Vec<f64> = before.iter().map(|x| x.0).collect();
    let base = median(&mut b);
    // the step advanced across the recent ticks
    let advancing = matches!((last[0].1, last[RECENT - 1].1), (Some(a), Some(z)) if z > a);
    (advancing && base >= 50.0 && recent < frac * base).then_some((recent, base))
}

/// How long (s) the GPUs have idled below `idle_pct` while the run is
/// RUNNING: from the first of the trailing idle ticks to the last.
/// A step that advances through the stretch is a data-bound run, not idle
/// GPUs (its own warning says so).
pub fn idle_for(run: &[Entry], idle_pct: f64) -> Option<i64> {
    let last = run.last()?;
    let mut first = None;
    for e in run.iter().rev() {
        match e.gpu_util {
            Some(u) if u < idle_pct && e.verdict == Verdict::Running && e.step == last.step => first = Some(e.at),
            _ => break,
        }
    }
    Some(last.at.saturating_sub(first?))
}

/// Since when (box clock) the run has shown `v` without a break: the first
/// of the trailing ticks with that verdict. A gap of more than four usual
/// gaps (and an hour) is a break: the box may have been down or stopped.
pub fn since(run: &[Entry], v: Verdict) -> Option<i64> {
    let p: Vec<(i64, u64)> = run.iter().map(|e| (e.at, 0)).collect();
    let limit = (4.0 * usual_gap(&p).unwrap_or(0.0)).max(3600.0);
    let mut first: Option<i64> = None;
    for e in run.iter().rev() {
        if e.verdict != v || first.is_some_and(|f| f.saturating_sub(e.at) as f64 > limit) {
            break;
        }
        first = Some(e.at);
    }
    first
}

/// The last tick before `at` that saw the run going (RUNNING, STALLED,
/// TIMEOUT): the run ended after it.
pub fn last_alive_before(entries: &[Entry], at: i64) -> Option<i64> {
    entries
        .iter()
        .rev()
        .find(|e| e.at < at && matches!(e.verdict, Verdict::Running | Verdict::Stalled | Verdict::Timeout))
        .map(|e| e.at)
}

/// The last step a progress line names: the regex's second group, or
/// `/N` or `of N` right after the step (`Epoch 37/100`, `step 3700/10000`,
/// tqdm's `370/1000`, `epoch 3 of 10`).
pub fn total_of(re: &regex::Regex, line: &str) -> Option<u64> {
    let caps = re.captures(line)?;
    if let Some(t) = caps.get(2).and_then(|g| g.as_str().trim().parse().ok()) {
        return Some(t);
    }
    let rest = line.get(caps.get(1)?.end()..)?.trim_start();
    let rest = rest
        .strip_prefix('/')
        .or_else(|| rest.strip_prefix("of "))?
        .trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|t: &u64| *t > 0)
}

/// This tick, as history keeps it.
pub fn entry_of(
    r: &crate::report::Report,
    facts: &crate::probe::facts::Facts,
    total: Option<u64>,
    run: Option<i64>,
) -> Entry {
    let utils: Vec<f64> = r.gpus.iter().filter_map(|g| g.util_pct).collect();
    let (used, all) = r
        .gpus
        .iter()
        .fold((0.0, 0.0), |(u, a), g| (u + g.mem_used_mib, a + g.mem_total_mib));
    Entry {
        at: facts.now,
        verdict: r.verdict,
        step: r.progress.step,
        total,
        gpu_util: (!utils.is_empty()).then(|| utils.iter().sum::<f64>() / utils.len() as f64),
        gpu_mem_pct: (all > 0.0).then(|| used * 100.0 / all),
        gpus: r.gpus.len() as u32,
        mem_pct: r.cgroup.as_ref().and_then(|c| c.mem_used_pct),
        run,
    }
}

/// What the money is: the box's price and what it has spent for nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub per_hour: f64,
    /// Since the run ended on a box that still answers, plus GPU time idle
    /// while RUNNING (the current stretch), in the price's currency.
    pub wasted: f64,
}

/// What history says about this tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pace {
    pub total: Option<u64>,
    pub rate_per_h: Option<f64>,
    pub eta_s: Option<i64>,
    /// Box clock of the ETA.
    pub eta_at: Option<i64>,
    pub warnings: Vec<String>,
    pub cost: Option<Cost>,
}

/// The words of the waste warning (the alert reminds of it).
pub const BILLED: &str = "box still billed";

fn money(x: f64) -> String {
    format!("${x:.2}")
}

/// Rate, ETA, slowdowns and money for the last entry of `entries` (this
/// tick, already pushed). `end_evidence`: the box's clock of what says when
/// the run ended (the done marker's or the log's mtime).
/// What the tick knows beside the history: when the box says the run
/// ended, whether its process still runs, whether a resume is under way,
/// and whether the box was out of reach at the tick before.
#[derive(Debug, Clone, Copy, Default)]
pub struct Now {
    pub end_evidence: Option<i64>,
    pub alive: bool,
    pub resuming: bool,
    pub after_outage: bool,
}

pub fn pace(p: &crate::profile::Profile, entries: &[Entry], now: Now) -> Pace {
    let end_evidence = now.end_evidence;
    let mut out = Pace::default();
    let Some(last) = entries.last() else {
        return out;
    };
    let run = current_run(entries);
    // the profile's word wins: a line may count steps within an epoch
    out.total = p.job.total_steps.or(last.total);
    let th = &p.thresholds;
    let frac = th.slow_pct / 100.0;
    if last.verdict == Verdict::Running {
        out.rate_per_h = rate_per_h(run);
        if let (Some(step), Some(total), Some(r)) = (last.step, out.total, out.rate_per_h)
            && r > 0.0
            && step < total
        {
            // past ten years is no ETA a person can use
            let eta = (total - step) as f64 / r * 3600.0;
            if eta < 10.0 * 365.0 * 86_400.0 {
                out.eta_s = Some(eta.round() as i64);
                out.eta_at = Some(last.at.saturating_add(eta.round() as i64));
            }
        }
        if let Some((recent, base)) = slowdown(run, frac) {
            out.warnings.push(format!(
                "SLOW: {} lately, under {:.0}% of the usual {} (thermal throttling, a noisy neighbour, a data-loader stall, a dying disk?)",
                rate_words(recent),
                th.slow_pct,
                rate_words(base)
            ));
        }
        if let Some((recent, base)) = gpu_collapse(run, frac) {
            out.warnings.push(format!(
                "GPU util fell to {recent:.0}% from {base:.0}% while the step advances: data-bound? (loader workers, CPU, disk)"
            ));
        }
    }
    let mut wasted = 0.0;
    if let Some(idle) = idle_for(run, th.gpu_idle_pct)
        && idle >= th.gpu_idle_for.as_secs() as i64
    {
        let cost = p.cost_per_hour.map(|c| c * idle as f64 / 3600.0);
        wasted += cost.unwrap_or(0.0);
        out.warnings.push(format!(
            "GPUs idle {} while RUNNING (below {:.0}%){}",
            crate::duration::human_secs(idle),
            th.gpu_idle_pct,
            cost.map(|c| format!(": ~{} of box time", money(c))).unwrap_or_default()
        ));
    }
    // billed for nothing: the run ended and nothing of it runs (a DONE
    // whose process still saves and uploads is not idle), and no resume
    // is under way; after an outage, only from this tick
    if let Some(c) = p.cost_per_hour.filter(|c| *c > 0.0)
        && matches!(last.verdict, Verdict::Done | Verdict::Died | Verdict::Crashed)
        && !now.alive
        && !now.resuming
        && let Some(first) = if now.after_outage {
            Some(last.at)
        } else {
            since(entries, last.verdict)
        }
    {
        // the run ended after the last tick that saw it going and by the
        // first that saw it ended; the box's own evidence says where. With
        // no tick that saw it going (a first tick, a box down meanwhile),
        // only from the first tick that saw it ended: old files may predate
        // this boot, or this box.
        let ended = match (last_alive_before(entries, first), end_evidence) {
            _ if now.after_outage => first,
            (Some(after), Some(e)) if first.saturating_sub(after) <= 4 * 3600 => e.clamp(after, first),
            _ => first,
        };
        let secs = last.at.saturating_sub(ended).max(0);
        let w = c * secs as f64 / 3600.0;
        wasted += w;
        out.warnings.push(format!(
            "{} {} ago, {BILLED}: ~{} at {}/h: stop the box",
            last.verdict,
            crate::duration::human_secs(secs),
            money(w),
            money(c)
        ));
    }
    out.cost = p.cost_per_hour.map(|per_hour| Cost {
        per_hour,
        wasted: (wasted * 100.0).round() / 100.0,
    });
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A rate the way a person reads it: per minute when at least one a minute.
pub fn rate_words(per_h: f64) -> String {
    if per_h >= 60.0 {
        format!("{}/min", one_decimal(per_h / 60.0))
    } else {
        format!("{}/h", one_decimal(per_h))
    }
}

fn one_decimal(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Eight levels, lowest to highest.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `v` scaled to `0..=max` (missing values are spaces).
pub fn spark(v: &[Option<f64>], max: f64) -> String {
    v.iter()
        .map(|x| match x {
            Some(x) if max > 0.0 => {
                let i = ((x / max).clamp(0.0, 1.0) * 7.0).round() as usize;
                BARS[i]
            }
            Some(_) => BARS[0],
            None => ' ',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(at: i64, step: Option<u64>) -> Entry {
        Entry {
            at,
            verdict: Verdict::Running,
            step,
            total: None,
            gpu_util: Some(95.0),
            gpu_mem_pct: Some(80.0),
            gpus: 1,
            mem_pct: Some(40.0),
            run: Some(1000),
        }
    }

    /// A run stepping `per_tick` every 30 minutes for `n` ticks from step `from`.
    fn steady(n: usize, per_tick: u64) -> Vec<Entry> {
        (0..n).map(|i| e(i as i64 * 1800, Some(i as u64 * per_tick))).collect()
    }

    #[test]
    fn rate_is_steps_per_hour_and_a_missed_tick_is_only_a_longer_interval() {
        let h = steady(5, 10);
        assert_eq!(rate_per_h(&h), Some(20.0));
        let mut missed = h.clone();
        missed.remove(2);
        assert_eq!(rate_per_h(&missed), Some(20.0), "a missed tick changes nothing");
        assert_eq!(rate_per_h(&h[..1]), None, "one point is no rate");
        assert_eq!(rate_words(20.0), "20.0/h");
        assert_eq!(rate_words(126.0), "2.1/min");
    }

    #[test]
    fn a_resume_starts_a_new_run_and_the_rate_with_it() {
        let mut h = steady(6, 10);
        // restarted from an earlier checkpoint: step 30 after 50
        h.push(e(6 * 1800, Some(30)));
        h.push(e(7 * 1800, Some(31)));
        let run = current_run(&h);
        assert_eq!(run.len(), 2);
        assert_eq!(rate_per_h(run), Some(2.0));
        // a new process (another run start) with steps still rising
        let mut h = steady(4, 10);
        let mut n = e(4 * 1800, Some(40));
        n.run = Some(5000);
        h.push(n);
        assert_eq!(current_run(&h).len(), 1);
        assert_eq!(rate_per_h(current_run(&h)), None);
    }

    #[test]
    fn slow_on_a_halved_rate_and_not_on_noise() {
        let mut h = steady(8, 20);
        for i in 8..11 {
            let last = h.last().unwrap().step.unwrap();
            h.push(e(i * 1800, Some(last + 8)));
        }
        let (recent, base) = slowdown(&h, 0.5).expect("below half");
        assert_eq!(recent, 16.0);
        assert_eq!(base, 40.0);
        assert!(slowdown(&h, 0.4).is_none(), "not below 40%");
        // jitter of ±30% around a steady pace
        let jitter = [14u64, 26, 20, 13, 27, 20, 15, 25, 20, 14, 26, 21];
        let mut s = 0;
        let h: Vec<Entry> = jitter
            .iter()
            .enumerate()
            .map(|(i, d)| {
                s += d;
                e(i as i64 * 1800, Some(s))
            })
            .collect();
        assert!(slowdown(&h, 0.5).is_none(), "noise is not SLOW");
        // coarse steps: an epoch every other tick
        let h: Vec<Entry> = (0..12).map(|i| e(i * 1800, Some(i as u64 / 2))).collect();
        assert!(slowdown(&h, 0.5).is_none(), "an epoch every two ticks is steady");
        assert!(slowdown(&steady(6, 20), 0.5).is_none(), "too little history");
    }

    #[test]
    fn ticks_by_hand_in_a_minute_are_not_a_slowdown() {
        let mut h = steady(10, 20);
        let last = h.last().unwrap().clone();
        for k in 1..4 {
            let mut x = last.clone();
            x.at += k * 10;
            h.push(x);
        }
        assert!(slowdown(&h, 0.5).is_none());
        let r = rate_per_h(&h).unwrap();
        assert!((r - 40.0).abs() < 0.5, "{r}");
    }

    #[test]
    fn a_slowdown_before_a_resume_is_not_the_new_runs() {
        let mut h = steady(8, 20);
        h.extend((0..3).map(|i| e((8 + i) * 1800, Some(10 + i as u64 * 5))));
        assert!(
            slowdown(current_run(&h), 0.5).is_none(),
            "a new run has too little history"
        );
    }

    #[test]
    fn gpu_collapse_while_steps_advance() {
        let mut h = steady(8, 20);
        for x in h.iter_mut().skip(5) {
            x.gpu_util = Some(20.0);
        }
        let (recent, base) = gpu_collapse(&h, 0.5).unwrap();
        assert_eq!((recent, base), (20.0, 95.0));
        // stalled: not a collapse (the stall says so)
        for x in h.iter_mut().skip(5) {
            x.step = Some(100);
        }
        assert!(gpu_collapse(&h, 0.5).is_none());
    }

    #[test]
    fn idle_for_and_since() {
        let mut h = steady(6, 10);
        for x in h.iter_mut().skip(3) {
            x.gpu_util = Some(2.0);
        }
        assert_eq!(idle_for(&h, 10.0), Some(0), "the step advances: data-bound, not idle");
        for x in h.iter_mut().skip(3) {
            x.step = Some(30);
        }
        assert_eq!(idle_for(&h, 10.0), Some(2 * 1800));
        assert_eq!(idle_for(&steady(3, 1), 10.0), None);
        let mut h = steady(4, 10);
        for i in 4..7 {
            let mut d = e(i * 1800, Some(60));
            d.verdict = Verdict::Done;
            h.push(d);
        }
        assert_eq!(since(&h, Verdict::Done), Some(4 * 1800));
        assert_eq!(last_alive_before(&h, 4 * 1800), Some(3 * 1800));
    }

    #[test]
    fn push_bounds_and_a_clock_that_went_back_starts_over() {
        const T: i64 = 1_780_000_000;
        let ats = |h: &History| h.entries.iter().map(|x| x.at - T).collect::<Vec<_>>();
        let mut h = History::default();
        for i in 0..10 {
            push(&mut h, e(T + i, Some(i as u64)), 4);
        }
        assert_eq!(ats(&h), [6, 7, 8, 9]);
        push(&mut h, e(T + 9, Some(9)), 4);
        assert_eq!(ats(&h), [6, 7, 8, 9], "the same second replaces");
        push(&mut h, e(T + 7, Some(1)), 4);
        assert_eq!(ats(&h), [6, 7, 8, 9], "a little skew is not recorded");
        push(&mut h, e(86_400 * 2, Some(1)), 4);
        assert_eq!(ats(&h), [6, 7, 8, 9], "1970 is no clock");
        push(&mut h, e(T - 5 * 86_400, Some(1)), 4);
        assert_eq!(ats(&h), [-5 * 86_400], "days back: another box, start over");
    }

    #[test]
    fn hostile_files_are_cleaned_on_load() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            path(d.path(), "p"),
            r#"{"version":1,"profile":"p","entries":[
              {"at":-9223372036854775808,"verdict":"RUNNING","step":1},
              {"at":1780000000,"verdict":"RUNNING","step":1,"run":-9223372036854775808,"gpu_util":1e300},
              {"at":1779999000,"verdict":"RUNNING","step":2},
              {"at":1780001800,"verdict":"DONE","step":9}]}"#,
        )
        .unwrap();
        let (h, w) = load(d.path(), "p");
        assert_eq!(w, None);
        assert_eq!(
            h.entries.iter().map(|x| x.at).collect::<Vec<_>>(),
            [1_780_000_000, 1_780_001_800]
        );
        assert_eq!((h.entries[0].run, h.entries[0].gpu_util), (None, None));
        let mut p =
            crate::profile::parse(Path::new("p.yaml"), "name: p\ntransport: local\ncost_per_hour: 2\n").unwrap();
        p.history = 10;
        let pc = pace(
            &p,
            &h.entries,
            Now {
                end_evidence: Some(i64::MIN),
                ..Now::default()
            },
        );
        assert!(pc.cost.unwrap().wasted.is_finite());
    }

    #[test]
    fn waste_is_counted_from_what_the_box_shows_and_never_across_a_gap() {
        let p = crate::profile::parse(Path::new("p.yaml"), "name: p\ntransport: local\ncost_per_hour: 3.6\n").unwrap();
        let mut h = steady(4, 10);
        let mut d = e(4 * 1800, Some(40));
        d.verdict = Verdict::Done;
        h.push(d.clone());
        // the marker landed 10 minutes after the last RUNNING tick
        let pc = pace(
            &p,
            &h,
            Now {
                end_evidence: Some(3 * 1800 + 600),
                ..Now::default()
            },
        );
        assert_eq!(pc.cost.as_ref().unwrap().wasted, 1.2, "20 min at 3.60/h");
        assert!(
            pc.warnings[0].starts_with("DONE 20m ago, box still billed: ~$1.20 at $3.60/h"),
            "{:?}",
            pc.warnings
        );
        // a marker from a month ago is no earlier than the last RUNNING tick
        let pc = pace(
            &p,
            &h,
            Now {
                end_evidence: Some(-30 * 86_400),
                ..Now::default()
            },
        );
        assert_eq!(pc.cost.unwrap().wasted, 1.8);
        // first tick ever: only from now
        let pc = pace(
            &p,
            &h[4..],
            Now {
                end_evidence: Some(-30 * 86_400),
                ..Now::default()
            },
        );
        assert_eq!(pc.cost.unwrap().wasted, 0.0);
        // DONE three days ago, then nothing until now: from now
        let mut later = d.clone();
        later.at += 3 * 86_400;
        h.push(later);
        let pc = pace(&p, &h, Now::default());
        assert_eq!(pc.cost.unwrap().wasted, 0.0);
    }

    #[test]
    fn coarse_epochs_are_not_slow() {
        for k in 2..=12u64 {
            for per_line in [1, 500] {
                let h: Vec<Entry> = (0..60)
                    .map(|i| e(i as i64 * 1800, Some(i as u64 / k * per_line)))
                    .collect();
                for n in 20..60 {
                    assert!(
                        slowdown(&h[..n], 0.5).is_none(),
                        "a line of +{per_line} every {k} ticks, at tick {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_run_that_counts_on_after_done_is_a_new_run() {
        let mut h = steady(6, 10);
        for i in 6..9 {
            let mut d = e(i * 1800, Some(50));
            d.verdict = Verdict::Done;
            d.run = None;
            h.push(d);
        }
        h.push(e(9 * 1800, Some(60)));
        h.push(e(10 * 1800, Some(70)));
        assert_eq!(current_run(&h).len(), 2);
        assert_eq!(rate_per_h(current_run(&h)), Some(20.0));
    }

    #[test]
    fn nothing_is_billed_while_the_process_runs_a_resume_is_under_way_or_after_an_outage() {
        let p = crate::profile::parse(
            Path::new("p.yaml"),
            "name: p\ntransport: local\ncost_per_hour: 3.6\njob:\n  total_steps: 5000\n",
        )
        .unwrap();
        let mut h = steady(4, 10);
        let mut d = e(4 * 1800, Some(40));
        d.verdict = Verdict::Done;
        d.total = Some(500);
        h.push(d);
        let base = Now {
            end_evidence: Some(3 * 1800 + 600),
            ..Now::default()
        };
        assert!(pace(&p, &h, base).warnings.iter().any(|w| w.contains(BILLED)));
        for now in [Now { alive: true, ..base }, Now { resuming: true, ..base }] {
            let pc = pace(&p, &h, now);
            assert!(pc.warnings.is_empty(), "{:?}", pc.warnings);
            assert_eq!(pc.cost.unwrap().wasted, 0.0);
        }
        let pc = pace(
            &p,
            &h,
            Now {
                after_outage: true,
                ..base
            },
        );
        assert_eq!(pc.cost.unwrap().wasted, 0.0, "after an outage, only from this tick");
        assert_eq!(
            pace(&p, &h, base).total,
            Some(5000),
            "job.total_steps wins over the line"
        );
    }

    #[test]
    fn corrupt_and_newer_files_are_set_aside_and_restarted() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History {
            version: VERSION,
            profile: "p".into(),
            entries: vec![],
        };
        push(&mut h, e(1, Some(1)), 10);
        save(d.path(), &h).unwrap();
        assert_eq!(load(d.path(), "p"), (h.clone(), None));
        std::fs::write(path(d.path(), "p"), "{not json").unwrap();
        let (fresh, w) = load(d.path(), "p");
        assert!(fresh.entries.is_empty());
        assert!(w.unwrap().contains("corrupt"));
        assert!(d.path().join("p.history.corrupt").exists());
        std::fs::write(path(d.path(), "p"), r#"{"version":9,"profile":"p","entries":[]}"#).unwrap();
        let (_, w) = load(d.path(), "p");
        assert!(w.unwrap().contains("version 9"));
        assert!(d.path().join("p.history.v9").exists());
    }

    #[test]
    fn the_total_comes_from_the_progress_line() {
        let re = regex::Regex::new(r"Epoch (\d+)").unwrap();
        assert_eq!(total_of(&re, "Epoch 37/100 loss 0.2"), Some(100));
        assert_eq!(total_of(&re, "Epoch 37 / 100"), Some(100));
        assert_eq!(total_of(&re, "Epoch 3 of 10"), Some(10));
        assert_eq!(total_of(&re, "Epoch 37 loss 0.2"), None);
        assert_eq!(total_of(&re, "Epoch 37/0"), None, "a total of 0 is no total");
        let tqdm = regex::Regex::new(r"(\d+)/\d+ \[").unwrap();
        assert_eq!(
            total_of(&tqdm, " 37%|###       | 370/1000 [01:02<01:45,  6.0it/s]"),
            Some(1000)
        );
        let two = regex::Regex::new(r"step (\d+) of (\d+)").unwrap();
        assert_eq!(total_of(&two, "step 3700 of 10000"), Some(10000));
    }

    #[test]
    fn sparklines_scale_and_show_gaps() {
        assert_eq!(spark(&[Some(0.0), Some(50.0), Some(100.0), None], 100.0), "▁▅█ ");
        assert_eq!(spark(&[Some(3.0)], 0.0), "▁");
    }
}
