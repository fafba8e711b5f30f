//! `gpupatrol patrol`: a bounded loop of ticks over several profiles. One
//! line per profile per tick, even when nothing changed. Always exits: after
//! --max-ticks, when every profile reached a terminal verdict
//! (--until-terminal), or when the circuit breaker has stopped every profile.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::cli::PatrolArgs;
use crate::error::Result;
use crate::exit_codes;
use crate::output;
use crate::tick;
use crate::verdict::Verdict;

/// Consecutive-failure circuit breaker with backoff between failed ticks.
/// After a failed tick the next one comes sooner (exponential, jittered,
/// capped at the interval), so a blip recovers fast. It trips after at least
/// 3 failed ticks in a row that span at least 3 intervals or 10 minutes,
/// whichever is shorter: the quick retries alone never stop an overnight
/// patrol during a box's reboot. A good tick resets it.
pub struct Breaker {
    interval: Duration,
    failures: u32,
    since: Option<std::time::Instant>,
    backoff: Option<backon::ExponentialBackoff>,
}

impl Breaker {
    pub const LIMIT: u32 = 3;

    pub fn new(interval: Duration) -> Self {
        Breaker {
            interval,
            failures: 0,
            since: None,
            backoff: None,
        }
    }

    /// How long an outage must last before the breaker trips.
    pub fn min_outage(&self) -> Duration {
        (self.interval * 3).min(Duration::from_secs(600).max(self.interval))
    }

    /// Failed ticks in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long the current run of failures has lasted.
    pub fn outage(&self) -> Duration {
        self.since.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Record a tick; true when the breaker trips.
    pub fn record(&mut self, failed: bool) -> bool {
        self.record_at(failed, std::time::Instant::now())
    }

    pub fn record_at(&mut self, failed: bool, now: std::time::Instant) -> bool {
        if !failed {
            self.failures = 0;
            self.since = None;
            self.backoff = None;
            return false;
        }
        self.failures += 1;
        let since = *self.since.get_or_insert(now);
        self.failures >= Self::LIMIT && now.duration_since(since) >= self.min_outage()
    }

    /// "UNREACHABLE 5 ticks in a row over 12m" (for the stop line).
    pub fn describe(&self, v: Verdict) -> String {
        format!(
            "{v} {} ticks in a row over {}",
            self.failures,
            crate::duration::human(Duration::from_secs(self.outage().as_secs().max(1)))
        )
    }

    /// How long to wait before the next tick.
    pub fn next_delay(&mut self) -> Duration {
        if self.failures == 0 {
            return self.interval;
        }
        let interval = self.interval;
        let b = self.backoff.get_or_insert_with(|| {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(5).min(interval))
                .with_max_delay(interval)
                .with_jitter()
                .without_max_times()
                .build()
        });
        b.next().unwrap_or(interval).min(interval)
    }
}

/// Sleep, or return the signal's name if SIGINT/SIGTERM comes first.
pub async fn sleep_or_signal(d: Duration) -> Option<&'static str> {
    tokio::select! {
        _ = tokio::time::sleep(d) => None,
        s = crate::interrupted() => Some(s),
    }
}

pub async fn run(args: &PatrolArgs, state_dir: Option<&std::path::Path>) -> Result<i32> {
    let (profiles, bad) = super::load_profiles(&args.profiles);
    if profiles.is_empty() {
        return Ok(exit_codes::UNKNOWN);
    }
    super::tick::unique_names(&profiles)?;
    let store = super::store(state_dir)?;
    // Each profile keeps its own schedule: a failing box's backoff spaces its
    // own retries and never pulls the healthy ones forward.
    let slots = tokio::sync::Semaphore::new(args.jobs as usize);
    let view = View::new(args);
    let loops = super::tick::futures_join_all(profiles.iter().map(|p| one(p, &store, args, &slots, &view)));
    let codes = tokio::select! {
        c = loops => c,
        s = crate::interrupted() => {
            output::line(&format!("{} patrol interrupted by {s}", tick::now_rfc3339()));
            return Ok(exit_codes::UNKNOWN);
        }
    };
    let worst = codes.into_iter().max().unwrap_or(exit_codes::UNKNOWN);
    Ok(if bad > 0 { exit_codes::UNKNOWN.max(worst) } else { worst })
}

/// One profile's patrol: up to --max-ticks ticks, each followed by its own
/// delay (the interval, or the breaker's backoff after a failed tick).
/// Returns the last tick's exit code.
async fn one(
    profile: &crate::profile::Profile,
    store: &crate::state::Store,
    args: &PatrolArgs,
    slots: &tokio::sync::Semaphore,
    view: &View,
) -> i32 {
    let mut breaker = Breaker::new(args.every);
    let mut last = exit_codes::UNKNOWN;
    for n in 1..=args.max_ticks {
        let t = crate::tick::run_paced(profile, store, slots, Some(args.every)).await;
        view.show(&t, profile, args);
        last = t.report.exit_code;
        let v = t.report.verdict;
        if breaker.record(matches!(v, Verdict::Unreachable | Verdict::ProbeError)) {
            let msg = format!(
                "{} {} patrol stopped: {} (circuit breaker) — {}",
                tick::now_rfc3339(),
                profile.name,
                breaker.describe(v),
                t.report.remediation
            );
            if args.json {
                output::line(&serde_json::json!({"ts": tick::now_rfc3339(), "profile": profile.name, "patrol": "stopped", "reason": "circuit breaker", "verdict": v, "exit_code": exit_codes::UNKNOWN, "line": msg}).to_string());
            } else {
                output::line(&msg);
            }
            break;
        }
        // a run this tick resumed is not over: keep watching it
        if args.until_terminal && v.is_terminal() && !t.resumed {
            break;
        }
        if n == args.max_ticks {
            break;
        }
        tokio::time::sleep(breaker.next_delay()).await;
    }
    last
}

/// What the patrol shows and writes after each tick: the line (or, with
/// `--table` on a terminal, one redrawn table of every profile's last tick)
/// and the `--prom-file` with every profile's last tick.
struct View {
    table: bool,
    latest: std::sync::Mutex<std::collections::BTreeMap<String, (crate::report::Report, crate::state::Summary)>>,
}

impl View {
    fn new(args: &PatrolArgs) -> View {
        use std::io::IsTerminal;
        let table = args.table && std::io::stdout().is_terminal();
        if args.table && !table {
            eprintln!("gpupatrol: --table needs a terminal on stdout; printing lines");
        }
        View {
            table,
            latest: Default::default(),
        }
    }

    fn show(&self, t: &crate::tick::Tick, p: &crate::profile::Profile, args: &PatrolArgs) {
        let r = &t.report;
        if !self.table {
            super::tick::print(r, p, args.json, &args.exports);
        }
        if !self.table && args.exports.prom_file.is_none() {
            return;
        }
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        // the row from this tick's own report (what it found, even when it
        // could not take the lock or save its state)
        let sum = crate::fleet::summarize(r, p, Some(args.every), chrono::Utc::now().timestamp());
        latest.insert(r.profile.clone(), (r.clone(), sum));
        if let Some(path) = &args.exports.prom_file {
            let reports: Vec<&crate::report::Report> = latest.values().map(|(r, _)| r).collect();
            super::tick::write_prom(path, &reports);
        }
        if self.table {
            // the rows `status` would show
            let now = chrono::Utc::now().timestamp();
            let mut rows: Vec<crate::fleet::Row> = latest
                .iter()
                .map(|(name, (_, sum))| crate::fleet::Row::live(name, sum.clone(), now))
                .collect();
            crate::fleet::sort(&mut rows);
            // home, clear the screen, draw
            output::line(&format!(
                "\x1b[H\x1b[2J{} patrol every {}, tick {}\n{}",
                tick::now_rfc3339(),
                crate::duration::human(args.every),
                r.ts,
                crate::fleet::table(&rows, crate::fleet::width())
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_trips_after_three_over_a_real_outage_and_resets_on_a_good_tick() {
        use std::time::Instant;
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut b = Breaker::new(Duration::from_secs(1800));
        assert_eq!(b.min_outage(), Duration::from_secs(1800));
        assert!(!b.record_at(true, at(0)));
        assert!(
            b.next_delay() < Duration::from_secs(1800),
            "retries come sooner than the interval"
        );
        // a reboot: quick retries fail for a few minutes, then the box is back
        assert!(!b.record_at(true, at(5)));
        assert!(!b.record_at(true, at(15)), "three quick failures are not an outage yet");
        assert!(!b.record_at(true, at(300)));
        assert!(!b.record_at(false, at(600)), "a good tick resets");
        assert_eq!(b.next_delay(), Duration::from_secs(1800));
        // a dead box: failures over the whole interval trip it
        assert!(!b.record_at(true, at(1000)));
        assert!(!b.record_at(true, at(1010)));
        assert!(!b.record_at(true, at(2000)));
        assert!(b.record_at(true, at(2800)));
        // short intervals: three intervals
        let b = Breaker::new(Duration::from_millis(300));
        assert_eq!(b.min_outage(), Duration::from_millis(900));
        let b = Breaker::new(Duration::from_secs(300));
        assert_eq!(b.min_outage(), Duration::from_secs(600));
    }
}
