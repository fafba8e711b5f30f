//! The accuracy matrix: every way people start a job × everything a job does,
//! against a real sshd, real tmux and a real single-node Slurm. Adding a case
//! is one row of [`ROWS`]; `docs/accuracy.md` publishes the same table (a
//! test keeps the two equal).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// `tmux new -d -s S 'sh job.sh …'`
    TmuxCmd,
    /// `tmux new -s S`, then the command typed into the pane's shell
    TmuxTyped,
    /// typed into the pane's shell as `sh job.sh … 2>&1 | tee -a LOG`
    TmuxTee,
    /// `tmux new -d -s S 'sh job.sh …; echo exited; read x'`: the pane kept open
    TmuxKeepOpen,
    /// a tmux command, with `watch nvidia-smi` open in a second window
    TmuxMonitor,
    /// `tmux new -s S dash`, then `sh job.sh … &` typed (dash leaves its ended job a zombie)
    TmuxBackground,
    /// a tmux command, with `gpupatrol patrol` (an agent's loop) in a second window
    TmuxPatrol,
    /// `tmux new -d -s S "dash -c '…; sleep infinity'"`: dash does not exec the last command
    TmuxSleepForever,
    /// `tmux new -s S 'busybox sh'` (a slim image's shell), then the command typed
    TmuxBusybox,
    /// a command typed into a tmux shell on a box reached through a jump host (`proxy_jump`)
    Jump,
    /// `nohup sh job.sh … &`, watched with pgrep
    Nohup,
    /// `setsid sh job.sh … &`, watched with pgrep
    Setsid,
    /// `nohup … &` writing a pidfile, watched with the pidfile
    Pidfile,
    /// `sbatch --wrap 'sh job.sh …'`, watched by job name
    Slurm,
    /// the on-box chain (`gpupatrol chain install`), no `job.alive`
    Chain,
}

impl Start {
    fn label(self) -> &'static str {
        match self {
            Start::TmuxCmd => "tmux with a command",
            Start::TmuxTyped => "tmux shell + typed command",
            Start::TmuxTee => "tmux shell + typed `… 2>&1 \\| tee log`",
            Start::TmuxKeepOpen => "tmux `…; echo exited; read x`",
            Start::TmuxMonitor => "tmux + `watch nvidia-smi` window",
            Start::TmuxBackground => "tmux dash shell + typed `… &`",
            Start::TmuxPatrol => "tmux + `gpupatrol patrol` window",
            Start::TmuxSleepForever => "tmux `dash -c '…; sleep infinity'`",
            Start::TmuxBusybox => "tmux `busybox sh` + typed command",
            Start::Jump => "typed in tmux, through a jump host",
            Start::Nohup => "`nohup … &` (pgrep)",
            Start::Setsid => "`setsid … &` (pgrep)",
            Start::Pidfile => "pidfile",
            Start::Slurm => "Slurm `sbatch`",
            Start::Chain => "on-box chain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Does {
    /// "Epoch N" lines with newlines
    Progress,
    /// a tqdm bar redrawn with `\r` only
    Cr,
    /// alive, chatty, no new step for stall_after
    Stall,
    /// a Python traceback (CUDA OOM), exit 1
    Traceback,
    /// SIGKILL from outside, no traceback
    SigKill,
    /// its worker OOM-killed: a bare `Killed`, exit 137
    Killed,
    /// finishes and touches the done marker
    Marker,
    /// finishes and prints the done text only
    Text,
    /// "Epoch N" lines from a coloured logger (rich, loguru): escapes around the words
    Color,
    /// a coloured logger's epochs, then its coloured done text
    ColorText,
    /// runs next to a done marker left by an earlier run
    Stale,
    /// runs past max_runtime
    MaxRuntime,
    /// finishes (DONE), is re-run in the same folder (stale marker), then is SIGKILLed
    Rerun,
    /// a quiet log (block-buffered stdout) while checkpoints keep coming
    Buffered,
    /// hung after its last checkpoint: log and checkpoints both old
    Hung,
    /// the pidfile was written before the box rebooted; its pid is someone else's now
    Stranger,
    /// a loop of short commands, one epoch each (the shell has no child between two)
    Steps,
    /// a tqdm bar with its total, `\r` only: the ETA from two ticks
    Eta,
    /// finishes with the marker on a box with `cost_per_hour`: still billed
    Billed,
    /// `Rerun` on a box with `cost_per_hour`: billed when DONE and DIED, not while re-running
    RerunBilled,
}

impl Does {
    fn label(self) -> &'static str {
        match self {
            Does::Progress => "progresses (newlines)",
            Does::Cr => "progresses (`\\r` only)",
            Does::Stall => "alive, chatty, stalled",
            Does::Traceback => "Python traceback",
            Does::SigKill => "SIGKILL (no traceback)",
            Does::Killed => "OOM-killed worker (bare `Killed`)",
            Does::Marker => "finishes with the marker",
            Does::Text => "finishes with done text only",
            Does::Color => "progresses (coloured logger)",
            Does::ColorText => "finishes with coloured done text",
            Does::Stale => "stale marker from an earlier run",
            Does::MaxRuntime => "exceeds max_runtime",
            Does::Rerun => "DONE, re-run beside it, killed",
            Does::Buffered => "quiet log, checkpoints advance",
            Does::Hung => "hung after its last checkpoint",
            Does::Stranger => "pidfile from before a reboot",
            Does::Steps => "a loop of short commands (10 ticks)",
            Does::Eta => "tqdm `\\r` bar with a total: ETA",
            Does::Billed => "finishes, box still billed",
            Does::RerunBilled => "DONE, re-run, killed, box billed",
        }
    }
}

/// What one tick must say: verdict, crash class, exit code, words in the
/// line, and words it must not have.
#[derive(Debug, Clone, Copy)]
struct Expect {
    verdict: &'static str,
    class: Option<&'static str>,
    exit: i32,
    words: &'static [&'static str],
    absent: &'static [&'static str],
}

const fn e(verdict: &'static str, class: Option<&'static str>, exit: i32, words: &'static [&'static str]) -> Expect {
    Expect {
        verdict,
        class,
        exit,
        words,
        absent: &[],
    }
}

impl Expect {
    const fn without(mut self, absent: &'static [&'static str]) -> Expect {
        self.absent = absent;
        self
    }
}

const RUNNING: Expect = e("RUNNING", None, 0, &["step "]);
const STALLED: Expect = e("STALLED", None, 2, &["no progress for"]);
const CUDA_OOM: Expect = e("CRASHED", Some("cuda_oom"), 2, &["cuda_oom"]);
const CGROUP_OOM: Expect = e("CRASHED", Some("cgroup_oom"), 2, &["cgroup_oom"]);
const DONE: Expect = e("DONE", None, 0, &["step 3"]);
const STALE: Expect = e("RUNNING", None, 0, &["stale done marker"]);
const TIMEOUT: Expect = e("TIMEOUT", None, 2, &["max_runtime"]);
const BUFFERED: Expect = e("RUNNING", None, 1, &["block_buffered_stdout"]);
/// The first tick reads the total; the second, a second later, the rate and the ETA.
const ETA: &[Expect] = &[
    e("RUNNING", None, 0, &["/400"]).without(&["ETA"]),
    e("RUNNING", None, 0, &["/400 (+", "/min, ETA "]),
];
/// A finished run on a box that bills: DONE, a warning until it is stopped.
const BILLED: Expect = e("DONE", None, 1, &["step 3", "box still billed"]);
/// The re-run beside the old marker is not a finished run: nothing billed.
const RERUN_BILLED: &[Expect] = &[
    BILLED,
    e("RUNNING", None, 0, &["stale done marker"]).without(&["billed"]),
    e("DIED", None, 2, &["stale done marker", "box still billed"]),
];

struct Row {
    start: Start,
    does: Does,
    /// One expectation per tick the case makes (Rerun makes three).
    expect: &'static [Expect],
}

const fn row(start: Start, does: Does, expect: &'static [Expect]) -> Row {
    Row { start, does, expect }
}

use Does::*;
use Start::*;

/// The matrix. Every start method × every outcome that can happen with it.
const ROWS: &[Row] = &[
    row(TmuxCmd, Progress, &[RUNNING]),
    row(TmuxCmd, Cr, &[RUNNING]),
    row(TmuxCmd, Stall, &[STALLED]),
    row(TmuxCmd, Traceback, &[CUDA_OOM]),
    row(TmuxCmd, SigKill, &[e("DIED", None, 2, &["no tmux session"])]),
    row(TmuxCmd, Killed, &[CGROUP_OOM]),
    row(TmuxCmd, Marker, &[DONE]),
    row(TmuxCmd, Text, &[DONE]),
    row(TmuxCmd, Color, &[RUNNING]),
    row(TmuxCmd, ColorText, &[DONE]),
    row(TmuxCmd, Stale, &[STALE]),
    row(TmuxCmd, MaxRuntime, &[TIMEOUT]),
    row(TmuxCmd, Steps, &[RUNNING]),
    row(TmuxCmd, Eta, ETA),
    row(TmuxCmd, Billed, &[BILLED]),
    row(TmuxCmd, RerunBilled, RERUN_BILLED),
    row(
        TmuxCmd,
        Rerun,
        &[
            DONE,
            STALE,
            e("DIED", None, 2, &["no tmux session", "stale done marker"]),
        ],
    ),
    row(TmuxTyped, Progress, &[RUNNING]),
    row(TmuxTyped, Cr, &[RUNNING]),
    row(TmuxTyped, Stall, &[STALLED]),
    row(TmuxTyped, Traceback, &[CUDA_OOM]),
    row(TmuxTyped, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxTyped, Killed, &[CGROUP_OOM]),
    row(TmuxTyped, Marker, &[DONE]),
    row(TmuxTyped, Text, &[DONE]),
    row(TmuxTyped, Stale, &[STALE]),
    row(TmuxTyped, MaxRuntime, &[TIMEOUT]),
    row(TmuxTyped, Buffered, &[BUFFERED]),
    row(TmuxTyped, Hung, &[STALLED]),
    row(TmuxTyped, Steps, &[RUNNING]),
    row(TmuxTyped, Eta, ETA),
    row(TmuxTyped, Billed, &[BILLED]),
    row(TmuxTyped, RerunBilled, RERUN_BILLED),
    row(
        TmuxTyped,
        Rerun,
        &[
            DONE,
            STALE,
            e("DIED", None, 2, &["tmux shell idle", "stale done marker"]),
        ],
    ),
    row(TmuxTee, Progress, &[RUNNING]),
    row(TmuxTee, Cr, &[RUNNING]),
    row(TmuxTee, Traceback, &[CUDA_OOM]),
    row(TmuxTee, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxTee, Text, &[DONE]),
    row(TmuxTee, Color, &[RUNNING]),
    row(TmuxKeepOpen, Progress, &[RUNNING]),
    row(TmuxKeepOpen, Traceback, &[CUDA_OOM]),
    row(TmuxKeepOpen, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxKeepOpen, Marker, &[DONE]),
    row(TmuxKeepOpen, Steps, &[RUNNING]),
    row(TmuxMonitor, Progress, &[RUNNING]),
    row(TmuxMonitor, Traceback, &[CUDA_OOM]),
    row(TmuxMonitor, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxMonitor, MaxRuntime, &[TIMEOUT]),
    row(TmuxBackground, Progress, &[RUNNING]),
    row(TmuxBackground, Traceback, &[CUDA_OOM]),
    row(TmuxBackground, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxPatrol, Progress, &[RUNNING]),
    row(TmuxPatrol, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxSleepForever, Progress, &[RUNNING]),
    row(TmuxSleepForever, Traceback, &[CUDA_OOM]),
    row(TmuxSleepForever, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxBusybox, Progress, &[RUNNING]),
    row(TmuxBusybox, Cr, &[RUNNING]),
    row(TmuxBusybox, Traceback, &[CUDA_OOM]),
    row(TmuxBusybox, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(TmuxBusybox, Eta, ETA),
    row(TmuxBusybox, Billed, &[BILLED]),
    row(Jump, Progress, &[RUNNING]),
    row(Jump, Cr, &[RUNNING]),
    row(Jump, Traceback, &[CUDA_OOM]),
    row(Jump, SigKill, &[e("DIED", None, 2, &["tmux shell idle"])]),
    row(
        Jump,
        Rerun,
        &[
            DONE,
            STALE,
            e("DIED", None, 2, &["tmux shell idle", "stale done marker"]),
        ],
    ),
    row(Nohup, Progress, &[RUNNING]),
    row(Nohup, Cr, &[RUNNING]),
    row(Nohup, Stall, &[STALLED]),
    row(Nohup, Traceback, &[CUDA_OOM]),
    row(Nohup, SigKill, &[e("DIED", None, 2, &["no matching process"])]),
    row(Nohup, Killed, &[CGROUP_OOM]),
    row(Nohup, Marker, &[DONE]),
    row(Nohup, Text, &[DONE]),
    row(Nohup, Color, &[RUNNING]),
    row(Nohup, ColorText, &[DONE]),
    row(Nohup, Stale, &[STALE]),
    row(Nohup, MaxRuntime, &[TIMEOUT]),
    row(Nohup, Buffered, &[BUFFERED]),
    row(Nohup, Hung, &[STALLED]),
    row(Nohup, Eta, ETA),
    row(Nohup, Billed, &[BILLED]),
    row(Nohup, RerunBilled, RERUN_BILLED),
    row(
        Nohup,
        Rerun,
        &[
            DONE,
            STALE,
            e("DIED", None, 2, &["no matching process", "stale done marker"]),
        ],
    ),
    row(Setsid, Progress, &[RUNNING]),
    row(Setsid, Cr, &[RUNNING]),
    row(Setsid, Traceback, &[CUDA_OOM]),
    row(Setsid, SigKill, &[e("DIED", None, 2, &["no matching process"])]),
    row(Setsid, Marker, &[DONE]),
    row(Setsid, MaxRuntime, &[TIMEOUT]),
    row(Pidfile, Progress, &[RUNNING]),
    row(Pidfile, Cr, &[RUNNING]),
    row(Pidfile, Stall, &[STALLED]),
    row(Pidfile, Traceback, &[CUDA_OOM]),
    // "process gone", or "process zombie" where nothing reaps it (a container without an init)
    row(Pidfile, SigKill, &[e("DIED", None, 2, &["process "])]),
    row(Pidfile, Killed, &[CGROUP_OOM]),
    row(Pidfile, Marker, &[DONE]),
    row(Pidfile, Text, &[DONE]),
    row(Pidfile, Stale, &[STALE]),
    row(Pidfile, MaxRuntime, &[TIMEOUT]),
    row(Pidfile, Buffered, &[BUFFERED]),
    row(Pidfile, Hung, &[STALLED]),
    row(Pidfile, Billed, &[BILLED]),
    row(
        Pidfile,
        Stranger,
        &[e("DIED", None, 2, &["pidfile from before the last boot"])],
    ),
    row(
        Pidfile,
        Rerun,
        &[DONE, STALE, e("DIED", None, 2, &["process ", "stale done marker"])],
    ),
    row(Slurm, Progress, &[RUNNING]),
    row(Slurm, Cr, &[RUNNING]),
    row(Slurm, Stall, &[STALLED]),
    row(Slurm, Traceback, &[CUDA_OOM]),
    // Slurm records the exit status: 137 is a SIGKILL, the OOM killer's signal
    row(Slurm, SigKill, &[e("CRASHED", Some("cgroup_oom"), 2, &["cgroup_oom"])]),
    row(Slurm, Killed, &[CGROUP_OOM]),
    row(Slurm, Marker, &[DONE]),
    row(Slurm, Text, &[DONE]),
    row(Slurm, Stale, &[STALE]),
    row(Slurm, MaxRuntime, &[TIMEOUT]),
    row(Slurm, Billed, &[BILLED]),
    row(
        Slurm,
        Rerun,
        &[DONE, STALE, e("CRASHED", Some("cgroup_oom"), 2, &["stale done marker"])],
    ),
    row(Chain, Progress, &[RUNNING]),
    row(Chain, Cr, &[RUNNING]),
    row(Chain, Stall, &[STALLED]),
    row(Chain, Traceback, &[CUDA_OOM]),
    // the stage's status records the exit: FAILED 137
    row(Chain, SigKill, &[e("CRASHED", Some("cgroup_oom"), 2, &["cgroup_oom"])]),
    row(Chain, Killed, &[CGROUP_OOM]),
    row(Chain, Marker, &[DONE]),
    row(Chain, Text, &[DONE]),
    row(Chain, Stale, &[STALE]),
    row(Chain, MaxRuntime, &[TIMEOUT]),
    row(
        Chain,
        Rerun,
        &[DONE, STALE, e("CRASHED", Some("cgroup_oom"), 2, &["stale done marker"])],
    ),
];

fn job_script() -> PathBuf {
    fixtures().join("matrix_job.sh")
}

/// One row's files on the box and its names.
struct Case<'a> {
    sshd: &'a Sshd,
    row: &'a Row,
    id: String,
    dir: PathBuf,
    log: PathBuf,
    pidfile: PathBuf,
    marker: PathBuf,
    profile: PathBuf,
    slurm_name: String,
    /// When the job last wrote its pidfile (it runs from then on).
    started: std::cell::Cell<Instant>,
    /// The jump host's port (the `Jump` rows).
    jump: Option<u16>,
    /// The HTTP server that receives every row's heartbeat pings.
    sink: &'a Sink,
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        // nothing of this row outlives it
        let _ = Command::new("pkill")
            .args([
                "-9",
                "-f",
                &format!("matrix_job.sh [a-z]+ [^ ]* {}", self.pidfile.display()),
            ])
            .status();
        let _ = self
            .sshd
            .tmux()
            .args(["kill-session", "-t", &format!("={}", self.id)])
            .output();
        if self.row.start == Start::Slurm {
            let _ = Command::new("scancel").args(["-n", &self.slurm_name]).status();
        }
        if let Ok(p) = std::fs::read_to_string(self.dir.join("chain/chain.pid")) {
            // chain.pid is "PID START TOKEN"
            if let Some(pid) = p.split_whitespace().next() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

impl<'a> Case<'a> {
    fn new(sshd: &'a Sshd, row: &'a Row, n: usize, jump: Option<u16>, sink: &'a Sink) -> Case<'a> {
        let id = format!("m{n}");
        let dir = sshd.box_dir().join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let c = Case {
            sshd,
            row,
            log: dir.join("train.log"),
            pidfile: dir.join("job.pid"),
            marker: dir.join("DONE"),
            profile: sshd.path(&format!("{id}.yaml")),
            slurm_name: format!("gpm-{}-{id}", sshd.port),
            started: std::cell::Cell::new(Instant::now()),
            jump,
            sink,
            dir,
            id,
        };
        c.write_profile(0);
        c
    }

    /// The profile for phase `phase` (the chain's stage runs that phase's job).
    fn write_profile(&self, phase: usize) {
        let q = |p: &Path| yq(&p.to_string_lossy());
        let alive = match self.row.start {
            TmuxCmd | TmuxTyped | TmuxTee | TmuxKeepOpen | TmuxMonitor | TmuxBackground | TmuxPatrol
            | TmuxSleepForever | TmuxBusybox | Jump => {
                format!("  alive: {{ tmux: {} }}\n", self.id)
            }
            Nohup | Setsid => format!(
                "  alive: {{ pgrep: {} }}\n",
                yq(&format!("matrix_job.sh [a-z]+ [^ ]* {}", self.pidfile.display()))
            ),
            Pidfile => format!("  alive: {{ pidfile: {} }}\n", q(&self.pidfile)),
            Slurm => format!("  alive: {{ slurm: {} }}\n", self.slurm_name),
            Chain => String::new(),
        };
        // the bastion's key is in the box's known_hosts (accuracy_matrix)
        let reach = match (self.row.start, self.jump) {
            (Jump, Some(port)) => format!("proxy_jump: root@127.0.0.1:{port}\n"),
            _ => String::new(),
        };
        let stall = if matches!(self.row.does, Stall | Buffered | Hung) {
            "2s"
        } else {
            "1h"
        };
        let artifacts = if matches!(self.row.does, Buffered | Hung) {
            format!("artifacts:\n  - {{ path: {} }}\n", q(&self.dir.join("ckpt")))
        } else {
            String::new()
        };
        let max_runtime = if self.row.does == MaxRuntime {
            "  max_runtime: 2s\n"
        } else {
            ""
        };
        let cost = if matches!(self.row.does, Billed | RerunBilled) {
            "cost_per_hour: 3.60\n"
        } else {
            ""
        };
        let chain = if self.row.start == Chain {
            format!(
                "chain:\n  dir: {}\n  detach: nohup\n  heartbeat: 1s\n  stages:\n    - {{ name: train, run: {} }}\n",
                q(&self.dir.join("chain")),
                yq(&self.command(self.mode(phase), false))
            )
        } else {
            String::new()
        };
        let written = self.sshd.profile(
            &self.id,
            &format!(
                "{reach}{cost}job:\n{alive}  log: {}\n  progress: 'Epoch (\\d+)'\n  done_marker: {}\n  done_pattern: 'Training completed'\n  stall_after: {stall}\n{max_runtime}{chain}{artifacts}data_mount: {}\nalert:\n  heartbeat_url: {}\n",
                q(&self.log),
                q(&self.marker),
                q(&self.dir),
                yq(&self.sink.url(&format!("/ok/hb/{}", self.id))),
            ),
        );
        assert_eq!(written, self.profile);
    }

    /// The job's mode in phase `phase` of the row.
    fn mode(&self, phase: usize) -> &'static str {
        match (self.row.does, phase) {
            (Progress | SigKill | Stale | MaxRuntime, _) => "progress",
            (Cr, _) => "cr",
            (Stall, _) => "stall",
            (Traceback, _) => "traceback",
            (Killed, _) => "killed",
            (Marker | Billed, _) | (Rerun | RerunBilled, 0) => "marker",
            (Text, _) => "text",
            (Color, _) => "color",
            (ColorText, _) => "colortext",
            (Rerun | RerunBilled, _) => "progress",
            (Eta, _) => "tqdm",
            (Buffered, _) => "buffered",
            (Hung, _) => "hung",
            (Stranger, _) => "stranger",
            (Steps, _) => "step",
        }
    }

    /// The job's command line; `tee` sends its output through `| tee -a LOG`.
    fn command(&self, mode: &str, tee: bool) -> String {
        let log = if tee {
            "-".to_string()
        } else {
            q(&self.log.to_string_lossy())
        };
        let cmd = format!(
            "sh {} {mode} {log} {} {}",
            q(&job_script().to_string_lossy()),
            q(&self.pidfile.to_string_lossy()),
            q(&self.marker.to_string_lossy())
        );
        if self.row.does == Steps {
            // the shell runs the loop: between two steps it has no child
            return format!("while :; do {cmd}; done");
        }
        if tee {
            format!("{cmd} 2>&1 | tee -a {}", q(&self.log.to_string_lossy()))
        } else {
            cmd
        }
    }

    /// `tmux ARGS` on the box's server; its error when it fails.
    fn tmux(&self, args: &[&str]) -> Result<(), String> {
        let out = self.sshd.tmux().args(args).output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("tmux {}: {}", args[0], String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn sh(&self, script: &str) {
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start the job (phase `phase`) the way this row's user does.
    fn launch(&self, phase: usize) -> Result<(), String> {
        let _ = std::fs::remove_file(&self.pidfile);
        let mode = self.mode(phase);
        match self.row.start {
            TmuxCmd => {
                self.tmux(&["new-session", "-d", "-s", &self.id, &self.command(mode, false)])?;
            }
            TmuxBackground => {
                // dash, as /bin/sh is on Debian and Ubuntu: it does not reap
                // a finished background job while it waits at its prompt
                self.tmux(&["new-session", "-d", "-s", &self.id, "-x", "200", "dash"])?;
                std::thread::sleep(Duration::from_millis(300));
                let cmd = format!("{} &", self.command(mode, false));
                self.tmux(&["send-keys", "-t", &format!("={}:", self.id), &cmd, "Enter"])?;
            }
            TmuxSleepForever => {
                let cmd = format!(
                    "dash -c {}",
                    q(&format!("{}; sleep infinity", self.command(mode, false)))
                );
                self.tmux(&["new-session", "-d", "-s", &self.id, &cmd])?;
            }
            TmuxPatrol => {
                self.tmux(&["new-session", "-d", "-s", &self.id, &self.command(mode, false)])?;
                // an agent's patrol of another run, in the same session
                let other = self.dir.join("other.yaml");
                std::fs::write(
                    &other,
                    format!(
                        "name: other-{}\ntransport: local\njob:\n  log: {}\n",
                        self.id,
                        q(&self.dir.join("other.log").to_string_lossy())
                    ),
                )
                .unwrap();
                let patrol = format!(
                    "{} --state-dir {} patrol -p {} --every 1h --max-ticks 3",
                    q(BIN),
                    q(&self.dir.join("other-state").to_string_lossy()),
                    q(&other.to_string_lossy())
                );
                self.tmux(&["new-window", "-t", &format!("={}:", self.id), &patrol])?;
            }
            TmuxKeepOpen | TmuxMonitor => {
                let cmd = if self.row.start == TmuxKeepOpen {
                    format!("{}; echo \"exited $?\"; read x", self.command(mode, false))
                } else {
                    self.command(mode, false)
                };
                self.tmux(&["new-session", "-d", "-s", &self.id, &cmd])?;
                if self.row.start == TmuxMonitor {
                    self.tmux(&["new-window", "-t", &format!("={}:", self.id), "watch -n 60 nvidia-smi"])?;
                }
            }
            TmuxTyped | TmuxTee | TmuxBusybox | Jump => {
                if phase == 0 {
                    // an interactive login shell in the pane, as `tmux new -s train` gives
                    let shell: &[&str] = if self.row.start == TmuxBusybox {
                        &["busybox", "sh"]
                    } else {
                        &["bash", "-l"]
                    };
                    let mut args = vec!["new-session", "-d", "-s", &self.id, "-x", "200"];
                    args.extend_from_slice(shell);
                    self.tmux(&args)?;
                    std::thread::sleep(Duration::from_millis(300));
                }
                let cmd = self.command(mode, self.row.start == TmuxTee);
                self.tmux(&["send-keys", "-t", &format!("={}:", self.id), &cmd, "Enter"])?;
            }
            Nohup | Pidfile => self.sh(&format!(
                "nohup {} >/dev/null 2>&1 </dev/null &",
                self.command(mode, false)
            )),
            Setsid => self.sh(&format!(
                "setsid {} >/dev/null 2>&1 </dev/null &",
                self.command(mode, false)
            )),
            Slurm => {
                let out = Command::new("sbatch")
                    .args(["--parsable", "--oversubscribe", "-J", &self.slurm_name, "-o"])
                    .arg(self.dir.join("slurm-%j.out"))
                    .arg("--wrap")
                    .arg(self.command(mode, false))
                    .output()
                    .unwrap();
                if !out.status.success() {
                    return Err(format!("sbatch: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            Chain => {
                // the re-run: the same chain with the job's next mode
                self.write_profile(phase);
                let mut c = self.sshd.gpupatrol();
                c.args(["chain", "install", "--force", "-p"]).arg(&self.profile);
                let r = run(c, Duration::from_secs(60));
                if r.code != 0 {
                    return Err(format!("chain install: {}{}", r.stdout, r.stderr));
                }
            }
        }
        if !wait_for(Duration::from_secs(30), || self.pid().is_some()) {
            return Err(format!("job never wrote {}", self.pidfile.display()));
        }
        self.started.set(Instant::now());
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }

    fn pid_alive(&self) -> bool {
        let Some(pid) = self.pid() else { return false };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(s) => !s.rsplit(") ").next().unwrap_or("").starts_with('Z'),
            Err(_) => false,
        }
    }

    /// The job and whatever launched it have finished (the session closed,
    /// the shell is back at its prompt, the queue forgot it, the chain ended).
    fn finished(&self) -> bool {
        if self.pid_alive() {
            return false;
        }
        match self.row.start {
            TmuxCmd => !self
                .sshd
                .tmux()
                .args(["has-session", "-t", &format!("={}", self.id)])
                .status()
                .unwrap()
                .success(),
            Slurm => Command::new("squeue")
                .args(["-h", "-n", &self.slurm_name])
                .output()
                .map(|o| o.status.success() && o.stdout.is_empty())
                .unwrap_or(false),
            Chain => !self.dir.join("chain/chain.pid").exists(),
            // the shell is back at its prompt (or in `read`): no pipeline member (tee) is left
            TmuxTyped | TmuxTee | TmuxKeepOpen | TmuxBusybox | Jump => {
                let out = self
                    .sshd
                    .tmux()
                    .args(["display-message", "-p", "-t", &format!("={}:", self.id), "#{pane_pid}"])
                    .output()
                    .unwrap();
                let pane = String::from_utf8_lossy(&out.stdout).trim().to_string();
                std::fs::read_to_string(format!("/proc/{pane}/task/{pane}/children")).is_ok_and(|c| c.trim().is_empty())
            }
            _ => true,
        }
    }

    fn kill9(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }

    fn wait(&self, what: &str, limit: Duration, cond: impl FnMut() -> bool) -> Result<(), String> {
        if wait_for(limit, cond) {
            Ok(())
        } else {
            Err(format!(
                "gave up waiting for {what}; log: {:?}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ))
        }
    }

    fn epochs(&self) -> usize {
        // "Epoch" alone: a coloured logger puts an escape after the word
        count_in(&self.log, "Epoch")
    }

    /// Bring the job to the state phase `phase` checks.
    fn drive(&self, phase: usize) -> Result<(), String> {
        let running = |n: usize| self.wait(&format!("{n} epochs"), Duration::from_secs(30), || self.epochs() >= n);
        // started first (a pidfile not yet written reads as "finished"), then gone
        let finish = || {
            running(1)?;
            self.wait("the job to finish", Duration::from_secs(60), || self.finished())
        };
        match (self.row.does, phase) {
            (Progress | Cr | Color | Steps, _) | (Eta, 0) => running(3),
            (Eta, _) => {
                // the box's clock counts whole seconds: the next tick is a later one
                std::thread::sleep(Duration::from_millis(1500));
                running(6)
            }
            (Stall, _) => self.wait("chatter", Duration::from_secs(30), || {
                count_in(&self.log, "waiting for data") >= 1
            }),
            (Buffered | Hung, _) => {
                running(1)?;
                self.wait("a checkpoint", Duration::from_secs(30), || {
                    std::fs::read_dir(self.dir.join("ckpt")).is_ok_and(|mut d| d.next().is_some())
                })
            }
            (Stranger, _) => {
                running(2)?;
                // the pidfile as a run before the last boot left it
                let up: f64 = std::fs::read_to_string("/proc/uptime")
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let t = std::time::SystemTime::now() - Duration::from_secs(up as u64 + 86_400);
                std::fs::File::options()
                    .write(true)
                    .open(&self.pidfile)
                    .unwrap()
                    .set_modified(t)
                    .unwrap();
                Ok(())
            }
            (Traceback | Killed | Marker | Text | ColorText | Billed, _) | (Rerun | RerunBilled, 0) => finish(),
            (Stale, _) | (Rerun | RerunBilled, 1) => running(2),
            (SigKill, _) | (Rerun | RerunBilled, _) => {
                running(2)?;
                self.kill9();
                finish()
            }
            (MaxRuntime, _) => {
                running(2)?;
                let wait = Duration::from_secs(3).saturating_sub(self.started.get().elapsed());
                std::thread::sleep(wait);
                Ok(())
            }
        }
    }

    fn tick(&self) -> serde_json::Value {
        tick_json(self.sshd, &self.profile).one()
    }

    /// What the watchers of this tick say must agree with it: the
    /// heartbeat it pinged (`/fail` exactly when critical or unknown, the
    /// line as its body) and `status`, read from the state it saved.
    fn watchers_agree(&self, j: &serde_json::Value, bad: &mut Vec<String>) {
        let me = format!("/ok/hb/{}", self.id);
        let pings: Vec<serde_json::Value> = self
            .sink
            .requests()
            .into_iter()
            .filter(|r| r["path"] == me.as_str() || r["path"] == format!("{me}/fail").as_str())
            .collect();
        let fail = matches!(j["severity"].as_str(), Some("critical" | "unknown"));
        match pings.last() {
            None => bad.push("no heartbeat ping".into()),
            Some(p) => {
                if p["path"].as_str().unwrap_or("").ends_with("/fail") != fail {
                    bad.push(format!("heartbeat pinged {} for a {} tick", p["path"], j["severity"]));
                }
                if p["body"] != j["line"] {
                    bad.push(format!("heartbeat body {} is not the line", p["body"]));
                }
            }
        }
        let mut c = self.sshd.gpupatrol();
        c.args(["status", "--json", "-p"]).arg(&self.profile);
        let st = run(c, Duration::from_secs(10));
        match st.json().first() {
            None => bad.push(format!("status printed nothing: {}", st.stderr)),
            Some(row) => {
                for k in ["verdict", "severity", "exit_code"] {
                    if row[k] != j[k] {
                        bad.push(format!("status says {k} {} (the tick {})", row[k], j[k]));
                    }
                }
                if row["stale"] != false {
                    bad.push("status says patrol stale right after a tick".into());
                }
                if st.code != j["exit_code"].as_i64().unwrap_or(-1) as i32 {
                    bad.push(format!("status exits {} (the tick {})", st.code, j["exit_code"]));
                }
            }
        }
    }

    fn check(&self, phase: usize, want: &Expect, j: &serde_json::Value) -> Result<(), String> {
        let line = j["line"].as_str().unwrap_or("");
        let class = j["crash"]["class"].as_str();
        let mut bad = Vec::new();
        self.watchers_agree(j, &mut bad);
        if j["verdict"] != want.verdict {
            bad.push(format!("verdict {} (want {})", j["verdict"], want.verdict));
        }
        if class != want.class {
            bad.push(format!("class {class:?} (want {:?})", want.class));
        }
        if j["exit_code"] != want.exit {
            bad.push(format!("exit {} (want {})", j["exit_code"], want.exit));
        }
        for w in want.words {
            if !line.contains(w) {
                bad.push(format!("line lacks {w:?}"));
            }
        }
        for w in want.absent {
            if line.contains(w) {
                bad.push(format!("line has {w:?}"));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "tick {}: {}\n      line: {line}\n      log: {:?}",
                phase + 1,
                bad.join(", "),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ))
        }
    }

    fn run(&self) -> Result<(), String> {
        if matches!(self.row.does, Stale) {
            // the earlier run's marker, written before this run started
            std::fs::write(&self.marker, "").unwrap();
            std::thread::sleep(Duration::from_millis(3100));
        }
        for (phase, want) in self.row.expect.iter().enumerate() {
            if phase == 0 || (matches!(self.row.does, Rerun | RerunBilled) && phase == 1) {
                if phase == 1 {
                    // the marker's mtime and a start time are whole seconds (the start
                    // up to two early): a re-run three seconds later is unambiguously later
                    std::thread::sleep(Duration::from_millis(3100));
                }
                self.launch(phase)?;
            }
            self.drive(phase)?;
            if matches!(self.row.does, Stall | Buffered | Hung) {
                // the first tick records the step; the second is stall_after later
                // (ages are whole seconds on the box: a second of margin)
                let _ = self.tick();
                std::thread::sleep(Duration::from_millis(3600));
            }
            let j = self.tick();
            self.check(phase, want, &j)?;
            if self.row.does == Steps {
                // a moment between two steps is caught by some tick, not by every one
                for _ in 1..10 {
                    let j = self.tick();
                    self.check(phase, want, &j)?;
                }
            }
        }
        Ok(())
    }
}

fn q(s: &str) -> String {
    common::q(s)
}

#[test]
fn accuracy_matrix() {
    let slurm = slurm_ready();
    let sshd = Sshd::start();
    // the jump host of the `Jump` rows: it trusts the box's user key, and the
    // box's known_hosts (every profile's) holds its host key
    let bastion = Sshd::start();
    let mut ak = std::fs::read_to_string(bastion.path("authorized_keys")).unwrap();
    ak.push_str(&std::fs::read_to_string(sshd.user_key.with_extension("pub")).unwrap());
    std::fs::write(bastion.path("authorized_keys"), ak).unwrap();
    let mut kh = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    kh.push_str(&std::fs::read_to_string(&bastion.known_hosts).unwrap());
    std::fs::write(&sshd.known_hosts, kh).unwrap();
    // GP_MATRIX_ONLY=words runs the rows whose labels contain them (to debug one)
    let only = std::env::var("GP_MATRIX_ONLY").unwrap_or_default();
    let rows: Vec<(usize, &Row)> = ROWS
        .iter()
        .enumerate()
        .filter(|(_, r)| slurm || r.start != Slurm)
        .filter(|(_, r)| format!("{} {}", r.start.label(), r.does.label()).contains(&only))
        .collect();
    let Some(sink) = Sink::start(&sshd.path("")) else {
        return;
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((n, row)) = rows.get(i) else { break };
                    let case = Case::new(&sshd, row, *n, Some(bastion.port), &sink);
                    let t = Instant::now();
                    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case.run()))
                        .unwrap_or_else(|p| Err(format!("panicked: {p:?}")));
                    results.lock().unwrap().push((*n, res, t.elapsed()));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    let mut failed = 0;
    let mut report = String::new();
    for (n, res, took) in &results {
        let r = &ROWS[*n];
        let status = match res {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                failed += 1;
                format!("FAILED {e}")
            }
        };
        report.push_str(&format!(
            "  {:<34} {:<36} {:>5.1}s {status}\n",
            r.start.label(),
            r.does.label(),
            took.as_secs_f64()
        ));
    }
    eprintln!(
        "accuracy matrix: {} rows, {} passed\n{report}",
        results.len(),
        results.len() - failed
    );
    assert_eq!(failed, 0, "accuracy matrix:\n{report}");
    // the jump rows reached the box through the bastion, one login per tick
    let jump_ticks: usize = rows
        .iter()
        .filter(|(_, r)| r.start == Jump)
        .map(|(_, r)| r.expect.len())
        .sum();
    assert!(
        bastion.accepted() >= jump_ticks,
        "{} logins at the jump host for {jump_ticks} ticks",
        bastion.accepted()
    );
}

/// The published table (docs/accuracy.md) is this file's ROWS.
fn rendered_table() -> String {
    let mut t = String::from("| started with | the job | tick(s) say |\n| --- | --- | --- |\n");
    for r in ROWS {
        let says: Vec<String> = r
            .expect
            .iter()
            .map(|x| {
                let mut s = format!("`{}`", x.verdict);
                if let Some(c) = x.class {
                    s.push_str(&format!(" {c}"));
                }
                s.push_str(&format!(" (exit {})", x.exit));
                let words: Vec<&str> = x
                    .words
                    .iter()
                    .copied()
                    .map(|w| w.trim())
                    .filter(|w| Some(*w) != x.class && !w.starts_with("step"))
                    .collect();
                if !words.is_empty() {
                    s.push_str(&format!(", \"{}\"", words.join("\", \"")));
                }
                if !x.absent.is_empty() {
                    s.push_str(&format!(", not \"{}\"", x.absent.join("\", \"")));
                }
                s
            })
            .collect();
        t.push_str(&format!(
            "| {} | {} | {} |\n",
            r.start.label(),
            r.does.label(),
            says.join(" → ")
        ));
    }
    t
}

#[test]
fn the_published_matrix_is_the_tested_one() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/accuracy.md")).unwrap();
    let table = rendered_table();
    assert!(
        doc.contains(&table),
        "docs/accuracy.md must hold the matrix exactly as tests/accuracy.rs has it:\n\n{table}"
    );
}
