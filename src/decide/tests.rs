//! One case per table row, plus the progress and warning rules.

use std::path::Path;

use super::*;
use crate::probe::facts::*;
use crate::profile;

const NOW: i64 = 1_000_000;

fn profile(extra_job: &str) -> Profile {
    let text = format!(
        "name: t\nhost: h\njob:\n  alive: {{ tmux: train }}\n  log: /r/train.log\n  progress: 'Epoch (\\d+)'\n  done_marker: /r/DONE\n  stall_after: 10m\n{extra_job}artifacts:\n  - {{ path: /r/ckpt, expect_count: 3 }}\n"
    );
    profile::parse(Path::new("t.yaml"), &text).unwrap()
}

fn nl(nr: u64, text: &str) -> NumberedLine {
    NumberedLine { nr, text: text.into() }
}

fn facts() -> Facts {
    crate::probe::facts::sample(NOW)
}

fn run(p: &Profile, prev: &State, f: Facts) -> Decision {
    decide(p, prev, &Observation::Facts(Box::new(f)), "2026-11-24T12:00:00Z")
}

fn seen(step: u64, at: i64) -> State {
    let mut s = State::new("t");
    s.progress.step = Some(step);
    s.progress.advanced_at = Some(at);
    s.first_seen = Some(at - 100);
    s.log = crate::state::LogCursor { offset: 500, inode: 7 };
    s.oom_kills = Some(0);
    s.last = Some(LastTick {
        ts: "2026-11-24T11:30:00Z".into(),
        verdict: Some(Verdict::Running),
        step: Some(step),
        box_now: Some(at),
    });
    s
}

#[test]
fn row_done() {
    let mut f = facts();
    f.markers.done_marker = Some(true);
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 3,
        newer_than_log: false,
    })];
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Done);
    assert_eq!(d.severity(), Severity::Ok);
}

#[test]
fn row_done_by_pattern_is_remembered() {
    let p = profile("  done_pattern: 'Training completed'\n");
    let mut f = facts();
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 3,
        newer_than_log: false,
    })];
    f.log.as_mut().unwrap().done_seen = true;
    let d = run(&p, &State::new("t"), f.clone());
    assert_eq!(d.verdict, Verdict::Done);
    // the next tick's new stretch no longer holds the text; state does
    f.log.as_mut().unwrap().done_seen = false;
    let d2 = run(&p, &d.next, f);
    assert_eq!(d2.verdict, Verdict::Done);
}

#[test]
fn row_incomplete() {
    let mut f = facts();
    f.markers.done_marker = Some(true);
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Incomplete);
    assert_eq!(d.severity(), Severity::Warning);
    assert!(d.detail.unwrap().contains("/r/ckpt 1/3"));
}

#[test]
fn row_preempted() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.alive.slurm_final = Some("123 PREEMPTED 0:0".into());
    assert_eq!(run(&profile(""), &State::new("t"), f).verdict, Verdict::Preempted);
}

#[test]
fn row_pending() {
    let mut f = facts();
    f.alive.state = Liveness::Pending;
    f.alive.slurm = Some("123 PENDING 0:00 Priority".into());
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Pending);
    assert_eq!(d.severity(), Severity::Ok);
}

#[test]
fn row_alive_check_error() {
    let mut f = facts();
    f.alive.state = Liveness::Error;
    f.alive.why = Some("tmux-not-installed".into());
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::ProbeError);
    assert!(d.detail.unwrap().contains("tmux not installed"));
}

#[test]
fn row_slurm_timeout() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.alive.slurm_final = Some("123 TIMEOUT 0:0".into());
    assert_eq!(run(&profile(""), &State::new("t"), f).verdict, Verdict::Timeout);
}

#[test]
fn row_crashed_with_class() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.crash.traceback = vec![
        nl(10, "Epoch 3 loss 1.0"),
        nl(11, "Traceback (most recent call last):"),
        nl(12, "  File \"train.py\", line 9, in <module>"),
        nl(
            13,
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ),
    ];
    f.crash.last_progress_nr = 10;
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Crashed);
    let c = d.crash.unwrap();
    assert_eq!(c.class, Class::CudaOom);
    assert!(c.excerpt.contains("CUDA out of memory"));
    assert_eq!(d.remediation, Class::CudaOom.remediation());
}

#[test]
fn crash_before_later_progress_is_stale() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.crash.traceback = vec![nl(11, "Traceback (most recent call last):"), nl(12, "KeyError: 'x'")];
    f.crash.signatures = vec![nl(12, "KeyError: 'x'")];
    f.crash.last_progress_nr = 500;
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Died);
}

#[test]
fn oom_counter_rise_when_dead_is_a_crash() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.cgroup.oom_kills = Some(1);
    let d = run(&profile(""), &seen(3, NOW - 60), f);
    assert_eq!(d.verdict, Verdict::Crashed);
    assert_eq!(d.crash.unwrap().class, Class::CgroupOom);
}

#[test]
fn row_slurm_completed_without_marker() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.alive.slurm_final = Some("123 COMPLETED 0:0".into());
    assert_eq!(run(&profile(""), &State::new("t"), f).verdict, Verdict::Incomplete);
}

#[test]
fn row_died() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.alive.why = Some("no-tmux-session".into());
    f.crash.signatures = vec![nl(5, "config: {on_error: skip}")];
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Died);
    assert_eq!(d.detail.as_deref(), Some("no tmux session"));
    assert_eq!(d.severity(), Severity::Critical);
}

#[test]
fn row_timeout() {
    let p = profile("  max_runtime: 1h\n");
    let mut f = facts();
    f.alive.running_for_s = Some(3601);
    assert_eq!(run(&p, &seen(3, NOW - 10), f).verdict, Verdict::Timeout);
}

#[test]
fn row_block_buffered_is_not_a_stall() {
    let mut f = facts();
    let log = f.log.as_mut().unwrap();
    log.mtime = NOW - 3600;
    log.candidates.clear();
    log.tail.clear();
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 2,
        newer_than_log: true,
    })];
    let d = run(&profile(""), &seen(3, NOW - 3600), f);
    assert_eq!(d.verdict, Verdict::Running);
    assert_eq!(d.severity(), Severity::Warning);
    assert!(d.warnings.iter().any(|w| w.contains("block_buffered_stdout")));
}

#[test]
fn row_stalled_when_log_grows_without_steps() {
    // the log keeps growing ("waiting...") but the step never moves
    let mut f = facts();
    let log = f.log.as_mut().unwrap();
    log.mtime = NOW - 1;
    log.candidates = vec![nl(3, "Epoch 3 loss 1.0")];
    let d = run(&profile(""), &seen(3, NOW - 3600), f);
    assert_eq!(d.verdict, Verdict::Stalled);
    assert_eq!(d.progress.stalled_for_s, Some(3600));
}

#[test]
fn row_running_and_progress_bookkeeping() {
    let mut f = facts();
    f.log.as_mut().unwrap().candidates = vec![nl(3, "Epoch 5 loss 0.9")];
    f.log.as_mut().unwrap().tail = vec![nl(3, "Epoch 5 loss 0.9"), nl(4, "Epoch 6 loss 0.8")];
    let d = run(&profile(""), &seen(3, NOW - 600), f);
    assert_eq!(d.verdict, Verdict::Running);
    assert_eq!(d.severity(), Severity::Ok);
    assert_eq!(d.progress.step, Some(6));
    assert_eq!(d.progress.delta, Some(3));
    assert!(d.progress.advanced_this_tick);
    assert_eq!(d.next.progress.advanced_at, Some(NOW - 5));
    assert_eq!(d.next.log.offset, 1000);
}

#[test]
fn first_sighting_uses_the_log_mtime_not_our_clock() {
    let mut f = facts();
    f.log.as_mut().unwrap().mtime = NOW - 7200;
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(
        d.verdict,
        Verdict::Stalled,
        "a step last written 2h ago is not progress now"
    );
}

#[test]
fn unfinished_last_line_is_reread() {
    let mut f = facts();
    let log = f.log.as_mut().unwrap();
    log.ends_with_newline = false;
    log.last_len = 5;
    let d = run(&profile(""), &State::new("t"), f);
    assert_eq!(d.next.log.offset, 995);
}

#[test]
fn warnings_escalate_running_to_warning() {
    let mut f = facts();
    f.disk = Some(Disk {
        used_pct: Some(95.0),
        inodes_used_pct: Some(91.0),
        avail_kib: Some(1),
    });
    f.cgroup.mem_used_pct = Some(93.0);
    f.problems.push("gpu: timed out on the box".into());
    let d = run(&profile(""), &seen(3, NOW - 10), f);
    assert_eq!(d.verdict, Verdict::Running);
    assert_eq!(d.severity(), Severity::Warning);
    assert_eq!(d.warnings.len(), 4, "{:?}", d.warnings);
}

#[test]
fn gpu_idle_while_advancing_is_data_bound() {
    let mut f = facts();
    f.log.as_mut().unwrap().tail = vec![nl(9, "Epoch 4")];
    f.gpus = Gpus::Present {
        gpus: vec![Gpu {
            index: 0,
            util_pct: 1.0,
            mem_used_mib: 1.0,
            mem_total_mib: 2.0,
            temp_c: None,
        }],
        samples: 3,
    };
    let d = run(&profile(""), &seen(3, NOW - 10), f);
    assert!(d.warnings.iter().any(|w| w.contains("data-bound")), "{:?}", d.warnings);
}

#[test]
fn transport_failure_keeps_offsets_and_counts() {
    let prev = seen(3, NOW - 10);
    let d = decide(
        &profile(""),
        &prev,
        &Observation::Transport {
            verdict: Verdict::Unreachable,
            message: "connection refused".into(),
        },
        "2026-11-24T12:00:00Z",
    );
    assert_eq!(d.verdict, Verdict::Unreachable);
    assert_eq!(d.severity(), Severity::Unknown);
    assert_eq!(d.next.log, prev.log);
    assert_eq!(d.next.failures_in_a_row, 1);
}

#[test]
fn every_row_has_a_name_and_the_table_ends_with_otherwise() {
    assert_eq!(TABLE.last().unwrap().0, "otherwise");
    assert!(TABLE.len() >= 12);
}

#[test]
fn a_chain_stage_killed_with_137_is_cgroup_oom() {
    use crate::probe::facts::{ChainFacts, StageFacts, StageState};
    let p = profile::parse(
        Path::new("t.yaml"),
        "name: t\nhost: h\nchain:\n  dir: /c\n  stages:\n    - { name: train, run: 'python train.py' }\n",
    )
    .unwrap();
    let mut f = facts();
    f.alive.state = Liveness::Unknown;
    f.chain = Some(ChainFacts {
        present: true,
        alive: false,
        pid: None,
        done: false,
        stages: vec![StageFacts {
            name: "train".into(),
            state: StageState::Failed(137),
            heartbeat_age_s: Some(5),
            result: None,
            slurm: None,
        }],
    });
    let d = run(&p, &State::new("t"), f);
    assert_eq!(d.verdict, Verdict::Crashed);
    assert_eq!(d.crash.unwrap().class, Class::CgroupOom);
}

#[test]
fn slurm_exit_signal_reads_as_128_plus() {
    let mut f = facts();
    f.alive.slurm_final = Some("42 FAILED 0:9 NonZeroExitCode".into());
    assert_eq!(f.recorded_exit_code(), Some(137));
    f.alive.slurm_final = Some("42 FAILED 3:0 NonZeroExitCode".into());
    assert_eq!(f.recorded_exit_code(), Some(3));
}

#[test]
fn done_text_in_the_master_log_is_remembered() {
    let p = profile("  master_log: /m\n  done_pattern: 'run B done'\n");
    let mut f = facts();
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 3,
        newer_than_log: false,
    })];
    f.markers.master_done = Some(true);
    f.markers.master_size = Some(100);
    f.markers.master_inode = Some(9);
    let d = run(&p, &State::new("t"), f.clone());
    assert_eq!(d.verdict, Verdict::Done);
    // next tick: nothing new in the master log
    f.markers.master_done = Some(false);
    f.markers.master_size = Some(120);
    let d2 = run(&p, &d.next, f.clone());
    assert_eq!(d2.verdict, Verdict::Done, "DONE must not flip back");
    // a new master log (new inode) forgets it
    f.markers.master_inode = Some(10);
    f.markers.master_size = Some(5);
    let d3 = run(&p, &d2.next, f);
    assert_ne!(d3.verdict, Verdict::Done);
}

#[test]
fn a_new_log_restarts_the_stall_clock() {
    let mut f = facts();
    let log = f.log.as_mut().unwrap();
    log.inode = 99; // rotated: a new run
    log.rotated = true;
    log.candidates.clear();
    log.tail = vec![nl(1, "loading model...")];
    let d = run(&profile(""), &seen(3, NOW - 7200), f);
    assert_eq!(d.verdict, Verdict::Running, "{:?}", d.detail);
    assert_eq!(d.progress.step, None);
    assert_eq!(d.progress.stalled_for_s, Some(0));
}
