//! `gpupatrol doctor`: preflight in one connection. A checklist (comfy-table)
//! with pass / warn / fail / skip and why: reachable, host key, auth, a POSIX
//! shell, the tools the profile needs, its paths, the data mount's free space
//! and inodes, clock skew. Exit with the monitoring-plugin code.

use std::path::Path;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::error::Result;
use crate::exit_codes;
use crate::output;
use crate::profile::{AliveCheck, Profile};
use crate::shell::export;
use crate::transport::PROBE_COMMAND;
use crate::transport::{Failure, Limits, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    /// Exit code when this check fails (3 connection, 2 required tool).
    #[serde(skip)]
    pub fail_code: i32,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fail_code: i32) -> Check {
    Check {
        check: name.to_string(),
        status,
        detail: detail.into(),
        fail_code,
    }
}

/// Tools the profile will use on the box: required, or optional (a warning
/// saying what is lost without it).
fn tools(p: &Profile) -> Vec<(&'static str, bool, &'static str)> {
    let mut t = vec![
        ("sh", true, "runs the probe"),
        ("awk", true, "bounds and frames every section"),
        ("sed", true, "reads key lines"),
        ("tail", true, "reads the log from the saved offset"),
        ("head", true, "bounds reads"),
        ("tr", true, "splits progress bars' \\r into lines"),
        ("cut", true, "caps log lines before they are scanned"),
        ("cksum", true, "tells a rotated or copytruncated log"),
        ("df", true, "disk and inodes"),
        ("stat", false, "log size and mtime (falls back to wc/date)"),
        (
            "timeout",
            false,
            "bounds each section on the box; without it a hung nvidia-smi or NFS df waits for probe_timeout",
        ),
        ("nvidia-smi", false, "GPU utilisation and memory"),
    ];
    match &p.job.alive {
        Some(AliveCheck::Tmux(_)) => t.push(("tmux", true, "job.alive: tmux")),
        Some(AliveCheck::Slurm(_)) => {
            t.push(("squeue", true, "job.alive: slurm"));
            t.push(("scontrol", false, "final job state after it leaves the queue"));
            t.push(("sacct", false, "final job state once scontrol forgot it"));
        }
        Some(AliveCheck::Pgrep(_)) => t.push(("pgrep", false, "job.alive: pgrep (without it /proc is read)")),
        Some(AliveCheck::Pidfile(_)) | None => {}
    }
    if let Some(c) = &p.chain {
        match c.detach {
            crate::chain::Detach::Slurm => {
                t.push(("sbatch", true, "chain.detach: slurm submits each stage"));
                t.push(("squeue", true, "chain.detach: slurm reads the stages' jobs"));
                t.push(("scancel", true, "chain install --force stops the old stages"));
            }
            crate::chain::Detach::Tmux => t.push(("tmux", true, "chain.detach: tmux")),
            crate::chain::Detach::Nohup => {
                t.push(("nohup", true, "chain.detach: nohup"));
                t.push((
                    "setsid",
                    false,
                    "chain.detach: nohup; without it the chain shares the installing session's group",
                ));
            }
        }
        if c.stages
            .iter()
            .any(|s| s.timeout.is_some() && matches!(s.action, crate::chain::Action::Run(_)))
        {
            t.push((
                "timeout",
                true,
                "a chain stage's timeout (without it stage timeouts are ignored)",
            ));
        }
    }
    // one row per tool: the strictest reason wins
    let mut out: Vec<(&'static str, bool, &'static str)> = Vec::new();
    for (name, req, why) in t {
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) if req && !e.1 => *e = (name, req, why),
            Some(_) => {}
            None => out.push((name, req, why)),
        }
    }
    out
}

/// Box paths to check: (label, path, whether missing is only a warning).
fn paths(p: &Profile) -> Vec<(String, String)> {
    let j = &p.job;
    let mut v = Vec::new();
    if let Some(l) = &j.log {
        v.push(("job.log".to_string(), l.clone()));
    }
    if let Some(l) = &j.master_log {
        v.push(("job.master_log".into(), l.clone()));
    }
    if let Some(AliveCheck::Pidfile(f)) = &j.alive {
        v.push(("job.alive.pidfile".into(), f.clone()));
    }
    if let Some(m) = &j.done_marker {
        v.push(("job.done_marker".into(), m.clone()));
    }
    for a in &p.artifacts {
        v.push(("artifacts.path".into(), a.path.clone()));
    }
    if let Some(d) = &p.data_mount {
        v.push(("data_mount".into(), d.clone()));
    }
    v
}

fn script(p: &Profile) -> String {
    let mut s = String::from("# shellcheck disable=SC2089,SC2090\nLC_ALL=C; export LC_ALL\n");
    let names: Vec<&str> = tools(p).iter().map(|t| t.0).collect();
    s.push_str(&export("GP_TOOLS", &names.join(" ")));
    let ps = paths(p);
    s.push_str(&export("GP_PATH_N", &ps.len().to_string()));
    for (i, (_, path)) in ps.iter().enumerate() {
        s.push_str(&export(&format!("GP_PATH_{}", i + 1), path));
    }
    s.push_str(&export("GP_DATA_MOUNT", p.data_mount.as_deref().unwrap_or("")));
    s.push_str(include_str!("../../templates/doctor.sh"));
    s
}

pub async fn checks(p: &Profile) -> Vec<Check> {
    let mut out = Vec::new();
    let t = match Transport::for_profile(p) {
        Ok(t) => t,
        Err(f) => {
            out.push(check("ssh config", Status::Fail, f.message(), exit_codes::UNKNOWN));
            return out;
        }
    };
    let conn = match &t {
        Transport::Local => {
            out.push(check("transport", Status::Pass, "local: this machine, no SSH", 0));
            t.connect().await.ok()
        }
        Transport::Ssh(target) => {
            let mut label = format!("{}@{}:{}", target.user, target.hostname, target.port);
            if !target.jumps.is_empty() {
                let hops: Vec<String> = target
                    .jumps
                    .iter()
                    .map(|j| format!("{}@{}:{}", j.user, j.hostname, j.port))
                    .collect();
                label.push_str(&format!(" (through jump host {})", hops.join(" → ")));
            }
            if target.proxy_command.is_some() {
                label.push_str(" (through the ssh config's ProxyCommand)");
            }
            match t.connect().await {
                Ok(c) => {
                    out.push(check("reachable", Status::Pass, format!("{label} answered SSH"), 0));
                    let s = c.session().cloned().unwrap_or_default();
                    let key = s.host_key.unwrap_or_else(|| "?".into());
                    if s.host_key_recorded {
                        out.push(check(
                            "host key",
                            Status::Warn,
                            format!(
                                "{key} was not known; recorded in {} (accept-new)",
                                target.known_hosts.display()
                            ),
                            0,
                        ));
                    } else {
                        out.push(check(
                            "host key",
                            Status::Pass,
                            format!("{key} matches {}", target.known_hosts.display()),
                            0,
                        ));
                    }
                    out.push(check("auth", Status::Pass, s.auth_method, 0));
                    Some(c)
                }
                Err(f) => {
                    let (reach, key, auth) = match &f {
                        Failure::Unreachable(m) => (check("reachable", Status::Fail, m.clone(), 3), None, None),
                        Failure::HostKey(m) => (
                            check("reachable", Status::Pass, format!("{label} answered SSH"), 0),
                            Some(check("host key", Status::Fail, m.clone(), 3)),
                            None,
                        ),
                        Failure::Auth(m) | Failure::Probe(m) => (
                            check("reachable", Status::Pass, format!("{label} answered SSH"), 0),
                            Some(check(
                                "host key",
                                Status::Pass,
                                format!("matches {}", target.known_hosts.display()),
                                0,
                            )),
                            Some(check("auth", Status::Fail, m.clone(), 3)),
                        ),
                    };
                    out.push(reach);
                    out.extend(key);
                    out.extend(auth);
                    None
                }
            }
        }
    };
    let Some(conn) = conn else {
        out.push(check("box checks", Status::Skip, "not connected", 0));
        return out;
    };
    let limits = Limits {
        deadline: p.probe_timeout,
        max_stdout: 256 * 1024,
    };
    let res = conn.exec(PROBE_COMMAND, script(p).as_bytes(), limits).await;
    conn.close().await;
    let text = match res {
        Ok(o) => crate::text::plain_lines(&String::from_utf8_lossy(&o.stdout)),
        Err(f) => {
            out.push(check("remote shell", Status::Fail, f.message(), 3));
            return out;
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    if !lines.contains(&"doctor=1") || !lines.contains(&"doctor_end=1") {
        out.push(check(
            "remote shell",
            Status::Fail,
            "`sh -s` did not run the check script (is sh a POSIX shell?)",
            3,
        ));
        return out;
    }
    let get = |k: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    out.push(check(
        "remote shell",
        Status::Pass,
        format!("POSIX sh ({})", get("shell").unwrap_or("sh")),
        0,
    ));
    for (tool, required, why) in tools(p) {
        let have = lines.contains(&format!("tool {tool} yes").as_str());
        let (status, detail) = match (have, required) {
            (true, _) => (Status::Pass, format!("present ({why})")),
            (false, true) => (Status::Fail, format!("missing: needed for {why}")),
            (false, false) => (Status::Warn, format!("missing: {why}")),
        };
        out.push(check(&format!("tool {tool}"), status, detail, exit_codes::CRITICAL));
    }
    for (i, (label, path)) in paths(p).iter().enumerate() {
        let st = lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("path {} ", i + 1)))
            .unwrap_or("?");
        let marker = label == "job.done_marker";
        let (status, detail) = match st {
            "readable" => (Status::Pass, format!("{path}: readable")),
            "missing" if marker => (Status::Pass, format!("{path}: not there yet (its folder exists)")),
            "missing" => (Status::Warn, format!("{path}: not there (yet?)")),
            "unreadable" => (Status::Fail, format!("{path}: exists but is not readable by this user")),
            "parent-missing" => (Status::Warn, format!("{path}: its folder does not exist")),
            other => (Status::Warn, format!("{path}: {other}")),
        };
        out.push(check(label, status, detail, exit_codes::CRITICAL));
    }
    let df = |tag: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(tag))
            .and_then(crate::probe::facts::df_line)
    };
    if let Some(mount) = &p.data_mount {
        out.push(df_check(
            "disk space",
            mount,
            df("b "),
            p.thresholds.disk_pct,
            Status::Warn,
            |kib| format!("{:.1} GiB free", kib as f64 / 1024.0 / 1024.0),
        ));
        out.push(df_check(
            "inodes",
            mount,
            df("i "),
            p.thresholds.inodes_pct,
            Status::Skip,
            |n| format!("{n} free"),
        ));
    }
    if let Some(n) = lines.iter().find_map(|l| l.strip_prefix("gpus ")) {
        let st = if n.trim() == "0" { Status::Warn } else { Status::Pass };
        out.push(check(
            "gpus",
            st,
            format!("nvidia-smi -L lists {n}"),
            exit_codes::WARNING,
        ));
    }
    if let Some(now) = get("now").and_then(|v| v.trim().parse::<i64>().ok()) {
        let skew = now.saturating_sub(chrono::Utc::now().timestamp());
        let st = if skew.abs() > 120 { Status::Warn } else { Status::Pass };
        out.push(check(
            "clock skew",
            st,
            format!("box clock {skew:+}s from ours (ages are measured with the box's clock either way)"),
            exit_codes::WARNING,
        ));
    }
    out
}

/// A disk or inode row from a parsed `df -P` line (used %, available).
/// `missing`: what no answer means (a hung NFS df is worth a warning; a
/// filesystem without inode counts is not).
fn df_check(
    name: &str,
    mount: &str,
    found: Option<(f64, u64)>,
    limit: f64,
    missing: Status,
    free: impl Fn(u64) -> String,
) -> Check {
    match found {
        Some((pct, avail)) => check(
            name,
            if pct >= limit { Status::Warn } else { Status::Pass },
            format!("{mount}: {pct:.0}% used, {}", free(avail)),
            exit_codes::WARNING,
        ),
        None => check(
            name,
            missing,
            format!("{mount}: df gave no numbers"),
            exit_codes::WARNING,
        ),
    }
}

pub fn exit_code(checks: &[Check]) -> i32 {
    checks
        .iter()
        .map(|c| match c.status {
            Status::Fail => c.fail_code.max(exit_codes::WARNING),
            Status::Warn => exit_codes::WARNING,
            Status::Pass | Status::Skip => exit_codes::OK,
        })
        .max()
        .unwrap_or(exit_codes::OK)
}

pub async fn run(args: &DoctorArgs) -> Result<i32> {
    let (profiles, bad) = super::load_profiles(&args.profiles);
    let mut worst = if bad > 0 { exit_codes::UNKNOWN } else { exit_codes::OK };
    for p in &profiles {
        let cs = checks(p).await;
        let code = exit_code(&cs);
        worst = worst.max(code);
        print(p, &cs, args.json);
    }
    Ok(worst)
}

/// The checks in one line: the counts, then each failing and warning check.
pub fn summary_line(ts: &str, p: &Profile, cs: &[Check]) -> String {
    let count = |st: Status| cs.iter().filter(|c| c.status == st).count();
    let mut line = format!(
        "{ts} {} doctor: {} pass, {} WARN, {} FAIL",
        p.name,
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    );
    for c in cs.iter().filter(|c| matches!(c.status, Status::Fail | Status::Warn)) {
        let word = if c.status == Status::Fail { "FAIL" } else { "WARN" };
        line.push_str(&format!(" | {word} {}: {}", c.check, c.detail));
    }
    line
}

/// The checks as a table (or one JSON line), with the exit code.
pub fn print(p: &Profile, cs: &[Check], json: bool) {
    let code = exit_code(cs);
    {
        if json {
            let ts = crate::tick::now_rfc3339();
            let line = summary_line(&ts, p, cs);
            output::line(
                &serde_json::json!({"ts": ts, "profile": p.name, "exit_code": code, "checks": cs, "line": line})
                    .to_string(),
            );
            return;
        }
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED)
            .set_header(vec!["check", "result", "detail"]);
        for c in cs {
            let r = match c.status {
                Status::Pass => "pass",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            t.add_row(vec![c.check.as_str(), r, c.detail.as_str()]);
        }
        output::line(&format!(
            "gpupatrol doctor: {} ({})",
            p.name,
            Path::new(&p.file).display()
        ));
        output::line(&t.to_string());
        output::line(&format!("exit {code}"));
    }
}
