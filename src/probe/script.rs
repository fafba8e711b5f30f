//! Renders the probe script for one profile and one tick. Profile values are
//! exported as shell-quoted `GP_*` variables; the section code itself is
//! static text from `templates/`, so nothing a user writes becomes code.

use std::hash::{BuildHasher, Hasher};

use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::{Plan, Request};
use crate::profile::Profile;
use crate::shell::{export, quote};
use crate::state::State;

/// The section library (the guarded resume runs its alive check too).
pub const LIB: &str = super::sections::LIB;

/// Every log line is cut to this many bytes on the box before it is scanned.
pub const LINE_CAP: u64 = 4096;
/// Most bytes we accept from the whole probe before calling it garbage.
pub const MAX_PROBE_BYTES: usize = 2 * 1024 * 1024;

/// A rendered probe: the script to send, the nonce that frames its output,
/// and the sections it runs.
#[derive(Debug, Clone)]
pub struct Probe {
    pub nonce: String,
    pub script: String,
    pub plan: Plan,
}

/// A fresh, unguessable token per tick. Log text is written before the tick,
/// so it cannot contain it.
pub fn fresh_nonce() -> String {
    let mut out = String::from("GPX");
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for salt in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(t);
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Literal strings every match of `re` must contain, used on the box as a
/// cheap `index()` prefilter so only candidate lines travel; the regex itself
/// is evaluated here, in one dialect. `None` when no useful literal exists.
pub fn prefilter_literals(pattern: &str) -> Option<Vec<String>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let mut ex = Extractor::new();
        ex.kind(kind);
        let mut seq = ex.extract(&hir);
        seq.optimize_for_prefix_by_preference();
        let Some(lits) = seq.literals() else { continue };
        if lits.is_empty() || lits.len() > 64 {
            continue;
        }
        let strs: Option<Vec<String>> = lits
            .iter()
            .map(|l| {
                let s = std::str::from_utf8(l.as_bytes()).ok()?;
                (!s.is_empty() && !s.contains(['\n', '\r', '\0'])).then(|| s.to_string())
            })
            .collect();
        if let Some(v) = strs {
            return Some(v);
        }
    }
    None
}

/// Render the tick's probe for `profile`, continuing from `state`'s log offsets.
pub fn render(profile: &Profile, state: &State) -> Probe {
    render_for(profile, state, &Request::tick())
}

/// Render the probe a request asks for.
pub fn render_for(profile: &Profile, state: &State, req: &Request) -> Probe {
    render_full(profile, state, req, fresh_nonce())
}

pub fn render_with_nonce(profile: &Profile, state: &State, req: &Request, nonce: String) -> Probe {
    render_full(profile, state, req, nonce)
}

fn render_full(profile: &Profile, state: &State, req: &Request, nonce: String) -> Probe {
    let job = &profile.job;
    let plan = req.plan(profile);
    let mut s = String::with_capacity(LIB.len() + 4096);
    s.push_str("# gpupatrol probe v2 (read from stdin by sh -s; nothing here is in argv)\n");
    // Values are data in single quotes: the quotes inside them are meant literally.
    s.push_str("# shellcheck disable=SC2089,SC2090,SC2034\n");
    s.push_str("LC_ALL=C; export LC_ALL\n");
    // plain variables for the one shell; exported where awk reads them (ENVIRON)
    let mut var = |k: &str, v: &str| s.push_str(&format!("{k}={}\n", quote(v)));
    var("GP_NONCE", &nonce);
    var("GP_SECTIONS", &plan.names());
    var("GP_SECTION_TIMEOUT", &secs_arg(profile.section_timeout));
    var("GP_ALIVE_KIND", job.alive.as_ref().map(|a| a.kind()).unwrap_or("none"));
    var("GP_LOG", job.log.as_deref().unwrap_or(""));
    var("GP_LOG_OFFSET", &state.log.offset.to_string());
    var("GP_LOG_INODE", &state.log.inode.to_string());
    var("GP_LOG_FP", &state.log.fp);
    var("GP_LOG_FPLEN", &state.log.fp_len.to_string());
    var("GP_MASTER_LOG", job.master_log.as_deref().unwrap_or(""));
    var("GP_MASTER_OFFSET", &state.master.offset.to_string());
    var("GP_MASTER_INODE", &state.master.inode.to_string());
    var("GP_MASTER_FP", &state.master.fp);
    var("GP_MASTER_FPLEN", &state.master.fp_len.to_string());
    var("GP_SCAN_MAX", &profile.log_scan_max.to_string());
    var("GP_CRASH_WINDOW", &profile.crash_window.to_string());
    var("GP_LINE_CAP", &LINE_CAP.to_string());
    var("GP_DONE_MARKER", job.done_marker.as_deref().unwrap_or(""));
    var("GP_DATA_MOUNT", profile.data_mount.as_deref().unwrap_or(""));
    var("GP_GPU_SAMPLES", &profile.gpu_samples.to_string());
    var("GP_GPU_INTERVAL", &secs_arg(profile.gpu_interval));
    var("GP_WAIT_MARKER", req.wait.marker.as_deref().unwrap_or(""));
    var("GP_WAIT_OFFSET", &req.wait.cursor.offset.to_string());
    var("GP_WAIT_INODE", &req.wait.cursor.inode.to_string());
    var("GP_WAIT_FP", &req.wait.cursor.fp);
    var("GP_WAIT_FPLEN", &req.wait.cursor.fp_len.to_string());
    if let Some(c) = &profile.chain {
        var("GP_CHAIN_DIR", &c.dir);
        var("GP_CHAIN_JOBNAME", &profile.name);
        var("GP_STAGE_N", &c.stages.len().to_string());
        for (i, st) in c.stages.iter().enumerate() {
            var(&format!("GP_STAGE_{}", i + 1), &st.name);
        }
    }
    var("GP_ART_N", &profile.artifacts.len().to_string());
    for (i, a) in profile.artifacts.iter().enumerate() {
        var(&format!("GP_ART_{}", i + 1), &a.path);
    }
    // what awk reads through ENVIRON (patterns and literals never reach argv)
    s.push_str(&export(
        "GP_ALIVE_ARG",
        job.alive.as_ref().map(|a| a.arg()).unwrap_or(""),
    ));
    s.push_str(&export("GP_DONE_PATTERN", job.done_pattern.as_deref().unwrap_or("")));
    s.push_str(&export("GP_WAIT_PATTERN", req.wait.pattern.as_deref().unwrap_or("")));
    let lits = job
        .progress
        .as_ref()
        .and_then(|re| prefilter_literals(re.as_str()))
        .unwrap_or_default();
    s.push_str(&export("GP_LIT_N", &lits.len().to_string()));
    for (i, l) in lits.iter().enumerate() {
        s.push_str(&export(&format!("GP_LIT_{}", i + 1), l));
    }
    if plan.has(super::Section::Node) {
        // each nvidia-smi call on a node gets a third of the step's time
        let per_call = (profile.section_timeout.as_secs() / 3).max(1);
        s.push_str(&export("GP_NODE_CALL_TIMEOUT", &per_call.to_string()));
        s.push_str(&export("GP_NODE_LIB", super::sections::NODE_LIB));
    }
    s.push_str(LIB);
    s.push_str(super::sections::MAIN);
    Probe { nonce, script: s, plan }
}

/// Seconds as `timeout`/`sleep` take them, sub-second allowed.
fn secs_arg(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_for_common_progress_patterns() {
        assert_eq!(prefilter_literals(r"Epoch (\d+)"), Some(vec!["Epoch ".into()]));
        assert_eq!(prefilter_literals(r"step=(\d+)"), Some(vec!["step=".into()]));
        // no prefix literal, but a suffix one
        assert_eq!(prefilter_literals(r"(\d+) it/s"), Some(vec![" it/s".into()]));
        // nothing usable: every line is a candidate (the box sends the tail)
        assert_eq!(prefilter_literals(r"(\d+)"), None);
        let ci = prefilter_literals(r"(?i)ep (\d+)").unwrap();
        assert!(ci.contains(&"EP ".to_string()) && ci.contains(&"ep ".to_string()));
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(fresh_nonce(), fresh_nonce());
        assert!(fresh_nonce().len() > 30);
    }

    #[test]
    fn secs_arg_formats() {
        assert_eq!(secs_arg(std::time::Duration::from_secs(10)), "10");
        assert_eq!(secs_arg(std::time::Duration::from_millis(1500)), "1.500");
    }
}
