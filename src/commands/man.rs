//! `gpupatrol man [-o DIR]`: roff man pages (clap_mangen): gpupatrol(1) on
//! stdout, or it and gpupatrol-SUBCOMMAND(1) for every subcommand in DIR.
//! Characters outside ASCII are written as groff escapes (`\[u2026]`), so
//! the pages render the same with `man`, `groff` without preconv, and mandoc.

use std::path::PathBuf;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result};
use crate::exit_codes;

pub fn run(args: &ManArgs) -> Result<i32> {
    let pages = pages().map_err(|e| Error::Other(format!("render the man pages: {e}")))?;
    match &args.out_dir {
        None => {
            let (_, main) = pages.last().expect("the main page");
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(main.as_bytes());
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: dir.clone(),
                source,
            })?;
            for (name, text) in &pages {
                let path = dir.join(name);
                crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            eprintln!(
                "gpupatrol: wrote {} man pages to {} (read one with `man -l {}`)",
                pages.len(),
                dir.display(),
                PathBuf::from(dir).join("gpupatrol.1").display()
            );
        }
    }
    Ok(exit_codes::OK)
}

/// Every page as (file name, roff): the subcommands' first, the main page last.
pub fn pages() -> std::io::Result<Vec<(String, String)>> {
    fn walk(cmd: clap::Command, top: bool, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
        let subs: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("{}-{}", cmd.get_display_name().unwrap_or(cmd.get_name()), s.get_name()))
            .collect();
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, false, out)?;
        }
        let has_version = cmd.get_version().is_some();
        let man = clap_mangen::Man::new(cmd);
        let mut buf = Vec::new();
        man.render_title(&mut buf)?;
        man.render_name_section(&mut buf)?;
        man.render_synopsis_section(&mut buf)?;
        man.render_description_section(&mut buf)?;
        man.render_options_section(&mut buf)?;
        if !subs.is_empty() {
            man.render_subcommands_section(&mut buf)?;
        }
        let page = man.get_filename();
        buf.extend_from_slice(exit_status(page.trim_end_matches(".1")).as_bytes());
        let mut see: Vec<String> = if top { vec![] } else { vec!["gpupatrol".into()] };
        see.extend(subs);
        let refs: Vec<String> = see
            .iter()
            .map(|s| format!("\\fB{}\\fR(1)", s.replace('-', "\\-")))
            .collect();
        buf.extend_from_slice(format!(".SH \"SEE ALSO\"\n{}\n", refs.join(",\n")).as_bytes());
        if has_version {
            man.render_version_section(&mut buf)?;
        }
        out.push((man.get_filename(), ascii_roff(&String::from_utf8_lossy(&buf))));
        Ok(())
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, true, &mut out)?;
    Ok(out)
}

/// The exit codes as this page's command uses them.
fn exit_status(page: &str) -> String {
    let codes: &[(&str, &str)] = match page {
        "gpupatrol" | "gpupatrol-tick" | "gpupatrol-patrol" | "gpupatrol-doctor" | "gpupatrol-status"
        | "gpupatrol-init" => &[
            ("0", "ok: RUNNING, PENDING or DONE"),
            (
                "1",
                "warning: a threshold crossed, INCOMPLETE, SLOW, a finished box still billed",
            ),
            ("2", "critical: STALLED, TIMEOUT, CRASHED, DIED, PREEMPTED"),
            (
                "3",
                "unknown: UNREACHABLE, AUTH_FAILED, HOSTKEY_MISMATCH, PROBE_ERROR, patrol stale, a usage or profile error, an interrupted run",
            ),
        ],
        "gpupatrol-wait" => &[
            ("0", "the marker or the text appeared"),
            ("1", "gave up (--max-ticks or --max-seconds)"),
            ("2", "a failure came first (CRASHED, DIED, STALLED, TIMEOUT, PREEMPTED)"),
            (
                "3",
                "unknown: unreachable past the circuit breaker, auth, host key, usage, interrupted",
            ),
        ],
        "gpupatrol-triage" => &[("0", "a class"), ("1", "no known class (unknown)"), ("3", "an error")],
        "gpupatrol-chain-status" => &[
            ("0", "running or DONE"),
            ("1", "stopped part-way"),
            ("2", "a stage failed"),
            ("3", "unknown: the box or the chain could not be read"),
        ],
        "gpupatrol-chain-install" => &[
            ("0", "started, or already DONE and left alone"),
            (
                "3",
                "refused (a chain or another install is alive, a run stopped part-way) or an error",
            ),
        ],
        "gpupatrol-mcp" => &[
            ("0", "the client closed the session"),
            ("3", "nothing to serve, or an error"),
        ],
        "gpupatrol-history" => &[("0", "the history"), ("3", "no history yet, or an error")],
        _ => &[
            ("0", "done"),
            (
                "3",
                "an error: usage, a profile that does not load, a file that cannot be written",
            ),
        ],
    };
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for (c, what) in codes {
        out.push_str(&format!(".TP\n\\fB{c}\\fR\n{what}\n"));
    }
    if matches!(
        page,
        "gpupatrol" | "gpupatrol-tick" | "gpupatrol-patrol" | "gpupatrol-doctor" | "gpupatrol-status"
    ) {
        out.push_str(".PP\nWith several profiles the worst code wins.\n");
    }
    out
}

/// Non-ASCII characters as groff's `\[uXXXX]` escapes.
fn ascii_roff(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_ascii_becomes_a_groff_escape() {
        assert_eq!(super::ascii_roff("2h … 5m — é"), r"2h \[u2026] 5m \[u2014] \[u00E9]");
    }

    #[test]
    fn every_subcommand_has_a_page() {
        let pages = super::pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "gpupatrol.1",
            "gpupatrol-tick.1",
            "gpupatrol-chain-status.1",
            "gpupatrol-mcp.1",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(!names.contains(&"gpupatrol-help.1"));
        assert!(pages.iter().all(|(_, t)| t.is_ascii()));
    }
}
