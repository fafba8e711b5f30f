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
    s.log = crate::state::LogCursor {
        offset: 500,
        inode: 7,
        ..Default::default()
    };
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
        newest_after_log: None,
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
        newest_after_log: None,
    })];
    f.log.as_mut().unwrap().done_line = Some(4);
    let d = run(&p, &State::new("t"), f.clone());
    assert_eq!(d.verdict, Verdict::Done);
    // the next tick's new stretch no longer holds the text; state does
    f.log.as_mut().unwrap().done_line = None;
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
        newest_after_log: Some(NOW - 60),
    })];
    let d = run(&profile(""), &seen(3, NOW - 3600), f.clone());
    assert_eq!(d.verdict, Verdict::Running);
    assert_eq!(d.severity(), Severity::Warning);
    assert!(d.warnings.iter().any(|w| w.contains("block_buffered_stdout")));
    // a checkpoint newer than the log but itself older than stall_after says
    // nothing of now: the job wrote it, then hung
    f.artifacts[0].as_mut().unwrap().newest_after_log = Some(NOW - 3000);
    let d = run(&profile(""), &seen(3, NOW - 3600), f);
    assert_eq!(d.verdict, Verdict::Stalled, "{:?}", d.warnings);
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
            util_pct: Some(1.0),
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
        alive_error: None,
        pid: None,
        started: None,
        done: false,
        stages: vec![StageFacts {
            name: "train".into(),
            state: StageState::Failed(137),
            heartbeat_age_s: Some(5),
            output_age_s: Some(5),
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
        newest_after_log: None,
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

#[test]
fn a_marker_older_than_the_run_is_stale() {
    let mut f = facts();
    f.markers.done_marker = Some(true);
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 3,
        newest_after_log: None,
    })];
    // alive, started an hour ago; the marker is two hours old
    f.markers.done_marker_mtime = Some(NOW - 7200);
    let d = run(&profile(""), &seen(3, NOW - 10), f.clone());
    assert_eq!(d.verdict, Verdict::Running);
    assert!(d.notes.iter().any(|n| n.contains("stale done marker")), "{:?}", d.notes);
    assert_eq!(d.severity(), Severity::Ok, "a note, not a warning");
    assert_eq!(d.next.run_started, Some(NOW - 3600));
    // it dies: the marker is still the earlier run's
    let mut dead = f.clone();
    dead.alive.state = Liveness::No;
    dead.alive.started = None;
    dead.alive.why = Some("no-tmux-session".into());
    let d2 = run(&profile(""), &d.next, dead);
    assert_eq!(d2.verdict, Verdict::Died);
    assert!(d2.notes.iter().any(|n| n.contains("stale done marker")));
    // a marker written after the run started is the run's own
    f.markers.done_marker_mtime = Some(NOW - 60);
    assert_eq!(run(&profile(""), &seen(3, NOW - 10), f).verdict, Verdict::Done);
}

#[test]
fn a_marker_beside_a_new_log_is_stale_even_when_the_run_was_never_seen() {
    let mut f = facts();
    f.alive.state = Liveness::No;
    f.alive.started = None;
    f.markers.done_marker = Some(true);
    f.markers.done_marker_mtime = Some(NOW - 3000);
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 3,
        newest_after_log: None,
    })];
    {
        let l = f.log.as_mut().unwrap();
        l.fp = "abc64".into();
        l.fp_len = 64;
        // the job wrote DONE, then logged an upload for an hour: still its marker
        l.mtime = NOW - 10;
    }
    let d = run(&profile(""), &State::new("t"), f.clone());
    assert_eq!(d.verdict, Verdict::Done, "first tick, nothing says otherwise");
    assert_eq!(d.next.run_started, None);
    assert_eq!(d.next.done_log.as_ref().unwrap().inode, 7);
    // a re-run with a new log (another inode) died before the next tick
    let mut f2 = f.clone();
    {
        let l = f2.log.as_mut().unwrap();
        l.inode = 99;
        l.fp = "new64".into();
    }
    let d2 = run(&profile(""), &d.next, f2);
    assert_eq!(d2.verdict, Verdict::Died);
    assert!(d2.notes.iter().any(|n| n.contains("stale done marker")));
    // the same log truncated and rewritten (`> log`): same inode, new first bytes
    let mut f3 = f;
    f3.log.as_mut().unwrap().fp = "rewritten".into();
    assert_eq!(run(&profile(""), &d.next, f3).verdict, Verdict::Died);
}

#[test]
fn done_text_holds_through_an_eval_bar_and_is_stale_for_a_new_process() {
    let p = profile("  done_pattern: 'Training completed'\n");
    let mut f = facts();
    f.artifacts = vec![Some(ArtifactFacts {
        exists: true,
        count: 3,
        newest_after_log: None,
    })];
    let log = f.log.as_mut().unwrap();
    log.candidates = vec![nl(3, "Epoch 100 loss 0.1")];
    log.tail = vec![nl(3, "Epoch 100 loss 0.1"), nl(4, "Training completed")];
    log.done_line = Some(4);
    let d = run(&p, &seen(99, NOW - 10), f.clone());
    assert_eq!(d.verdict, Verdict::Done);
    assert_eq!(d.next.done_seen_at, Some(NOW));
    // the same process runs an eval with its own bar (Epoch 1..): still done
    let mut f2 = f.clone();
    let log = f2.log.as_mut().unwrap();
    log.done_line = None;
    log.candidates = vec![nl(1, "eval Epoch 1/3")];
    log.tail = log.candidates.clone();
    let d2 = run(&p, &d.next, f2.clone());
    assert_eq!(d2.verdict, Verdict::Done, "{:?}", d2.detail);
    // then it exits: done
    let mut f3 = f2.clone();
    f3.alive.state = Liveness::No;
    f3.alive.started = None;
    assert_eq!(run(&p, &d2.next, f3).verdict, Verdict::Done);
    // a re-run appends to the same log: a process that started after the text was seen
    let mut f4 = f2;
    f4.now = NOW + 600;
    f4.alive.started = Some(NOW + 60);
    let d4 = run(&p, &d.next, f4);
    assert_eq!(d4.verdict, Verdict::Running, "{:?}", d4.detail);
    assert!(!d4.next.done_seen);
    // in one stretch: the text, then a new process's first steps
    let mut f5 = f;
    f5.alive.started = Some(NOW - 5);
    let log = f5.log.as_mut().unwrap();
    log.candidates = vec![nl(3, "Epoch 100 loss 0.1"), nl(9, "Epoch 1 loss 0.9")];
    log.tail = vec![nl(4, "Training completed"), nl(9, "Epoch 1 loss 0.9")];
    assert_eq!(run(&p, &seen(99, NOW - 10), f5).verdict, Verdict::Running);
}

#[test]
fn a_new_process_is_not_stalled_from_birth() {
    // last step an hour ago, stall_after 10m, but this process started 2 minutes ago
    let mut f = facts();
    f.alive.started = Some(NOW - 120);
    f.log.as_mut().unwrap().candidates = vec![];
    f.log.as_mut().unwrap().tail = vec![nl(1, "loading checkpoint")];
    let d = run(&profile(""), &seen(3, NOW - 3600), f.clone());
    assert_eq!(d.verdict, Verdict::Running, "{:?}", d.detail);
    assert_eq!(d.progress.stalled_for_s, Some(120));
    f.alive.started = Some(NOW - 3000);
    assert_eq!(run(&profile(""), &seen(3, NOW - 3600), f).verdict, Verdict::Stalled);
}

#[test]
fn steps_from_the_box_never_overflow() {
    let mut f = facts();
    f.log.as_mut().unwrap().candidates = vec![nl(3, "Epoch 18446744073709551615")];
    let d = run(&profile(""), &seen(0, NOW - 10), f.clone());
    assert_eq!(d.progress.step, Some(u64::MAX));
    assert_eq!(d.progress.delta, Some(i64::MAX));
    // past u64: not a step at all
    f.log.as_mut().unwrap().candidates = vec![nl(3, "Epoch 99999999999999999999999")];
    f.log.as_mut().unwrap().tail = vec![];
    let d = run(&profile(""), &seen(3, NOW - 10), f);
    assert_eq!(d.progress.step, Some(3));
}

fn gpus(rows: &[(f64, f64)], samples: u32, spin_samples: u32) -> Gpus {
    Gpus::Present {
        gpus: rows
            .iter()
            .enumerate()
            .map(|(i, (util, power))| Gpu {
                index: i as u32,
                util_pct: Some(*util),
                mem_used_mib: 40000.0,
                mem_total_mib: 81920.0,
                temp_c: None,
                power_w: Some(*power),
                power_limit_w: Some(700.0),
                ..Default::default()
            })
            .collect(),
        samples,
        spin_samples,
        errors: vec![],
    }
}

#[test]
fn idle_ranks_and_collective_hangs_are_named_while_alive() {
    let tick = |g: Gpus, prev: &State| {
        let mut f = facts();
        f.gpus = g;
        // no new step this tick (Epoch 3 again)
        run(&profile(""), prev, f)
    };
    let mut rows = vec![(99.0, 500.0); 8];
    rows[2] = (0.0, 60.0);
    rows[6] = (1.0, 61.0);
    // first tick: gpu2 and gpu6 idle; named only if still idle next tick
    let d1 = tick(gpus(&rows, 3, 0), &seen(3, NOW - 10));
    assert!(
        !d1.warnings.iter().any(|x| x.contains("idle while")),
        "{:?}",
        d1.warnings
    );
    assert_eq!(d1.next.gpu_idle_prev, vec![2, 6], "they hold memory: the job's");
    let d2 = tick(gpus(&rows, 3, 0), &d1.next);
    assert!(
        d2.warnings.iter().any(|x| x.starts_with("gpu2,gpu6 idle while 6 busy")),
        "{:?}",
        d2.warnings
    );
    // GPUs the job never used (no memory, never busy) are not dead ranks
    let mut unused = gpus(&rows, 3, 0);
    if let Gpus::Present { gpus, .. } = &mut unused {
        gpus[2].mem_used_mib = 0.0;
        gpus[6].mem_used_mib = 3.0;
    }
    let u1 = tick(unused.clone(), &seen(3, NOW - 10));
    assert!(
        !tick(unused.clone(), &u1.next)
            .warnings
            .iter()
            .any(|x| x.contains("idle while"))
    );
    // ... unless they were busy before: a rank that died and freed its memory
    let mut was = u1.next.clone();
    was.gpu_busy_seen = vec![2];
    let w1 = tick(unused.clone(), &was);
    assert!(
        tick(unused, &w1.next)
            .warnings
            .iter()
            .any(|x| x.starts_with("gpu2 idle while 6 busy"))
    );
    // [N/A] utilisation is unknown, never idle
    let mut na = gpus(&rows, 3, 0);
    if let Gpus::Present { gpus, .. } = &mut na {
        gpus[2].util_pct = None;
        gpus[6].util_pct = None;
    }
    let n1 = tick(na.clone(), &seen(3, NOW - 10));
    assert!(!tick(na, &n1.next).warnings.iter().any(|x| x.contains("idle while")));
    // half idle: two jobs, or one on four GPUs — not a dead rank
    let half: Vec<(f64, f64)> = (0..8)
        .map(|i| if i < 4 { (99.0, 500.0) } else { (0.0, 60.0) })
        .collect();
    let h1 = tick(gpus(&half, 3, 0), &seen(3, NOW - 10));
    assert!(
        !tick(gpus(&half, 3, 0), &h1.next)
            .warnings
            .iter()
            .any(|x| x.contains("idle while"))
    );
    // every GPU busy at idle power in every sample, no new step
    let spin = vec![(100.0, 90.0); 8];
    let hang = |d: &Decision| {
        d.warnings
            .iter()
            .any(|x| x.starts_with("collective hang suspected: all 8 GPUs"))
    };
    assert!(hang(&tick(gpus(&spin, 3, 3), &seen(3, NOW - 10))));
    assert!(
        !hang(&tick(gpus(&spin, 3, 2), &seen(3, NOW - 10))),
        "not in every sample"
    );
    let one = tick(gpus(&spin, 1, 1), &seen(3, NOW - 10));
    assert!(!hang(&one), "one sample: only with the previous tick's");
    assert!(hang(&tick(gpus(&spin, 1, 1), &one.next)));
    // a step advanced this tick: a small model at low power, not a hang
    let mut adv = facts();
    adv.gpus = gpus(&spin, 3, 3);
    adv.log.as_mut().unwrap().candidates = vec![nl(5, "Epoch 4")];
    assert!(!hang(&run(&profile(""), &seen(3, NOW - 10), adv)));
    // a single GPU at idle power is a small model, not a collective
    assert!(
        !tick(gpus(&[(100.0, 90.0)], 3, 3), &seen(3, NOW - 10))
            .warnings
            .iter()
            .any(|x| x.contains("collective"))
    );
    // not alive: no GPU warnings at all
    let mut f = facts();
    f.gpus = gpus(&rows, 3, 0);
    f.alive.state = Liveness::No;
    let mut prev = seen(3, NOW - 10);
    prev.gpu_idle_prev = vec![2, 6];
    assert!(
        !run(&profile(""), &prev, f)
            .warnings
            .iter()
            .any(|x| x.contains("idle while"))
    );
}

#[test]
fn only_a_step_beyond_the_best_is_progress_for_the_restart_budget() {
    // a crash loop restarting from an earlier checkpoint: Epoch 2 after Epoch 4
    let mut prev = seen(4, NOW - 10);
    prev.best_step = Some(4);
    let mut f = facts();
    f.log.as_mut().unwrap().candidates = vec![nl(9, "Epoch 2")];
    let d = run(&profile(""), &prev, f.clone());
    assert!(d.progress.advanced_this_tick, "the step changed");
    assert!(!d.progress.new_best, "but not beyond the best: the budget stays spent");
    assert_eq!(d.next.best_step, Some(4));
    f.log.as_mut().unwrap().candidates = vec![nl(9, "Epoch 5")];
    let d = run(&profile(""), &d.next, f);
    assert!(d.progress.new_best);
    assert_eq!(d.next.best_step, Some(5));
}

#[test]
fn a_log_scan_that_timed_out_moves_the_offset_past_the_stretch() {
    let mut f = facts();
    let l = f.log.as_mut().unwrap();
    l.scan_timed_out = true;
    l.start = 500;
    l.size = 48 << 20;
    l.candidates.clear();
    l.tail.clear();
    let d = run(&profile(""), &seen(3, NOW - 10), f);
    assert_eq!(
        d.next.log.offset,
        48 << 20,
        "the next tick starts after what could not be read"
    );
    assert!(
        d.warnings
            .iter()
            .any(|w| w.starts_with("log scan timed out on the box: skipped")),
        "{:?}",
        d.warnings
    );
    assert_eq!(d.progress.step, Some(3), "the last step known stays");
}

#[test]
fn numbers_from_a_hostile_box_never_panic() {
    for (now, mtime, started) in [
        (i64::MAX, i64::MIN, Some(i64::MIN)),
        (i64::MIN, i64::MAX, Some(i64::MAX)),
        (0, 0, None),
    ] {
        let mut f = facts();
        f.now = now;
        f.alive.started = started;
        f.alive.running_for_s = Some(i64::MAX);
        let l = f.log.as_mut().unwrap();
        l.mtime = mtime;
        l.size = u64::MAX;
        l.start = u64::MAX - 1;
        l.last_len = u64::MAX;
        l.ends_with_newline = false;
        f.markers.done_marker = Some(true);
        f.markers.done_marker_mtime = Some(i64::MIN);
        f.cgroup.oom_kills = Some(u64::MAX);
        let mut prev = seen(u64::MAX, 0);
        prev.progress.advanced_at = Some(i64::MIN);
        prev.first_seen = Some(i64::MIN);
        prev.run_started = Some(i64::MAX);
        prev.oom_kills = Some(u64::MAX);
        prev.restarts = vec![i64::MIN, i64::MAX];
        let d = run(&profile("  max_runtime: 1h\n"), &prev, f.clone());
        let _ = crate::resume::plan(&profile("  resume: 'x'\n  auto_resume: true\n"), &d.next, &d, now);
        let _ = run(&profile(""), &d.next, f);
    }
}

#[test]
fn a_gpu_that_fell_off_the_bus_is_named_even_while_alive() {
    // 8 GPUs answered before; 7 now
    let mut prev = seen(3, NOW - 60);
    prev.gpu_count_seen = Some(8);
    let mut f = facts();
    f.gpus = gpus(&[(97.0, 500.0); 7], 1, 0);
    let d = run(&profile(""), &prev, f);
    assert_eq!(d.verdict, Verdict::Running);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.starts_with("gpu_hardware: 7 of the 8 GPUs")),
        "{:?}",
        d.warnings
    );
    assert_eq!(d.next.gpu_count_seen, Some(8), "the most seen is kept");
    // nvidia-smi's own words for a lost GPU, beside the rows of the others
    let mut f = facts();
    let mut g = gpus(&[(97.0, 500.0); 7], 1, 0);
    if let Gpus::Present { errors, .. } = &mut g {
        errors.push("Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error".into());
    }
    f.gpus = g;
    let d = run(&profile(""), &seen(3, NOW - 60), f);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.starts_with("gpu_hardware: nvidia-smi says")),
        "{:?}",
        d.warnings
    );
    // and when nothing answers at all
    let mut f = facts();
    f.gpus = Gpus::Failed {
        why: "Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost.  Reboot the system to recover this GPU".into(),
    };
    let d = run(&profile(""), &seen(3, NOW - 60), f);
    assert!(
        d.warnings.iter().any(|w| w.starts_with("gpu_hardware: ")),
        "{:?}",
        d.warnings
    );
    // a box whose GPUs all answer, as before: no word of it
    let mut prev = seen(3, NOW - 60);
    prev.gpu_count_seen = Some(2);
    let mut f = facts();
    f.gpus = gpus(&[(97.0, 500.0), (96.0, 510.0)], 1, 0);
    let d = run(&profile(""), &prev, f);
    assert!(
        !d.warnings.iter().any(|w| w.contains("gpu_hardware")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn a_new_run_forgets_the_gpus_of_the_last_and_its_done_alert() {
    // the last run saw 8 GPUs and its DONE was delivered; a new log is a new run
    let mut prev = seen(3, NOW - 60);
    prev.gpu_count_seen = Some(8);
    prev.log.inode = 99;
    prev.alert.last_verdict = Some(Verdict::Done);
    let mut f = facts();
    f.gpus = gpus(&[(97.0, 500.0); 4], 1, 0);
    let d = run(&profile(""), &prev, f);
    assert!(
        !d.warnings.iter().any(|w| w.contains("gpu_hardware")),
        "{:?}",
        d.warnings
    );
    assert_eq!(d.next.gpu_count_seen, Some(4));
    assert_eq!(d.next.alert.last_verdict, None, "its DONE will be news again");
}

#[test]
fn a_multi_node_job_names_the_idle_rank_by_node_and_the_worst_node_decides_memory() {
    use crate::probe::frames::Frame;
    use crate::probe::sections::node;
    // two nodes of two GPUs each, from the job step's output; gpu-b's second GPU
    // idle (holding memory) while three are busy, gpu-b at 95% of its memory limit
    let frame = |lines: &[&str]| Frame::ok(lines.iter().copied());
    let out = frame(&[
        "node_rc=0",
        "node_status=ran",
        "0: node=gpu-a",
        "0: cg_version=2",
        "0: cg_current=1000",
        "0: cg_max=10000",
        "0: cg_oom_kill=0",
        "0: g 1 0 0, 97, 70000, 81920, 60, 390.0, 400.0",
        "0: g 1 0 1, 96, 70000, 81920, 60, 385.0, 400.0",
        "1: node=gpu-b",
        "1: cg_version=2",
        "1: cg_current=9500",
        "1: cg_max=10000",
        "1: cg_oom_kill=0",
        "1: g 1 0 0, 98, 70000, 81920, 60, 391.0, 400.0",
        "1: g 1 0 1, 0, 70000, 81920, 40, 70.0, 400.0",
    ]);
    let (g, cg) = node::fold(&node::parse(&out));
    let tick = |prev: &State| {
        let mut f = facts();
        f.gpus = g.clone();
        f.cgroup = cg.clone();
        run(&profile(""), prev, f)
    };
    let d1 = tick(&seen(3, NOW - 10));
    let d2 = tick(&d1.next);
    assert!(
        d2.warnings
            .iter()
            .any(|x| x.starts_with("gpu-b:gpu1 idle while 3 busy")),
        "{:?}",
        d2.warnings
    );
    // the worst node's memory (95% > the 90% threshold) warns
    assert!(d2.warnings.iter().any(|x| x.contains("mem")), "{:?}", d2.warnings);
    assert_eq!(d2.verdict, Verdict::Running);
    assert_eq!(d2.severity(), crate::verdict::Severity::Warning);
}
