//! `gpupatrol wait`: a sentinel. A bounded local loop; each tick is one short
//! connection (the same tick as everywhere) that also checks the marker or
//! the text. Exit 0 found, 1 gave up after --max-ticks, 2 a failure came
//! first, 3 unknown (3 unreachable ticks in a row, auth, host key, usage,
//! interrupted). One waiter per profile: a second is refused, naming the
//! holder's pid, or with --supersede replaces it.

use std::time::Duration;

use serde::Serialize;

use super::patrol::{Breaker, sleep_or_signal};
use crate::cli::WaitArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::tick::{self, Extras};
use crate::verdict::Verdict;

#[derive(Debug, Serialize)]
struct Final<'a> {
    ts: String,
    profile: &'a str,
    wait: &'static str,
    ticks: u32,
    verdict: Option<Verdict>,
    detail: String,
    exit_code: i32,
    line: String,
}

pub async fn run(args: &WaitArgs, state_dir: Option<&std::path::Path>) -> Result<i32> {
    let profile = crate::profile::load(&args.profile)?;
    if args.pattern.is_some() && profile.job.log.is_none() {
        return Err(Error::Usage(format!(
            "--pattern looks in the run's own log, but {} has no job.log",
            args.profile.display()
        )));
    }
    if args.pattern.as_deref().is_some_and(str::is_empty) {
        return Err(Error::Usage("--pattern must not be empty".into()));
    }
    let store = super::store(state_dir)?;
    let what = match (&args.marker, &args.pattern) {
        (Some(m), _) => format!("marker {m}"),
        (_, Some(p)) => format!("text {p:?} in {}", profile.job.log.as_deref().unwrap_or("")),
        _ => unreachable!("clap requires one"),
    };
    let _waiter = match store.waiter_lock(&profile.name, &what) {
        Ok(l) => l,
        Err(holder) if args.supersede => {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &holder.pid.to_string()])
                .status();
            let mut taken = None;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(l) = store.waiter_lock(&profile.name, &what) {
                    taken = Some(l);
                    break;
                }
            }
            taken.ok_or_else(|| Error::Lock {
                path: store.dir().join(format!("{}.wait.lock", profile.name)),
                message: format!("waiter pid {} did not stop within 10s of SIGTERM", holder.pid),
            })?
        }
        Err(holder) => {
            return Err(Error::Usage(format!(
                "another gpupatrol wait (pid {}) is already watching profile {} for {}; one waiter per run — pass --supersede to replace it",
                holder.pid, profile.name, holder.what
            )));
        }
    };

    let mut extras = Extras {
        wait_marker: args.marker.clone(),
        wait_pattern: args.pattern.clone(),
        act: false,
        ..Default::default()
    };
    let mut breaker = Breaker::new(args.interval);
    let mut ticks = 0;
    let finish = |ticks: u32, outcome: &'static str, verdict: Option<Verdict>, detail: String, code: i32| {
        let ts = tick::now_rfc3339();
        let line = format!("{ts} {} wait {outcome}: {detail}", profile.name);
        let f = Final {
            ts,
            profile: &profile.name,
            wait: outcome,
            ticks,
            verdict,
            detail,
            exit_code: code,
            line,
        };
        if args.json {
            output::line(&serde_json::to_string(&f).expect("serializes"));
        } else {
            output::line(&f.line);
        }
        code
    };
    loop {
        ticks += 1;
        let t = tokio::select! {
            t = tick::run_with(&profile, &store, &extras) => t,
            s = crate::interrupted() => {
                return Ok(finish(ticks - 1, "interrupted", None, format!("{s} after {} ticks", ticks - 1), exit_codes::UNKNOWN));
            }
        };
        if !args.quiet {
            output::report(&t.report, args.json);
        }
        let v = t.report.verdict;
        if let Some(w) = t.facts.as_ref().and_then(|f| f.wait.as_ref()) {
            if w.found() {
                return Ok(finish(
                    ticks,
                    "found",
                    Some(v),
                    format!("{what} appeared (tick {ticks} of {})", args.max_ticks),
                    exit_codes::OK,
                ));
            }
            if let (Some(size), Some(inode)) = (w.pattern_size, w.pattern_inode) {
                extras.wait_offset = size;
                extras.wait_inode = inode;
            }
        }
        if v.is_failure() {
            let class = t
                .report
                .crash
                .as_ref()
                .map(|c| format!(" ({})", c.class))
                .unwrap_or_default();
            return Ok(finish(
                ticks,
                "failure",
                Some(v),
                format!("{v}{class} before {what} appeared — {}", t.report.remediation),
                exit_codes::CRITICAL,
            ));
        }
        if matches!(v, Verdict::AuthFailed | Verdict::HostkeyMismatch) {
            return Ok(finish(
                ticks,
                "unknown",
                Some(v),
                t.report.detail.clone().unwrap_or_default(),
                exit_codes::UNKNOWN,
            ));
        }
        let failed = matches!(v, Verdict::Unreachable | Verdict::ProbeError);
        if breaker.record(failed) {
            return Ok(finish(
                ticks,
                "unknown",
                Some(v),
                format!(
                    "{v} {} ticks in a row (circuit breaker) — {}",
                    breaker.limit(),
                    t.report.remediation
                ),
                exit_codes::UNKNOWN,
            ));
        }
        if ticks >= args.max_ticks {
            return Ok(finish(
                ticks,
                "gave-up",
                Some(v),
                format!("gave up after {ticks} ticks without {what} — check ground truth on the box"),
                exit_codes::WARNING,
            ));
        }
        if let Some(s) = sleep_or_signal(breaker.next_delay()).await {
            return Ok(finish(
                ticks,
                "interrupted",
                Some(v),
                format!("{s} after {ticks} ticks"),
                exit_codes::UNKNOWN,
            ));
        }
    }
}
