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
use crate::tick;
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

/// A holder that took the lock a moment ago may not have written its pid
/// yet: look again for up to a second before taking "no pid" for an answer
/// (and take the lock if it was let go meanwhile).
async fn settled_holder(
    store: &crate::state::Store,
    name: &str,
    what: &str,
    mut holder: crate::state::Holder,
) -> std::result::Result<crate::state::Lock, crate::state::Holder> {
    for _ in 0..10 {
        if holder.pid > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        match store.waiter_lock(name, what) {
            Ok(lock) => return Ok(lock),
            Err(h) => holder = h,
        }
    }
    Err(holder)
}

/// Is `pid` a running gpupatrol (by its command line)?
fn is_gpupatrol(pid: u32) -> bool {
    let cmdline = match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(b) => String::from_utf8_lossy(&b).replace('\0', " "),
        Err(_) => std::process::Command::new("ps")
            .args(["-o", "command=", "-p", &pid.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default(),
    };
    cmdline
        .split_whitespace()
        .next()
        .is_some_and(|argv0| argv0.rsplit('/').next().is_some_and(|b| b.starts_with("gpupatrol")))
}

pub async fn run(args: &WaitArgs, state_dir: Option<&std::path::Path>) -> Result<i32> {
    let profile = crate::profile::load(&super::one_profile(&args.profile)?)?;
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
        Err(holder) if args.supersede => match settled_holder(&store, &profile.name, &what, holder).await {
            Ok(lock) => lock,
            Err(holder) => {
                // Never signal pid 0 (our own process group), 1, or a process that
                // is not a gpupatrol waiter (a pid reused since the file was written).
                let here = crate::state::hostname();
                if !holder.host.is_empty() && holder.host != here {
                    return Err(Error::Usage(format!(
                        "the waiter for profile {} runs on host {} (pid {}), not here ({here}); stop it there",
                        profile.name, holder.host, holder.pid
                    )));
                }
                if holder.pid <= 1 || !is_gpupatrol(holder.pid) {
                    return Err(Error::Usage(format!(
                        "another gpupatrol wait holds profile {}'s waiter lock, but {} is not a gpupatrol process; not signalling it (wait for it to end, or stop it yourself)",
                        profile.name,
                        if holder.pid <= 1 {
                            "its lock file names no usable pid".to_string()
                        } else {
                            format!("pid {}", holder.pid)
                        }
                    )));
                }
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
        },
        Err(holder) => {
            return Err(Error::Usage(format!(
                "another gpupatrol wait (pid {}) is already watching profile {} for {}; one waiter per run — pass --supersede to replace it",
                holder.pid, profile.name, holder.what
            )));
        }
    };

    let mut opts = tick::Options::observe(crate::probe::Request {
        ask: crate::probe::Ask::Wait,
        wait: crate::probe::WaitFor {
            marker: args.marker.clone(),
            pattern: args.pattern.clone(),
            cursor: Default::default(),
        },
    });
    let mut breaker = Breaker::new(args.interval);
    let mut ticks = 0;
    let started = std::time::Instant::now();
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
        let tick_started = std::time::Instant::now();
        // a tick that would end past --max-seconds is cut off there (a
        // waiter's tick only looks: nothing half-done is left behind)
        let cutoff = async {
            match args.max_seconds {
                Some(limit) => tokio::time::sleep(limit.saturating_sub(started.elapsed())).await,
                None => std::future::pending().await,
            }
        };
        let t = tokio::select! {
            t = tick::run_with(&profile, &store, &opts) => t,
            s = crate::interrupted() => {
                return Ok(finish(ticks - 1, "interrupted", None, format!("{s} after {} ticks", ticks - 1), exit_codes::UNKNOWN));
            }
            _ = cutoff => {
                let limit = args.max_seconds.unwrap_or_default();
                return Ok(finish(
                    ticks - 1,
                    "gave-up",
                    None,
                    format!(
                        "gave up after {} ticks without {what}: tick {ticks} had not finished at --max-seconds {} and was cut off — wait again to go on",
                        ticks - 1,
                        crate::duration::human_secs(limit.as_secs() as i64)
                    ),
                    exit_codes::WARNING,
                ));
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
                opts.request.wait.cursor = crate::state::LogCursor {
                    offset: size,
                    inode,
                    fp: w.pattern_fp.clone().unwrap_or_default(),
                    fp_len: w.pattern_fp_len.unwrap_or(0),
                };
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
                format!("{} (circuit breaker) — {}", breaker.describe(v), t.report.remediation),
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
        let delay = breaker.next_delay();
        if let Some(limit) = args.max_seconds {
            // the next tick would start after the pause and take about as
            // long as this one: give up now rather than end past the limit
            let next_end = started.elapsed() + delay + tick_started.elapsed();
            if next_end > limit {
                return Ok(finish(
                    ticks,
                    "gave-up",
                    Some(v),
                    format!(
                        "gave up after {ticks} ticks ({} of --max-seconds {}) without {what}; last tick: {} — wait again to go on",
                        crate::duration::human_secs(started.elapsed().as_secs() as i64),
                        crate::duration::human_secs(limit.as_secs() as i64),
                        t.report.line
                    ),
                    exit_codes::WARNING,
                ));
            }
        }
        if let Some(s) = sleep_or_signal(delay).await {
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
