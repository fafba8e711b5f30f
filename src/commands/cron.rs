//! `gpupatrol cron`: print a crontab line and a systemd service + timer pair
//! that run `gpupatrol tick` and append to a log. No `flock` wrapper: the
//! tool locks each profile itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::CronArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::shell::quote;

/// A cron schedule for `every`, or why cron cannot say it.
pub fn cron_schedule(every: Duration, offset_min: u64) -> std::result::Result<String, String> {
    let s = every.as_secs();
    if !s.is_multiple_of(60) || s == 0 {
        return Err("cron counts whole minutes".into());
    }
    let m = s / 60;
    if m < 60 && 60 % m == 0 {
        let start = offset_min % m;
        return Ok(if m == 1 {
            "* * * * *".into()
        } else {
            format!("{start}-59/{m} * * * *")
        });
    }
    if m.is_multiple_of(60) {
        let h = m / 60;
        if h < 24 && 24 % h == 0 {
            return Ok(format!("{} */{h} * * *", offset_min % 60));
        }
        if h == 24 {
            return Ok(format!("{} 0 * * *", offset_min % 60));
        }
    }
    Err(format!(
        "cron cannot run every {}; use the systemd timer below",
        crate::duration::human(every)
    ))
}

/// One ExecStart word: systemd's double quotes, with `$` and `%` escaped.
fn systemd_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '$' => o.push_str("$$"),
            '%' => o.push_str("%%"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

pub fn run(args: &CronArgs, state_dir: Option<&Path>) -> Result<i32> {
    let (profiles, bad) = super::load_profiles(&args.profiles);
    if bad > 0 || profiles.is_empty() {
        return Ok(exit_codes::UNKNOWN);
    }
    let bin = std::env::current_exe().map_err(|e| Error::Other(format!("find the gpupatrol binary: {e}")))?;
    let state = state_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::state::default_dir);
    let state = abs(&state);
    let log = args
        .log
        .clone()
        .map(|l| abs(&l))
        .unwrap_or_else(|| state.join("patrol.log"));
    let mut cmd = format!(
        "{} --state-dir {} tick",
        quote(&bin.to_string_lossy()),
        quote(&state.to_string_lossy())
    );
    for p in &profiles {
        cmd.push_str(&format!(" -p {}", quote(&abs(&p.file).to_string_lossy())));
    }
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    let unit = format!("gpupatrol-{}", names.join("-"));
    // Fire a few minutes off the hour, like the seed's `3,33 * * * *`.
    let offset = 3;
    output::line(&format!(
        "# gpupatrol patrol of {} every {}",
        names.join(", "),
        crate::duration::human(args.every)
    ));
    output::line("# --- crontab (crontab -e): one tick per run, appended to the log; exit codes 0/1/2/3 by severity");
    match cron_schedule(args.every, offset) {
        Ok(s) => output::line(&format!("{s} {cmd} >> {} 2>&1", quote(&log.to_string_lossy()))),
        Err(why) => output::line(&format!("# {why}")),
    }
    output::line(&format!(
        "# --- systemd user units: ~/.config/systemd/user/{unit}.service and {unit}.timer"
    ));
    output::line(&format!(
        "# then: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer"
    ));
    output::line(&format!("# ~/.config/systemd/user/{unit}.service"));
    output::line("[Unit]");
    output::line(&format!("Description=gpupatrol tick for {}", names.join(", ")));
    output::line("");
    output::line("[Service]");
    output::line("Type=oneshot");
    let mut exec = format!(
        "{} --state-dir {} tick",
        systemd_quote(&bin.to_string_lossy()),
        systemd_quote(&state.to_string_lossy())
    );
    for p in &profiles {
        exec.push_str(&format!(" -p {}", systemd_quote(&abs(&p.file).to_string_lossy())));
    }
    output::line(&format!("ExecStart={exec}"));
    output::line(&format!(
        "StandardOutput=append:{}",
        log.to_string_lossy().replace('%', "%%")
    ));
    output::line(&format!(
        "StandardError=append:{}",
        log.to_string_lossy().replace('%', "%%")
    ));
    output::line("SuccessExitStatus=1 2 3");
    output::line("");
    output::line(&format!("# ~/.config/systemd/user/{unit}.timer"));
    output::line("[Unit]");
    output::line(&format!(
        "Description=Run {unit} every {}",
        crate::duration::human(args.every)
    ));
    output::line("");
    output::line("[Timer]");
    output::line("OnBootSec=2min");
    output::line(&format!("OnUnitActiveSec={}s", args.every.as_secs().max(1)));
    output::line("Persistent=true");
    output::line("");
    output::line("[Install]");
    output::line("WantedBy=timers.target");
    output::line("# --- an agent's loop (e.g. /loop 30m): run the same tick command and read its one line");
    output::line(&format!("# {cmd}"));
    Ok(exit_codes::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(cron_schedule(Duration::from_secs(1800), 3).unwrap(), "3-59/30 * * * *");
        assert_eq!(cron_schedule(Duration::from_secs(300), 3).unwrap(), "3-59/5 * * * *");
        assert_eq!(cron_schedule(Duration::from_secs(60), 3).unwrap(), "* * * * *");
        assert_eq!(cron_schedule(Duration::from_secs(7200), 3).unwrap(), "3 */2 * * *");
        assert_eq!(cron_schedule(Duration::from_secs(86400), 3).unwrap(), "3 0 * * *");
        assert!(cron_schedule(Duration::from_secs(420), 3).is_err());
        assert!(cron_schedule(Duration::from_secs(90), 3).is_err());
    }
}
