//! The thin binary: parse the command line, start the runtime, run, exit.

use clap::Parser;
use gpupatrol::{cli::Cli, exit_codes};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are "unknown" (3), so a wrapper never mistakes a typo for "critical".
            let code = if e.use_stderr() {
                exit_codes::UNKNOWN
            } else {
                exit_codes::OK
            };
            std::process::exit(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gpupatrol: start the async runtime: {e}");
            std::process::exit(exit_codes::UNKNOWN);
        }
    };
    let code = runtime.block_on(gpupatrol::run(cli));
    // Do not wait for stray blocking tasks (a lock wait) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
