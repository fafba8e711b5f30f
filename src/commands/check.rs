//! `gpupatrol check`: validate profiles offline. Prints `ok FILE (name)` per
//! good profile; errors name file, line and key. Exit 0, or 3 on any error.

use crate::cli::CheckArgs;
use crate::exit_codes;
use crate::output;
use crate::profile::TransportKind;

pub fn run(args: &CheckArgs) -> i32 {
    let (profiles, mut bad) = super::load_profiles(&args.profiles);
    if let Err(e) = super::tick::unique_names(&profiles) {
        eprintln!("gpupatrol: {}", e.render());
        bad += 1;
    }
    for p in &profiles {
        let mut notes = Vec::new();
        let mut problems: Vec<String> = Vec::new();
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
        if p.platform != crate::profile::Platform::Generic {
            let has_preset = matches!(
                p.platform,
                crate::profile::Platform::Vast | crate::profile::Platform::Runpod | crate::profile::Platform::Lambda
            );
            if p.preset.is_empty() && has_preset {
                output::line(&format!(
                    "  platform {}: the profile sets every key the preset would",
                    p.platform.name()
                ));
            }
            for (k, v, why) in &p.preset {
                output::line(&format!("  platform {} sets {k}: {v} ({why})", p.platform.name()));
            }
            for n in platform_notes(p) {
                output::line(&format!("  platform {}: {n}", p.platform.name()));
            }
        }
        if let Some(j) = &p.proxy_jump {
            let hops: Vec<String> = j.iter().map(|h| h.to_string()).collect();
            output::line(&format!(
                "  reached through {}",
                if hops.is_empty() {
                    "no jump host (proxy_jump: none)".to_string()
                } else {
                    hops.join(" → ")
                }
            ));
        }
        if let Some(a) = &p.alert {
            for ep in a.endpoints().chain(a.heartbeat.as_ref()) {
                output::line(&format!("  alert: {}", ep.shown()));
                for v in ep.missing_vars() {
                    notes.push(format!(
                        "alert.{}: ${{{v}}} is not set here; a tick without it reports a failed delivery (cron and systemd start with few variables)",
                        if ep.channel == "heartbeat" { "heartbeat_url" } else { ep.channel }
                    ));
                }
                let url = match &ep.source {
                    crate::notify::Source::Url(u) => Some(u.clone()),
                    crate::notify::Source::File(f) => match std::fs::read_to_string(f) {
                        Err(e) => {
                            notes.push(format!(
                                "{}: cannot read it here ({e}); a tick without it reports a failed delivery",
                                ep.shown()
                            ));
                            None
                        }
                        Ok(text) => {
                            let u = text.lines().next().unwrap_or("").trim().to_string();
                            let checked = crate::notify::check_template(&u).and_then(|()| {
                                if u.contains("${") {
                                    Err("holds ${VAR}: a URL in a file is literal".to_string())
                                } else {
                                    Ok(())
                                }
                            });
                            match checked {
                                Err(e) => {
                                    problems.push(format!("{}: its first line is not a URL: it {e}", ep.shown()));
                                    None
                                }
                                Ok(()) => Some(u),
                            }
                        }
                    },
                };
                if let Some(u) = url
                    && u.starts_with("http://")
                    && !crate::notify::is_loopback(&u)
                {
                    notes.push(format!(
                        "{}: plain http sends the URL and its token in the clear",
                        ep.shown()
                    ));
                }
            }
        }
        for n in notes {
            output::line(&format!("  note: {n}"));
        }
        for e in &problems {
            eprintln!("gpupatrol: {}: {e}", p.file.display());
        }
        bad += problems.len();
    }
    if bad > 0 { exit_codes::UNKNOWN } else { exit_codes::OK }
}

/// What a platform's users trip over, said once by `check`.
fn platform_notes(p: &crate::profile::Profile) -> Vec<String> {
    use crate::profile::{AliveCheck, Platform};
    let mut v = Vec::new();
    match p.platform {
        Platform::Vast => {
            v.push("a login lands in a tmux session named ssh_tmux unless ~/.no_auto_tmux exists: a job typed there is `alive: { tmux: ssh_tmux }`".into());
            if p.host.as_deref().is_some_and(|h| h.ends_with(".vast.ai")) {
                v.push("a proxy endpoint (sshN.vast.ai): its port is the instance's, shown in the console; the direct IP and port work too".into());
            }
            v.push("key authentication only: add your public key to the account before the instance starts".into());
        }
        Platform::Runpod => {
            v.push("reach the pod by its \"SSH over exposed TCP\" address (public IP, the port mapped to 22): the ssh.runpod.io proxy has no exec channel".into());
            v.push("only /workspace survives a pod restart: logs, checkpoints and the done marker belong there".into());
        }
        Platform::Lambda => {
            v.push("a persistent filesystem is mounted under /home/ubuntu/<name>: keep checkpoints there".into());
        }
        Platform::Slurm => {
            if matches!(p.job.alive, Some(AliveCheck::Slurm(_))) && !p.slurm_node_probe {
                v.push("slurm.node_probe is off: the GPUs and memory shown are the login node's, not the job's".into());
            } else {
                v.push(
                    "GPUs and memory are read on the job's nodes by a job step (srun --overlap, Slurm 22.05+)".into(),
                );
            }
        }
        Platform::Generic => {}
    }
    v
}
