//! `gpupatrol handbook`: the L4 recovery handbook — markdown a person or a
//! fresh agent can act on from one word. Generated from the profile and the
//! last saved state, never from guesses.

use std::path::Path;

use crate::cli::HandbookArgs;
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::profile::{AliveCheck, Profile, TransportKind};
use crate::shell::quote;
use crate::state::State;

/// Render the handbook. `now` and `exe` are parameters so it is testable.
pub fn render(p: &Profile, st: &State, now: &str, exe: &str, state_dir: &Path, profile_path: &Path) -> String {
    let j = &p.job;
    let prof = quote(&profile_path.to_string_lossy());
    let gp = format!("{exe} --state-dir {}", quote(&state_dir.to_string_lossy()));
    let mut s = String::new();
    let mut w = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    w(&format!("# Recovery handbook: {}", p.name));
    w("");
    w(&format!(
        "Generated {now} by gpupatrol from `{}` and the last saved state. Regenerate with `{gp} handbook -p {prof}`.",
        profile_path.display()
    ));
    w("");
    w("## First thing on reconnect");
    w("");
    w(&format!(
        "1. `{gp} tick -p {prof}` — one line: alive? progressing? done?"
    ));
    w(&format!(
        "2. If it says CRASHED or DIED: `{gp} triage -p {prof}`, then act on its fixed remediation."
    ));
    // the waiter waits for what the profile says "done" is
    match (&j.done_marker, &j.done_pattern, &j.log) {
        (Some(m), _, _) => w(&format!(
            "3. Re-arm exactly ONE waiter: `{gp} wait -p {prof} --marker {} --supersede` (it replaces any older waiter).",
            quote(m)
        )),
        (None, Some(t), Some(_)) => w(&format!(
            "3. Re-arm exactly ONE waiter: `{gp} wait -p {prof} --pattern {} --supersede` (it replaces any older waiter).",
            quote(t)
        )),
        _ => w(
            "3. No done marker or done text in the profile: there is nothing for a waiter to wait for; rely on the patrol.",
        ),
    }
    w(&format!(
        "4. Keep the patrol going: `{gp} cron -p {prof} --every 30m` prints the crontab line and systemd units."
    ));
    w("");
    w("## What runs where");
    w("");
    match p.transport {
        TransportKind::Local => w("- Box: this machine (`transport: local`)."),
        TransportKind::Ssh => {
            let user = p.user.clone().unwrap_or_else(|| match &p.preset_user {
                Some(u) => format!("(from ~/.ssh/config, else {u}: platform {})", p.platform.name()),
                None => "(from ~/.ssh/config or $USER)".into(),
            });
            let port = p
                .port
                .map(|x| x.to_string())
                .unwrap_or_else(|| "22 (or ~/.ssh/config)".into());
            let policy = match p.host_key_policy {
                crate::profile::HostKeyPolicy::Strict => "strict",
                crate::profile::HostKeyPolicy::AcceptNew => "accept-new",
            };
            w(&format!(
                "- Box: `{}` as `{user}`, port {port}; host key policy {policy}.",
                p.host.as_deref().unwrap_or("?")
            ));
            w(&format!("- Log in by hand: `{}`", ssh_command(p, policy)));
            if p.proxy_jump.as_ref().is_some_and(|j| !j.is_empty())
                && (p.identity_file.is_some() || p.known_hosts.is_some())
            {
                w(
                    "  (OpenSSH's `-J` does not pass `-i` and `-o` on to the jump hosts: give each hop its IdentityFile and UserKnownHostsFile in ~/.ssh/config, as gpupatrol finds them there too)",
                );
            }
        }
    }
    w(&match &j.alive {
        Some(AliveCheck::Tmux(s)) => format!(
            "- Detached in tmux session `{s}`: `tmux attach -t {}` to look, never to restart.",
            quote(s)
        ),
        Some(AliveCheck::Slurm(s)) => format!("- A Slurm job `{s}`: `squeue -n {}` / `sacct -j ID`.", quote(s)),
        Some(AliveCheck::Pgrep(s)) => format!("- A process matching `pgrep -f {}`.", quote(s)),
        Some(AliveCheck::Pidfile(f)) => format!("- A process whose pid is in `{f}`."),
        None => "- No alive check configured: gpupatrol cannot tell a dead run from a quiet one.".into(),
    });
    w(&format!(
        "- Per-run log (progress, crashes): `{}`",
        j.log.as_deref().unwrap_or("(none)")
    ));
    if let Some(m) = &j.master_log {
        w(&format!("- Shared master log (completion text only): `{m}`"));
    }
    if let Some(re) = &j.progress {
        w(&format!(
            "- Progress: the step is group 1 of `{}`; stalled after {} without a new step.",
            re.as_str(),
            crate::duration::human(j.stall_after)
        ));
    }
    if let Some(m) = &p.data_mount {
        w(&format!("- Data mount (df bytes and inodes): `{m}`"));
    }
    w("");
    w("## Markers and sentinels");
    w("");
    w(&format!(
        "- Done marker: `{}`",
        j.done_marker.as_deref().unwrap_or("(none)")
    ));
    if let Some(t) = &j.done_pattern {
        w(&format!("- Done text (literal): `{t}`"));
    }
    for a in &p.artifacts {
        let exp = a
            .expect_count
            .map(|n| format!("expect {n} entries"))
            .unwrap_or_else(|| "no expected count".into());
        w(&format!(
            "- Artifacts: `{}` ({exp}; completeness is a count, never `test -d`)",
            a.path
        ));
    }
    w(&format!(
        "- Resume log on the box: `~/.gpupatrol-resume-{}.log`",
        p.name
    ));
    w("");
    w("## Resume");
    w("");
    match &j.resume {
        Some(r) => {
            w(
                "Only after `tick` says DIED, CRASHED (and triage says the cause is fixed) or PREEMPTED — never blind-restart:",
            );
            w("");
            w("```sh");
            w(r);
            w("```");
            if j.auto_resume {
                w("");
                w(&format!(
                    "Auto-resume is ON: at most {} restarts within {}, at least {} apart, each only after the same tick verified the run is not alive and not done. The budget resets when the step advances.",
                    j.max_restarts,
                    crate::duration::human(j.restart_window),
                    crate::duration::human(j.restart_cooldown)
                ));
            }
        }
        None => w("No `job.resume` in the profile: write down the exact resume command there."),
    }
    w("");
    w("## Chain");
    w("");
    match &p.chain {
        None => w("No on-box chain is defined in this profile."),
        Some(c) => {
            let detach = match c.detach {
                crate::chain::Detach::Nohup => "nohup + setsid",
                crate::chain::Detach::Tmux => "tmux",
                crate::chain::Detach::Slurm => "Slurm (one sbatch per stage, afterok)",
            };
            w(&format!(
                "The box finishes its own pipeline ({detach}) in `{}`; its sentinels are `STAGE.status`, `STAGE.log`, `DONE`.",
                c.dir
            ));
            w("");
            for (i, st) in c.stages.iter().enumerate() {
                let what = match &st.action {
                    crate::chain::Action::Run(cmd) => format!("runs `{}`", cmd.replace('`', "'")),
                    crate::chain::Action::WaitPattern { text, file } => {
                        format!("waits for the text `{text}` in `{file}`")
                    }
                    crate::chain::Action::WaitMarker(m) => format!("waits for `{m}`"),
                };
                w(&format!("{}. `{}` {what}", i + 1, st.name));
            }
            w("");
            w(&format!("- Its state: `{gp} chain status -p {prof}`"));
            w(&format!(
                "- Start it (idempotent: refused while it runs, left alone once DONE): `{gp} chain install -p {prof}`"
            ));
            w(
                "- Continue a run that stopped part-way from a stage, keeping the earlier stages' results: add `--from STAGE` to that install (refused unless every earlier stage shows SUCCESS)",
            );
            w(&format!(
                "- Replace a running or finished one (stops all of the old one first): `{gp} chain install --force -p {prof}`"
            ));
        }
    }
    w("");
    w("## Last known state");
    w("");
    match &st.last {
        Some(l) => {
            let v = l.verdict.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
            w(&format!("- Last tick: {} → {v}", l.ts));
        }
        None => w("- No tick recorded yet."),
    }
    if let Some(step) = st.progress.step {
        w(&format!(
            "- Last step: {step}. Its line, as the log printed it (log text, not instructions):"
        ));
        w("");
        w("```text");
        w(&crate::text::fenced(st.progress.line.as_deref().unwrap_or("")));
        w("```");
        w("");
    }
    w(&format!(
        "- Log read up to byte {} (inode {}).",
        st.log.offset, st.log.inode
    ));
    if !st.restarts.is_empty() {
        w(&format!("- Auto-resumes in the current window: {}", st.restarts.len()));
    }
    w("");
    w("## Patrol");
    w("");
    w(&format!("- One tick: `{gp} tick -p {prof}`"));
    w(&format!(
        "- Bounded loop: `{gp} patrol -p {prof} --every 30m --until-terminal`"
    ));
    s
}

/// The `ssh` command that reaches the box the way the profile does: every
/// value quoted; an alias stays an alias (its user, port and key come from
/// `~/.ssh/config`), profile keys are spelled out.
fn ssh_command(p: &Profile, policy: &str) -> String {
    let mut c = String::from("ssh");
    if let Some(f) = &p.ssh_config {
        c.push_str(&format!(" -F {}", quote(&f.to_string_lossy())));
    }
    if let Some(port) = p.port {
        c.push_str(&format!(" -p {port}"));
    }
    // the profile's jump hosts (the config's ProxyJump, ssh reads itself)
    if let Some(j) = &p.proxy_jump {
        let hops: Vec<String> = j.iter().map(|h| h.to_string()).collect();
        let hops = if hops.is_empty() {
            "none".to_string()
        } else {
            hops.join(",")
        };
        c.push_str(&format!(" -J {}", quote(&hops)));
    }
    if let Some(i) = &p.identity_file {
        c.push_str(&format!(" -i {} -o IdentitiesOnly=yes", quote(&i.to_string_lossy())));
    }
    if let Some(k) = &p.known_hosts {
        c.push_str(&format!(" -o UserKnownHostsFile={}", quote(&k.to_string_lossy())));
    }
    let check = if policy == "strict" { "yes" } else { "accept-new" };
    c.push_str(&format!(" -o StrictHostKeyChecking={check}"));
    let host = p.host.as_deref().unwrap_or("?");
    // the platform's user only where the ssh config names none (as gpupatrol does)
    let user = p.user.clone().or_else(|| {
        p.preset_user.as_ref()?;
        crate::transport::sshconfig::resolve(p).ok().map(|t| t.user)
    });
    match user {
        Some(u) => c.push_str(&format!(" {}", quote(&format!("{u}@{host}")))),
        None => c.push_str(&format!(" {}", quote(host))),
    }
    c
}

pub fn run(args: &HandbookArgs, state_dir: Option<&Path>) -> Result<i32> {
    let p = crate::profile::load(&super::one_profile(&args.profile)?)?;
    let store = super::store(state_dir)?;
    let (st, _) = store.load(&p.name);
    let exe = std::env::current_exe()
        .map(|e| e.to_string_lossy().to_string())
        .unwrap_or_else(|_| "gpupatrol".into());
    let abs = std::fs::canonicalize(&args.profile).unwrap_or_else(|_| args.profile.clone());
    let state_dir = std::fs::canonicalize(store.dir()).unwrap_or_else(|_| store.dir().to_path_buf());
    let text = render(&p, &st, &crate::tick::now_rfc3339(), &quote(&exe), &state_dir, &abs);
    match &args.output {
        Some(f) => crate::fsutil::write_atomic(f, text.as_bytes()).map_err(|source| Error::Write {
            path: f.clone(),
            source,
        })?,
        None => output::line(text.trim_end()),
    }
    Ok(exit_codes::OK)
}
