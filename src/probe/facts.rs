//! Typed facts read from the probe's sections (each section's parser lives
//! with its shell code in [`super::sections`]). A section that timed out,
//! failed or is missing leaves its facts empty and adds a note to
//! [`Facts::problems`]; the rest of the tick still counts.

use serde::Serialize;

use super::frames::{Frame, Frames};
use super::sections::{self, Plan, Section};

pub use super::frames::NumberedLine;
pub use super::sections::alive::{Alive, Liveness, SlurmFinal, SlurmJob, slurm_duration};
pub use super::sections::artifacts::ArtifactFacts;
pub use super::sections::cgroup::Cgroup;
pub use super::sections::chain::{ChainFacts, StageFacts, StageJob, StageState};
pub use super::sections::disk::{Disk, df_line};
pub use super::sections::gpu::{Gpu, Gpus, SPIN_POWER_SHARE, SPIN_UTIL_PCT, parse_csv as parse_gpu_csv};
pub use super::sections::log::{CrashEvidence, LogFacts, LogStatus};
pub use super::sections::markers::Markers;
pub use super::sections::wait::WaitFacts;

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
        self.alive.slurm_final.as_ref()?.exit_code()
    }
}

/// What the profile tells the parsers: how many artifacts, which stages.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub artifacts: usize,
    pub stages: &'a [String],
}

/// Read facts from parsed frames. Fails only when the essentials (`now`, and
/// `alive` where the plan asked for it) are unusable: without the box's clock
/// and an alive answer no verdict can be honest.
pub fn read(frames: &Frames, plan: &Plan, shape: Shape) -> Result<Facts, String> {
    let mut problems = Vec::new();
    let usable = |s: Section, problems: &mut Vec<String>| -> Option<&Frame> {
        if !plan.has(s) {
            return None;
        }
        let name = s.name();
        let Some(f) = frames.sections.get(name) else {
            problems.push(format!("{name}: not reported by the box"));
            return None;
        };
        if f.timed_out() {
            problems.push(format!("{name}: timed out on the box"));
            return None;
        }
        if f.rc != Some(0) {
            problems.push(format!(
                "{name}: failed on the box (exit {})",
                f.rc.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
            ));
            return None;
        }
        if f.truncated {
            problems.push(format!("{name}: output cut to its budget"));
        }
        Some(f)
    };
    let frame = |s: Section| frames.sections.get(s.name());

    let now = usable(Section::Now, &mut problems)
        .and_then(sections::now::parse)
        .ok_or_else(|| describe_missing("now", frame(Section::Now)))?;
    let alive = if plan.has(Section::Alive) {
        let f =
            usable(Section::Alive, &mut problems).ok_or_else(|| describe_missing("alive", frame(Section::Alive)))?;
        sections::alive::parse(f, now)?
    } else {
        Alive::unknown()
    };
    let marker_frame = usable(Section::Markers, &mut problems);
    let markers_lost = plan.has(Section::Markers) && marker_frame.is_none();
    let markers = marker_frame.map(sections::markers::parse).unwrap_or_default();
    let mut log_lost = false;
    let (log, crash) = match usable(Section::Log, &mut problems) {
        // a garbled log section costs the log, not the tick (alive, GPUs and
        // disk still count)
        Some(f) => match sections::log::parse(f) {
            Ok(Some((l, c))) => (Some(l), c),
            Ok(None) => (None, CrashEvidence::default()),
            Err(e) => {
                problems.push(format!("log: {e}"));
                log_lost = true;
                (None, CrashEvidence::default())
            }
        },
        None => {
            let l = frame(Section::Log)
                .filter(|f| f.timed_out())
                .and_then(sections::log::parse_timed_out);
            log_lost = plan.has(Section::Log) && l.is_none();
            (l, CrashEvidence::default())
        }
    };
    let artifacts = match usable(Section::Artifacts, &mut problems) {
        Some(f) => sections::artifacts::parse(f, shape.artifacts),
        None => vec![None; shape.artifacts],
    };
    let disk = usable(Section::Disk, &mut problems).and_then(sections::disk::parse);
    let (gpus, cgroup) = if plan.has(Section::Node) {
        // a Slurm job's GPUs and memory, from a step on its nodes
        match usable(Section::Node, &mut problems) {
            Some(f) => sections::node::fold(&sections::node::parse(f)),
            None => (
                Gpus::NotVisible {
                    why: "the node section did not report".into(),
                },
                Default::default(),
            ),
        }
    } else {
        let gpus = match usable(Section::Gpu, &mut problems) {
            Some(f) => sections::gpu::parse(f),
            None => Gpus::Unknown,
        };
        let cgroup = usable(Section::Cgroup, &mut problems)
            .map(sections::cgroup::parse)
            .unwrap_or_default();
        (gpus, cgroup)
    };
    let wait = usable(Section::Wait, &mut problems).map(sections::wait::parse);
    let dmesg = usable(Section::Dmesg, &mut problems)
        .map(sections::dmesg::parse)
        .unwrap_or_default();
    let chain = usable(Section::Chain, &mut problems).map(|f| sections::chain::parse(f, now, shape.stages));
    let alive = match &chain {
        Some(ch) if alive.method == "none" && ch.present && plan.has(Section::Alive) => chain_liveness(alive, ch, now),
        _ => alive,
    };
    // What tells DONE from DIED (the marker, the done text, the chain's DONE)
    // lost while the job is not running would read as DIED, and resume a
    // finished run: then the tick cannot tell, and says so.
    let chain_lost = plan.has(Section::Chain) && chain.is_none();
    let lost: Vec<&str> = [("markers", markers_lost), ("log", log_lost), ("chain", chain_lost)]
        .iter()
        .filter(|(_, l)| *l)
        .map(|(n, _)| *n)
        .collect();
    if !lost.is_empty() && plan.has(Section::Alive) && alive.state == Liveness::No {
        return Err(format!(
            "the job is not running and the box's {} section failed ({}): DONE cannot be told from DIED",
            lost.join(" and "),
            problems.join("; ")
        ));
    }
    Ok(Facts {
        now,
        alive,
        markers,
        log,
        crash,
        artifacts,
        disk,
        gpus,
        cgroup,
        wait,
        dmesg,
        chain,
        problems,
    })
}

/// A chain-only profile (no `job.alive`) is alive while its chain's process
/// or Slurm jobs are.
fn chain_liveness(mut alive: Alive, ch: &ChainFacts, now: i64) -> Alive {
    alive.method = "chain".into();
    if let Some(why) = &ch.alive_error {
        // the scheduler did not answer: unknown, never "stopped"
        alive.state = Liveness::Error;
        alive.why = Some(format!("chain: {why}"));
    } else if ch.alive {
        alive.state = Liveness::Yes;
        alive.pid = ch.pid;
        alive.started = ch.started;
        alive.running_for_s = ch.started.map(|t| now.saturating_sub(t));
    } else {
        alive.state = Liveness::No;
        alive.why = Some("chain-not-running".into());
    }
    alive
}

fn describe_missing(name: &str, s: Option<&Frame>) -> String {
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
            started: Some(now - 3600),
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
            fp: String::new(),
            fp_len: 0,
            mtime: now - 5,
            start: 0,
            rotated: false,
            skipped: 0,
            ends_with_newline: true,
            last_len: 8,
            lines: 4,
            done_line: None,
            scan_timed_out: false,
            candidates: vec![nl(3, "Epoch 3 loss 1.0")],
            tail: vec![nl(3, "Epoch 3 loss 1.0"), nl(4, "waiting...")],
        }),
        crash: CrashEvidence::default(),
        artifacts: vec![Some(ArtifactFacts {
            exists: true,
            count: 1,
            newest_after_log: None,
        })],
        disk: Some(Disk {
            used_pct: Some(50.0),
            inodes_used_pct: Some(10.0),
            avail_kib: Some(1 << 20),
        }),
        gpus: Gpus::Present {
            gpus: vec![Gpu {
                index: 0,
                util_pct: Some(97.0),
                mem_used_mib: 70000.0,
                mem_total_mib: 81920.0,
                temp_c: Some(60.0),
                power_w: Some(310.0),
                power_limit_w: Some(400.0),
                ..Default::default()
            }],
            samples: 3,
            spin_samples: 0,
            errors: vec![],
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

    fn frame(rc: i32, lines: &[&str]) -> Frame {
        Frame {
            rc: Some(rc),
            truncated: false,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn ok(lines: &[&str]) -> Frame {
        frame(0, lines)
    }

    #[test]
    fn a_timed_out_log_scan_still_says_where_the_log_ends() {
        let mut frames = Frames::default();
        frames.sections.insert("now".into(), ok(&["now=1000"]));
        frames
            .sections
            .insert("alive".into(), ok(&["method=none", "alive=unknown"]));
        frames.sections.insert(
            "log".into(),
            frame(
                124,
                &[
                    "m log=present",
                    "m size=9000",
                    "m inode=5",
                    "m mtime=990",
                    "m start=100",
                    "c 3 Epoch 3",
                ],
            ),
        );
        let plan = Plan(vec![Section::Now, Section::Alive, Section::Log]);
        let f = read(
            &frames,
            &plan,
            Shape {
                artifacts: 0,
                stages: &[],
            },
        )
        .unwrap();
        let l = f.log.unwrap();
        assert!(l.scan_timed_out);
        assert_eq!((l.size, l.start), (9000, 100));
        assert!(l.candidates.is_empty(), "a cut scan's lines are not trusted");
        assert!(f.problems.iter().any(|p| p.contains("log: timed out")));
    }

    #[test]
    fn a_garbled_log_section_costs_the_log_not_the_tick() {
        let mut frames = Frames::default();
        frames.sections.insert("now".into(), ok(&["now=1000"]));
        frames
            .sections
            .insert("alive".into(), ok(&["method=pidfile", "pid=42", "alive=yes"]));
        // a box whose stat and date -r both failed: no mtime
        frames.sections.insert(
            "log".into(),
            ok(&["m log=present", "m size=9000", "m inode=5", "m mtime=", "m start=100"]),
        );
        let plan = Plan(vec![Section::Now, Section::Alive, Section::Log]);
        let shape = Shape {
            artifacts: 0,
            stages: &[],
        };
        let f = read(&frames, &plan, shape).expect("the tick still has its facts");
        assert_eq!(f.alive.state, Liveness::Yes);
        assert!(f.log.is_none());
        assert!(
            f.problems.iter().any(|p| p.contains("log: log section lacks mtime")),
            "{:?}",
            f.problems
        );
        // with the job gone, the done text may be what was lost: no DIED (no resume of a finished run)
        frames
            .sections
            .insert("alive".into(), ok(&["method=pidfile", "pid=42", "alive=no"]));
        let shape = Shape {
            artifacts: 0,
            stages: &[],
        };
        let e = read(&frames, &plan, shape).unwrap_err();
        assert!(e.contains("DONE cannot be told from DIED"), "{e}");
    }
}
