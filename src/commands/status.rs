//! `gpupatrol status`: the fleet at a glance, from saved state only (no
//! connection, no lock, nothing written): one row per profile, worst first;
//! a profile whose last tick is older than twice its watcher's interval is
//! `patrol stale`. Exit code: the worst severity (stale counts as unknown).

use crate::cli::StatusArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::fleet::{self, Row};
use crate::output;
use crate::state::Store;

pub fn run(args: &StatusArgs, state_dir: Option<&std::path::Path>) -> Result<i32> {
    let dir = state_dir
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(crate::state::default_dir);
    let now = chrono::Utc::now().timestamp();
    let mut bad = 0;
    let names: Vec<String> = if args.profiles.is_empty() {
        match Store::saved(&dir) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(Error::Other(format!("read the state dir {}: {e}", dir.display()))),
        }
    } else {
        // the names only: status connects nowhere, so the rest of a profile
        // is `check`'s business (and 1,000 profiles stay instant)
        let (files, n) = super::expand_profiles(&args.profiles);
        bad = n;
        let mut names: Vec<String> = Vec::new();
        for f in &files {
            match crate::profile::name_of(f) {
                Ok(name) => names.push(name),
                Err(e) => {
                    eprintln!("gpupatrol: {}", e.render());
                    bad += 1;
                }
            }
        }
        super::tick::unique(names.iter().map(String::as_str))?;
        names
    };
    if names.is_empty() && bad == 0 {
        eprintln!(
            "gpupatrol: no saved state in {} (run `gpupatrol tick -p PROFILE` first, or give -p)",
            dir.display()
        );
        return Ok(exit_codes::UNKNOWN);
    }
    let mut rows: Vec<Row> = names.iter().map(|n| fleet::row(n, Store::peek(&dir, n), now)).collect();
    fleet::sort(&mut rows);
    if args.json {
        for r in &rows {
            output::line(&r.json().to_string());
        }
    } else if !rows.is_empty() {
        output::line(&fleet::table(&rows, fleet::width()));
        if let Some(money) = fleet::burn(&rows) {
            output::line(&money);
        }
    }
    let worst = rows.iter().map(Row::exit_code).max().unwrap_or(exit_codes::UNKNOWN);
    Ok(if bad > 0 { worst.max(exit_codes::UNKNOWN) } else { worst })
}
