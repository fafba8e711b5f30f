//! Failure triage: classify a failure from the per-run log's last traceback
//! and the box's evidence. Each class maps to one FIXED remediation; nothing
//! here ever suggests a blind retry. Pure code: `tick` uses it for CRASHED,
//! `triage` for a remote or a local log.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    DiskFull,
    InodeFull,
    CgroupOom,
    CudaOom,
    ConfigMismatch,
    Divergence,
    Nccl,
    Preempted,
    BlockBufferedStdout,
    NoisyNeighbor,
    ThreadOversubscription,
    Unknown,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::DiskFull => "disk_full",
            Class::InodeFull => "inode_full",
            Class::CgroupOom => "cgroup_oom",
            Class::CudaOom => "cuda_oom",
            Class::ConfigMismatch => "config_mismatch",
            Class::Divergence => "divergence",
            Class::Nccl => "nccl",
            Class::Preempted => "preempted",
            Class::BlockBufferedStdout => "block_buffered_stdout",
            Class::NoisyNeighbor => "noisy_neighbor",
            Class::ThreadOversubscription => "thread_oversubscription",
            Class::Unknown => "unknown",
        }
    }

    /// The fixed remediation for this class.
    pub fn remediation(self) -> &'static str {
        match self {
            Class::DiskFull => {
                "disk filled during a checkpoint save: check df -h and df -i on the data mount, prune periodic/latest snapshots, then resume from the last complete checkpoint"
            }
            Class::InodeFull => {
                "inodes exhausted (many small files): check df -i, pack or delete small eval/cache files, then resume from the last complete checkpoint"
            }
            Class::CgroupOom => {
                "killed by the container memory limit (cgroup OOM): size dataloader workers against memory.max, not the CPU count, then resume from the latest checkpoint"
            }
            Class::CudaOom => {
                "GPU memory exhausted: lower the batch size (or use gradient accumulation/checkpointing) or stop the concurrent GPU job, then resume; it usually repeats, so do not just retry"
            }
            Class::ConfigMismatch => {
                "config/code mismatch: fix the code or config the traceback names; do not retry unchanged"
            }
            Class::Divergence => {
                "training diverged (loss NaN/inf or a grad-norm spike): rerun the identical config once before judging; if it repeats, lower the learning rate or check the data"
            }
            Class::Nccl => {
                "NCCL communication failed or timed out: check every rank's log and the interconnect (NCCL_DEBUG=INFO), then resume from the latest checkpoint"
            }
            Class::Preempted => {
                "the scheduler or provider ended the job: resume from the latest checkpoint once capacity returns (resubmit on Slurm)"
            }
            Class::BlockBufferedStdout => {
                "the log is frozen but checkpoints advance: stdout is block-buffered, not hung; run with python -u or PYTHONUNBUFFERED=1"
            }
            Class::NoisyNeighbor => {
                "the host is loaded but your cgroup is roomy: a noisy neighbor on the shared host, not your job; move boxes if throughput suffers"
            }
            Class::ThreadOversubscription => {
                "more busy threads than the CPU quota: cap OMP_NUM_THREADS (and torch.set_num_threads) to the cgroup quota"
            }
            Class::Unknown => "unrecognised failure: read the excerpt and the full per-run log; do not blind-retry",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

/// Evidence beyond the log text.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The cgroup oom_kill counter rose since the last look.
    pub oom_kill_rose: bool,
    /// The job's exit status, when a sentinel or the scheduler recorded it.
    pub exit_code: Option<i32>,
    pub disk_used_pct: Option<f64>,
    pub inodes_used_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub class: Class,
    pub confidence: Confidence,
    /// The line or fact that decided it.
    pub evidence: String,
}

struct Rule {
    class: Class,
    re: &'static LazyLock<Regex>,
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("valid triage regex"));
    };
}

re!(
    DISK,
    r"No space left on device|basic_ios::clear: iostream error|unexpected pos \d+ vs \d+|\[Errno 28\]|PytorchStreamWriter failed writing file|Disk quota exceeded"
);
re!(
    CUDA_OOM,
    r"CUDA out of memory|torch\.OutOfMemoryError|torch\.cuda\.OutOfMemoryError|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED|HIP out of memory"
);
re!(
    NCCL,
    r"NCCL (error|WARN|INFO.*(timeout|Timeout))|ncclInternalError|ncclSystemError|ncclUnhandledCudaError|ncclRemoteError|ProcessGroupNCCL.*([Tt]imeout|[Ww]atchdog)|Watchdog caught collective operation timeout|DistBackendError|NCCL communicator was aborted|collective operation timeout"
);
re!(
    KILLED,
    r"(^|[^A-Za-z])Killed\s*$|exit(ed)?( with)?( status| code)? 137|exitcode\s*:\s*-9|signal 9 \(SIGKILL\)|SIGKILL|Out of memory: Killed process|oom-kill|DataLoader worker \(pid\(?s?\)?\s*[\d, ]+\) is killed by signal: Killed"
);
re!(
    CONFIG,
    r"(^|\s)(KeyError|AttributeError|ModuleNotFoundError|ImportError|omegaconf\.errors\.\w+|hydra\.errors\.\w+|ConfigAttributeError|ConfigKeyError)\b|TypeError: .*(unexpected keyword argument|missing \d+ required positional argument|got multiple values for argument)|Error\(s\) in loading state_dict|size mismatch for"
);
re!(
    DIVERGE,
    r"(?i)loss\s*(is|=|:)?\s*(nan|inf|-inf)\b|\bnan loss\b|Detected (NaN|inf)|non-finite loss|grad[_ ]?norm\s*(is|=|:)?\s*(nan|inf)|Function '\w+Backward\d*' returned nan|FloatingPointError|gradient overflow.*skipping|Loss scale.*(reached|below) minimum"
);
re!(
    PREEMPT,
    r"DUE TO PREEMPTION|DUE TO NODE FAILURE|PREEMPTED|NODE_FAIL|preempted|Spot instance (interruption|termination)|instance.*(reclaimed|terminat)"
);
re!(
    TRACEBACK,
    r"Traceback \(most recent call last\)|^\s*File .*, line \d+, in |^\w+(\.\w+)*(Error|Exception): |terminate called after throwing|Segmentation fault|core dumped|Fatal Python error|RuntimeError:"
);
re!(ANSI, r"\x1b\[[0-9;?]*[ -/]*[@-~]");

/// Ordered: the first matching rule wins. Disk before CUDA (a failed save
/// can cascade), CUDA OOM before NCCL (an OOM on one rank times out the
/// others), NCCL before cgroup kill, config last among the hard signatures.
static RULES: &[Rule] = &[
    Rule {
        class: Class::DiskFull,
        re: &DISK,
    },
    Rule {
        class: Class::CudaOom,
        re: &CUDA_OOM,
    },
    Rule {
        class: Class::Nccl,
        re: &NCCL,
    },
    Rule {
        class: Class::CgroupOom,
        re: &KILLED,
    },
    Rule {
        class: Class::Preempted,
        re: &PREEMPT,
    },
    Rule {
        class: Class::Divergence,
        re: &DIVERGE,
    },
    Rule {
        class: Class::ConfigMismatch,
        re: &CONFIG,
    },
];

/// Strip ANSI colour codes and keep the last `\r` segment of each line.
pub fn clean_line(line: &str) -> String {
    let no_ansi = ANSI.replace_all(line, "");
    let last = no_ansi.rsplit('\r').find(|s| !s.trim().is_empty()).unwrap_or("");
    last.trim_end().to_string()
}

/// Does this text hold a crash signature at all (a traceback, a fatal
/// error, or one of the classes' hard signatures)? A config dump that
/// mentions "error" does not.
pub fn has_crash_signature(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        let l = clean_line(l);
        TRACEBACK.is_match(&l) || RULES.iter().any(|r| r.re.is_match(&l))
    })
}

/// Classify a failure. `lines` is the excerpt, oldest first.
pub fn classify(lines: &[String], ctx: &Context) -> Classification {
    let cleaned: Vec<String> = lines.iter().map(|l| clean_line(l)).collect();
    // The last (outermost, in a chained exception) error wins, so scan
    // from the end, but let rule order break ties within the last traceback.
    let last_tb = cleaned
        .iter()
        .rposition(|l| l.contains("Traceback (most recent call last)"))
        .unwrap_or(0);
    let scopes: [&[String]; 2] = [&cleaned[last_tb..], &cleaned[..]];
    for (i, scope) in scopes.iter().enumerate() {
        for rule in RULES {
            if let Some(line) = scope.iter().rev().find(|l| rule.re.is_match(l)) {
                let mut class = rule.class;
                if class == Class::DiskFull
                    && ctx.inodes_used_pct.is_some_and(|p| p >= 99.0)
                    && ctx.disk_used_pct.is_none_or(|p| p < 99.0)
                {
                    class = Class::InodeFull;
                }
                return Classification {
                    class,
                    confidence: if i == 0 { Confidence::High } else { Confidence::Medium },
                    evidence: excerpt_line(line),
                };
            }
        }
    }
    if ctx.oom_kill_rose {
        return Classification {
            class: Class::CgroupOom,
            confidence: Confidence::High,
            evidence: "cgroup memory.events oom_kill counter rose".into(),
        };
    }
    if ctx.exit_code == Some(137) {
        return Classification {
            class: Class::CgroupOom,
            confidence: Confidence::Medium,
            evidence: "exit status 137 (SIGKILL) with no traceback".into(),
        };
    }
    let last_error = cleaned
        .iter()
        .rev()
        .find(|l| TRACEBACK.is_match(l) && !l.trim_start().starts_with("File "));
    Classification {
        class: Class::Unknown,
        confidence: Confidence::Low,
        evidence: last_error
            .or_else(|| cleaned.iter().rev().find(|l| !l.trim().is_empty()))
            .map(|l| excerpt_line(l))
            .unwrap_or_else(|| "no error text in the log".into()),
    }
}

fn excerpt_line(l: &str) -> String {
    let t = l.trim();
    if t.chars().count() > 160 {
        let s: String = t.chars().take(157).collect();
        format!("{s}...")
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    fn class_of(s: &str) -> Class {
        classify(&lines(s), &Context::default()).class
    }

    #[test]
    fn one_case_per_class() {
        assert_eq!(
            class_of(
                "Traceback (most recent call last):\n  File \"t.py\", line 3, in <module>\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
            ),
            Class::CudaOom
        );
        assert_eq!(
            class_of(
                "terminate called after throwing an instance of 'c10::Error'\n  what():  basic_ios::clear: iostream error"
            ),
            Class::DiskFull
        );
        assert_eq!(
            class_of("RuntimeError: [enforce fail at inline_container.cc:595] . unexpected pos 1234 vs 1200"),
            Class::DiskFull
        );
        assert_eq!(class_of("OSError: [Errno 28] No space left on device"), Class::DiskFull);
        assert_eq!(class_of("Epoch 3\nKilled"), Class::CgroupOom);
        assert_eq!(
            class_of("Traceback (most recent call last):\nKeyError: 'lr_schedule'"),
            Class::ConfigMismatch
        );
        assert_eq!(
            class_of("AttributeError: 'Namespace' object has no attribute 'warmup'"),
            Class::ConfigMismatch
        );
        assert_eq!(
            class_of("TypeError: __init__() got an unexpected keyword argument 'dropout_p'"),
            Class::ConfigMismatch
        );
        assert_eq!(class_of("step 120 loss nan grad_norm inf"), Class::Divergence);
        assert_eq!(
            class_of(
                "[E ProcessGroupNCCL.cpp:475] [Rank 3] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran for 1800000 milliseconds before timing out."
            ),
            Class::Nccl
        );
        assert_eq!(
            class_of("slurmstepd: error: *** JOB 1234 ON node1 CANCELLED AT 2026-01-01T00:00:00 DUE TO PREEMPTION ***"),
            Class::Preempted
        );
        assert_eq!(
            class_of("Traceback (most recent call last):\nValueError: something odd"),
            Class::Unknown
        );
    }

    #[test]
    fn inode_full_needs_inode_evidence() {
        let ctx = Context {
            inodes_used_pct: Some(100.0),
            disk_used_pct: Some(40.0),
            ..Default::default()
        };
        assert_eq!(
            classify(&lines("OSError: [Errno 28] No space left on device"), &ctx).class,
            Class::InodeFull
        );
    }

    #[test]
    fn oom_counter_without_text() {
        let ctx = Context {
            oom_kill_rose: true,
            ..Default::default()
        };
        let c = classify(&lines("Epoch 4\nEpoch 5"), &ctx);
        assert_eq!(c.class, Class::CgroupOom);
        assert_eq!(c.confidence, Confidence::High);
    }

    #[test]
    fn last_traceback_of_a_chain_wins() {
        let text = "Traceback (most recent call last):\nKeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory.";
        assert_eq!(class_of(text), Class::CudaOom);
    }

    #[test]
    fn ansi_and_carriage_returns_are_cleaned() {
        assert_eq!(
            clean_line("\x1b[31mRuntimeError: CUDA out of memory\x1b[0m"),
            "RuntimeError: CUDA out of memory"
        );
        assert_eq!(clean_line(" 10%|█ | 1/10\r 20%|██ | 2/10\r"), " 20%|██ | 2/10");
    }

    #[test]
    fn config_dump_with_error_word_is_not_a_crash() {
        let dump = lines(
            "config: {on_error: skip, error_rate_threshold: 0.1, log_errors: true}\nEpoch 1 loss 2.3\nEpoch 2 loss 2.1",
        );
        assert!(!has_crash_signature(&dump));
        assert!(has_crash_signature(&lines(
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>"
        )));
        assert!(has_crash_signature(&lines("Killed")));
    }
}
