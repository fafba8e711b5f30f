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

/// A crontab command: cron turns an unescaped `%` into a newline, even
/// inside the shell's quotes.
fn crontab_escape(s: &str) -> String {
    s.replace('%', "\\%")
}

/// A short, stable unit name: one profile gives `gpupatrol-NAME`; several give
/// the first name, the count and a hash of all of them (twenty names joined
/// were 386 characters: "File name too long").
pub fn unit_name(names: &[&str]) -> String {
    let first: String = names.first().copied().unwrap_or("").chars().take(40).collect();
    if names.len() == 1 {
        return format!("gpupatrol-{first}");
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_unstable();
    // FNV-1a: the same names give the same unit on every run and machine
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sorted.join("\n").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("gpupatrol-{first}-and-{}-more-{:08x}", names.len() - 1, h as u32)
}

/// Unit files and crontab lines cannot carry control characters.
fn plain(what: &str, p: &Path) -> Result<()> {
    let s = p.to_string_lossy();
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::Usage(format!(
            "{what} {s:?} contains a control character; a crontab line or a systemd unit cannot hold it — move it"
        )));
    }
    Ok(())
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
    plain("the gpupatrol binary", &bin)?;
    plain("the state directory", &state)?;
    plain("the log", &log)?;
    for p in &profiles {
        plain("the profile", &abs(&p.file))?;
    }
    let every = format!("{}s", args.every.as_secs());
    let mut cmd = format!(
        "{} --state-dir {} tick --every {every}",
        quote(&bin.to_string_lossy()),
        quote(&state.to_string_lossy())
    );
    for p in &profiles {
        cmd.push_str(&format!(" -p {}", quote(&abs(&p.file).to_string_lossy())));
    }
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    let unit = unit_name(&names);
    // Fire a few minutes off the hour, like the seed's `3,33 * * * *`.
    let offset = 3;
    output::line(&format!(
        "# gpupatrol patrol of {} every {}",
        names.join(", "),
        crate::duration::human(args.every)
    ));
    output::line("# --- crontab (crontab -e): one tick per run, appended to the log; exit codes 0/1/2/3 by severity");
    match cron_schedule(args.every, offset) {
        // the log's folder may not exist yet (a fresh state dir): make it, private
        Ok(s) => {
            let dir = log
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            output::line(&crontab_escape(&format!(
                "{s} (umask 077; mkdir -p {}) && {cmd} >> {} 2>&1",
                quote(&dir.to_string_lossy()),
                quote(&log.to_string_lossy())
            )))
        }
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
        "{} --state-dir {} tick --every {every}",
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

    #[test]
    fn unit_names_are_short_and_stable() {
        assert_eq!(unit_name(&["a100-box"]), "gpupatrol-a100-box");
        let many: Vec<String> = (0..20)
            .map(|i| format!("profile-number-{i:02}-on-some-long-box-name"))
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let u = unit_name(&refs);
        assert!(u.len() < 100, "{u}");
        assert!(u.contains("-and-19-more-"), "{u}");
        let mut rev = refs.clone();
        rev.reverse();
        assert_eq!(
            unit_name(&rev).split("-more-").nth(1),
            u.split("-more-").nth(1),
            "order does not matter"
        );
        assert_ne!(unit_name(&refs[..19]), u);
        assert_eq!(crontab_escape("a%b"), "a\\%b");
    }
}
