//! The on-box self-completion chain (L1): stages joined with `&&`, each with
//! pid / heartbeat / status / result sentinels, a DONE marker that lands only
//! when every stage succeeded, a TERM trap that marks the running stage
//! ABORTED, an optional on-box `notify` command. Detached with setsid+nohup,
//! tmux, or one `sbatch` per stage chained with `--dependency=afterok`.
//! Rendering is pure; `commands::chain` installs and reads it.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::shell::quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detach {
    Nohup,
    Tmux,
    Slurm,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run(String),
    /// Literal text in a file (`until grep -qF -- TEXT FILE`).
    WaitPattern {
        text: String,
        file: String,
    },
    /// A file that must exist.
    WaitMarker(String),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub action: Action,
    pub timeout: Option<Duration>,
    /// A running stage whose heartbeat is older than this is STALLED.
    pub stall_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Chain {
    pub dir: String,
    pub detach: Detach,
    pub stages: Vec<Stage>,
    pub notify: Option<String>,
    pub heartbeat: Duration,
    pub poll: Duration,
    pub sbatch_args: Vec<String>,
}

// ---- raw -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChain {
    pub dir: Option<Spanned<String>>,
    pub detach: Option<Detach>,
    pub stages: Option<Spanned<Vec<RawStage>>>,
    pub notify: Option<String>,
    pub heartbeat: Option<Spanned<String>>,
    pub poll: Option<Spanned<String>>,
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub name: Spanned<String>,
    pub run: Option<String>,
    pub wait_for: Option<RawWait>,
    pub timeout: Option<Spanned<String>>,
    pub stall_after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWait {
    pub log_pattern: Option<String>,
    pub file: Option<String>,
    pub marker: Option<String>,
}

/// Stage names become file names on the box.
pub fn valid_stage_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 48
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && n != "chain"
        && n != "DONE"
}

fn secs(d: Option<Duration>) -> u64 {
    d.map(|d| d.as_secs().max(1)).unwrap_or(0)
}

/// `until CONDITION; do sleep POLL; done`, with a deadline in the loop when
/// the stage has a timeout: bounded even on a box without `timeout`.
fn bounded_until(condition: &str, limit: u64, poll: u64) -> String {
    if limit == 0 {
        return format!("until {condition}; do sleep {poll}; done");
    }
    format!(
        "gp_end=$(( $(date +%s) + {limit} )); until {condition}; do [ \"$(date +%s)\" -ge \"$gp_end\" ] && exit 124; sleep {poll}; done"
    )
}

/// The shell command a stage runs.
pub fn stage_command(c: &Chain, s: &Stage) -> String {
    let poll = c.poll.as_secs().max(1);
    let limit = secs(s.timeout);
    match &s.action {
        Action::Run(cmd) => cmd.clone(),
        Action::WaitPattern { text, file } => bounded_until(
            &format!("grep -qF -- {} {} 2>/dev/null", quote(text), quote(file)),
            limit,
            poll,
        ),
        Action::WaitMarker(path) => bounded_until(&format!("[ -e {} ]", quote(path)), limit, poll),
    }
}

fn header(c: &Chain, profile: &str) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    // the shared process helpers report through variables not every script reads
    s.push_str("# shellcheck disable=SC2034\n");
    s.push_str(&format!(
        "# gpupatrol chain for profile {profile}: rendered by `gpupatrol chain render`.\n# A person can read and run it by hand: sh chain.sh\n"
    ));
    s.push_str(&format!("GP_DIR={}\n", quote(&c.dir)));
    s.push_str(&format!("GP_NOTIFY={}\n", quote(c.notify.as_deref().unwrap_or(""))));
    s.push_str(&format!("GP_HEARTBEAT={}\n", c.heartbeat.as_secs().max(1)));
    s.push_str(PROC);
    s
}

/// The process helpers the chain, its installer and the probe share.
pub const PROC: &str = include_str!("../templates/proc.sh");

/// The whole `&&` chain as one POSIX sh script (nohup and tmux).
pub fn render(c: &Chain, profile: &str) -> String {
    let mut s = header(c, profile);
    s.push_str(include_str!("../templates/chain.sh"));
    s.push('\n');
    let calls: Vec<String> = c
        .stages
        .iter()
        .map(|st| {
            format!(
                "gp_stage {} {} {}",
                st.name,
                secs(st.timeout),
                quote(&stage_command(c, st))
            )
        })
        .collect();
    s.push_str(&calls.join(" \\\n  && "));
    s.push_str(" \\\n  && touch \"$GP_DIR/DONE.tmp\" && mv \"$GP_DIR/DONE.tmp\" \"$GP_DIR/DONE\"\n");
    s.push_str("gp_rc=$?\nrm -f \"$GP_DIR/chain.pid\"\n");
    s.push_str(
        "if [ \"$gp_rc\" -eq 0 ]; then gp_notify SUCCESS \"$gp_last\"; else gp_notify FAILED \"$gp_last\"; fi\n",
    );
    s.push_str("exit \"$gp_rc\"\n");
    s
}

/// Slurm: one script per stage (run by `sbatch`), the same sentinels.
pub fn render_slurm_stage(c: &Chain, profile: &str, st: &Stage, last: bool) -> String {
    let mut s = header(c, profile);
    s.push_str(&format!(
        "# slurm stage {} (sbatch --dependency=afterok on the previous stage)\n",
        st.name
    ));
    s.push_str("GP_SLURM_STAGE=1\n");
    s.push_str(include_str!("../templates/chain.sh"));
    s.push('\n');
    let call = format!(
        "gp_stage {} {} {}",
        st.name,
        secs(st.timeout),
        quote(&stage_command(c, st))
    );
    let done = if last {
        " && touch \"$GP_DIR/DONE.tmp\" && mv \"$GP_DIR/DONE.tmp\" \"$GP_DIR/DONE\""
    } else {
        ""
    };
    s.push_str(&format!("{call}{done}\ngp_rc=$?\n"));
    let success = if last {
        "\nelse\n  gp_notify SUCCESS \"$gp_last\""
    } else {
        ""
    };
    s.push_str(&format!(
        "if [ \"$gp_rc\" -ne 0 ]; then\n  gp_notify FAILED \"$gp_last\"{success}\nfi\nexit \"$gp_rc\"\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Chain {
        Chain {
            dir: "/tmp/c it's".into(),
            detach: Detach::Nohup,
            stages: vec![
                Stage {
                    name: "train".into(),
                    action: Action::Run("python train.py --lr 3e-4 | tee x".into()),
                    timeout: None,
                    stall_after: None,
                },
                Stage {
                    name: "wait".into(),
                    action: Action::WaitPattern {
                        text: "a|b 'c'".into(),
                        file: "/l o/g".into(),
                    },
                    timeout: Some(Duration::from_secs(60)),
                    stall_after: None,
                },
                Stage {
                    name: "eval".into(),
                    action: Action::WaitMarker("/m".into()),
                    timeout: None,
                    stall_after: None,
                },
            ],
            notify: Some("echo \"$GPUPATROL_CHAIN_STATUS\"".into()),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(15),
            sbatch_args: vec![],
        }
    }

    #[test]
    fn stages_are_joined_with_and_and_done_is_last() {
        let s = render(&chain(), "p");
        let tail = &s[s.find("gp_stage train").unwrap()..];
        assert!(tail.contains("&& gp_stage wait"));
        assert!(tail.contains("&& gp_stage eval"));
        assert!(tail.contains("&& touch \"$GP_DIR/DONE.tmp\""));
        assert!(!tail.lines().next().unwrap().ends_with(';'));
    }

    #[test]
    fn waits_are_literal_bounded_and_read_a_file() {
        let c = chain();
        let cmd = stage_command(&c, &c.stages[1]);
        assert!(cmd.contains("grep -qF -- 'a|b '\\''c'\\''' '/l o/g'"), "{cmd}");
        assert!(cmd.contains("exit 124"), "{cmd}");
    }

    #[test]
    fn names() {
        assert!(valid_stage_name("eval-2_b"));
        assert!(!valid_stage_name("a b"));
        assert!(!valid_stage_name("../x"));
        assert!(!valid_stage_name("DONE"));
    }
}
