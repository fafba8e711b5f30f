//! `gpupatrol chain render|install|status`: the on-box L1 chain. `install`
//! uploads the script over the tick's kind of connection (one SSH
//! connection, the script travels on stdin: no scp/sftp) and starts it
//! detached; `status` reads its sentinels.

use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::chain::{self, Chain, Detach};
use crate::cli::{ChainArgs, ChainCommand};
use crate::error::{Error, Result};
use crate::exit_codes;
use crate::output;
use crate::probe::facts::{ChainFacts, StageState};
use crate::profile::Profile;
use crate::shell::export;
use crate::tick;
use crate::transport::PROBE_COMMAND;
use crate::transport::{Limits, Transport};

fn chain_of(p: &Profile) -> Result<&Chain> {
    p.chain
        .as_ref()
        .ok_or_else(|| Error::Usage(format!("{} has no `chain:` section", p.file.display())))
}

fn session(p: &Profile) -> String {
    // as tmux names it: it turns '.' and ':' into '_' (a name with a dot
    // would never be found again)
    format!("gpupatrol-chain-{}", p.name.replace(['.', ':'], "_"))
}

/// What `render` prints: the script exactly as installed.
pub fn render_text(p: &Profile) -> Result<String> {
    let c = chain_of(p)?;
    Ok(match c.detach {
        Detach::Nohup | Detach::Tmux => chain::render(c, &p.name),
        Detach::Slurm => {
            let mut s = String::new();
            for (i, st) in c.stages.iter().enumerate() {
                let dep = if i == 0 {
                    String::new()
                } else {
                    " --dependency=afterok:<previous> --kill-on-invalid-dep=yes".into()
                };
                s.push_str(&format!(
                    "# ===== {}/stage-{}.sh — submitted as: sbatch -J {}-{}{dep} {}\n",
                    c.dir,
                    st.name,
                    p.name,
                    st.name,
                    c.sbatch_args.join(" ")
                ));
                s.push_str(&chain::render_slurm_stage(c, &p.name, st, i + 1 == c.stages.len()));
            }
            s
        }
    })
}

/// The installer script sent on stdin (public for the script checks).
pub fn installer_text(p: &Profile, force: bool) -> Result<String> {
    installer(p, force, None)
}

/// The chain from stage `from` on (`--from`), or all of it.
fn stages_from(c: &Chain, from: Option<&str>) -> Result<Chain> {
    let mut sub = c.clone();
    if let Some(name) = from {
        let Some(i) = c.stages.iter().position(|s| s.name == name) else {
            let names: Vec<&str> = c.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--from {name}: no such stage (the stages are {})",
                names.join(", ")
            )));
        };
        sub.stages = c.stages[i..].to_vec();
    }
    Ok(sub)
}

pub fn installer(p: &Profile, force: bool, from: Option<&str>) -> Result<String> {
    let full = chain_of(p)?;
    let c = &stages_from(full, from)?;
    let mut s = String::from(
        "# gpupatrol chain installer (read from stdin by sh -s)\n# shellcheck disable=SC2089,SC2090,SC2034\nGP_ORIG_LC_ALL=${LC_ALL-}; GP_ORIG_LC_ALL_SET=${LC_ALL+1}\nLC_ALL=C; export LC_ALL\n",
    );
    s.push_str(&export("GP_DIR", &c.dir));
    s.push_str(&export("GP_FORCE", if force { "1" } else { "0" }));
    s.push_str(&export("GP_FROM", from.unwrap_or("")));
    s.push_str(&export("GP_GRACE", "10"));
    s.push_str(&export("GP_SESSION", &session(p)));
    s.push_str(&export("GP_JOBNAME", &p.name));
    // every process of this run carries it: stopping the run finds them all
    s.push_str(&export("GP_RUN", &crate::probe::script::fresh_nonce()));
    let names: Vec<&str> = full.stages.iter().map(|st| st.name.as_str()).collect();
    s.push_str(&export("GP_STAGE_NAMES", &names.join(" ")));
    let run: Vec<&str> = c.stages.iter().map(|st| st.name.as_str()).collect();
    s.push_str(&export("GP_RUN_STAGES", &run.join(" ")));
    s.push_str(&export(
        "GP_DETACH",
        match c.detach {
            Detach::Nohup => "nohup",
            Detach::Tmux => "tmux",
            Detach::Slurm => "slurm",
        },
    ));
    match c.detach {
        Detach::Nohup | Detach::Tmux => s.push_str(&export("GP_CHAIN", &chain::render(c, &p.name))),
        Detach::Slurm => {
            s.push_str(&export("GP_STAGE_N", &c.stages.len().to_string()));
            for (i, st) in c.stages.iter().enumerate() {
                s.push_str(&export(&format!("GP_STAGE_{}", i + 1), &st.name));
                s.push_str(&export(
                    &format!("GP_STAGE_SCRIPT_{}", i + 1),
                    &chain::render_slurm_stage(c, &p.name, st, i + 1 == c.stages.len()),
                ));
            }
            s.push_str(&export("GP_SB_N", &c.sbatch_args.len().to_string()));
            for (i, a) in c.sbatch_args.iter().enumerate() {
                s.push_str(&export(&format!("GP_SB_{}", i + 1), a));
            }
        }
    }
    s.push_str(chain::PROC);
    s.push_str(include_str!("../../templates/chain_install.sh"));
    Ok(s)
}

/// The chain keeps its state on the box, in its sentinels: no local state is read or written.
pub async fn run(args: &ChainArgs) -> Result<i32> {
    let p = crate::profile::load(&super::one_profile(args.command.profile())?)?;
    match &args.command {
        ChainCommand::Render { .. } => {
            output::line(render_text(&p)?.trim_end());
            Ok(exit_codes::OK)
        }
        ChainCommand::Install { force, from, .. } => install(&p, *force, from.as_deref()).await,
        ChainCommand::Status { json, oneline, .. } => status(&p, *json, *oneline).await,
    }
}

async fn install(p: &Profile, force: bool, from: Option<&str>) -> Result<i32> {
    let script = installer(p, force, from)?;
    let t = Transport::for_profile(p).map_err(|f| Error::Other(format!("{}: {}", f.verdict(), f.message())))?;
    let limits = Limits {
        deadline: Duration::from_secs(60) + p.probe_timeout,
        max_stdout: 64 * 1024,
    };
    let out = t
        .exec(PROBE_COMMAND, script.as_bytes(), limits)
        .await
        .map_err(|f| Error::Other(format!("install the chain: {}: {}", f.verdict(), f.message())))?;
    let said = crate::text::plain_lines(String::from_utf8_lossy(&out.stdout).trim());
    let ts = tick::now_rfc3339();
    match out.exit_status {
        Some(0) => {
            output::line(&format!(
                "{ts} {} chain installed in {}: {}",
                p.name,
                chain_of(p)?.dir,
                said.lines().last().unwrap_or("")
            ));
            Ok(exit_codes::OK)
        }
        Some(3) => {
            eprintln!("gpupatrol: {}: {said}", p.name);
            Ok(exit_codes::UNKNOWN)
        }
        Some(4) => {
            // idempotent: a finished chain is not run a second time
            output::line(&format!("{ts} {} chain {}", p.name, said.lines().last().unwrap_or("")));
            Ok(exit_codes::OK)
        }
        other => Err(Error::Other(format!(
            "install the chain on {} (exit {}): {said}",
            p.name,
            other.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
        ))),
    }
}

/// Read the chain's sentinels in one connection (no state is changed).
pub async fn read(p: &Profile) -> Result<(ChainFacts, String)> {
    chain_of(p)?;
    // only the chain's sentinels (and the box's clock): no log offsets, so no
    // state to read, and no GPU samples
    let req = crate::probe::Request::new(crate::probe::Ask::ChainStatus);
    let probe = crate::probe::script::render_for(p, &crate::state::State::new(&p.name), &req);
    let t = Transport::for_profile(p).map_err(|f| Error::Other(format!("{}: {}", f.verdict(), f.message())))?;
    let limits = Limits {
        deadline: p.probe_timeout,
        max_stdout: crate::probe::script::MAX_PROBE_BYTES,
    };
    let out = t
        .exec(PROBE_COMMAND, probe.script.as_bytes(), limits)
        .await
        .map_err(|f| Error::Other(format!("read the chain: {}: {}", f.verdict(), f.message())))?;
    let f = crate::probe::observe(&out.stdout, &out.stderr, &probe, p)
        .map_err(|m| Error::Other(format!("read the chain: {m}")))?;
    let ts = tick::now_rfc3339();
    f.chain
        .map(|c| (c, ts))
        .ok_or_else(|| Error::Other("the box did not report the chain".into()))
}

fn summary(c: &ChainFacts) -> &'static str {
    let any = |f: fn(&StageState) -> bool| c.stages.iter().any(|s| f(&s.state));
    if !c.present {
        "not installed"
    } else if c.alive_error.is_some() {
        // the scheduler did not answer: never "stopped" on a guess
        "unknown"
    } else if c.done {
        "DONE"
    } else if c.alive {
        "running"
    } else if any(|s| matches!(s, StageState::Failed(_))) {
        "failed"
    } else if any(|s| matches!(s, StageState::Lost)) {
        "lost"
    } else {
        "stopped"
    }
}

async fn status(p: &Profile, json: bool, oneline: bool) -> Result<i32> {
    let (c, ts) = read(p).await?;
    let sum = summary(&c);
    let code = match sum {
        "DONE" | "running" => exit_codes::OK,
        "failed" => exit_codes::CRITICAL,
        "unknown" => exit_codes::UNKNOWN,
        _ => exit_codes::WARNING,
    };
    let stage_word = |s: &crate::probe::facts::StageFacts| match (&s.state, s.heartbeat_age_s) {
        (StageState::Running, Some(a)) => format!("running (heartbeat {} ago)", crate::duration::human_secs(a)),
        (st, _) => st.to_string(),
    };
    let parts: Vec<String> = c
        .stages
        .iter()
        .map(|s| format!("{} {}", s.name, stage_word(s)))
        .collect();
    let line = format!("{ts} {} chain {sum} | {}", p.name, parts.join(" | "));
    if json {
        output::line(
            &serde_json::json!({"ts": ts, "profile": p.name, "chain": sum, "exit_code": code, "detail": c, "line": line})
                .to_string(),
        );
        return Ok(code);
    }
    if oneline {
        output::line(&line);
        return Ok(code);
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["stage", "state", "result", "slurm"]);
    for s in &c.stages {
        t.add_row(vec![
            s.name.clone(),
            stage_word(s),
            s.result.clone().unwrap_or_default(),
            s.slurm.as_ref().map(|j| j.to_string()).unwrap_or_default(),
        ]);
    }
    let why = c.alive_error.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
    output::line(&format!("{ts} {} chain {sum}{why} ({})", p.name, chain_of(p)?.dir));
    output::line(&t.to_string());
    Ok(code)
}
