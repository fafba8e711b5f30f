//! `gpupatrol triage`: classify a failure and give its fixed remediation.
//! `-p P` pulls the evidence from the box in one connection (the tick's probe
//! plus the kernel's OOM lines); `--log FILE` classifies a log already on
//! this machine. Exit 0 a class was found, 1 `unknown`, 3 errors.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use crate::cli::TriageArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::probe::Facts;
use crate::probe::facts::Gpus;
use crate::tick;
use crate::triage::{self, Class, Classification, Confidence};
use crate::verdict::Verdict;

/// How much of a local log is read (its end).
const LOCAL_TAIL: u64 = 1024 * 1024;

#[derive(Debug, Serialize)]
struct Out<'a> {
    ts: String,
    profile: Option<&'a str>,
    source: String,
    class: Class,
    confidence: Confidence,
    evidence: String,
    remediation: &'static str,
    crashed: bool,
    verdict: Option<Verdict>,
    excerpt: String,
    exit_code: i32,
    line: String,
}

pub async fn run(args: &TriageArgs, state_dir: Option<&Path>) -> Result<i32> {
    match (&args.profile, &args.log) {
        (Some(p), None) => remote(p, args.json, state_dir).await,
        (None, Some(f)) => local(f, args.json),
        _ => Err(Error::Usage("give -p PROFILE (remote) or --log FILE (local)".into())),
    }
}

fn read_tail(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > LOCAL_TAIL {
        f.seek(SeekFrom::Start(len - LOCAL_TAIL))
            .map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // a local log is read as text: terminal escapes and control bytes go
    // (line breaks and \r stay: the classifier splits progress bars on them)
    let text = String::from_utf8_lossy(&buf).replace('\0', "");
    Ok(text
        .split_inclusive(['\n', '\r'])
        .map(|l| {
            let end = l.trim_end_matches(['\n', '\r']);
            format!("{}{}", crate::text::plain(end), &l[end.len()..])
        })
        .collect())
}

/// Lines of a log, `\r` progress bars split, for the classifier.
pub fn log_lines(text: &str) -> Vec<String> {
    text.split('\n').map(|l| l.trim_end_matches('\r').to_string()).collect()
}

fn excerpt(lines: &[String]) -> String {
    let start = lines
        .iter()
        .rposition(|l| l.contains("Traceback (most recent call last)"))
        .map(|i| i.saturating_sub(2))
        .unwrap_or(lines.len().saturating_sub(15));
    lines[start..]
        .iter()
        .take(42)
        .map(|l| triage::clean_line(l))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn emit(o: Out, json: bool) -> i32 {
    if json {
        output::line(&serde_json::to_string(&o).expect("serializes"));
    } else {
        output::line(&o.line);
    }
    o.exit_code
}

fn line(ts: &str, who: &str, c: &Classification, crashed: bool) -> String {
    if !crashed && c.class == Class::Unknown {
        return format!(
            "{ts} {who} TRIAGE unknown (no failure signature found) | evidence: no traceback or failure signature in the log | fix: nothing to classify; if the run misbehaves, read gpupatrol tick's verdict"
        );
    }
    let conf = format!("{:?}", c.confidence).to_lowercase();
    // the evidence is log text: no escape sequence reaches the terminal
    format!(
        "{ts} {who} TRIAGE {} ({conf}) | evidence: {} | fix: {}",
        c.class,
        crate::text::plain(&c.evidence),
        c.class.remediation()
    )
}

fn local(path: &Path, json: bool) -> Result<i32> {
    let text = read_tail(path)?;
    let lines = log_lines(&text);
    let crashed = triage::has_crash_signature(&lines);
    let c = triage::classify(&lines, &triage::Context::default());
    let ts = tick::now_rfc3339();
    let code = if c.class == Class::Unknown {
        exit_codes::WARNING
    } else {
        exit_codes::OK
    };
    Ok(emit(
        Out {
            line: line(&ts, &path.display().to_string(), &c, crashed),
            ts,
            profile: None,
            source: path.display().to_string(),
            class: c.class,
            confidence: c.confidence,
            evidence: c.evidence.clone(),
            remediation: c.class.remediation(),
            crashed,
            verdict: None,
            excerpt: excerpt(&lines),
            exit_code: code,
        },
        json,
    ))
}

/// Classes that need the box's numbers rather than the log's words.
fn from_box(f: &Facts, profile: &crate::profile::Profile, alive: bool) -> Option<Classification> {
    let stall = profile.job.stall_after.as_secs() as i64;
    let log_age = f
        .log
        .as_ref()
        .filter(|l| l.mtime > 0)
        .map(|l| f.now.saturating_sub(l.mtime));
    let ckpt_newer = f.artifacts.iter().flatten().any(|a| a.written_lately(f.now, stall));
    if alive && log_age.is_some_and(|a| a > stall) && ckpt_newer {
        return Some(Classification {
            class: Class::BlockBufferedStdout,
            confidence: Confidence::Medium,
            evidence: format!(
                "log unchanged for {} while a checkpoint is newer than it",
                crate::duration::human_secs(log_age.unwrap_or(0))
            ),
        });
    }
    let cg = &f.cgroup;
    let cpus = cg.cpu_quota.or(cg.nproc.map(f64::from))?;
    let gpu_low = match &f.gpus {
        Gpus::Present { gpus, .. } if !gpus.is_empty() => {
            let known: Vec<f64> = gpus.iter().filter_map(|g| g.util_pct).collect();
            let avg: f64 = if known.is_empty() {
                f64::NAN
            } else {
                known.iter().sum::<f64>() / known.len() as f64
            };
            avg < 50.0
        }
        _ => true,
    };
    if let Some(t) = f.alive.threads
        && alive
        && f64::from(t) > cpus * 4.0
        && gpu_low
    {
        return Some(Classification {
            class: Class::ThreadOversubscription,
            confidence: Confidence::Low,
            evidence: format!("{t} threads in the job for {cpus:.1} CPUs, GPU util low"),
        });
    }
    if let (Some(load), Some(n), Some(q)) = (cg.loadavg1, cg.nproc, cg.cpu_quota) {
        let roomy = cg.mem_used_pct.is_none_or(|m| m < 70.0);
        if q < f64::from(n) && load > (q * 2.0).max(f64::from(n) * 0.8) && roomy {
            return Some(Classification {
                class: Class::NoisyNeighbor,
                confidence: Confidence::Low,
                evidence: format!("host load {load:.1} on {n} CPUs, our quota {q:.1} CPUs, cgroup memory roomy"),
            });
        }
    }
    None
}

async fn remote(path: &Path, json: bool, state_dir: Option<&Path>) -> Result<i32> {
    let profile = crate::profile::load(&super::one_profile(path)?)?;
    if profile.job.log.is_none() {
        return Err(Error::Usage(format!(
            "{} has no job.log: triage reads the per-run log",
            path.display()
        )));
    }
    let store = super::store(state_dir)?;
    let t = tick::run_with(
        &profile,
        &store,
        &tick::Options::observe(crate::probe::Request::new(crate::probe::Ask::Triage)),
    )
    .await;
    let ts = tick::now_rfc3339();
    let Some(f) = &t.facts else {
        let msg = format!(
            "{ts} {} TRIAGE not possible: {} {} | fix: {}",
            profile.name,
            t.report.verdict,
            t.report.detail.clone().unwrap_or_default(),
            t.report.remediation
        );
        if json {
            output::line(
                &serde_json::json!({"ts": ts, "profile": profile.name, "verdict": t.report.verdict, "detail": t.report.detail, "exit_code": exit_codes::UNKNOWN, "line": msg})
                    .to_string(),
            );
        } else {
            output::line(&msg);
        }
        return Ok(exit_codes::UNKNOWN);
    };
    // All the evidence, stale or not: the user asked.
    let ev = &f.crash;
    let mut lines: Vec<String> = ev.traceback.iter().map(|l| l.text.clone()).collect();
    for l in ev.signatures.iter().chain(ev.end.iter()) {
        if !lines.contains(&l.text) {
            lines.push(l.text.clone());
        }
    }
    lines.extend(f.dmesg.iter().cloned());
    let oom_rose = t.decision.oom_rose;
    let ctx = triage::Context {
        oom_kill_rose: oom_rose
            || (f.alive.state != crate::probe::facts::Liveness::Yes && f.cgroup.oom_kills.is_some_and(|k| k > 0)),
        exit_code: f.recorded_exit_code(),
        disk_used_pct: f.disk.as_ref().and_then(|d| d.used_pct),
        inodes_used_pct: f.disk.as_ref().and_then(|d| d.inodes_used_pct),
    };
    let crashed = triage::has_crash_signature(&lines);
    let alive = f.alive.state == crate::probe::facts::Liveness::Yes;
    let mut c = triage::classify(&lines, &ctx);
    if c.class == Class::Unknown
        && let Some(b) = from_box(f, &profile, alive)
    {
        c = b;
    }
    let code = if c.class == Class::Unknown {
        exit_codes::WARNING
    } else {
        exit_codes::OK
    };
    let ex = if ev.traceback.is_empty() {
        ev.end
            .iter()
            .map(|l| triage::clean_line(&l.text))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        ev.traceback
            .iter()
            .map(|l| triage::clean_line(&l.text))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(emit(
        Out {
            line: format!(
                "{} | verdict {}",
                line(&ts, &profile.name, &c, crashed),
                t.report.verdict
            ),
            ts,
            profile: Some(&profile.name),
            source: profile.job.log.clone().unwrap_or_default(),
            class: c.class,
            confidence: c.confidence,
            evidence: c.evidence.clone(),
            remediation: c.class.remediation(),
            crashed,
            verdict: Some(t.report.verdict),
            excerpt: ex,
            exit_code: code,
        },
        json,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::facts::{ArtifactFacts, sample};

    fn profile() -> crate::profile::Profile {
        crate::profile::parse(
            Path::new("t.yaml"),
            "name: t\nhost: h\njob:\n  alive: { tmux: t }\n  log: /l\n  stall_after: 10m\nartifacts:\n  - { path: /c }\n",
        )
        .unwrap()
    }

    #[test]
    fn frozen_log_with_fresh_checkpoints_is_block_buffered() {
        let mut f = sample(100_000);
        f.log.as_mut().unwrap().mtime = 100_000 - 3600;
        f.artifacts = vec![Some(ArtifactFacts {
            exists: true,
            count: 3,
            newest_after_log: Some(100_000 - 60),
        })];
        let c = from_box(&f, &profile(), true).unwrap();
        assert_eq!(c.class, Class::BlockBufferedStdout);
    }

    #[test]
    fn busy_host_with_a_roomy_slice_is_a_noisy_neighbor() {
        let mut f = sample(100_000);
        f.cgroup.nproc = Some(64);
        f.cgroup.cpu_quota = Some(4.0);
        f.cgroup.loadavg1 = Some(70.0);
        f.cgroup.mem_used_pct = Some(30.0);
        assert_eq!(from_box(&f, &profile(), true).unwrap().class, Class::NoisyNeighbor);
        f.cgroup.loadavg1 = Some(5.0);
        assert!(
            from_box(&f, &profile(), true).is_none(),
            "our own load on our own slice is not a neighbor"
        );
    }

    #[test]
    fn thread_storm_on_a_small_quota_is_oversubscription() {
        let mut f = sample(100_000);
        f.cgroup.cpu_quota = Some(4.0);
        f.cgroup.nproc = Some(64);
        f.alive.threads = Some(200);
        f.gpus = Gpus::Present {
            gpus: vec![crate::probe::facts::Gpu {
                index: 0,
                util_pct: Some(12.0),
                mem_used_mib: 1.0,
                mem_total_mib: 2.0,
                temp_c: None,
                power_w: None,
                power_limit_w: None,
                ..Default::default()
            }],
            samples: 3,
            spin_samples: 0,
            errors: vec![],
        };
        assert_eq!(
            from_box(&f, &profile(), true).unwrap().class,
            Class::ThreadOversubscription
        );
    }

    #[test]
    fn local_log_lines_keep_carriage_returns_for_the_cleaner() {
        let l = log_lines("a\r\nb\n");
        assert_eq!(l, vec!["a", "b", ""]);
    }
}
