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
    ShmFull,
    GpuHardware,
    CudaError,
    Network,
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
            Class::ShmFull => "shm_full",
            Class::GpuHardware => "gpu_hardware",
            Class::CudaError => "cuda_error",
            Class::Network => "network",
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
            Class::ShmFull => {
                "the container's /dev/shm is too small for the DataLoader workers (Docker gives 64 MB): raise it (--shm-size=16g or --ipc=host) or lower num_workers, then resume from the latest checkpoint"
            }
            Class::GpuHardware => {
                "the GPU failed (uncorrectable ECC, an Xid, fell off the bus): the box is bad; move the run to another box and report it to the provider; never resume on this box"
            }
            Class::CudaError => {
                "a CUDA kernel failed (device-side assert, illegal memory access): a code or kernel bug, not the box; rerun once with CUDA_LAUNCH_BLOCKING=1 to find the op; never blind-retry"
            }
            Class::Network => {
                "a download from a hub or data store failed (DNS, connection reset, timeout): transient; retry with backoff, or cache the files (HF_HUB_OFFLINE=1 once they are downloaded) and run offline"
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
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new(&ascii_classes($pat)).expect("valid triage regex"));
    };
}

/// `\d`, `\w`, `\s`, `\b` as their ASCII forms: the signatures are ASCII, and
/// the Unicode classes cost milliseconds to compile in every tick's process.
fn ascii_classes(p: &str) -> String {
    let mut out = String::with_capacity(p.len() * 2);
    let mut in_class = false;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push(c);
                    break;
                };
                match (in_class, n) {
                    // inside [...] a group cannot stand: the ASCII ranges
                    (true, 'd') => out.push_str("0-9"),
                    (true, 'w') => out.push_str("0-9A-Za-z_"),
                    (true, 's') => out.push_str(" \\t\\n\\r\\x0B\\x0C"),
                    (false, 'd' | 'w' | 's' | 'b') => {
                        out.push_str("(?-u:\\");
                        out.push(n);
                        out.push(')');
                    }
                    _ => {
                        out.push(c);
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // a `]` or `^]` right after the opening bracket is literal
                if p[p.len() - chars.as_str().len()..].starts_with(']') {
                    out.push(chars.next().unwrap_or(']'));
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

re!(
    DISK,
    r"No space left on device|basic_ios::clear: iostream error|unexpected pos \d+ vs \d+|\[Errno 28\]|PytorchStreamWriter failed writing file|Disk quota exceeded"
);
re!(
    CUDA_OOM,
    r"CUDA out of memory|torch\.OutOfMemoryError|torch\.cuda\.OutOfMemoryError|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUBLAS_STATUS_NOT_INITIALIZED|HIP out of memory"
);
re!(
    NCCL,
    r"NCCL (error|ERROR)|NCCL WARN .*([Ff]ail|[Ee]rror|[Tt]imeout|timed out|[Aa]bort|refused|reset|truncated|unhandled)|ncclInternalError|ncclSystemError|ncclUnhandledCudaError|ncclRemoteError|ncclInvalidUsage|ProcessGroupNCCL.*([Tt]imeout|[Ww]atchdog)|Watchdog caught collective operation timeout|DistBackendError|NCCL communicator was aborted|collective operation timeout"
);
re!(
    KILLED,
    r"(^|[^A-Za-z])Killed\s*$|^(\S+: )?(line \d+: )?\s*\d+ Killed\s{2,}\S|exit(ed)?( with)?( status| code)? 137|exitcode\s*:\s*-9|signal 9 \(SIGKILL\)|SIGKILL|Out of memory: Killed process|oom-kill|oom_kill event|OOM Killed|task \d+: Out Of Memory|OUT_OF_MEMORY|exits with return code = -9|non-zero exit status -9|DataLoader worker \(pid\(?s?\)?\s*[\d, ]+\) is killed by signal: Killed"
);
re!(
    CONFIG,
    r"(^|\s)(KeyError|AttributeError|ModuleNotFoundError|ImportError|omegaconf\.errors\.\w+|hydra\.errors\.\w+|ConfigAttributeError|ConfigKeyError)\b|TypeError: .*(unexpected keyword argument|missing \d+ required positional argument|got multiple values for argument)|Error\(s\) in loading state_dict|size mismatch for"
);
re!(
    DIVERGE,
    r#"(?i)(^|[\s{,'"(])((train|val|eval|valid|training)[_/ ])?loss['"]?\s*(is|=|:)?\s*['"]?(nan|inf|-inf)\b|\bnan loss\b|Detected (NaN|inf)|non-finite loss|(^|[\s{,'"(])grad[_ ]?norm['"]?\s*(is|=|:)?\s*['"]?(nan|inf)\b|Function '\w+Backward\d*' returned nan|FloatingPointError|gradient overflow.*skipping|Loss scale.*(reached|below) minimum"#
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
re!(
    SHM,
    r"Unexpected bus error encountered in worker|insufficient shared memory \(shm\)|out of shared memory|is killed by signal: Bus error|No space left on device.*/dev/shm|/dev/shm.*No space left on device|unable to write to file </torch_|unable to open shared memory object|unable to (write to|open|mmap) shared memory|shm_open.*(failed|No space)"
);
re!(
    GPU_HW,
    r"(?i)uncorrectable ECC error|fallen off the bus|\bXid \([^)]*\):\s*(48|63|64|74|79|94|95|119|120)\b|Unable to determine the device handle for GPU|GPU is lost|GPU requires reset"
);
re!(
    CUDA_ERR,
    r"device-side assert triggered|an illegal memory access was encountered|CUDA error: (misaligned address|unspecified launch failure|an illegal instruction was encountered|invalid device function|no kernel image is available)|cudaErrorIllegalAddress|CUDA_ERROR_ILLEGAL_ADDRESS|\.cu:\d+: .*Assertion .* failed"
);
re!(
    NETWORK,
    r"Temporary failure in name resolution|Name or service not known|nodename nor servname provided|getaddrinfo failed|MaxRetryError|Max retries exceeded with url|RetryError|ConnectionResetError|Connection reset by peer|ConnectTimeout|ReadTimeout|We couldn't connect to '[^']*' to load|couldn't connect to .* to load|Couldn't reach .* on the Hub|LocalEntryNotFoundError|HTTPSConnectionPool|requests\.exceptions\.ConnectionError|Network is unreachable|RemoteDisconnected|The read operation timed out"
);
// A line that says it will try again is a warning, not the failure
// ("wandb: Network error (ConnectionError), entering retry loop.").
re!(
    RETRYING,
    r"(?i)\bretrying\b|entering retry loop|will retry|backing off|retries left|\[retry \d|retry\(total="
);
// The collectives' own words: a reset inside NCCL/Gloo/c10d is nccl, not a hub download.
re!(COLLECTIVE, r"NCCL|[Gg]loo|c10d|ProcessGroup|TCPStore");
// Lines of torchrun's elastic agent (it tears the other ranks down with
// signals, and sums up): a wrapper, never a rank's own cause.
re!(
    WRAPPER,
    r"torch\.distributed\.elastic|closing signal|ChildFailedError|^\s*(exitcode|error_file|traceback|local_rank|rank|host|time)\s*:|failed \(exitcode:"
);
// A rank's prefix: torchrun's `[rank3]:` / `[default3]:`, or NCCL's `[Rank 3]`.
re!(RANK_PREFIX, r"^\[(?:rank|default)\s*(\d+)\]:?|\[Rank (\d+)\]");
// A warning is no failure, whatever it names ("WARNING:root:xformers not
// available, ImportError: …; using sdpa").
re!(
    WARNING_LINE,
    r"(?i)^\S*\s*(\[\s*)?warn(ing)?\b|\b(User|Future|Deprecation|Runtime|Resource)Warning\b|^W\d{4} "
);
re!(STAMP, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)? ");
re!(TQDM_BAR, r"\d+%\|");
// a bar's count: "| 500/1000 "
re!(BAR_COUNT, r"\|\s*(\d+)/(\d+)\b");
re!(PROGRESS_NUM, r"(?i)\b(step|epoch|iter|iteration)\b[^a-z\n]{0,4}?(\d+)");
re!(
    WORKER_PROCESS,
    r"^Process (Spawn|Fork|ForkServer)?(Process|PoolWorker)-\d+:$"
);
// A line of training going on (a traceback before it was survived).
re!(
    PROGRESSISH,
    r"(?i)\b(step|epoch|iter|iteration|loss)\b[^a-z\n]{0,4}\d|\d+it/s|\d+/\d+ \["
);
re!(
    EXCEPTION_LINE,
    r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)?(: |:$|$)"
);

re!(ROOT_CAUSE_RANK, r"^\s*rank\s*:\s*(\d+)");

/// The classes a failure is caused by, in the order that breaks a tie on
/// one line: shm before disk (a full /dev/shm says "No space left"), the
/// GPU's hardware before CUDA errors, CUDA OOM before the rest.
static CAUSES: &[Rule] = &[
    Rule {
        class: Class::ShmFull,
        re: &SHM,
    },
    Rule {
        class: Class::DiskFull,
        re: &DISK,
    },
    Rule {
        class: Class::GpuHardware,
        re: &GPU_HW,
    },
    Rule {
        class: Class::CudaOom,
        re: &CUDA_OOM,
    },
    Rule {
        class: Class::CudaError,
        re: &CUDA_ERR,
    },
    Rule {
        class: Class::Network,
        re: &NETWORK,
    },
    // a preempted job's processes are killed after their grace period
    // (`srun: error: …: task 0: Killed`): the preemption is the cause
    Rule {
        class: Class::Preempted,
        re: &PREEMPT,
    },
    Rule {
        class: Class::CgroupOom,
        re: &KILLED,
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

/// NCCL errors and timeouts are what the other ranks say after one died: a
/// cause only when no rank shows one of its own.
static CONSEQUENCE: Rule = Rule {
    class: Class::Nccl,
    re: &NCCL,
};

/// Strip ANSI colour codes and keep the last `\r` segment of each line.
pub fn clean_line(line: &str) -> String {
    let no_ansi = if line.contains('\x1b') {
        ANSI.replace_all(line, "")
    } else {
        std::borrow::Cow::Borrowed(line)
    };
    let last = no_ansi.rsplit('\r').find(|s| !s.trim().is_empty()).unwrap_or("");
    // `docker logs -t`, journald: a timestamp before every line hides a
    // traceback's indentation
    let last = match STAMP.find(last) {
        Some(m) if m.start() == 0 => &last[m.end()..],
        _ => last,
    };
    last.trim_end().to_string()
}

/// Does `rule` hold for line `i` of these (clean) lines? A retried download
/// is no failure (the retry may be said on the next line), and a reset
/// inside the collectives is not a hub's.
fn holds(rule: &Rule, lines: &[String], i: usize) -> bool {
    let l = &lines[i];
    if !rule.re.is_match(l) {
        return false;
    }
    let retried = RETRYING.is_match(l) || lines.get(i + 1).is_some_and(|n| RETRYING.is_match(n));
    !(rule.class == Class::Network && (retried || COLLECTIVE.is_match(l)))
}

/// Does this text hold a crash signature at all (a traceback, a fatal
/// error, or one of the classes' hard signatures)? A config dump that
/// mentions "error" does not, nor a warning that it will retry.
pub fn has_crash_signature(lines: &[String]) -> bool {
    let cleaned: Vec<String> = lines.iter().map(|l| clean_line(l)).collect();
    // a thread's, an ignored or a survived traceback is no crash
    let noise: Vec<std::ops::Range<usize>> = blocks(&cleaned)
        .into_iter()
        .filter(|b| b.thread || b.survived)
        .map(|b| b.lines)
        .collect();
    (0..cleaned.len()).any(|i| {
        let l = &cleaned[i];
        !noise.iter().any(|r| r.contains(&i))
            && (TRACEBACK.is_match(l)
                || (!WARNING_LINE.is_match(l) && CAUSES.iter().chain([&CONSEQUENCE]).any(|r| holds(r, &cleaned, i))))
    })
}

/// The rank a line belongs to, from its prefix.
fn rank_of(l: &str) -> Option<u32> {
    let c = RANK_PREFIX.captures(l)?;
    c.get(1).or_else(|| c.get(2))?.as_str().parse().ok()
}

/// torchrun's "Root Cause (first observed failure)" block names a rank.
fn root_cause_rank(lines: &[String]) -> Option<u32> {
    let at = lines
        .iter()
        .rposition(|l| l.contains("Root Cause (first observed failure)"))?;
    lines[at + 1..]
        .iter()
        .take(12)
        .find_map(|l| ROOT_CAUSE_RANK.captures(l)?.get(1)?.as_str().parse().ok())
}

/// The first cause on these lines (rule order per line): (line, class).
fn first_cause(lines: &[String], order: impl Iterator<Item = usize>) -> Option<(usize, Class)> {
    for i in order {
        let l = &lines[i];
        if WRAPPER.is_match(l) || WARNING_LINE.is_match(l) {
            continue;
        }
        if let Some(r) = CAUSES.iter().find(|r| holds(r, lines, i)) {
            return Some((i, r.class));
        }
    }
    None
}

/// One Python traceback: its lines (from `Traceback …` to its exception
/// line and what follows it before a blank line), whether a thread printed
/// it (a thread's death is not the process's), and whether it is chained to
/// the one before ("During handling of the above exception", "The above
/// exception was the direct cause").
struct Block {
    lines: std::ops::Range<usize>,
    thread: bool,
    chained: bool,
    /// Training went on after it (a callback's logged and handled error).
    survived: bool,
    /// The launcher's own traceback (torchrun's `ChildFailedError`).
    wrapper: bool,
}

impl Block {
    /// No death of this process: a thread's, a survived one, the launcher's.
    fn noise(&self) -> bool {
        self.thread || self.survived || self.wrapper
    }
}

fn blocks(lines: &[String]) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].contains("Traceback (most recent call last)") {
            i += 1;
            continue;
        }
        let before = &lines[i.saturating_sub(4)..i];
        // a thread's traceback, one Python says it ignored (`__del__`, atexit),
        // a worker process's (`Process SpawnProcess-1:`): not the process's death
        let thread = before.iter().any(|l| {
            l.starts_with("Exception in thread") || l.starts_with("Exception ignored in") || WORKER_PROCESS.is_match(l)
        });
        let chained = before.iter().any(|l| {
            l.contains("During handling of the above exception")
                || l.contains("The above exception was the direct cause")
        });
        let start = i;
        i += 1;
        // the frames (indented), then the exception line, then its tail
        while i < lines.len() && (lines[i].starts_with(' ') || lines[i].starts_with('\t')) {
            i += 1;
        }
        // a thread's traceback ends at its exception (the process goes on)
        let mut end = (i + 1).min(lines.len());
        while !thread
            && end < lines.len()
            && end < i + 5
            && !lines[end].trim().is_empty()
            && !lines[end].contains("Traceback (most recent call last)")
            && !PROGRESSISH.is_match(&lines[end])
        {
            end += 1;
        }
        let exc = (start + 1..end).find(|&k| EXCEPTION_LINE.is_match(&lines[k]));
        let wrapper = exc.is_some_and(|k| WRAPPER.is_match(&lines[k]));
        out.push(Block {
            lines: start..end,
            thread,
            chained,
            survived: false,
            wrapper,
        });
        i = end;
    }
    // Survived: training went on after it — a step moving forward: beyond its
    // last value before it, or from one line after it to the next (a restart
    // from a checkpoint); a bar's count the same, twice (bars closed at exit redraw
    // their last count, once each: nested bars, one per process), or, with
    // nothing to count, two progress records. Outside any traceback, and not
    // a logger's summary ("run ended at step 1200", wandb's `Run summary:`),
    // which repeats the last step.
    let inside = |k: usize, out: &[Block]| out.iter().any(|b| b.lines.contains(&k));
    let step_of = |l: &str| -> Option<(String, u64)> {
        if let Some(c) = BAR_COUNT.captures(l) {
            return Some((format!("bar/{}", &c[2]), c[1].parse().ok()?));
        }
        let c = PROGRESS_NUM.captures(l)?;
        Some((c[1].to_ascii_lowercase(), c[2].parse().ok()?))
    };
    let survived: Vec<bool> = out
        .iter()
        .map(|b| {
            // the last value of each counter before it (not the highest: a
            // re-run appended to the log starts again from a lower step)
            let mut before: Vec<(String, u64)> = Vec::new();
            for k in (0..b.lines.start).filter(|&k| !inside(k, &out)) {
                if let Some((kw, n)) = step_of(&lines[k]) {
                    match before.iter_mut().find(|(w, _)| *w == kw) {
                        Some(e) => e.1 = n,
                        None => before.push((kw, n)),
                    }
                }
            }
            let mut after: Vec<(String, u64)> = Vec::new();
            let (mut records, mut moves) = (0, 0);
            for k in (b.lines.end..lines.len()).filter(|&k| !inside(k, &out)) {
                let l = &lines[k];
                if !PROGRESSISH.is_match(l) || TRACEBACK.is_match(l) || l.starts_with("wandb:") {
                    continue;
                }
                match step_of(l) {
                    Some((kw, n)) => {
                        let beyond = |v: &[(String, u64)]| v.iter().any(|(w, m)| *w == kw && n > *m);
                        // a bar twice: one more step of another process's bar
                        // (501 beside 500, both closed at exit) is no run going on
                        if beyond(&before) || beyond(&after) {
                            moves += 1;
                            if !kw.starts_with("bar/") || moves >= 2 {
                                return true;
                            }
                        }
                        match after.iter_mut().find(|(w, _)| *w == kw) {
                            Some(e) => e.1 = n,
                            None => after.push((kw, n)),
                        }
                    }
                    // a bar without a count, a record without a step
                    None if TQDM_BAR.is_match(l) => {}
                    None => {
                        records += 1;
                        if records >= 2 {
                            return true;
                        }
                    }
                }
            }
            false
        })
        .collect();
    for (b, s) in out.iter_mut().zip(survived) {
        b.survived = s;
    }
    out
}

/// One process's failure: the first traceback of its last chain (the root
/// of "During handling …" and of "… was the direct cause"), its exception
/// line first; then the chain's later tracebacks; then every line that is
/// no thread's traceback, by rule order, the last match. (line, class, high?)
fn process_cause(lines: &[String]) -> Option<(usize, Class, bool)> {
    let all = blocks(lines);
    let bs: Vec<&Block> = all.iter().filter(|b| !b.noise()).collect();
    if let Some(last) = bs.len().checked_sub(1) {
        let mut first = last;
        while first > 0 && bs[first].chained {
            first -= 1;
        }
        for b in bs[first..=last].iter() {
            // the exception line (the block's last indented frame + 1) first
            let exc = b
                .lines
                .clone()
                .find(|&i| i > b.lines.start && EXCEPTION_LINE.is_match(&lines[i]));
            if let Some(x) = exc
                && let Some((i, c)) = first_cause(lines, std::iter::once(x))
            {
                return Some((i, c, true));
            }
            if let Some((i, c)) = first_cause(lines, b.lines.clone()) {
                return Some((i, c, true));
            }
        }
    }
    let noise: Vec<std::ops::Range<usize>> = all
        .iter()
        .filter(|b| b.thread || b.survived)
        .map(|b| b.lines.clone())
        .collect();
    for rule in CAUSES {
        if let Some(i) = (0..lines.len()).rev().find(|&i| {
            !noise.iter().any(|r| r.contains(&i))
                && !WRAPPER.is_match(&lines[i])
                && !WARNING_LINE.is_match(&lines[i])
                && holds(rule, lines, i)
        }) {
            return Some((i, rule.class, false));
        }
    }
    None
}

/// Classify a failure. `lines` is the excerpt, oldest first.
///
/// The root cause first: torchrun's first observed failure names a rank,
/// and that rank's own failure decides (or, without lines of its own, the
/// summary's SIGKILL); ranks with failures of their own → the one that
/// failed first; one process → the root of its last chained traceback, then
/// the whole excerpt by rule order. NCCL timeouts (the other ranks, after
/// one died) count only when no cause is seen; torchrun's teardown lines
/// (`exitcode: -9`, SIGTERM to the rest) only after them. Warnings and a
/// thread's traceback are never the cause.
pub fn classify(lines: &[String], ctx: &Context) -> Classification {
    let cleaned: Vec<String> = lines.iter().map(|l| clean_line(l)).collect();
    let c = classify_clean(&cleaned, ctx);
    // A failed GPU (the kernel's Xid, an ECC error) explains a CUDA error,
    // a collective's timeout or an unexplained death: the box is the cause.
    if matches!(c.class, Class::CudaError | Class::Nccl | Class::Unknown)
        && let Some(l) = cleaned.iter().find(|l| !WARNING_LINE.is_match(l) && GPU_HW.is_match(l))
    {
        return Classification {
            class: Class::GpuHardware,
            confidence: Confidence::High,
            evidence: excerpt_line(l),
        };
    }
    c
}

/// A rank's lines without their prefix, and where each came from.
fn rank_lines(cleaned: &[String], r: u32) -> (Vec<String>, Vec<usize>) {
    let mut text = Vec::new();
    let mut at = Vec::new();
    for (i, l) in cleaned.iter().enumerate() {
        if rank_of(l) == Some(r) {
            let t = match RANK_PREFIX.find(l) {
                Some(m) if m.start() == 0 => l[m.end()..].trim_start_matches(' ').to_string(),
                _ => l.clone(),
            };
            text.push(t);
            at.push(i);
        }
    }
    (text, at)
}

fn classify_clean(cleaned: &[String], ctx: &Context) -> Classification {
    let named = root_cause_rank(cleaned);
    let with_class = |class: Class| {
        if class == Class::DiskFull
            && ctx.inodes_used_pct.is_some_and(|p| p >= 99.0)
            && ctx.disk_used_pct.is_none_or(|p| p < 99.0)
        {
            Class::InodeFull
        } else {
            class
        }
    };
    let ranked = |r: u32, text: &str, class: Class, confidence: Confidence| Classification {
        class: with_class(class),
        confidence,
        evidence: format!("rank {r}: {}", excerpt_line(text)),
    };
    // 1. the rank torchrun saw fail first: its own failure, else the
    // summary's word on it (a SIGKILL: the OOM killer)
    if let Some(r) = named {
        let (text, _) = rank_lines(cleaned, r);
        if let Some((i, class, _)) = process_cause(&text) {
            return ranked(r, &text[i], class, Confidence::High);
        }
        let at = cleaned
            .iter()
            .rposition(|l| l.contains("Root Cause (first observed failure)"))
            .unwrap_or(0);
        if let Some(l) = cleaned[at..].iter().take(12).find(|l| KILLED.is_match(l)) {
            return ranked(r, l.trim(), Class::CgroupOom, Confidence::Medium);
        }
    }
    // 2. ranks with failures of their own: the one that failed first
    let mut ranks: Vec<u32> = cleaned.iter().filter_map(|l| rank_of(l)).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let first = ranks
        .iter()
        .filter_map(|&r| {
            let (text, at) = rank_lines(cleaned, r);
            let (i, class, high) = process_cause(&text)?;
            Some((at[i], r, text[i].clone(), class, high))
        })
        .min_by_key(|x| x.0);
    if let Some((_, r, text, class, high)) = first {
        let confidence = if high { Confidence::High } else { Confidence::Medium };
        return ranked(r, &text, class, confidence);
    }
    // 3. one process (or ranks without prefixes)
    if let Some((i, class, high)) = process_cause(cleaned) {
        return Classification {
            class: with_class(class),
            confidence: if high { Confidence::High } else { Confidence::Medium },
            evidence: excerpt_line(&cleaned[i]),
        };
    }
    // 4. only the collectives' errors: nccl, the earliest
    if let Some(i) = (0..cleaned.len()).find(|&i| holds(&CONSEQUENCE, cleaned, i)) {
        let l = &cleaned[i];
        return Classification {
            class: Class::Nccl,
            confidence: Confidence::Medium,
            evidence: match (rank_of(l), RANK_PREFIX.find(l)) {
                (Some(r), Some(m)) if m.start() == 0 => format!("rank {r}: {}", excerpt_line(&l[m.end()..])),
                (Some(r), _) => format!("rank {r}: {}", excerpt_line(l)),
                _ => excerpt_line(l),
            },
        };
    }
    // 5. torchrun's own summary (a rank SIGKILLed: exitcode -9)
    let noise: Vec<std::ops::Range<usize>> = blocks(cleaned)
        .into_iter()
        .filter(|b| b.thread || b.survived)
        .map(|b| b.lines)
        .collect();
    for rule in CAUSES {
        if let Some(i) = (0..cleaned.len())
            .rev()
            .find(|&i| !noise.iter().any(|r| r.contains(&i)) && holds(rule, cleaned, i))
        {
            return Classification {
                class: with_class(rule.class),
                confidence: Confidence::Medium,
                evidence: excerpt_line(&cleaned[i]),
            };
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
    // the exception that ended the process: the last traceback's that is
    // no thread's, no survived one's and not the launcher's
    let all = blocks(cleaned);
    let last_exception = all
        .iter()
        .rev()
        .filter(|b| !b.noise())
        .find_map(|b| (b.lines.start + 1..b.lines.end).find(|&k| EXCEPTION_LINE.is_match(&cleaned[k])))
        .map(|k| &cleaned[k]);
    let last_error = last_exception.or_else(|| {
        cleaned
            .iter()
            .rev()
            .find(|l| TRACEBACK.is_match(l) && !l.trim_start().starts_with("File "))
    });
    Classification {
        class: Class::Unknown,
        confidence: Confidence::Low,
        evidence: last_error
            .or_else(|| cleaned.iter().rev().find(|l| !l.trim().is_empty()))
            .map(|l| excerpt_line(l))
            .unwrap_or_else(|| "no error text in the log".into()),
    }
}

/// Does nvidia-smi's own text say the GPU itself failed ("GPU is lost",
/// "Unable to determine the device handle", an uncorrectable ECC error)?
pub fn gpu_hardware_text(s: &str) -> bool {
    GPU_HW.is_match(s)
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
    fn a_shell_reports_a_killed_child() {
        // dash and busybox: a bare "Killed"; bash: "script: line N: PID Killed   COMMAND"
        assert_eq!(class_of("Epoch 2\nKilled"), Class::CgroupOom);
        assert_eq!(
            class_of("Epoch 2\n./run.sh: line 3: 41237 Killed                  python train.py --cfg a.yaml"),
            Class::CgroupOom
        );
        assert_eq!(
            class_of("bash: line 1: 27613 Killed                  sleep 30"),
            Class::CgroupOom
        );
        // prose that mentions the word is not a kill
        assert_ne!(class_of("Killed 3 stale workers in 0.2s, continuing"), Class::CgroupOom);
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
    fn the_first_exception_of_a_chain_is_the_root_cause() {
        // an OOM, then a teardown callback's own bug while handling it
        let text = "Traceback (most recent call last):\n  File \"t.py\", line 3, in <module>\ntorch.OutOfMemoryError: CUDA out of memory.\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"cb.py\", line 9, in on_exception\nAttributeError: 'NoneType' object has no attribute 'summary'";
        assert_eq!(class_of(text), Class::CudaOom);
        // `raise … from e`: e is the cause
        let text = "Traceback (most recent call last):\n  File \"c.py\", line 1, in <module>\nsocket.gaierror: [Errno -3] Temporary failure in name resolution\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"t.py\", line 2, in <module>\nKeyError: 'model'";
        assert_eq!(class_of(text), Class::Network);
        // a thread's traceback (wandb's uploader) is not the process's death
        let text = "Exception in thread Thread-3 (_upload):\nTraceback (most recent call last):\n  File \"w.py\", line 4, in run\nConnectionResetError: [Errno 104] Connection reset by peer\nstep 900 loss 1.2\n./run.sh: line 3: 41237 Killed                  python train.py";
        assert_eq!(class_of(text), Class::CgroupOom);
        // after the failure, the exit lines of a logger are not its cause
        let text = "Traceback (most recent call last):\n  File \"t.py\", line 2, in <module>\nKeyError: 'cosine_v2'\nwandb: ERROR Run finish failed: HTTPSConnectionPool(host='api.wandb.ai', port=443): Temporary failure in name resolution";
        assert_eq!(class_of(text), Class::ConfigMismatch);
    }

    #[test]
    fn ascii_classes_keep_bracket_classes_whole() {
        assert_eq!(
            ascii_classes(r"a\d+[\d, ]\s[^\s]x"),
            r"a(?-u:\d)+[0-9, ](?-u:\s)[^ \t\n\r\x0B\x0C]x"
        );
        assert_eq!(ascii_classes(r"[\]x]\w"), r"[\]x](?-u:\w)");
        for r in RULES_FOR_TEST {
            assert!(Regex::new(&ascii_classes(r)).is_ok(), "{r}");
        }
    }

    const RULES_FOR_TEST: &[&str] = &[r"pid\(?s?\)?\s*[\d, ]+\) is", r#"(^|[\s{,'"(])loss"#];

    #[test]
    fn healthy_lines_that_name_failures_are_no_crash() {
        for l in [
            "NCCL WARN NET/IB : No device found.",
            "Resuming from scratch: best_val_loss=inf, patience=5",
            "    Double Bit ECC                  : N/A",
            "WARNING:root:xformers not available, ImportError: No module named 'xformers'; using sdpa",
            "wandb: Network error (ConnectionError), entering retry loop.",
        ] {
            assert!(!has_crash_signature(&lines(l)), "{l}");
        }
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
