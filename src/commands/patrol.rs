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
/// capped at the interval), so a blip recovers fast and a dead box trips the
/// breaker in minutes, not in three full intervals. A good tick resets it.
pub struct Breaker {
    interval: Duration,
    failures: u32,
    backoff: Option<backon::ExponentialBackoff>,
}

impl Breaker {
    pub const LIMIT: u32 = 3;

    pub fn new(interval: Duration) -> Self {
        Breaker {
            interval,
            failures: 0,
            backoff: None,
        }
    }

    pub fn limit(&self) -> u32 {
        Self::LIMIT
    }

    /// Record a tick; true when the breaker trips.
    pub fn record(&mut self, failed: bool) -> bool {
        if failed {
            self.failures += 1;
        } else {
            self.failures = 0;
            self.backoff = None;
        }
        self.failures >= Self::LIMIT
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
    let mut active: Vec<bool> = vec![true; profiles.len()];
    let mut breakers: Vec<Breaker> = profiles.iter().map(|_| Breaker::new(args.every)).collect();
    let mut last_codes: Vec<i32> = vec![exit_codes::OK; profiles.len()];
    for round in 1..=args.max_ticks {
        let idx: Vec<usize> = (0..profiles.len()).filter(|i| active[*i]).collect();
        let ticks = tokio::select! {
            t = super::tick::futures_join_all(idx.iter().map(|i| tick::run(&profiles[*i], &store))) => t,
            s = crate::interrupted() => {
                output::line(&format!("{} patrol interrupted by {s} in tick {round}", tick::now_rfc3339()));
                return Ok(exit_codes::UNKNOWN);
            }
        };
        for (i, t) in idx.iter().zip(&ticks) {
            output::report(&t.report, args.json);
            last_codes[*i] = t.report.exit_code;
            let v = t.report.verdict;
            let failed = matches!(v, Verdict::Unreachable | Verdict::ProbeError);
            if breakers[*i].record(failed) {
                active[*i] = false;
                let msg = format!(
                    "{} {} patrol stopped: {v} {} ticks in a row (circuit breaker) — {}",
                    tick::now_rfc3339(),
                    profiles[*i].name,
                    Breaker::LIMIT,
                    t.report.remediation
                );
                if args.json {
                    output::line(&serde_json::json!({"ts": tick::now_rfc3339(), "profile": profiles[*i].name, "patrol": "stopped", "reason": "circuit breaker", "verdict": v, "exit_code": exit_codes::UNKNOWN, "line": msg}).to_string());
                } else {
                    output::line(&msg);
                }
            } else if args.until_terminal && v.is_terminal() {
                active[*i] = false;
            }
        }
        if !active.iter().any(|a| *a) || round == args.max_ticks {
            break;
        }
        let delay = (0..profiles.len())
            .filter(|i| active[*i])
            .map(|i| breakers[i].next_delay())
            .min()
            .unwrap_or(args.every);
        if let Some(s) = sleep_or_signal(delay).await {
            output::line(&format!(
                "{} patrol interrupted by {s} after tick {round}",
                tick::now_rfc3339()
            ));
            return Ok(exit_codes::UNKNOWN);
        }
    }
    let worst = last_codes.into_iter().max().unwrap_or(exit_codes::UNKNOWN);
    Ok(if bad > 0 { exit_codes::UNKNOWN.max(worst) } else { worst })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_trips_after_three_and_resets_on_a_good_tick() {
        let mut b = Breaker::new(Duration::from_secs(1800));
        assert!(!b.record(true));
        assert!(b.next_delay() <= Duration::from_secs(1800));
        assert!(
            b.next_delay() < Duration::from_secs(1800),
            "retries come sooner than the interval"
        );
        assert!(!b.record(true));
        assert!(!b.record(false), "a good tick resets");
        assert_eq!(b.next_delay(), Duration::from_secs(1800));
        assert!(!b.record(true));
        assert!(!b.record(true));
        assert!(b.record(true));
    }
}
