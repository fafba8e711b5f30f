//! Typed facts read from the probe's sections. A section that timed out,
//! failed or is missing leaves its facts empty and adds a note to
//! [`Facts::problems`]; the rest of the tick still counts.

use serde::Serialize;

use super::frames::{Frames, Section};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Yes,
    No,
    /// Queued (Slurm PENDING/CONFIGURING).
    Pending,
    /// No alive check configured.
    Unknown,
    /// The check itself could not run (tool missing, section failed).
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alive {
    pub state: Liveness,
    pub method: String,
    pub why: Option<String>,
    pub pid: Option<u32>,
    /// Seconds the job has been running, by the box's clock.
    pub running_for_s: Option<i64>,
    /// Slurm: `JOBID STATE ELAPSED REASON` from squeue.
    pub slurm: Option<String>,
    /// Slurm: `JOBID STATE EXITCODE` from sacct once the job left the queue.
    pub slurm_final: Option<String>,
    /// Threads of the job's process and its children.
    pub threads: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Markers {
    pub done_marker: Option<bool>,
    pub done_marker_mtime: Option<i64>,
    pub master_done: Option<bool>,
    pub master_size: Option<u64>,
    pub master_inode: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    Present,
    Missing,
    Unreadable,
    None,
}

/// A line from the log with its line number in the scanned stretch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberedLine {
    pub nr: u64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogFacts {
    pub status: LogStatus,
    pub size: u64,
    pub inode: u64,
    pub mtime: i64,
    /// Offset the box started reading from.
    pub start: u64,
    pub rotated: bool,
    pub skipped: u64,
    pub ends_with_newline: bool,
    /// Length of the last (possibly unfinished) line of the scanned stretch.
    pub last_len: u64,
    /// Records in the scanned stretch (the last one is unfinished unless
    /// `ends_with_newline`).
    pub lines: u64,
    /// `done_pattern` seen in the new stretch.
    pub done_seen: bool,
    /// Lines that contain a progress prefilter literal (latest last).
    pub candidates: Vec<NumberedLine>,
    /// The last lines of the new stretch.
    pub tail: Vec<NumberedLine>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CrashEvidence {
    /// The last `Traceback` block (2 lines before, up to 40 after).
    pub traceback: Vec<NumberedLine>,
    /// Lines that look like errors.
    pub signatures: Vec<NumberedLine>,
    /// The last lines of the log.
    pub end: Vec<NumberedLine>,
    /// Line number (in this window) of the last line with a progress literal.
    pub last_progress_nr: u64,
}

impl CrashEvidence {
    pub fn is_empty(&self) -> bool {
        self.traceback.is_empty() && self.signatures.is_empty() && self.end.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactFacts {
    pub exists: bool,
    pub count: u64,
    /// Some entry is newer than the per-run log (checkpoints advance).
    pub newer_than_log: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub used_pct: Option<f64>,
    pub inodes_used_pct: Option<f64>,
    pub avail_kib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub util_pct: f64,
    pub mem_used_mib: f64,
    pub mem_total_mib: f64,
    pub temp_c: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Gpus {
    /// No `nvidia-smi` on the box.
    Absent,
    /// Averaged over the samples.
    Present { gpus: Vec<Gpu>, samples: u32 },
    /// `nvidia-smi` failed or answered nonsense.
    Failed { why: String },
    /// The section did not report (timed out, not run).
    Unknown,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cgroup {
    pub version: Option<u8>,
    pub current: Option<u64>,
    pub max: Option<u64>,
    pub inactive_file: Option<u64>,
    pub oom_kills: Option<u64>,
    pub mem_used_pct: Option<f64>,
    pub host_mem_used_pct: Option<f64>,
    pub loadavg1: Option<f64>,
    pub nproc: Option<u32>,
    pub cpu_quota: Option<f64>,
}

/// What `gpupatrol wait` asked the probe to look for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WaitFacts {
    pub marker: Option<bool>,
    pub pattern: Option<bool>,
    pub pattern_size: Option<u64>,
    pub pattern_inode: Option<u64>,
}

impl WaitFacts {
    pub fn found(&self) -> bool {
        self.marker == Some(true) || self.pattern == Some(true)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "code")]
pub enum StageState {
    Pending,
    Running,
    Success,
    Failed(i32),
    Aborted,
    /// Started, no status, process gone (killed without its trap running).
    Lost,
}

impl std::fmt::Display for StageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageState::Pending => f.write_str("pending"),
            StageState::Running => f.write_str("running"),
            StageState::Success => f.write_str("SUCCESS"),
            StageState::Failed(c) => write!(f, "FAILED {c}"),
            StageState::Aborted => f.write_str("ABORTED"),
            StageState::Lost => f.write_str("lost (no status, process gone)"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageFacts {
    pub name: String,
    pub state: StageState,
    /// Seconds since the heartbeat was touched (box clock).
    pub heartbeat_age_s: Option<i64>,
    pub result: Option<String>,
    /// Slurm: `JOBID STATE REASON` (queue) or `JOBID STATE EXIT REASON` (done).
    pub slurm: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainFacts {
    pub present: bool,
    pub alive: bool,
    pub pid: Option<u32>,
    pub done: bool,
    pub stages: Vec<StageFacts>,
}

/// Read the chain section; `names` are the profile's stage names in order.
pub fn read_chain(s: &Section, now: i64, names: &[String]) -> ChainFacts {
    let present = s.get("chain") == Some("present");
    let alive = s.get("chain_alive") == Some("yes");
    let stages = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let raw = s.get(&format!("stage_{}", i + 1)).unwrap_or("NONE||no");
            let mut parts = raw.split('|');
            let status = parts.next().unwrap_or("NONE").trim();
            let hb: Option<i64> = parts.next().and_then(|v| v.trim().parse().ok());
            let pid_alive = parts.next() == Some("yes");
            let slurm = s
                .get(&format!("slurm_{name}"))
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            let slurm_running = slurm.as_deref().is_some_and(|v| v.split(' ').nth(1) == Some("RUNNING"));
            let state = if status == "SUCCESS" {
                StageState::Success
            } else if let Some(code) = status.strip_prefix("FAILED") {
                StageState::Failed(code.trim().parse().unwrap_or(1))
            } else if status == "ABORTED" {
                StageState::Aborted
            } else if hb.is_some() && (pid_alive || slurm_running) {
                StageState::Running
            } else if hb.is_some() && !alive {
                StageState::Lost
            } else if hb.is_some() {
                StageState::Running
            } else {
                StageState::Pending
            };
            StageFacts {
                name: name.clone(),
                state,
                heartbeat_age_s: hb.map(|t| now - t),
                result: s
                    .get(&format!("stage_{}_result", i + 1))
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
                slurm,
            }
        })
        .collect();
    ChainFacts {
        present,
        alive,
        pid: s.get_num("chain_pid"),
        done: s.get("done") == Some("yes"),
        stages,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// The box's clock (epoch seconds). Every age is measured with it.
    pub now: i64,
    pub alive: Alive,
    pub markers: Markers,
    pub log: Option<LogFacts>,
    pub crash: CrashEvidence,
    pub artifacts: Vec<Option<ArtifactFacts>>,
    pub disk: Option<Disk>,
    pub gpus: Gpus,
    pub cgroup: Cgroup,
    pub wait: Option<WaitFacts>,
    /// Kernel OOM-killer lines (triage only; empty when unreadable).
    pub dmesg: Vec<String>,
    pub chain: Option<ChainFacts>,
    /// Sections that timed out, failed or were cut: one short note each.
    pub problems: Vec<String>,
}

impl Facts {
    /// The run's exit status when something recorded it: a FAILED chain
    /// stage, or Slurm's `EXIT:SIGNAL` (a signal n reads as 128+n).
    pub fn recorded_exit_code(&self) -> Option<i32> {
        if let Some(c) = &self.chain
            && let Some(code) = c.stages.iter().find_map(|s| match s.state {
                StageState::Failed(code) => Some(code),
                _ => None,
            })
        {
            return Some(code);
        }
        let f = self.alive.slurm_final.as_deref()?;
        let (exit, signal) = f.split(' ').nth(2)?.split_once(':')?;
        let (exit, signal): (i32, i32) = (exit.parse().ok()?, signal.parse().ok()?);
        Some(if signal != 0 { 128 + signal } else { exit })
    }
}

/// Read facts from parsed frames. Fails only when the essentials (`now`,
/// `alive`) are unusable: without the box's clock and an alive answer no
/// verdict can be honest.
pub fn read(frames: &Frames, artifact_count: usize) -> Result<Facts, String> {
    read_with(frames, artifact_count, &[])
}

/// As [`read`], with the profile's chain stage names.
pub fn read_with(frames: &Frames, artifact_count: usize, stage_names: &[String]) -> Result<Facts, String> {
    let mut problems = Vec::new();
    let sec = |name: &str| frames.sections.get(name);
    let usable = |name: &str, problems: &mut Vec<String>| -> Option<&Section> {
        let s = frames.sections.get(name)?;
        if s.timed_out() {
            problems.push(format!("{name}: timed out on the box"));
            return None;
        }
        if s.rc != Some(0) {
            problems.push(format!(
                "{name}: failed on the box (exit {})",
                s.rc.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
            ));
            return None;
        }
        if s.truncated {
            problems.push(format!("{name}: output cut to its budget"));
        }
        Some(s)
    };

    let now = usable("now", &mut problems)
        .and_then(|s| s.get_num::<i64>("now"))
        .ok_or_else(|| describe_missing("now", sec("now")))?;
    let alive_sec = usable("alive", &mut problems).ok_or_else(|| describe_missing("alive", sec("alive")))?;
    let alive = read_alive(alive_sec, now)?;

    let markers = usable("markers", &mut problems).map(read_markers).unwrap_or_default();
    let log = usable("log", &mut problems).map(read_log).transpose()?.flatten();
    let crash = usable("crash", &mut problems).map(read_crash).unwrap_or_default();
    let artifacts = match usable("artifacts", &mut problems) {
        Some(s) => (1..=artifact_count)
            .map(|i| {
                let v = s.get(&format!("artifact_{i}"))?;
                let mut w = v.split(' ');
                let kind = w.next()?;
                let count = w.next()?.parse().ok()?;
                let newer = w.next()? == "1";
                Some(ArtifactFacts {
                    exists: kind != "missing",
                    count,
                    newer_than_log: newer,
                })
            })
            .collect(),
        None => vec![None; artifact_count],
    };
    let disk = usable("disk", &mut problems).and_then(read_disk);
    let gpus = match usable("gpu", &mut problems) {
        Some(s) => read_gpus(s),
        None => Gpus::Unknown,
    };
    let cgroup = usable("cgroup", &mut problems).map(read_cgroup).unwrap_or_default();
    let wait = usable("wait", &mut problems).map(|s| WaitFacts {
        marker: s.get("marker").map(|v| v == "yes"),
        pattern: s.get("pattern").map(|v| v == "1"),
        pattern_size: s.get_num("pattern_size"),
        pattern_inode: s.get_num("pattern_inode"),
    });
    let dmesg = usable("dmesg", &mut problems)
        .map(|s| s.lines.clone())
        .unwrap_or_default();
    let chain = usable("chain", &mut problems).map(|s| read_chain(s, now, stage_names));
    Ok(Facts {
        chain,
        dmesg,
        wait,
        now,
        alive,
        markers,
        log,
        crash,
        artifacts,
        disk,
        gpus,
        cgroup,
        problems,
    })
}

fn describe_missing(name: &str, s: Option<&Section>) -> String {
    match s {
        None => format!("the probe did not report its {name} section"),
        Some(s) if s.timed_out() => format!("the {name} section timed out on the box"),
        Some(s) => format!(
            "the {name} section failed on the box (exit {}): {}",
            s.rc.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
            s.lines.iter().take(2).cloned().collect::<Vec<_>>().join(" / ")
        ),
    }
}

fn read_alive(s: &Section, now: i64) -> Result<Alive, String> {
    let state = match s.get("alive") {
        Some("yes") => Liveness::Yes,
        Some("no") => Liveness::No,
        Some("pending") => Liveness::Pending,
        Some("unknown") => Liveness::Unknown,
        Some("error") => Liveness::Error,
        other => return Err(format!("alive section answered {other:?}")),
    };
    let started: Option<i64> = s.get_num("started");
    let elapsed: Option<i64> = s.get_num("elapsed");
    let slurm_elapsed = s
        .get("slurm")
        .and_then(|v| v.split(' ').nth(2))
        .and_then(slurm_duration);
    let running_for_s = elapsed.or_else(|| started.map(|t| now - t)).or(slurm_elapsed);
    Ok(Alive {
        state,
        method: s.get("method").unwrap_or("none").to_string(),
        why: s.get("why").filter(|w| !w.is_empty()).map(str::to_string),
        pid: s.get_num("pid"),
        running_for_s,
        slurm: s.get("slurm").map(str::to_string),
        slurm_final: s.get("slurm_final").map(str::to_string),
        threads: s.get_num("threads"),
    })
}

/// Slurm's elapsed time: `[D-]HH:MM:SS`, `MM:SS` or `SS`.
pub fn slurm_duration(v: &str) -> Option<i64> {
    let (days, rest) = match v.split_once('-') {
        Some((d, r)) => (d.parse::<i64>().ok()?, r),
        None => (0, v),
    };
    let parts: Vec<i64> = rest.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let secs = match parts.as_slice() {
        [h, m, s] => h * 3600 + m * 60 + s,
        [m, s] => m * 60 + s,
        [s] => *s,
        _ => return None,
    };
    Some(days * 86400 + secs)
}

fn read_markers(s: &Section) -> Markers {
    Markers {
        done_marker: s.get("done_marker").map(|v| v == "yes"),
        done_marker_mtime: s.get_num("done_marker_mtime"),
        master_done: s.get("master_done").map(|v| v == "1"),
        master_size: s.get_num("master_size"),
        master_inode: s.get_num("master_inode"),
    }
}

/// Lines tagged `TAG NR text` (the tag is written by awk on the box).
fn tagged(s: &Section, tag: &str) -> Vec<NumberedLine> {
    let prefix = format!("{tag} ");
    s.lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (nr, text) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(NumberedLine {
                nr: nr.parse().ok()?,
                text: text.to_string(),
            })
        })
        .collect()
}

fn meta<'a>(s: &'a Section, key: &str) -> Option<&'a str> {
    s.lines.iter().find_map(|l| {
        l.strip_prefix("m ")
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix('='))
    })
}

fn meta_num<T: std::str::FromStr>(s: &Section, key: &str) -> Option<T> {
    meta(s, key).and_then(|v| v.trim().parse().ok())
}

fn read_log(s: &Section) -> Result<Option<LogFacts>, String> {
    let status = match meta(s, "log") {
        Some("present") => LogStatus::Present,
        Some("missing") => LogStatus::Missing,
        Some("unreadable") => LogStatus::Unreadable,
        Some("none") => return Ok(None),
        other => return Err(format!("log section answered {other:?}")),
    };
    if status != LogStatus::Present {
        return Ok(Some(LogFacts {
            status,
            size: 0,
            inode: 0,
            mtime: 0,
            start: 0,
            rotated: false,
            skipped: 0,
            ends_with_newline: true,
            last_len: 0,
            lines: 0,
            done_seen: false,
            candidates: vec![],
            tail: vec![],
        }));
    }
    let need = |k: &str| meta_num::<u64>(s, k).ok_or_else(|| format!("log section lacks {k}"));
    Ok(Some(LogFacts {
        status,
        size: need("size")?,
        inode: need("inode")?,
        mtime: meta_num(s, "mtime").ok_or("log section lacks mtime")?,
        start: need("start")?,
        rotated: meta(s, "rotated") == Some("1"),
        skipped: meta_num(s, "skipped").unwrap_or(0),
        ends_with_newline: meta(s, "ends_nl") != Some("0"),
        last_len: meta_num(s, "last_len").unwrap_or(0),
        lines: meta_num(s, "lines").unwrap_or(0),
        done_seen: meta(s, "done_line").is_some(),
        candidates: tagged(s, "c"),
        tail: tagged(s, "t"),
    }))
}

fn read_crash(s: &Section) -> CrashEvidence {
    CrashEvidence {
        traceback: tagged(s, "x"),
        signatures: tagged(s, "s"),
        end: tagged(s, "e"),
        last_progress_nr: meta_num(s, "lastprog").unwrap_or(0),
    }
}

/// `df -P` line: the first `NN%` token is the capacity; the three numbers
/// before it are size, used, available (a filesystem name may hold spaces).
pub fn df_line(line: &str) -> Option<(f64, u64)> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let pct_at = toks
        .iter()
        .position(|t| t.ends_with('%') && t[..t.len() - 1].parse::<u64>().is_ok())?;
    if pct_at < 3 {
        // `-` for filesystems without inode counts
        return None;
    }
    let used: u64 = toks[pct_at - 2].parse().ok()?;
    let avail: u64 = toks[pct_at - 1].parse().ok()?;
    // Recompute with more precision than df's rounded-up integer.
    let pct = if used + avail == 0 {
        0.0
    } else {
        used as f64 * 100.0 / (used + avail) as f64
    };
    Some((pct, avail))
}

fn read_disk(s: &Section) -> Option<Disk> {
    let bytes = s.lines.iter().find_map(|l| l.strip_prefix("b ")).and_then(df_line);
    let inodes = s.lines.iter().find_map(|l| l.strip_prefix("i ")).and_then(df_line);
    if bytes.is_none() && inodes.is_none() {
        return None;
    }
    Some(Disk {
        used_pct: bytes.map(|b| round1(b.0)),
        inodes_used_pct: inodes.map(|i| round1(i.0)),
        avail_kib: bytes.map(|b| b.1),
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `g SAMPLE RC index, util, mem.used, mem.total, temp` lines → per-GPU averages.
fn read_gpus(s: &Section) -> Gpus {
    if s.lines.iter().any(|l| l.trim() == "absent") {
        return Gpus::Absent;
    }
    let mut by_index: std::collections::BTreeMap<u32, Vec<Gpu>> = Default::default();
    let mut failures = Vec::new();
    let mut samples = std::collections::BTreeSet::new();
    for l in &s.lines {
        let Some(rest) = l.strip_prefix("g ") else { continue };
        let mut w = rest.splitn(3, ' ');
        let (Some(sample), Some(rc), Some(body)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if rc != "0" {
            failures.push(body.trim().to_string());
            continue;
        }
        match parse_gpu_csv(body) {
            Some(g) => {
                samples.insert(sample.to_string());
                by_index.entry(g.index).or_default().push(g);
            }
            None => failures.push(body.trim().to_string()),
        }
    }
    if by_index.is_empty() {
        let why = failures
            .into_iter()
            .find(|f| !f.is_empty())
            .unwrap_or_else(|| "nvidia-smi printed nothing".into());
        return Gpus::Failed {
            why: why.chars().take(160).collect(),
        };
    }
    let gpus = by_index
        .into_iter()
        .map(|(index, v)| {
            let n = v.len() as f64;
            let avg = |f: fn(&Gpu) -> f64| v.iter().map(f).sum::<f64>() / n;
            Gpu {
                index,
                util_pct: round1(avg(|g| g.util_pct)),
                mem_used_mib: round1(avg(|g| g.mem_used_mib)),
                mem_total_mib: v[0].mem_total_mib,
                temp_c: v.last().and_then(|g| g.temp_c),
            }
        })
        .collect();
    Gpus::Present {
        gpus,
        samples: samples.len() as u32,
    }
}

/// One `--format=csv,noheader,nounits` row. `[N/A]` fields parse as absent.
pub fn parse_gpu_csv(row: &str) -> Option<Gpu> {
    let f: Vec<&str> = row.split(',').map(str::trim).collect();
    if f.len() < 4 {
        return None;
    }
    let num = |s: &str| s.parse::<f64>().ok();
    Some(Gpu {
        index: f[0].parse().ok()?,
        util_pct: num(f[1]).unwrap_or(0.0),
        mem_used_mib: num(f[2])?,
        mem_total_mib: num(f[3])?,
        temp_c: f.get(4).and_then(|t| num(t)),
    })
}

fn read_cgroup(s: &Section) -> Cgroup {
    let num = |k: &str| s.get(k).and_then(|v| v.parse::<u64>().ok());
    let current = num("cg_current");
    // v1 reports "no limit" as a huge page-aligned number.
    let max = num("cg_max").filter(|m| *m < (1u64 << 60));
    let inactive = num("cg_inactive_file");
    let mem_used_pct = match (current, max) {
        (Some(c), Some(m)) if m > 0 => {
            let working = c.saturating_sub(inactive.unwrap_or(0));
            Some(round1(working as f64 * 100.0 / m as f64))
        }
        _ => None,
    };
    let host_mem_used_pct = match (num("mem_total_kb"), num("mem_avail_kb")) {
        (Some(t), Some(a)) if t > 0 => Some(round1((t.saturating_sub(a)) as f64 * 100.0 / t as f64)),
        _ => None,
    };
    let cpu_quota = s.get("cg_cpu_max").and_then(|v| {
        let (q, p) = v.split_once(' ')?;
        let q: f64 = q.parse().ok()?;
        let p: f64 = p.parse().ok()?;
        (p > 0.0).then(|| q / p)
    });
    Cgroup {
        version: s.get_num("cg_version"),
        current,
        max,
        inactive_file: inactive,
        oom_kills: num("cg_oom_kill"),
        mem_used_pct,
        host_mem_used_pct,
        loadavg1: s
            .get("loadavg")
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok()),
        nproc: s.get_num("nproc"),
        cpu_quota,
    }
}

/// A healthy running run, for tests of the code that reads facts.
#[cfg(test)]
pub(crate) fn sample(now: i64) -> Facts {
    let nl = |nr: u64, text: &str| NumberedLine { nr, text: text.into() };
    Facts {
        now,
        alive: Alive {
            state: Liveness::Yes,
            method: "tmux".into(),
            why: None,
            pid: Some(42),
            running_for_s: Some(3600),
            slurm: None,
            slurm_final: None,
            threads: None,
        },
        markers: Markers {
            done_marker: Some(false),
            ..Default::default()
        },
        log: Some(LogFacts {
            status: LogStatus::Present,
            size: 1000,
            inode: 7,
            mtime: now - 5,
            start: 0,
            rotated: false,
            skipped: 0,
            ends_with_newline: true,
            last_len: 8,
            lines: 4,
            done_seen: false,
            candidates: vec![nl(3, "Epoch 3 loss 1.0")],
            tail: vec![nl(3, "Epoch 3 loss 1.0"), nl(4, "waiting...")],
        }),
        crash: CrashEvidence::default(),
        artifacts: vec![Some(ArtifactFacts {
            exists: true,
            count: 1,
            newer_than_log: false,
        })],
        disk: Some(Disk {
            used_pct: Some(50.0),
            inodes_used_pct: Some(10.0),
            avail_kib: Some(1 << 20),
        }),
        gpus: Gpus::Present {
            gpus: vec![Gpu {
                index: 0,
                util_pct: 97.0,
                mem_used_mib: 70000.0,
                mem_total_mib: 81920.0,
                temp_c: Some(60.0),
            }],
            samples: 3,
        },
        cgroup: Cgroup {
            oom_kills: Some(0),
            mem_used_pct: Some(40.0),
            ..Default::default()
        },
        wait: None,
        dmesg: vec![],
        chain: None,
        problems: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_lines() {
        let (pct, avail) = df_line("/dev/vda 263174212 11234567 251939645 5% /").unwrap();
        assert!((pct - 4.27).abs() < 0.01, "{pct}");
        assert_eq!(avail, 251939645);
        assert!(df_line("my fs 100 90 10 90% /mnt/my data").is_some());
        assert!(df_line("overlay - - - - /").is_none());
    }

    #[test]
    fn slurm_elapsed_formats() {
        assert_eq!(slurm_duration("1-02:03:04"), Some(86400 + 7384));
        assert_eq!(slurm_duration("02:03:04"), Some(7384));
        assert_eq!(slurm_duration("03:04"), Some(184));
        assert_eq!(slurm_duration("7"), Some(7));
        assert_eq!(slurm_duration("INVALID"), None);
    }

    #[test]
    fn gpu_rows() {
        let g = parse_gpu_csv("0, 97, 72908, 81920, 64").unwrap();
        assert_eq!(g.index, 0);
        assert_eq!(g.util_pct, 97.0);
        assert_eq!(g.mem_total_mib, 81920.0);
        let g = parse_gpu_csv("1, [N/A], 100, 200, [N/A]").unwrap();
        assert_eq!(g.util_pct, 0.0);
        assert_eq!(g.temp_c, None);
        assert!(parse_gpu_csv("NVIDIA-SMI has failed because it couldn't communicate").is_none());
    }

    #[test]
    fn gpu_samples_average() {
        let s = Section {
            rc: Some(0),
            truncated: false,
            lines: vec![
                "g 1 0 0, 90, 1000, 2000, 50".into(),
                "g 2 0 0, 100, 1200, 2000, 51".into(),
            ],
        };
        match read_gpus(&s) {
            Gpus::Present { gpus, samples } => {
                assert_eq!(samples, 2);
                assert_eq!(gpus[0].util_pct, 95.0);
                assert_eq!(gpus[0].mem_used_mib, 1100.0);
            }
            other => panic!("{other:?}"),
        }
        let failed = Section {
            rc: Some(0),
            truncated: false,
            lines: vec!["g 1 9 NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.".into()],
        };
        assert!(matches!(read_gpus(&failed), Gpus::Failed { .. }));
    }
}
