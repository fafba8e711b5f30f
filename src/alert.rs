//! Alerts: when to send ([`due`], pure) and sending ([`send`]). An alert
//! fires when the verdict differs from the last one *delivered* (so it does
//! not matter which command — tick, patrol, a waiter — saw the change first),
//! at most once per `alert.cooldown` per profile across verdicts, unless the
//! news is more urgent than what was last delivered; a critical or unknown
//! verdict is reminded once per cooldown. Only a delivery that worked counts:
//! a failed one is retried after a minute, then two, four… (capped at the
//! cooldown). DONE alerts once; a return to ok after a delivered problem
//! alerts once per cooldown. Report text reaches the command only through
//! environment variables.

use std::time::Duration;

use crate::profile::Alert;
use crate::report::Report;
use crate::state::AlertState;
use crate::verdict::Severity;

/// How long to wait after the `n`th failed delivery in a row: a minute,
/// doubling, capped at the cooldown (at most 30 minutes).
pub fn retry_after(n: u32, cooldown: Duration) -> i64 {
    let cap = cooldown.as_secs().min(1800) as i64;
    let d = 60i64.saturating_mul(1i64 << n.saturating_sub(1).min(20));
    d.min(cap)
}

/// What the news of a report is, for telling a retry of the same news from
/// new news of the same verdict: the verdict, what was done, a failed GPU.
fn news(r: &Report) -> String {
    // the kind of action, not its figures ("last resume 3m ago, …" changes
    // every tick): its words up to the first figure
    let action = r.action.as_deref().unwrap_or("");
    let action = &action[..action.find(|c: char| c.is_ascii_digit()).unwrap_or(action.len())];
    format!("{}|{action}|{}", r.verdict, gpu_hardware(r))
}

/// The report warns of a failed GPU.
fn gpu_hardware(r: &Report) -> bool {
    r.warnings.iter().any(|w| w.starts_with("gpu_hardware:"))
}

/// Should this report alert? `now` is our clock (epoch s).
pub fn due(cfg: &Alert, st: &AlertState, r: &Report, now: i64) -> bool {
    // a delivery that keeps failing backs off (a webhook that is down, a
    // command that delivers and then exits 1): no storm, whatever the news
    if st.failures > 0 && st.retry_at.is_some_and(|t| now < t) {
        return false;
    }
    // A failed GPU is news once, whatever the verdict and the cooldown (the
    // run may still be RUNNING on the other GPUs).
    if gpu_hardware(r) && !st.hardware_told {
        return true;
    }
    // A spent restart budget is news once, whatever the cooldown.
    let budget_news = r
        .action
        .as_deref()
        .is_some_and(|a| a.starts_with("restart budget spent"))
        && st.last_action.as_deref() != r.action.as_deref();
    if budget_news {
        return true;
    }
    // the last attempt at this very news failed: try again now
    if st.undelivered == Some(r.verdict) {
        return true;
    }
    let cooldown = cfg.cooldown.as_secs() as i64;
    let cooled = st.last_at.is_none_or(|t| now - t >= cooldown);
    // the run finished: news once, at once, also as a warning (a box that
    // still bills for it), whatever was delivered before
    if r.verdict == crate::verdict::Verdict::Done && st.last_verdict != Some(r.verdict) {
        return true;
    }
    if r.severity == Severity::Ok {
        if st.last_verdict == Some(r.verdict) {
            return false;
        }
        // the run finished: news once, at once
        if r.verdict == crate::verdict::Verdict::Done {
            return true;
        }
        // back to ok after a problem was delivered: once, after the cooldown
        // (a run that flaps between RUNNING and STALLED alerts once per cooldown)
        return cooled && st.last_severity.is_some_and(|s| s != Severity::Ok);
    }
    if st.last_verdict != Some(r.verdict) {
        // news: at once after the cooldown, or sooner when it is more urgent
        // than what was last delivered (flapping between two bad verdicts
        // alerts once per cooldown)
        return cooled || r.severity.urgency() > st.last_severity.map(Severity::urgency).unwrap_or(0);
    }
    // the same verdict: remind while critical or unknown, and while a box
    // bills for a run that ended, once per cooldown (until someone stops it)
    let billing = r.warnings.iter().any(|w| w.contains(crate::history::BILLED));
    (matches!(r.severity, Severity::Critical | Severity::Unknown) || billing) && cooled
}

/// Record an attempt in the alert state: a delivery that worked moves the
/// bookkeeping on; one that failed leaves it, and the next attempt waits
/// ([`retry_after`]).
pub fn record(st: &mut AlertState, cfg: &Alert, r: &Report, now: i64, problem: Option<&str>) {
    record_failed(st, cfg, r, now, problem, &[])
}

/// [`record`], remembering which channels failed (the retry goes to those).
pub fn record_failed(st: &mut AlertState, cfg: &Alert, r: &Report, now: i64, problem: Option<&str>, failed: &[String]) {
    match problem {
        None => {
            st.failed.clear();
            st.failed_news = None;
            st.last_at = Some(now);
            st.last_verdict = Some(r.verdict);
            st.last_severity = Some(r.severity);
            st.last_action = r.action.clone();
            st.undelivered = None;
            st.failures = 0;
            st.retry_at = None;
            st.hardware_told = gpu_hardware(r);
        }
        Some(_) => {
            st.failed = failed.to_vec();
            st.failed_news = Some(news(r));
            st.undelivered = Some(r.verdict);
            st.failures = st.failures.saturating_add(1);
            st.retry_at = Some(now.saturating_add(retry_after(st.failures, cfg.cooldown)));
        }
    }
}

/// What one alert attempt came to: the problem to report, if any, and the
/// channels that failed (a retry goes to those only: the others delivered).
#[derive(Debug, Default)]
pub struct Outcome {
    pub problem: Option<String>,
    pub failed: Vec<String>,
}

/// The channels an attempt goes to: every channel that is set, or, when the
/// last attempt at this very news failed part-way, the ones that failed.
pub fn channels(cfg: &Alert, st: &AlertState, r: &Report) -> Vec<&'static str> {
    let all: Vec<&'static str> = [
        cfg.command.as_ref().map(|_| "command"),
        cfg.flag_file.as_ref().map(|_| "flag_file"),
    ]
    .into_iter()
    .flatten()
    .chain(cfg.endpoints().map(|e| e.channel))
    .collect();
    // only the very news that failed goes to the failed channels alone: a
    // spent budget or a lost GPU since is news for every channel
    if st.undelivered == Some(r.verdict) && !st.failed.is_empty() && st.failed_news.as_deref() == Some(&news(r)) {
        let again: Vec<&'static str> = all
            .iter()
            .copied()
            .filter(|c| st.failed.iter().any(|f| f == c))
            .collect();
        if !again.is_empty() {
            return again;
        }
    }
    all
}

/// Send to `to` (see [`channels`]), all at once: write the flag file, run the
/// command (bounded by `alert.timeout`; past it, its whole process group is
/// killed), POST to each endpoint (bounded by `alert.http_timeout`).
pub async fn send(cfg: &Alert, r: &Report, message: &str, to: &[&str]) -> Outcome {
    let on = |c: &str| to.contains(&c);
    let mut failed: Vec<(String, String)> = Vec::new();
    if on("flag_file")
        && let Some(flag) = &cfg.flag_file
        && let Err(e) = crate::fsutil::write_atomic(flag, format!("{message}\n").as_bytes())
    {
        failed.push(("flag_file".into(), format!("flag file {}: {e}", flag.display())));
    }
    let command = async {
        match &cfg.command {
            Some(cmd) if on("command") => run_command(cfg, cmd, r, message).await.err(),
            _ => None,
        }
    };
    let (c, w, n, s) = tokio::join!(
        command,
        endpoint(cfg, cfg.webhook.as_ref(), to, r, message),
        endpoint(cfg, cfg.ntfy.as_ref(), to, r, message),
        endpoint(cfg, cfg.slack.as_ref(), to, r, message)
    );
    failed.extend(c.map(|e| ("command".to_string(), e)));
    failed.extend([w, n, s].into_iter().flatten());
    Outcome {
        problem: (!failed.is_empty()).then(|| {
            format!(
                "alert: delivery failed: {}",
                failed.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>().join("; ")
            )
        }),
        failed: failed.into_iter().map(|(c, _)| c).collect(),
    }
}

/// POST to one endpoint, if it is set and among `to`: `(channel, problem)` on failure.
async fn endpoint(
    cfg: &Alert,
    ep: Option<&crate::notify::Endpoint>,
    to: &[&str],
    r: &Report,
    message: &str,
) -> Option<(String, String)> {
    let ep = ep.filter(|e| to.contains(&e.channel))?;
    crate::notify::notify(ep, r, message, cfg.http_timeout)
        .await
        .err()
        .map(|e| (ep.channel.to_string(), e))
}

/// Run the alert command: the report only in its environment.
async fn run_command(cfg: &Alert, cmd: &str, r: &Report, message: &str) -> Result<(), String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("GPUPATROL_PROFILE", &r.profile)
        .env("GPUPATROL_VERDICT", r.verdict.as_str())
        .env("GPUPATROL_SEVERITY", format!("{:?}", r.severity).to_lowercase())
        .env("GPUPATROL_PREVIOUS", r.previous.map(|p| p.as_str()).unwrap_or(""))
        .env("GPUPATROL_LINE", &r.line)
        .env("GPUPATROL_MESSAGE", message)
        .env("GPUPATROL_REMEDIATION", &r.remediation)
        .env("GPUPATROL_TS", &r.ts)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // its own process group: a timeout kills all of it, not only `sh`
        .process_group(0)
        .kill_on_drop(true);
    match c.spawn() {
        Err(e) => Err(format!("command: {e}")),
        Ok(mut child) => match tokio::time::timeout(cfg.timeout, child.wait()).await {
            Ok(Ok(st)) if st.success() => Ok(()),
            Ok(Ok(st)) => Err(format!("command exited {}", st.code().unwrap_or(-1))),
            Ok(Err(e)) => Err(format!("command: {e}")),
            Err(_) => {
                if let Some(pid) = child.id() {
                    kill_group(pid);
                }
                let _ = child.kill().await;
                Err(format!(
                    "command ran past {} and was killed with its process group",
                    crate::duration::human(cfg.timeout)
                ))
            }
        },
    }
}

/// SIGKILL the process group `pgid` (the alert command and everything it started).
fn kill_group(pgid: u32) {
    if pgid <= 1 {
        return;
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    // let the group's processes be gone before we report
    std::thread::sleep(Duration::from_millis(50));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    fn cfg() -> Alert {
        Alert {
            command: None,
            flag_file: None,
            cooldown: Duration::from_secs(900),
            timeout: Duration::from_secs(30),
            webhook: None,
            ntfy: None,
            slack: None,
            heartbeat: None,
            http_timeout: Duration::from_secs(10),
        }
    }

    fn rep(v: Verdict, changed: bool) -> Report {
        Report {
            ts: String::new(),
            profile: "p".into(),
            verdict: v,
            severity: v.base_severity(),
            exit_code: 0,
            changed,
            previous: None,
            remediation: String::new(),
            warnings: vec![],
            notes: vec![],
            detail: None,
            rule: "",
            progress: crate::report::ProgressJson {
                step: None,
                line: None,
                stalled_for_s: None,
                delta: None,
                total: None,
                rate_per_h: None,
                eta_s: None,
                eta_at: None,
            },
            alive: None,
            gpus: vec![],
            gpu_status: "unknown",
            disk: None,
            cgroup: None,
            crash: None,
            action: None,
            transport: "ssh",
            connections: 1,
            elapsed_ms: 0,
            cost: None,
            line: String::new(),
        }
    }

    fn delivered(v: Verdict, at: i64) -> AlertState {
        AlertState {
            last_at: Some(at),
            last_verdict: Some(v),
            last_severity: Some(v.base_severity()),
            ..Default::default()
        }
    }

    #[test]
    fn change_into_critical_alerts_then_reminds_once_per_cooldown() {
        let st = AlertState::default();
        assert!(due(&cfg(), &st, &rep(Verdict::Died, true), 1000));
        let st = delivered(Verdict::Died, 1000);
        assert!(!due(&cfg(), &st, &rep(Verdict::Died, false), 1100));
        assert!(due(&cfg(), &st, &rep(Verdict::Died, false), 1900));
    }

    #[test]
    fn a_finished_run_on_a_billing_box_is_reminded_once_per_cooldown() {
        let mut r = rep(Verdict::Done, false);
        r.severity = Severity::Warning;
        r.warnings = vec!["DONE 2h ago, box still billed: ~$4.80 at $2.40/h: stop the box".into()];
        let mut st = delivered(Verdict::Done, 1000);
        st.last_severity = Some(Severity::Warning);
        assert!(!due(&cfg(), &st, &r, 1100), "within the cooldown");
        // DONE after a STALLED alert a minute ago: news at once, warning or not
        let stalled = delivered(Verdict::Stalled, 1000);
        assert!(due(&cfg(), &stalled, &r, 1060));
        assert!(due(&cfg(), &st, &r, 1900), "after it: a reminder");
        r.warnings = vec!["disk 91% used".into()];
        assert!(!due(&cfg(), &st, &r, 1900), "another warning is not reminded");
    }

    #[test]
    fn a_failed_gpu_is_news_once_even_while_running() {
        // RUNNING with a warning was delivered a minute ago; now a GPU is lost
        let mut st = delivered(Verdict::Running, 1000);
        st.last_severity = Some(Severity::Warning);
        let mut r = rep(Verdict::Running, false);
        r.severity = Severity::Warning;
        r.warnings = vec!["gpu_hardware: 7 of the 8 GPUs seen earlier answer".into()];
        assert!(due(&cfg(), &st, &r, 1060), "news, whatever the cooldown");
        record(&mut st, &cfg(), &r, 1060, None);
        assert!(!due(&cfg(), &st, &r, 1120), "once");
        // gone, then back: news again
        let mut ok = rep(Verdict::Running, false);
        ok.severity = Severity::Warning;
        ok.warnings = vec!["disk 91% used".into()];
        record(&mut st, &cfg(), &ok, 2000, None);
        assert!(due(&cfg(), &st, &r, 2010));
    }

    #[test]
    fn flapping_between_two_bad_verdicts_alerts_once_per_cooldown() {
        // DIED <-> UNREACHABLE six times in a second, cooldown 15m
        let mut st = AlertState::default();
        let mut sent = 0;
        for (i, v) in [Verdict::Died, Verdict::Unreachable]
            .iter()
            .cycle()
            .take(12)
            .enumerate()
        {
            let r = rep(*v, true);
            if due(&cfg(), &st, &r, 1000 + i as i64 / 6) {
                record(&mut st, &cfg(), &r, 1000, None);
                sent += 1;
            }
        }
        assert_eq!(sent, 1);
        // more urgent news beats the cooldown: unreachable, then the box is back and the run is dead
        let st = delivered(Verdict::Unreachable, 1000);
        assert!(due(&cfg(), &st, &rep(Verdict::Died, true), 1001));
        // a different but not more urgent verdict waits for the cooldown
        let st = delivered(Verdict::Died, 1000);
        assert!(!due(&cfg(), &st, &rep(Verdict::Stalled, true), 1001));
        assert!(due(&cfg(), &st, &rep(Verdict::Stalled, true), 1900));
        assert!(
            !due(&cfg(), &st, &rep(Verdict::Running, true), 1200),
            "a recovery waits for the cooldown"
        );
        assert!(
            due(&cfg(), &st, &rep(Verdict::Running, true), 1900),
            "then says so once"
        );
        let st = delivered(Verdict::Running, 1000);
        assert!(
            !due(&cfg(), &st, &rep(Verdict::Running, false), 9000),
            "ok is not reminded"
        );
    }

    #[test]
    fn the_change_is_news_whoever_saw_it_first() {
        // a waiter recorded UNREACHABLE in the shared state: tick's report says
        // "unchanged", but nothing about it was ever delivered
        let st = delivered(Verdict::Running, 0);
        assert!(due(&cfg(), &st, &rep(Verdict::Unreachable, false), 5000));
    }

    #[test]
    fn a_failed_delivery_is_retried_and_unknown_is_reminded() {
        let mut st = AlertState::default();
        let r = rep(Verdict::Incomplete, true);
        assert!(due(&cfg(), &st, &r, 1000));
        record(
            &mut st,
            &cfg(),
            &r,
            1000,
            Some("alert: delivery failed: command exited 1"),
        );
        assert_eq!(st.last_at, None, "a failure is not a delivery");
        let again = rep(Verdict::Incomplete, false);
        assert!(!due(&cfg(), &st, &again, 1001), "not at once: it backs off");
        assert!(due(&cfg(), &st, &again, 1060), "retried after a minute");
        record(&mut st, &cfg(), &again, 1060, None);
        assert!(!due(&cfg(), &st, &again, 5000), "warnings are not reminded");
        let st = delivered(Verdict::Unreachable, 1000);
        assert!(!due(&cfg(), &st, &rep(Verdict::Unreachable, false), 1100));
        assert!(
            due(&cfg(), &st, &rep(Verdict::Unreachable, false), 1900),
            "unknown is reminded"
        );
    }

    #[test]
    fn a_retry_goes_to_the_failed_channels_only_for_the_same_news() {
        let mut c = cfg();
        c.command = Some("true".into());
        c.flag_file = Some("/tmp/x".into());
        let mut st = AlertState::default();
        let r = rep(Verdict::Died, true);
        assert_eq!(channels(&c, &st, &r), ["command", "flag_file"]);
        record_failed(
            &mut st,
            &c,
            &r,
            1000,
            Some("alert: delivery failed: …"),
            &["command".to_string()],
        );
        assert_eq!(
            channels(&c, &st, &rep(Verdict::Died, false)),
            ["command"],
            "the same news"
        );
        let mut spent = rep(Verdict::Died, false);
        spent.action = Some("restart budget spent (1/1 within 6h); not resuming".into());
        assert_eq!(
            channels(&c, &st, &spent),
            ["command", "flag_file"],
            "new news, same verdict"
        );
        // an action whose figures move on every tick is the same news
        let mut cool = rep(Verdict::Died, false);
        cool.action = Some("last resume 3s ago, restart_cooldown 1h; not resuming yet".into());
        record_failed(
            &mut st,
            &c,
            &cool,
            1000,
            Some("alert: delivery failed: …"),
            &["command".to_string()],
        );
        cool.action = Some("last resume 5m ago, restart_cooldown 1h; not resuming yet".into());
        assert_eq!(channels(&c, &st, &cool), ["command"]);
        assert_eq!(
            channels(&c, &st, &rep(Verdict::Crashed, true)),
            ["command", "flag_file"]
        );
        record(&mut st, &c, &r, 1100, None);
        assert!(st.failed.is_empty() && st.failed_news.is_none());
    }

    #[test]
    fn a_spent_budget_alerts_once() {
        let mut r = rep(Verdict::Died, false);
        r.action = Some("restart budget spent (3/3 within 6h); not resuming".into());
        let st = delivered(Verdict::Died, 1000);
        assert!(due(&cfg(), &st, &r, 1001));
        let st = AlertState {
            last_action: r.action.clone(),
            ..st
        };
        assert!(!due(&cfg(), &st, &r, 1002));
    }

    #[test]
    fn done_alerts_once_at_once_and_a_first_running_is_quiet() {
        let st = delivered(Verdict::Stalled, 1000);
        assert!(
            due(&cfg(), &st, &rep(Verdict::Done, true), 1001),
            "DONE beats the cooldown"
        );
        let st = delivered(Verdict::Done, 1001);
        assert!(!due(&cfg(), &st, &rep(Verdict::Done, false), 99_999));
        assert!(
            !due(&cfg(), &AlertState::default(), &rep(Verdict::Running, true), 1000),
            "nothing to recover from"
        );
        assert!(due(&cfg(), &AlertState::default(), &rep(Verdict::Done, true), 1000));
    }

    #[test]
    fn failing_deliveries_back_off_to_the_cooldown() {
        // a command that delivers and then exits 1, ticks every 90s for two hours
        let mut st = AlertState::default();
        let mut attempts = 0;
        for i in 0..80 {
            let now = 1000 + i * 90;
            let r = rep(Verdict::Died, i == 0);
            if due(&cfg(), &st, &r, now) {
                attempts += 1;
                record(
                    &mut st,
                    &cfg(),
                    &r,
                    now,
                    Some("alert: delivery failed: command exited 1"),
                );
            }
        }
        // 60, 120, 240, 480, then every 900s (the cooldown): about 12, never 80
        assert!((8..=14).contains(&attempts), "{attempts}");
        assert_eq!(retry_after(1, Duration::from_secs(900)), 60);
        assert_eq!(retry_after(30, Duration::from_secs(900)), 900);
        assert_eq!(retry_after(30, Duration::from_secs(86_400)), 1800);
    }
}
