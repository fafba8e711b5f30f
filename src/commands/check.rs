//! `gpupatrol check`: validate profiles offline. Prints `ok FILE (name)` per
//! good profile; errors name file, line and key. Exit 0, or 3 on any error.

use crate::cli::CheckArgs;
use crate::exit_codes;
use crate::output;
use crate::profile::TransportKind;

pub fn run(args: &CheckArgs) -> i32 {
    let (profiles, bad) = super::load_profiles(&args.profiles);
    for p in &profiles {
        let mut notes = Vec::new();
        let job = &p.job;
        if job.alive.is_none() {
            notes.push("no job.alive check: DIED/CRASHED cannot be told apart from a quiet run".to_string());
        }
        if job.done_marker.is_none() && job.done_pattern.is_none() {
            notes.push("no job.done_marker or job.done_pattern: DONE can never be reported".to_string());
        }
        for path in [
            job.log.as_deref(),
            job.done_marker.as_deref(),
            job.master_log.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if path.starts_with("~/") && p.transport == TransportKind::Ssh {
                notes.push(format!("{path:?}: box paths are sent as written and `~` is not expanded; relative paths are relative to the login directory"));
            }
        }
        output::line(&format!("ok {} ({})", p.file.display(), p.name));
        for n in notes {
            output::line(&format!("  note: {n}"));
        }
    }
    if bad > 0 { exit_codes::UNKNOWN } else { exit_codes::OK }
}
