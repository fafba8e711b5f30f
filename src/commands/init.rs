//! `gpupatrol init [user@]host[:port]`: write a commented profile for a box
//! (every default it chose is a visible key or a comment, nothing guessed
//! silently), validate it as `check` would, run the doctor checks over one
//! connection, and print the first tick line. Never overwrites a file
//! without `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::InitArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::profile::{self, Platform};

/// A YAML scalar that reads back as exactly `s`: single-quoted, or
/// double-quoted with escapes where it holds a line break or another
/// control character (single quotes would fold a newline into a space).
fn yq(s: &str) -> String {
    let odd = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{feff}');
    if !s.chars().any(odd) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if odd(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A profile name from a host: letters, digits, `-_.`, at most 64.
fn name_from(host: &str) -> String {
    let n: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    // never a leading '-' (the file name would read as an option) or '.'
    let n = n.trim_start_matches(['.', '-']).chars().take(64).collect::<String>();
    if n.is_empty() { "box".into() } else { n }
}

fn platform_of(s: &str) -> Platform {
    match s {
        "vast" => Platform::Vast,
        "runpod" => Platform::Runpod,
        "lambda" => Platform::Lambda,
        "slurm" => Platform::Slurm,
        _ => Platform::Generic,
    }
}

/// The profile text `init` writes.
pub fn render(a: &InitArgs, today: &str) -> Result<(String, String)> {
    let usage = |m: String| Error::Usage(m);
    let mut dest = profile::parse_jumps(&a.destination)
        .map_err(|m| usage(format!("destination: {}", m.replace(" in jump host ", " in "))))?;
    if dest.len() != 1 {
        return Err(usage(
            "give one destination, [user@]host[:port]; jump hosts go in --proxy-jump".into(),
        ));
    }
    let dest = dest.remove(0);
    if crate::transport::sshconfig::is_runpod_proxy(&dest.host) {
        return Err(usage(crate::transport::sshconfig::RUNPOD_PROXY.into()));
    }
    let platform = platform_of(&a.platform);
    // two boxes behind one proxy host differ by port: so do their names (and state files)
    let name = a.name.clone().unwrap_or_else(|| match dest.port {
        Some(p) => name_from(&format!("{}-{p}", dest.host)),
        None => name_from(&dest.host),
    });
    let mut y = String::new();
    let mut line = |s: &str| {
        y.push_str(s);
        y.push('\n');
    };
    line(&format!(
        "# Written by `gpupatrol init` on {today}. Every default chosen is a key below or a"
    ));
    line("# comment; edit freely, then `gpupatrol check -p` this file.");
    line("version: 1");
    line(&format!(
        "name: {}                 # names the report line and the state file",
        yq(&name)
    ));
    if platform != Platform::Generic {
        line(&format!("platform: {}", platform.name()));
    }
    line("transport: ssh");
    line(&format!("host: {}", yq(&dest.host)));
    match dest.port {
        Some(p) => line(&format!("port: {p}")),
        None => line("# port: not set: the ssh config's Port for this host, else 22"),
    }
    let preset_user = match platform {
        Platform::Vast => Some(("root", "vast.ai containers log you in as root")),
        Platform::Runpod => Some(("root", "RunPod pods log you in as root")),
        Platform::Lambda => Some(("ubuntu", "Lambda instances log you in as ubuntu")),
        _ => None,
    };
    match (&dest.user, preset_user) {
        (Some(u), _) => line(&format!("user: {}", yq(u))),
        (None, Some((u, why))) => line(&format!(
            "# user: not set: the ssh config's User for this host, else {u} (platform {}: {why})",
            platform.name()
        )),
        (None, None) => line("# user: not set: the ssh config's User for this host, else your login name"),
    }
    match &a.identity_file {
        Some(f) => {
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            line(&format!("identity_file: {}", yq(&abs.to_string_lossy())));
        }
        None => line(
            "# identity_file: not set: ssh-agent, then the ssh config's IdentityFile, else ~/.ssh/id_ed25519, id_ecdsa",
        ),
    }
    if let Some(j) = &a.proxy_jump {
        let hops = profile::parse_jumps(j).map_err(|m| usage(format!("--proxy-jump: {m}")))?;
        let text: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
        line(&format!(
            "proxy_jump: {}          # OpenSSH's -J syntax; `none` connects directly",
            yq(if text.is_empty() { "none".into() } else { text.join(",") }.as_str())
        ));
    } else {
        line("# proxy_jump: not set: the ssh config's ProxyJump for this host, if any");
    }
    match &a.known_hosts {
        Some(f) => {
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            line(&format!("known_hosts: {}", yq(&abs.to_string_lossy())));
        }
        None => line("# known_hosts: not set: the ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts"),
    }
    if a.accept_new {
        line("host_key_policy: accept-new  # the first key seen is recorded; a changed one is refused");
    } else {
        line("host_key_policy: strict      # an unknown key is refused: ssh-keyscan it first, or init --accept-new");
    }
    line("connect_timeout: 15s");
    line("job:");
    match &a.alive {
        Some(spec) => {
            let (kind, arg) = spec
                .split_once(':')
                .filter(|(k, v)| !v.is_empty() && ["tmux", "pgrep", "slurm", "pidfile"].contains(k))
                .ok_or_else(|| {
                    usage(format!(
                        "--alive {spec:?}: give tmux:SESSION, pgrep:PATTERN, slurm:JOB or pidfile:PATH"
                    ))
                })?;
            line(&format!("  alive: {{ {kind}: {} }}", yq(arg)));
        }
        None => line(
            "  # alive: { tmux: train }   # not set: give one (tmux, pgrep, slurm, pidfile) or DIED cannot be told from a quiet run",
        ),
    }
    let mut data_mount: Option<(String, String)> = None;
    match &a.log {
        Some(log) => {
            let dir = match log.rsplit_once('/') {
                Some(("", _)) => "/".to_string(),
                Some((d, _)) => d.to_string(),
                None => ".".to_string(),
            };
            line(&format!(
                "  log: {}            # the run's own log: progress and crash detection",
                yq(log)
            ));
            line(
                "  # progress: 'Epoch (\\d+)'   # set it: the regex whose first group is your log's step number (unset, a log that stops growing is the stall signal)",
            );
            let marker = if dir == "/" {
                "/DONE".to_string()
            } else {
                format!("{dir}/DONE")
            };
            line(&format!(
                "  done_marker: {}   # make the run touch it when it finishes (or use done_pattern)",
                yq(&marker)
            ));
            data_mount = Some((dir, "the log's folder".into()));
        }
        None => {
            line(
                "  # log: /workspace/run/train.log   # not set: without it there is no progress and no crash detection",
            );
            line("  # progress: 'Epoch (\\d+)'");
            line("  # done_marker: /workspace/run/DONE");
        }
    }
    line("  stall_after: 30m            # no new step for this long while alive: STALLED");
    line("  # resume: 'cd /workspace && tmux new -d -s train \"python train.py --resume latest\"'");
    if data_mount.is_none() && matches!(platform, Platform::Vast | Platform::Runpod) {
        data_mount = Some((
            "/workspace".into(),
            format!("platform {}: its persistent volume", platform.name()),
        ));
    }
    match data_mount {
        Some((d, why)) => line(&format!(
            "data_mount: {}   # df -h / df -i are taken here ({why})",
            yq(&d)
        )),
        None => line("# data_mount: not set: no disk figures without a job.log or this"),
    }
    if platform == Platform::Slurm {
        line(
            "# slurm: { node_probe: false }   # GPUs and memory are read on the job's nodes (srun --overlap); this reads the login node's",
        );
    }
    Ok((name, y))
}

pub async fn run(a: &InitArgs, state_dir: Option<&Path>) -> Result<i32> {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (name, text) = render(a, &today)?;
    let out: PathBuf = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.yaml")));
    // what we write must load (the same validation as `check`) and say
    // exactly what was asked
    let profile = profile::parse(&out, &text)?;
    if profile.job.log != a.log || profile.host.as_deref() != Some(text_host(a)?.as_str()) {
        return Err(Error::Usage(
            "the profile would not read back the host or log exactly as given; nothing was written".into(),
        ));
    }
    if out.exists() && !a.force {
        return Err(Error::Usage(format!(
            "{} exists; pass --force to overwrite it (nothing was written)",
            out.display()
        )));
    }
    write(&out, &text, a.force)?;
    output::line(&format!("wrote {}", out.display()));
    let store = super::store(state_dir)?;
    let checks = super::doctor::checks(&profile).await;
    super::doctor::print(&profile, &checks, false);
    let doctor = super::doctor::exit_code(&checks);
    let t = crate::tick::run(&profile, &store).await;
    output::report(&t.report, false);
    Ok(doctor.max(t.report.exit_code).max(exit_codes::OK))
}

fn text_host(a: &InitArgs) -> Result<String> {
    let d = profile::parse_jumps(&a.destination).map_err(Error::Usage)?;
    Ok(d.first().map(|d| d.host.clone()).unwrap_or_default())
}

/// Write the file: a new one exclusively (no race with another writer; a
/// planted symlink fails the create), an existing one (with --force)
/// through a fresh, exclusively created temporary file and a rename.
fn write(out: &Path, text: &str, force: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::Usage(format!("cannot write {}: {e}", out.display()));
    if !force {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Usage(format!("{} exists; pass --force to overwrite it", out.display()))
                } else {
                    io(e)
                }
            })?;
        f.write_all(text.as_bytes()).map_err(io)?;
        return Ok(());
    }
    crate::fsutil::write_atomic(out, text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &[&str]) -> InitArgs {
        let mut v = vec!["gpupatrol", "init"];
        v.extend_from_slice(line);
        match crate::cli::Cli::parse_from(v).command {
            crate::cli::Command::Init(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_generated_profile_says_every_default_and_loads() {
        let a = args(&[
            "gpu-box:2222",
            "--platform",
            "vast",
            "--alive",
            "tmux:train",
            "--log",
            "/workspace/run 1/train.log",
            "-J",
            "me@bastion:22,hop2",
        ]);
        let (name, text) = render(&a, "2026-12-02").unwrap();
        assert_eq!(name, "gpu-box-2222");
        insta::assert_snapshot!("init_vast", text);
        let p = profile::parse(Path::new("gpu-box.yaml"), &text).unwrap();
        assert_eq!(p.user, None, "the ssh config's User would win");
        assert_eq!(p.preset_user.as_deref(), Some("root"));
        assert_eq!(p.port, Some(2222));
        assert_eq!(p.data_mount.as_deref(), Some("/workspace/run 1"));
        assert_eq!(p.job.done_marker.as_deref(), Some("/workspace/run 1/DONE"));
        assert_eq!(p.proxy_jump.as_ref().map(|j| j.len()), Some(2));
    }

    #[test]
    fn odd_values_read_back_exactly() {
        for log in [
            "/data/run\n  x/train.log",
            "/data/it's \"q\" #1: a\\b/train.log",
            "/data/tab\there\r/l\u{2028}og",
            "/data/  two  spaces/",
        ] {
            let a = args(&["h", "--log", log, "--alive", "pidfile:/p\nq"]);
            let (_, text) = render(&a, "d").unwrap();
            let p = profile::parse(Path::new("x.yaml"), &text).unwrap();
            assert_eq!(p.job.log.as_deref(), Some(log), "{text}");
            assert_eq!(p.job.alive.as_ref().map(|x| x.arg()), Some("/p\nq"));
        }
        // the name carries the port: two boxes behind one proxy host
        let (n1, _) = render(&args(&["ssh4.vast.ai:31522"]), "d").unwrap();
        let (n2, _) = render(&args(&["ssh4.vast.ai:31523"]), "d").unwrap();
        assert_ne!(n1, n2);
        assert_eq!(n1, "ssh4.vast.ai-31522");
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_is_written() {
        for (line, says) in [
            (vec!["h", "--alive", "screen:x"], "tmux:SESSION"),
            (vec!["a,b"], "one destination"),
            (vec!["pod@ssh.runpod.io"], "exposed TCP"),
            (vec!["h:0"], "invalid port"),
        ] {
            let e = render(&args(&line), "2026-12-02").unwrap_err();
            assert!(e.render().contains(says), "{line:?}: {}", e.render());
        }
        // a slurm platform without a slurm alive check does not load
        let (_, text) = render(&args(&["login", "--platform", "slurm"]), "d").unwrap();
        assert!(profile::parse(Path::new("x.yaml"), &text).is_err());
        let (_, text) = render(&args(&["login", "--platform", "slurm", "--alive", "slurm:bert"]), "d").unwrap();
        assert!(profile::parse(Path::new("x.yaml"), &text).is_ok());
    }
}
