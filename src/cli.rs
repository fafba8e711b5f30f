//! The command line (clap derive): one `Command` enum, one args struct per
//! subcommand. Plain data; `run` validates before any network I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Watch long training runs on rented GPU boxes: one SSH connection per tick,
/// one combined probe, one line per tick.
#[derive(Debug, Parser)]
#[command(name = "gpupatrol", version, about, long_about = None)]
pub struct Cli {
    /// Where per-profile state and locks live [default: $XDG_STATE_HOME/gpupatrol or ~/.local/state/gpupatrol]
    #[arg(long, global = true, env = "GPUPATROL_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One patrol tick per profile: one SSH connection, one probe, one line each.
    Tick(TickArgs),
    /// Validate profiles offline; errors name the file, line and key.
    Check(CheckArgs),
    /// A bounded loop of ticks (for cron, systemd or an agent's loop); one line per profile per tick.
    Patrol(PatrolArgs),
    /// Sentinel wait: one short connection per tick until a marker/text appears or the run fails.
    Wait(WaitArgs),
    /// Print a crontab line and a systemd service/timer pair that run the patrol.
    Cron(CronArgs),
    /// The on-box self-completion chain: render, install (detached), status.
    Chain(ChainArgs),
    /// Preflight in one connection: reachable, host key, auth, tools, paths, disk, clock.
    Doctor(DoctorArgs),
    /// Print the recovery handbook (markdown) for this run: where things are, how to resume.
    Handbook(HandbookArgs),
    /// Classify a failure from the per-run log (remote with -p, local with --log) with its fixed remediation.
    Triage(TriageArgs),
    /// A self-contained demo on this machine: a simulated run patrolled through the real probe.
    Demo(DemoArgs),
    /// Write a commented profile for a box, run the doctor checks, print the first tick.
    Init(InitArgs),
    /// The fleet at a glance from saved state only (no connection): one row per profile, worst first.
    Status(StatusArgs),
    /// The profile's tick history from saved state: step rate, ETA, GPU use over time (sparklines).
    History(HistoryArgs),
    /// A Model Context Protocol server on stdio for coding agents, scoped to the profiles given.
    Mcp(McpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Write roff man pages: gpupatrol(1) on stdout, or it and one page per subcommand into a directory.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Profile YAML file.
    #[arg(short, long = "profile", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub profile: PathBuf,
    /// Rows in the table (the sparklines cover as many ticks as fit).
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub last: usize,
    /// Every tick as one JSON object per line instead of the picture.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The profiles it serves: a directory of *.yaml/*.yml, a file, or a glob (repeatable). Tools name these profiles and nothing else.
    #[arg(long = "profiles", value_name = "DIR", required = true, value_hint = clap::ValueHint::FilePath)]
    pub profiles: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write gpupatrol.1 and gpupatrol-SUBCOMMAND.1 pages here instead of gpupatrol.1 to stdout.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Profile YAML file, directory of them, or glob (repeatable) [default: every profile with saved state].
    #[arg(short, long = "profile", value_name = "FILE|DIR", value_hint = clap::ValueHint::FilePath)]
    pub profiles: Vec<PathBuf>,
    /// One JSON object per profile (JSON Lines) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What `tick` and `patrol` also write: perfdata, a Prometheus textfile.
#[derive(Debug, Args, Clone)]
pub struct Exports {
    /// Append monitoring-plugins perfdata after ` | ` to each line (Nagios, Icinga, Checkmk).
    #[arg(long, conflicts_with = "json")]
    pub perfdata: bool,
    /// Write Prometheus text exposition here after each tick, for node_exporter's textfile collector (temp file + rename).
    #[arg(long, value_name = "PATH")]
    pub prom_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The box: `[user@]host[:port]` (host may be a ~/.ssh/config alias).
    #[arg(value_name = "[USER@]HOST[:PORT]")]
    pub destination: String,
    /// The platform the box is on: its defaults are written as visible keys.
    #[arg(long, value_parser = ["vast", "runpod", "lambda", "slurm", "generic"], default_value = "generic")]
    pub platform: String,
    /// How to tell the run is alive: tmux:SESSION, pgrep:PATTERN, slurm:JOB, pidfile:PATH.
    #[arg(long, value_name = "KIND:ARG")]
    pub alive: Option<String>,
    /// The run's own log on the box (progress and crash detection).
    #[arg(long, value_name = "PATH")]
    pub log: Option<String>,
    /// Jump hosts, as OpenSSH's -J: `[user@]host[:port][,...]`.
    #[arg(short = 'J', long = "proxy-jump", value_name = "HOPS")]
    pub proxy_jump: Option<String>,
    /// The private key to log in with.
    #[arg(short = 'i', long = "identity-file", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub identity_file: Option<PathBuf>,
    /// The known_hosts file to check (and, with --accept-new, record) the host key in.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub known_hosts: Option<PathBuf>,
    /// Record the box's host key on first contact (host_key_policy: accept-new).
    #[arg(long)]
    pub accept_new: bool,
    /// The profile's name [default: from the host].
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the profile [default: ./NAME.yaml].
    #[arg(short = 'o', long = "output", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < std::time::Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}

/// A duration, or a plain number of seconds (`--max-seconds 50`).
fn seconds_arg(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second".into()),
        Ok(n) => Ok(std::time::Duration::from_secs(n)),
        Err(_) => duration_arg(s),
    }
}

#[derive(Debug, Args)]
pub struct PatrolArgs {
    /// Profile YAML file, directory of them, or glob (repeat for several boxes; they are patrolled concurrently).
    #[arg(short, long = "profile", value_name = "FILE|DIR", value_hint = clap::ValueHint::FilePath, required = true)]
    pub profiles: Vec<PathBuf>,
    /// Time between ticks: 90s, 15m, 2h.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub every: std::time::Duration,
    /// Stop after this many ticks (the loop always ends).
    #[arg(long, value_name = "N", default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_ticks: u32,
    /// Stop patrolling a profile once it reaches a terminal verdict (DONE, INCOMPLETE, CRASHED, DIED, PREEMPTED).
    #[arg(long)]
    pub until_terminal: bool,
    /// JSON Lines instead of the human line.
    #[arg(long)]
    pub json: bool,
    /// Connections in flight at once (across all profiles).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// On a terminal, redraw one table of all profiles each tick instead of scrolling lines.
    #[arg(long, conflicts_with_all = ["json", "perfdata"])]
    pub table: bool,
    #[command(flatten)]
    pub exports: Exports,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["marker", "pattern"])))]
pub struct WaitArgs {
    /// Profile YAML file.
    #[arg(short, long = "profile", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub profile: PathBuf,
    /// Return when this file exists on the box.
    #[arg(long, value_name = "PATH")]
    pub marker: Option<String>,
    /// Return when this literal text appears in the run's own log (job.log); `|`, quotes and regex characters are literal.
    #[arg(long, value_name = "TEXT")]
    pub pattern: Option<String>,
    /// Time between ticks.
    #[arg(long, value_name = "DUR", default_value = "90s", value_parser = duration_arg)]
    pub interval: std::time::Duration,
    /// Give up (exit 1) after this many ticks.
    #[arg(long, value_name = "N", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_ticks: u32,
    /// Give up (exit 1) at this wall time, cutting off a tick still running: 50, 50s, 10m (for a caller with a time limit).
    #[arg(long, value_name = "DUR", value_parser = seconds_arg)]
    pub max_seconds: Option<std::time::Duration>,
    /// Stop the waiter already watching this profile (SIGTERM), then take over.
    #[arg(long)]
    pub supersede: bool,
    /// Only print the final line.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
    /// JSON Lines instead of the human line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CronArgs {
    /// Profile YAML file, directory of them, or glob (repeatable; one tick command covers them all).
    #[arg(short, long = "profile", value_name = "FILE|DIR", value_hint = clap::ValueHint::FilePath, required = true)]
    pub profiles: Vec<PathBuf>,
    /// How often: 5m, 30m, 1h, 2h … (cron needs a divisor of an hour or of a day).
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub every: std::time::Duration,
    /// Where the patrol appends its lines [default: STATE_DIR/patrol.log].
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Profile YAML file, directory of them, or glob (repeat for several boxes; they run concurrently).
    #[arg(short, long = "profile", value_name = "FILE|DIR", value_hint = clap::ValueHint::FilePath, required = true)]
    pub profiles: Vec<PathBuf>,
    /// One JSON object per profile (JSON Lines) instead of the human line.
    #[arg(long)]
    pub json: bool,
    /// Connections in flight at once; each box's connect deadline starts when
    /// its own connection does. Lines come out as each box finishes.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// How often this tick is run (by cron or a timer): `status` flags the profile `patrol stale` after twice that.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub every: Option<std::time::Duration>,
    #[command(flatten)]
    pub exports: Exports,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Profile YAML file, directory of them, or glob (repeatable).
    #[arg(short, long = "profile", value_name = "FILE|DIR", value_hint = clap::ValueHint::FilePath, required = true)]
    pub profiles: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds between demo ticks.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// One JSON object per tick instead of the human line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["profile", "log"])))]
pub struct TriageArgs {
    /// Profile YAML file: pull the evidence from the box (one connection).
    #[arg(short, long = "profile", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub profile: Option<PathBuf>,
    /// A log file on this machine (its last MiB is read).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub log: Option<PathBuf>,
    /// One JSON object instead of the line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Profile YAML file, directory of them, or glob (repeatable).
    #[arg(short, long = "profile", value_name = "FILE|DIR", value_hint = clap::ValueHint::FilePath, required = true)]
    pub profiles: Vec<PathBuf>,
    /// One JSON object per profile instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HandbookArgs {
    /// Profile YAML file.
    #[arg(short, long = "profile", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub profile: PathBuf,
    /// Write the markdown here instead of stdout.
    #[arg(short, long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    #[command(subcommand)]
    pub command: ChainCommand,
}

#[derive(Debug, Args)]
pub struct ChainTarget {
    /// Profile YAML file with a `chain:` section.
    #[arg(short, long = "profile", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub profile: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Print the POSIX sh script exactly as it would be installed.
    Render {
        #[command(flatten)]
        target: ChainTarget,
    },
    /// Upload the chain over one SSH connection and start it detached (refused if one is alive).
    Install {
        #[command(flatten)]
        target: ChainTarget,
        /// Stop a running chain first (TERM, then KILL after 10s), then start the new one; also runs a finished or part-way chain again from its first stage.
        #[arg(long)]
        force: bool,
        /// Run from this stage on, keeping the earlier stages' results (each must show SUCCESS).
        #[arg(long, value_name = "STAGE")]
        from: Option<String>,
    },
    /// Each stage's sentinel state, by the box's clock.
    Status {
        #[command(flatten)]
        target: ChainTarget,
        /// One JSON object.
        #[arg(long, conflicts_with = "oneline")]
        json: bool,
        /// One line instead of the table.
        #[arg(long)]
        oneline: bool,
    },
}

impl ChainCommand {
    pub fn profile(&self) -> &std::path::Path {
        match self {
            ChainCommand::Render { target }
            | ChainCommand::Install { target, .. }
            | ChainCommand::Status { target, .. } => &target.profile,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
