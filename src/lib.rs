//! gpupatrol: watch long training runs on rented GPU boxes. One short SSH
//! connection per tick, one combined probe, a decision table, one line.
//!
//! `main.rs` parses the command line and calls [`run`]; everything else is
//! here. Pure core (profile, probe parsing, decide, triage, report) with I/O
//! at the edges (transport, state, commands).

pub mod alert;
pub mod chain;
pub mod cli;
pub mod commands;
pub mod decide;
pub mod duration;
pub mod error;
pub mod exit_codes;
pub mod fleet;
pub mod fsutil;
pub mod history;
pub mod notify;
pub mod output;
pub mod probe;
pub mod profile;
pub mod report;
pub mod resume;
pub mod shell;
pub mod state;
pub mod text;
pub mod tick;
pub mod transport;
pub mod triage;
pub mod verdict;

use cli::{Cli, Command};
use error::Error;

/// Run a parsed command line; returns the process exit code. SIGINT and
/// SIGTERM end it at once (state files are only ever replaced atomically).
pub async fn run(cli: Cli) -> i32 {
    let state_dir = cli.state_dir.clone();
    let sd = state_dir.as_deref();
    let result = match &cli.command {
        // The loops handle signals themselves: they end with a final line.
        Command::Wait(a) => commands::wait::run(a, sd).await,
        Command::Patrol(a) => commands::patrol::run(a, sd).await,
        other => {
            let work = async {
                match other {
                    Command::Tick(a) => commands::tick::run(a, sd).await,
                    Command::Check(a) => Ok(commands::check::run(a)),
                    Command::Cron(a) => commands::cron::run(a, sd),
                    Command::Triage(a) => commands::triage::run(a, sd).await,
                    Command::Doctor(a) => commands::doctor::run(a).await,
                    Command::Chain(a) => commands::chain::run(a).await,
                    Command::Handbook(a) => commands::handbook::run(a, sd),
                    Command::Demo(a) => commands::demo::run(a).await,
                    Command::Init(a) => commands::init::run(a, sd).await,
                    Command::Status(a) => commands::status::run(a, sd),
                    Command::History(a) => commands::history::run(a, sd),
                    Command::Mcp(a) => commands::mcp::run(a, sd).await,
                    Command::Completions(a) => commands::completions::run(a),
                    Command::Man(a) => commands::man::run(a),
                    Command::Wait(_) | Command::Patrol(_) => unreachable!("handled above"),
                }
            };
            tokio::select! {
                r = work => r,
                s = interrupted() => Err(Error::Interrupted(s)),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gpupatrol: {}", e.render());
            exit_codes::UNKNOWN
        }
    }
}

/// Resolves with the signal's name on SIGINT or SIGTERM.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
