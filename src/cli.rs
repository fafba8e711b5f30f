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
    /// A self-contained demo on this machine: a simulated run patrolled through the real probe.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct TickArgs {
    /// Profile YAML file (repeat for several boxes; they run concurrently).
    #[arg(short, long = "profile", value_name = "FILE", required = true)]
    pub profiles: Vec<PathBuf>,
    /// One JSON object per profile (JSON Lines) instead of the human line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Profile YAML file (repeatable).
    #[arg(short, long = "profile", value_name = "FILE", required = true)]
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
