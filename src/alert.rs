//! Alerts: when to send ([`due`], pure) and sending ([`send`]). An alert fires
//! on a change into a warning, critical or unknown verdict, and again as a
//! reminder while it stays critical, at most once per `alert.cooldown`; a
//! box that flaps between two verdicts alerts once per cooldown. Report text
//! reaches the command only through environment variables.

use std::time::Duration;

use crate::profile::Alert;
use crate::report::Report;
use crate::state::AlertState;
use crate::verdict::Severity;

/// Should this report alert? `now` is our clock (epoch s).
pub fn due(cfg: &Alert, st: &AlertState, r: &Report, now: i64) -> bool {
    // A spent restart budget is news once, whatever the cooldown.
    let budget_news = r
        .action
        .as_deref()
        .is_some_and(|a| a.starts_with("restart budget spent"))
        && st.last_action.as_deref() != r.action.as_deref();
    if budget_news {
        return true;
    }
    if r.severity == Severity::Ok {
        return false;
    }
    let cooldown = cfg.cooldown.as_secs() as i64;
    let cooled = st.last_at.is_none_or(|t| now - t >= cooldown);
    let same_as_last = st.last_verdict == Some(r.verdict);
    if r.changed && r.severity >= Severity::Warning {
        // A new bad verdict alerts at once, unless it is the one we alerted
        // about within the cooldown (flapping).
        return !same_as_last || cooled;
    }
    // Unchanged: remind while critical, once per cooldown.
    r.severity == Severity::Critical && cooled
}

/// Send: write the flag file and/or run the command (bounded to 30 s).
/// Returns a problem to report, if any.
pub async fn send(cfg: &Alert, r: &Report, message: &str) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(flag) = &cfg.flag_file {
        let tmp = flag.with_extension("tmp");
        let res = std::fs::write(&tmp, format!("{message}\n")).and_then(|_| std::fs::rename(&tmp, flag));
        if let Err(e) = res {
            problems.push(format!("alert flag file {}: {e}", flag.display()));
        }
    }
    if let Some(cmd) = &cfg.command {
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
            .kill_on_drop(true);
        match c.spawn() {
            Err(e) => problems.push(format!("alert command: {e}")),
            Ok(mut child) => match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(Ok(st)) if st.success() => {}
                Ok(Ok(st)) => problems.push(format!("alert command exited {}", st.code().unwrap_or(-1))),
                Ok(Err(e)) => problems.push(format!("alert command: {e}")),
                Err(_) => {
                    let _ = child.kill().await;
                    problems.push("alert command ran past 30s and was killed".into());
                }
            },
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
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
            detail: None,
            rule: "",
            progress: crate::report::ProgressJson {
                step: None,
                line: None,
                stalled_for_s: None,
                delta: None,
            },
            alive: None,
            gpus: vec![],
            gpu_status: "unknown",
            disk: None,
            cgroup: None,
            crash: None,
            resume: None,
            action: None,
            transport: "ssh",
            connections: 1,
            elapsed_ms: 0,
            line: String::new(),
        }
    }

    #[test]
    fn change_into_critical_alerts_then_reminds_once_per_cooldown() {
        let mut st = AlertState::default();
        assert!(due(&cfg(), &st, &rep(Verdict::Died, true), 1000));
        st.last_at = Some(1000);
        st.last_verdict = Some(Verdict::Died);
        assert!(!due(&cfg(), &st, &rep(Verdict::Died, false), 1100));
        assert!(due(&cfg(), &st, &rep(Verdict::Died, false), 1900));
    }

    #[test]
    fn flapping_alerts_once_per_cooldown() {
        let st = AlertState {
            last_at: Some(1000),
            last_verdict: Some(Verdict::Stalled),
            last_action: None,
        };
        assert!(
            !due(&cfg(), &st, &rep(Verdict::Stalled, true), 1200),
            "back to STALLED within cooldown"
        );
        assert!(
            due(&cfg(), &st, &rep(Verdict::Crashed, true), 1200),
            "a different bad verdict alerts"
        );
        assert!(!due(&cfg(), &st, &rep(Verdict::Running, true), 1200), "ok never alerts");
    }

    #[test]
    fn warnings_alert_on_change_but_are_not_reminded() {
        let st = AlertState {
            last_at: Some(0),
            last_verdict: Some(Verdict::Incomplete),
            last_action: None,
        };
        assert!(!due(&cfg(), &st, &rep(Verdict::Incomplete, false), 5000));
    }

    #[test]
    fn a_spent_budget_alerts_once() {
        let mut r = rep(Verdict::Died, false);
        r.action = Some("restart budget spent (3/3 within 6h); not resuming".into());
        let st = AlertState {
            last_at: Some(1000),
            last_verdict: Some(Verdict::Died),
            last_action: None,
        };
        assert!(due(&cfg(), &st, &r, 1001));
        let st = AlertState {
            last_action: r.action.clone(),
            ..st
        };
        assert!(!due(&cfg(), &st, &r, 1002));
    }
}
