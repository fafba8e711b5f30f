//! The fleet at a glance and the monitoring systems people already run:
//! the `status` table (from saved state only), monitoring-plugins perfdata,
//! and Prometheus text exposition for node_exporter's textfile collector.

use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets::NOTHING};

use crate::profile::Thresholds;
use crate::report::Report;
use crate::state::{State, Summary};
use crate::verdict::{Severity, Verdict};

/// How many tick times a state keeps (the cadence of its watcher).
pub const TICKS_KEPT: usize = 8;

/// The summary `status` reads later, from a tick's report.
pub fn summarize(r: &Report, p: &crate::profile::Profile, every: Option<Duration>, at: i64) -> Summary {
    Summary {
        ts: r.ts.clone(),
        at,
        verdict: r.verdict,
        severity: r.severity,
        exit_code: r.exit_code,
        step: r.progress.step,
        step_age_s: r.progress.stalled_for_s,
        gpu: gpu_brief(r),
        disk_pct: r.disk.as_ref().and_then(|d| d.used_pct),
        remediation: r.remediation.clone(),
        line: r.line.clone(),
        every_s: every.map(|d| d.as_secs().max(1)),
        took_ms: r.elapsed_ms,
        bound_s: tick_bound(p),
        warnings: r.warnings.clone(),
        cost: r.cost.clone(),
    }
}

/// Record a tick's time in the state (oldest first, the last few kept).
pub fn note_tick(s: &mut State, at: i64) {
    s.ticks_at.push(at);
    let n = s.ticks_at.len();
    if n > TICKS_KEPT {
        s.ticks_at.drain(..n - TICKS_KEPT);
    }
}

/// Utilisation (the mean) and memory (the fullest GPU): "97%/88%",
/// "8x 97%/88%", "no gpu", "?".
pub fn gpu_brief(r: &Report) -> String {
    match r.gpu_status {
        "present" if !r.gpus.is_empty() => {
            let known: Vec<f64> = r.gpus.iter().filter_map(|g| g.util_pct).collect();
            let util = match known.len() {
                0 => "?%".to_string(),
                n => format!("{:.0}%", known.iter().sum::<f64>() / n as f64),
            };
            let mem = r
                .gpus
                .iter()
                .filter(|g| g.mem_total_mib > 0.0)
                .map(|g| 100.0 * g.mem_used_mib / g.mem_total_mib)
                .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
            let mem = mem.map(|m| format!("/{m:.0}%")).unwrap_or_default();
            if r.gpus.len() == 1 {
                format!("{util}{mem}")
            } else {
                format!("{}x {util}{mem}", r.gpus.len())
            }
        }
        "absent" => "no gpu".into(),
        "failed" => "gpu error".into(),
        "not-visible" => "n/a".into(),
        _ => "?".into(),
    }
}

/// One profile as `status` sees it.
#[derive(Debug, Clone)]
pub struct Row {
    pub profile: String,
    pub summary: Option<Summary>,
    /// Why there is no summary: "never ticked", "state unreadable: …".
    pub missing: Option<String>,
    /// How often its watcher ticks, as said or as observed.
    pub expected_s: Option<i64>,
    /// The last tick is older than twice that (the watcher died).
    pub stale: bool,
    pub age_s: Option<i64>,
}

/// How often this profile is ticked: the larger of what its watcher said
/// and the cadence its last ticks kept (a fleet's queue and the ticks' own
/// time make the gaps longer than the interval). Without a said interval,
/// the cadence counts only from three gaps of a minute or more: a few ticks
/// run by hand are no watcher.
pub fn expected_interval(s: &State) -> Option<i64> {
    let said = s.summary.as_ref().and_then(|x| x.every_s).map(|e| e as i64);
    let kept = (s.ticks_at.len() >= 4).then(|| {
        let mut gaps: Vec<i64> = s.ticks_at.windows(2).map(|w| (w[1] - w[0]).max(0)).collect();
        gaps.sort_unstable();
        gaps[gaps.len() / 2]
    });
    match (said, kept) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (Some(a), None) => Some(a),
        (None, Some(b)) if b >= 60 => Some(b),
        _ => None,
    }
}

/// How much later than twice the interval a tick may come before its
/// watcher counts as stopped: the tick's own time, twice, and half a minute.
pub fn grace(sum: &Summary) -> i64 {
    30 + (2 * (sum.took_ms / 1000)).max(sum.bound_s) as i64
}

/// The longest a tick of `p` may take: the connection, the probe, and the
/// slower of the alert command and an HTTP delivery.
pub fn tick_bound(p: &crate::profile::Profile) -> u64 {
    let alert = p.alert.as_ref().map_or(Duration::ZERO, |a| {
        let cmd = if a.command.is_some() { a.timeout } else { Duration::ZERO };
        let http = if a.endpoints().next().is_some() || a.heartbeat.is_some() {
            a.http_timeout + Duration::from_secs(2)
        } else {
            Duration::ZERO
        };
        cmd.max(http)
    });
    (p.connect_timeout + p.probe_timeout + alert).as_secs()
}

/// The row for a profile's saved state (or its absence), at our clock `now`.
pub fn row(profile: &str, state: Result<Option<State>, String>, now: i64) -> Row {
    let mut r = Row {
        profile: profile.to_string(),
        summary: None,
        missing: None,
        expected_s: None,
        stale: false,
        age_s: None,
    };
    match state {
        Err(e) => r.missing = Some(format!("state unreadable: {e}")),
        Ok(None) => r.missing = Some("never ticked".into()),
        Ok(Some(s)) => match &s.summary {
            None => r.missing = Some("never ticked".into()),
            Some(sum) => {
                let age = now - sum.at;
                r.expected_s = expected_interval(&s);
                // a run that ended needs no watcher (`patrol --until-terminal` stops there)
                r.stale = !sum.verdict.is_terminal() && r.expected_s.is_some_and(|e| age > 2 * e + grace(sum));
                r.age_s = Some(age);
                r.summary = Some(sum.clone());
            }
        },
    }
    r
}

impl Row {
    /// A row for a tick just made (patrol's `--table`): fresh by definition.
    pub fn live(profile: &str, summary: Summary, now: i64) -> Row {
        Row {
            profile: profile.to_string(),
            age_s: Some(now - summary.at),
            summary: Some(summary),
            missing: None,
            expected_s: None,
            stale: false,
        }
    }

    /// Severity as the fleet counts it: a stale or unknown profile is unknown.
    pub fn severity(&self) -> Severity {
        match &self.summary {
            Some(_) if self.stale => Severity::Unknown,
            Some(s) => s.severity,
            None => Severity::Unknown,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.severity().exit_code()
    }

    pub fn json(&self) -> serde_json::Value {
        let s = self.summary.as_ref();
        serde_json::json!({
            "profile": self.profile,
            "verdict": s.map(|s| s.verdict),
            "severity": self.severity(),
            "exit_code": self.exit_code(),
            "ts": s.map(|s| s.ts.clone()),
            "age_s": self.age_s,
            "stale": self.stale,
            "expected_interval_s": self.expected_s,
            "step": s.and_then(|s| s.step),
            "step_age_s": s.and_then(|s| s.step_age_s.map(|a| a + self.age_s.unwrap_or(0).max(0))),
            "gpu": s.map(|s| s.gpu.clone()),
            "disk_pct": s.and_then(|s| s.disk_pct),
            "remediation": s.map(|s| s.remediation.clone()),
            "line": s.map(|s| s.line.clone()),
            "cost": s.and_then(|s| s.cost.clone()),
            "missing": self.missing,
        })
    }
}

/// The fleet's burn rate and waste, for the boxes with a `cost_per_hour`:
/// "cost: $7.47/h across 3 boxes; wasted ~$12.30 (a100-box DONE)". Only the
/// boxes whose run is not over count toward the burn's "in use".
pub fn burn(rows: &[Row]) -> Option<String> {
    let costs: Vec<(&str, &crate::history::Cost, Verdict)> = rows
        .iter()
        .filter_map(|r| {
            let s = r.summary.as_ref()?;
            Some((r.profile.as_str(), s.cost.as_ref()?, s.verdict))
        })
        .collect();
    if costs.is_empty() {
        return None;
    }
    let per_h: f64 = costs.iter().map(|c| c.1.per_hour).sum();
    let wasted: f64 = costs.iter().map(|c| c.1.wasted).sum();
    let mut s = format!(
        "cost: ${per_h:.2}/h across {} box{}",
        costs.len(),
        if costs.len() == 1 { "" } else { "es" }
    );
    if wasted > 0.0 {
        let who: Vec<String> = costs
            .iter()
            .filter(|c| c.1.wasted > 0.0)
            .map(|c| format!("{} {} ${:.2}", c.0, c.2, c.1.wasted))
            .collect();
        s.push_str(&format!(
            "; wasted ~${wasted:.2} as of their last ticks ({})",
            who.join(", ")
        ));
    }
    Some(s)
}

/// Worst first, then by name.
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (b.severity().urgency())
            .cmp(&a.severity().urgency())
            .then_with(|| a.profile.cmp(&b.profile))
    });
}

/// The first words of a remediation: enough to know what to do.
fn first_words(s: &str, n: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.len() <= n {
        words.join(" ")
    } else {
        format!("{}…", words[..n].join(" "))
    }
}

/// The `status` table, `width` columns wide.
pub fn table(rows: &[Row], width: u16) -> String {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(vec![
            "PROFILE",
            "VERDICT",
            "STEP",
            "LAST TICK",
            "GPU/MEM",
            "DISK",
            "NEXT",
        ]);
    for r in rows {
        let cells: Vec<String> = match &r.summary {
            None => {
                let unreadable = r.missing.as_deref().is_some_and(|m| m.starts_with("state unreadable"));
                vec![
                    r.profile.clone(),
                    "?".into(),
                    "".into(),
                    if unreadable { "unreadable" } else { "never ticked" }.into(),
                    "".into(),
                    "".into(),
                    if unreadable { "see status --json" } else { "tick it" }.into(),
                ]
            }
            Some(s) => {
                let age = r.age_s.unwrap_or(0);
                let step = match (s.step, s.step_age_s) {
                    (Some(n), Some(a)) => format!("{n} ({})", crate::duration::human_secs(a + age.max(0))),
                    (Some(n), None) => n.to_string(),
                    (None, _) => "-".into(),
                };
                let last = if r.stale {
                    format!(
                        "{} ({})\npatrol stale",
                        crate::report::hhmm(&s.ts),
                        crate::duration::human_secs(age)
                    )
                } else {
                    format!("{} ({})", crate::report::hhmm(&s.ts), crate::duration::human_secs(age))
                };
                let next = if r.stale {
                    "restart the patrol".to_string()
                } else if s.verdict.base_severity() == Severity::Ok {
                    match s.warnings.first() {
                        Some(w) => format!("warn: {}", first_words(w, 4)),
                        None => "-".to_string(),
                    }
                } else {
                    // "diagnosis: what to do" → what to do
                    let todo = s.remediation.split_once(": ").map(|(_, a)| a).unwrap_or(&s.remediation);
                    first_words(todo, 4)
                };
                vec![
                    r.profile.clone(),
                    s.verdict.to_string(),
                    step,
                    last,
                    s.gpu.clone(),
                    s.disk_pct.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "?".into()),
                    next,
                ]
            }
        };
        // box text made plain, line by line (a cell may have two)
        t.add_row(
            cells
                .iter()
                .map(|c| c.split('\n').map(crate::text::plain).collect::<Vec<_>>().join("\n"))
                .collect::<Vec<_>>(),
        );
    }
    // the words that must not break: the name, the verdict, "patrol stale"
    use comfy_table::{ColumnConstraint as C, Width};
    for (i, c) in [
        // widths with the padding; at their least they sum to 78 columns
        (
            0,
            C::Boundaries {
                lower: Width::Fixed(10),
                upper: Width::Fixed(22),
            },
        ),
        (1, C::ContentWidth),
        (2, C::LowerBoundary(Width::Fixed(9))),
        (3, C::ContentWidth),
        (
            4,
            C::Boundaries {
                lower: Width::Fixed(11),
                upper: Width::Fixed(15),
            },
        ),
        (5, C::ContentWidth),
        (6, C::LowerBoundary(Width::Fixed(10))),
    ] {
        if let Some(col) = t.column_mut(i) {
            col.set_constraint(c);
        }
    }
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    if let Some(last) = t.column_mut(6) {
        last.set_padding((0, 0));
    }
    t.to_string().lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// The width to draw for: `$COLUMNS` when set, else 80.
pub fn width() -> u16 {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(80)
}

// ---- monitoring-plugins perfdata ------------------------------------------

/// A number as perfdata wants it: no exponent, at most two decimals.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The warning level as a plain number: the parsers monitoring systems use
/// (Monitoring::Plugin, PNP4Nagios) read `X` and drop an `@X:100` range
/// with the rest of the item. gpupatrol warns at X or above, a range `X`
/// alerts above X: the two differ only at exactly X.
fn at_or_above(x: f64) -> String {
    num(x)
}

/// Perfdata for a report (monitoring-plugins development guidelines:
/// `label=value[UOM];[warn];[crit];[min];[max]`, space separated).
pub fn perfdata(r: &Report, th: &Thresholds) -> String {
    let mut out: Vec<String> = Vec::new();
    for g in &r.gpus {
        if let Some(u) = g.util_pct {
            out.push(format!("gpu{}_util={}%;;;0;100", g.index, num(u)));
        }
        out.push(format!(
            "gpu{}_mem={}MB;;;0;{}",
            g.index,
            num(g.mem_used_mib.round()),
            num(g.mem_total_mib.round())
        ));
    }
    if let Some(d) = &r.disk {
        if let Some(p) = d.used_pct {
            out.push(format!("disk={}%;{};;0;100", num(p), at_or_above(th.disk_pct)));
        }
        if let Some(p) = d.inodes_used_pct {
            out.push(format!("inodes={}%;{};;0;100", num(p), at_or_above(th.inodes_pct)));
        }
    }
    if let Some(c) = &r.cgroup {
        if let Some(p) = c.mem_used_pct {
            out.push(format!("mem={}%;{};;0;100", num(p), at_or_above(th.mem_pct)));
        }
        if let Some(n) = c.oom_kills {
            out.push(format!("oom_kills={n}c"));
        }
    }
    if let Some(s) = r.progress.step {
        out.push(format!("step={s}c"));
    }
    if let Some(s) = r.progress.stalled_for_s {
        out.push(format!("since_progress={s}s;;;0"));
    }
    out.push(format!("tick_time={}s;;;0", num(r.elapsed_ms as f64 / 1000.0)));
    out.join(" ")
}

/// The human line with perfdata after ` | ` (the line's own `|` become `/`:
/// a monitoring system reads everything after the first `|` as perfdata).
pub fn line_with_perfdata(r: &Report, th: &Thresholds) -> String {
    format!("{} | {}", r.line.replace('|', "/"), perfdata(r, th))
}

// ---- Prometheus text exposition --------------------------------------------

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Prometheus text exposition (format 0.0.4) of the reports, one family per
/// fact, every series labelled by profile; no timestamps (node_exporter's
/// textfile collector refuses them).
pub fn prom(reports: &[&Report]) -> String {
    struct Fam {
        name: &'static str,
        help: &'static str,
        series: Vec<String>,
    }
    let fam = |name, help| Fam {
        name,
        help,
        series: vec![],
    };
    let mut f = [
        fam(
            "gpupatrol_verdict",
            "The last tick's verdict: 1 for the verdict it is, 0 for the others.",
        ),
        fam(
            "gpupatrol_severity",
            "The last tick's severity as its exit code: 0 ok, 1 warning, 2 critical, 3 unknown.",
        ),
        fam("gpupatrol_step", "The last step read from the run's log."),
        fam(
            "gpupatrol_seconds_since_progress",
            "Seconds since the step last advanced (box clock).",
        ),
        fam("gpupatrol_gpu_utilization_percent", "GPU utilization, per GPU index."),
        fam("gpupatrol_gpu_memory_used_bytes", "GPU memory used, per GPU index."),
        fam("gpupatrol_gpu_memory_total_bytes", "GPU memory in all, per GPU index."),
        fam("gpupatrol_disk_used_percent", "Disk space used on the data mount."),
        fam("gpupatrol_inodes_used_percent", "Inodes used on the data mount."),
        fam(
            "gpupatrol_cgroup_memory_used_percent",
            "The job's cgroup memory in use, of its limit.",
        ),
        fam(
            "gpupatrol_cgroup_oom_kills",
            "The OOM kills the job's cgroup has counted.",
        ),
        fam(
            "gpupatrol_last_tick_timestamp_seconds",
            "When the last tick ran (Unix time).",
        ),
        fam("gpupatrol_tick_duration_seconds", "How long the last tick took."),
    ];
    const MIB: f64 = 1024.0 * 1024.0;
    for r in reports {
        let p = format!("profile=\"{}\"", label(&r.profile));
        for v in Verdict::ALL {
            f[0].series.push(format!(
                "{{{p},verdict=\"{}\"}} {}",
                v.as_str(),
                u8::from(v == r.verdict)
            ));
        }
        f[1].series.push(format!("{{{p}}} {}", r.exit_code));
        if let Some(s) = r.progress.step {
            f[2].series.push(format!("{{{p}}} {s}"));
        }
        if let Some(s) = r.progress.stalled_for_s {
            f[3].series.push(format!("{{{p}}} {s}"));
        }
        for g in &r.gpus {
            let gl = format!("{{{p},gpu=\"{}\"}}", g.index);
            if let Some(u) = g.util_pct {
                f[4].series.push(format!("{gl} {}", num(u)));
            }
            f[5].series
                .push(format!("{gl} {}", num((g.mem_used_mib * MIB).round())));
            f[6].series
                .push(format!("{gl} {}", num((g.mem_total_mib * MIB).round())));
        }
        if let Some(d) = &r.disk {
            if let Some(x) = d.used_pct {
                f[7].series.push(format!("{{{p}}} {}", num(x)));
            }
            if let Some(x) = d.inodes_used_pct {
                f[8].series.push(format!("{{{p}}} {}", num(x)));
            }
        }
        if let Some(c) = &r.cgroup {
            if let Some(x) = c.mem_used_pct {
                f[9].series.push(format!("{{{p}}} {}", num(x)));
            }
            if let Some(n) = c.oom_kills {
                f[10].series.push(format!("{{{p}}} {n}"));
            }
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&r.ts) {
            f[11].series.push(format!("{{{p}}} {}", t.timestamp()));
        }
        f[12]
            .series
            .push(format!("{{{p}}} {}", num(r.elapsed_ms as f64 / 1000.0)));
    }
    let mut out = String::new();
    for fam in f.iter().filter(|f| !f.series.is_empty()) {
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} gauge\n",
            fam.name, fam.help, fam.name
        ));
        for s in &fam.series {
            out.push_str(fam.name);
            out.push_str(s);
            out.push('\n');
        }
    }
    out
}

/// Write the `.prom` file: a temp file beside it, then a rename, readable by
/// node_exporter's user.
pub fn write_prom(path: &std::path::Path, reports: &[&Report]) -> std::io::Result<()> {
    crate::fsutil::write_atomic_mode(path, prom(reports).as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(verdict: Verdict, at: i64) -> Summary {
        Summary {
            ts: "2026-12-02T12:00:00Z".into(),
            at,
            verdict,
            severity: verdict.base_severity(),
            exit_code: verdict.base_severity().exit_code(),
            step: Some(1200),
            step_age_s: Some(30),
            gpu: "8x 97%/88%".into(),
            disk_pct: Some(61.0),
            remediation: "look at the traceback, fix the cause, then resume from the last checkpoint".into(),
            line: String::new(),
            every_s: Some(300),
            took_ms: 2000,
            bound_s: 0,
            warnings: vec![],
            cost: None,
        }
    }

    fn state(sum: Summary) -> State {
        State {
            summary: Some(sum),
            ..State::new("x")
        }
    }

    #[test]
    fn stale_when_twice_the_interval_passed_and_not_for_an_ended_run() {
        let now = 10_000;
        // every 300 s, a tick of 2 s: stale past 600 + 30 + 4
        let r = row("a", Ok(Some(state(summary(Verdict::Running, now - 634)))), now);
        assert!(!r.stale);
        assert_eq!(r.severity(), Severity::Ok);
        let r = row("a", Ok(Some(state(summary(Verdict::Running, now - 635)))), now);
        assert!(r.stale);
        assert_eq!(r.exit_code(), 3, "a watcher that stopped is unknown");
        let r = row("a", Ok(Some(state(summary(Verdict::Done, now - 90_000)))), now);
        assert!(!r.stale, "nobody needs to watch a finished run");
        // a patrol whose ticks take as long as its interval is not stale
        let mut st = state(summary(Verdict::Running, now - 700));
        st.ticks_at = vec![now - 2800, now - 2100, now - 1400, now - 700];
        assert_eq!(
            expected_interval(&st),
            Some(700),
            "the cadence kept, not only the one said"
        );
        assert!(!row("a", Ok(Some(st)), now).stale);
        // no interval said: the cadence kept, from three gaps of a minute or more
        let mut s = summary(Verdict::Running, now - 250);
        s.every_s = None;
        let mut st = state(s);
        st.ticks_at = vec![now - 520, now - 430, now - 340, now - 250];
        assert_eq!(expected_interval(&st), Some(90));
        assert!(row("a", Ok(Some(st.clone())), now).stale);
        st.ticks_at.drain(..1);
        assert_eq!(expected_interval(&st), None, "two gaps are no cadence");
        // ticks by hand, seconds apart, are no watcher
        st.ticks_at = vec![now - 203, now - 202, now - 201, now - 200];
        assert_eq!(expected_interval(&st), None);
        assert_eq!(row("a", Ok(None), now).exit_code(), 3);
    }

    #[test]
    fn worst_first() {
        let now = 10_000;
        let mut rows = vec![
            row("ok", Ok(Some(state(summary(Verdict::Running, now)))), now),
            row("never", Ok(None), now),
            row("dead", Ok(Some(state(summary(Verdict::Died, now)))), now),
            row("incomplete", Ok(Some(state(summary(Verdict::Incomplete, now)))), now),
        ];
        sort(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.profile.as_str()).collect();
        assert_eq!(names, ["dead", "never", "incomplete", "ok"]);
    }

    #[test]
    fn the_table_fits_80_columns() {
        let now = 10_000;
        let mut stale = summary(Verdict::Running, now - 7200);
        stale.gpu = "97%/40%".into();
        let mut rows = vec![
            row("a100-box", Ok(Some(state(summary(Verdict::Crashed, now - 60)))), now),
            row("h100-sweep-17", Ok(Some(state(stale))), now),
            row("lambda-8x", Ok(Some(state(summary(Verdict::Running, now - 10)))), now),
            row("new-box", Ok(None), now),
        ];
        let mut warned = summary(Verdict::Running, now - 5);
        warned.severity = Severity::Warning;
        warned.warnings = vec!["disk 91% >= 90%".into()];
        rows.push(row("warned", Ok(Some(state(warned))), now));
        sort(&mut rows);
        let t = table(&rows, 80);
        for l in t.lines() {
            assert!(l.chars().count() <= 80, "{} columns: {l}", l.chars().count());
        }
        insta::assert_snapshot!("status_table_80", t);

        // the widest cells the tool writes still fit: the other columns wrap
        rows.push(row(
            "a-profile-name-of-sixty-four-characters-is-allowed-by-profiles-x",
            Ok(None),
            now,
        ));
        rows.push(row(
            "broken",
            Err("/state/broken.json: expected value at line 1 column 2".into()),
            now,
        ));
        // the widest cells the tool writes
        let mut wide = summary(Verdict::HostkeyMismatch, now - 100_000);
        wide.step = Some(12_345_678);
        wide.gpu = "16x 100%/100%".into();
        wide.disk_pct = Some(100.0);
        wide.every_s = Some(60);
        rows.push(row("wide-sixteen-gpus-on-a-long-name", Ok(Some(state(wide))), now));
        sort(&mut rows);
        let t = table(&rows, 80);
        for l in t.lines() {
            assert!(l.chars().count() <= 80, "{} columns: {l}", l.chars().count());
        }
        insta::assert_snapshot!("status_table_80_widest", t);
    }

    #[test]
    fn numbers_have_no_exponent() {
        assert_eq!(num(97.0), "97");
        assert_eq!(num(61.456), "61.46");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(85_520_809_984.0), "85520809984");
    }
}
