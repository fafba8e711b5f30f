//! One file per subcommand. Each returns the process exit code.

pub mod chain;
pub mod check;
pub mod cron;
pub mod demo;
pub mod doctor;
pub mod handbook;
pub mod init;
pub mod patrol;
pub mod tick;
pub mod triage;
pub mod wait;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::profile::{self, Profile};
use crate::state::{self, Store};

/// Open the state store from `--state-dir` or the default location.
pub fn store(dir: Option<&Path>) -> Result<Store> {
    Store::open(dir.map(Path::to_path_buf).unwrap_or_else(state::default_dir))
}

/// Load every profile; errors are printed (file, line, key) and counted.
pub fn load_profiles(paths: &[PathBuf]) -> (Vec<Profile>, usize) {
    let mut ok = Vec::new();
    let mut bad = 0;
    for p in paths {
        match profile::load(p) {
            Ok(prof) => ok.push(prof),
            Err(e) => {
                eprintln!("gpupatrol: {}", e.render());
                bad += 1;
            }
        }
    }
    (ok, bad)
}
