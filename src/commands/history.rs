//! `gpupatrol history -p P [--json] [--last N]`: the profile's bounded tick
//! history, from the saved file only (no connection, nothing written): a
//! step-rate and a GPU-utilisation sparkline over time, then the last ticks
//! as a table (or every tick as JSON Lines).

use comfy_table::{Table, presets::NOTHING};

use crate::cli::HistoryArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::history::{self, Entry, rate_words, spark};
use crate::output;

pub fn run(args: &HistoryArgs, state_dir: Option<&std::path::Path>) -> Result<i32> {
    let file = super::one_profile(&args.profile)?;
    let name = crate::profile::name_of(&file)?;
    let dir = state_dir
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(crate::state::default_dir);
    let h = match history::peek(&dir, &name) {
        Ok(Some(h)) if !h.entries.is_empty() => h,
        Ok(_) => {
            eprintln!(
                "gpupatrol: no history for {name} in {} yet (each `tick` or `patrol` tick that reaches the box adds one)",
                dir.display()
            );
            return Ok(exit_codes::UNKNOWN);
        }
        Err(e) => return Err(Error::Other(format!("history: {e}"))),
    };
    let rates = interval_rates(&h.entries);
    if args.json {
        for (e, r) in h.entries.iter().zip(&rates) {
            let mut v = serde_json::to_value(e).expect("entries serialize");
            v["rate_per_h"] = serde_json::json!(r.map(|r| (r * 10.0).round() / 10.0));
            v["ts"] = serde_json::json!(crate::tick::rfc3339(e.at));
            output::line(&v.to_string());
        }
        return Ok(exit_codes::OK);
    }
    output::line(&render(
        &name,
        &h.entries,
        &rates,
        args.last,
        crate::fleet::width() as usize,
    ));
    Ok(exit_codes::OK)
}

/// Each entry's rate since the previous step of the same run (steps/h),
/// in one pass: a run starts where `current_run` would start one.
pub fn interval_rates(entries: &[Entry]) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(entries.len());
    let mut last_step: Option<(i64, u64)> = None;
    for (e, new_run) in entries.iter().zip(history::run_breaks(entries)) {
        if new_run {
            last_step = None;
        }
        let r = match (last_step, e.step) {
            (Some((t, s)), Some(now)) if e.at > t && now >= s => {
                Some((now - s) as f64 * 3600.0 / e.at.saturating_sub(t) as f64)
            }
            _ => None,
        };
        out.push(r);
        if let Some(s) = e.step {
            last_step = Some((e.at, s));
        }
    }
    out
}

fn short(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|d| d.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn pct(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.0}%")).unwrap_or_else(|| "-".into())
}

/// The picture: a header, two sparklines over the last ticks that fit, and
/// the last `last` ticks as rows.
pub fn render(name: &str, entries: &[Entry], rates: &[Option<f64>], last: usize, width: usize) -> String {
    let first = entries.first().map_or(0, |e| e.at);
    let end = entries.last().map_or(0, |e| e.at);
    let run = history::current_run(entries);
    let mut out = format!(
        "{name}: {} tick{}, {} to {} (box clock)",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        short(first),
        short(end)
    );
    if run.len() < entries.len()
        && let Some(r) = run.first()
    {
        out.push_str(&format!("; this run since {}", short(r.at)));
    }
    out.push('\n');
    // "rate  " + the line + "  max 123.4/min" fit the width
    let cols = width.saturating_sub(22).clamp(8, 120);
    let from = entries.len().saturating_sub(cols);
    let max_rate = rates[from..].iter().flatten().cloned().fold(0.0, f64::max);
    out.push_str(&format!(
        "rate  {}  max {}\n",
        spark(&rates[from..], max_rate),
        if max_rate > 0.0 {
            rate_words(max_rate)
        } else {
            "-".into()
        }
    ));
    let utils: Vec<Option<f64>> = entries[from..].iter().map(|e| e.gpu_util).collect();
    out.push_str(&format!("gpu   {}  0-100%\n", spark(&utils, 100.0)));
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_header(vec!["time", "verdict", "step", "rate", "gpu", "gpu mem", "mem"]);
    let skip = entries.len().saturating_sub(last.max(1));
    for (e, r) in entries.iter().zip(rates).skip(skip) {
        let step = match (e.step, e.total) {
            (Some(s), Some(t)) => format!("{s}/{t}"),
            (Some(s), None) => s.to_string(),
            _ => "-".into(),
        };
        t.add_row(vec![
            short(e.at),
            e.verdict.to_string(),
            step,
            r.map(rate_words).unwrap_or_else(|| "-".into()),
            pct(e.gpu_util),
            pct(e.gpu_mem_pct),
            pct(e.mem_pct),
        ]);
    }
    out.push_str(&t.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    fn e(at: i64, step: u64, util: f64) -> Entry {
        Entry {
            at,
            verdict: Verdict::Running,
            step: Some(step),
            total: Some(100),
            gpu_util: Some(util),
            gpu_mem_pct: Some(80.0),
            gpus: 1,
            mem_pct: Some(40.0),
            run: Some(1),
        }
    }

    #[test]
    fn the_picture_shows_the_pace_halving_and_the_gpu_falling() {
        let mut h: Vec<Entry> = (0..6)
            .map(|i| e(1_780_000_000 + i * 1800, i as u64 * 10, 95.0))
            .collect();
        for i in 6..10 {
            h.push(e(1_780_000_000 + i * 1800, 50 + (i as u64 - 5) * 5, 20.0));
        }
        let rates = interval_rates(&h);
        assert_eq!(rates[0], None);
        assert_eq!(rates[1], Some(20.0));
        assert_eq!(rates[9], Some(10.0));
        let s = render("box", &h, &rates, 3, 80);
        assert!(s.starts_with("box: 10 ticks"), "{s}");
        assert!(s.contains("rate   █████▅▅▅▅  max 20.0/h"), "{s}");
        assert!(s.contains("gpu   ██████▂▂▂▂  0-100%"), "{s}");
        assert_eq!(s.lines().filter(|l| l.contains("RUNNING")).count(), 3, "{s}");
        assert!(s.contains("70/100"), "{s}");
        // six days of ticks fit 80 columns
        let long: Vec<Entry> = (0..288)
            .map(|i| e(1_780_000_000 + i * 1800, i as u64 * 1000, 95.0))
            .collect();
        let s = render("a100-box-with-a-long-name", &long, &interval_rates(&long), 5, 80);
        for l in s.lines() {
            assert!(l.chars().count() <= 80, "{} columns: {l}", l.chars().count());
        }
    }
}
