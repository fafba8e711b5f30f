//! Profiles: one YAML file per box/run. Parsed strictly (unknown keys are
//! errors), then validated into a [`Profile`] before any network I/O. Every
//! error names the file, the line and the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::duration;
use crate::error::{Error, Result};

/// The newest profile format this build understands.
pub const PROFILE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Ssh,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown and changed host keys are refused.
    Strict,
    /// An unknown host key is recorded; a changed one is still refused.
    AcceptNew,
}

/// One jump host as `proxy_jump` writes it: `[user@]host[:port]` or
/// `ssh://[user@]host[:port]`; host may be a `~/.ssh/config` alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for JumpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Parse a ProxyJump list (OpenSSH syntax, comma-separated hops). `none`
/// is the empty list.
pub fn parse_jumps(s: &str) -> std::result::Result<Vec<JumpSpec>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for hop in s.split(',') {
        let hop = hop.trim();
        let bare = hop.strip_prefix("ssh://").unwrap_or(hop).trim_end_matches('/');
        if bare.is_empty() {
            return Err(format!("empty jump host in {s:?}"));
        }
        let (user, rest) = match bare.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("empty user in jump host {hop:?}")),
            None => (None, bare),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return Err(format!("unclosed [ in jump host {hop:?}"));
            };
            match after.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None if after.is_empty() => (h.to_string(), None),
                None => return Err(format!("text after ] in jump host {hop:?}")),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
            return Err(format!("invalid host in jump host {hop:?}"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("invalid port {p:?} in jump host {hop:?}")),
            },
        };
        out.push(JumpSpec { user, host, port });
    }
    Ok(out)
}

/// RunPod's proxied SSH front door: a PTY and nothing else.
pub const RUNPOD_PROXY: &str = "ssh.runpod.io is RunPod's proxied SSH: it gives a terminal (PTY) only and no exec channel, so no probe can run through it; use the pod's \"SSH over exposed TCP\" address instead (its public IP and the port mapped to 22, under Connect)";

pub fn is_runpod_proxy(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "ssh.runpod.io" || h.ends_with(".ssh.runpod.io")
}

/// The rental platform a box lives on: the defaults it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Vast,
    Runpod,
    Lambda,
    Slurm,
    #[default]
    Generic,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Vast => "vast",
            Platform::Runpod => "runpod",
            Platform::Lambda => "lambda",
            Platform::Slurm => "slurm",
            Platform::Generic => "generic",
        }
    }
}

/// How to tell whether the run is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliveCheck {
    Tmux(String),
    Slurm(String),
    Pgrep(String),
    Pidfile(String),
}

impl AliveCheck {
    pub fn kind(&self) -> &'static str {
        match self {
            AliveCheck::Tmux(_) => "tmux",
            AliveCheck::Slurm(_) => "slurm",
            AliveCheck::Pgrep(_) => "pgrep",
            AliveCheck::Pidfile(_) => "pidfile",
        }
    }
    pub fn arg(&self) -> &str {
        match self {
            AliveCheck::Tmux(s) | AliveCheck::Slurm(s) | AliveCheck::Pgrep(s) | AliveCheck::Pidfile(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: String,
    pub expect_count: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub disk_pct: f64,
    pub inodes_pct: f64,
    pub mem_pct: f64,
    /// GPU utilisation below this while the step advances → "data-bound" warning.
    pub gpu_idle_pct: f64,
    /// A rate below this % of its trailing median → `SLOW` (also the GPU-utilisation collapse).
    pub slow_pct: f64,
    /// GPUs idle this long while RUNNING → a warning with what the idle time cost.
    pub gpu_idle_for: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            disk_pct: 90.0,
            inodes_pct: 90.0,
            mem_pct: 90.0,
            gpu_idle_pct: 5.0,
            slow_pct: 50.0,
            gpu_idle_for: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub alive: Option<AliveCheck>,
    pub log: Option<String>,
    pub master_log: Option<String>,
    pub progress: Option<Regex>,
    pub done_marker: Option<String>,
    pub done_pattern: Option<String>,
    pub stall_after: Duration,
    pub max_runtime: Option<Duration>,
    pub resume: Option<String>,
    /// Run `resume` on DIED / PREEMPTED / resumable CRASHED (opt-in).
    pub auto_resume: bool,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub restart_cooldown: Duration,
    /// The run's last step, when the progress line does not say (`Epoch 37/100` does).
    pub total_steps: Option<u64>,
}

/// Where alerts go: a local command (report text only in its environment)
/// and/or a flag file holding the message.
#[derive(Debug, Clone)]
pub struct Alert {
    pub command: Option<String>,
    pub flag_file: Option<PathBuf>,
    pub cooldown: Duration,
    /// How long the command may run before its whole process group is killed.
    pub timeout: Duration,
    /// Built-in push endpoints (POST of the tick JSON, an ntfy topic, a
    /// Slack-compatible webhook) and the dead-man's-switch ping.
    pub webhook: Option<crate::notify::Endpoint>,
    pub ntfy: Option<crate::notify::Endpoint>,
    pub slack: Option<crate::notify::Endpoint>,
    pub heartbeat: Option<crate::notify::Endpoint>,
    /// Bounds each HTTP delivery: connection, answer and retries.
    pub http_timeout: Duration,
}

impl Alert {
    /// The notification endpoints that are set (not the heartbeat).
    pub fn endpoints(&self) -> impl Iterator<Item = &crate::notify::Endpoint> {
        [&self.webhook, &self.ntfy, &self.slack].into_iter().flatten()
    }

    /// Something to deliver an alert to (a heartbeat alone is not).
    pub fn notifies(&self) -> bool {
        self.command.is_some() || self.flag_file.is_some() || self.endpoints().next().is_some()
    }
}

/// A validated profile. Built only by [`load`] / [`parse`].
#[derive(Debug, Clone)]
pub struct Profile {
    pub file: PathBuf,
    pub name: String,
    pub transport: TransportKind,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub ssh_config: Option<PathBuf>,
    /// `proxy_jump`: `None` = not set (the ssh config decides), `Some([])` = `none`.
    pub proxy_jump: Option<Vec<JumpSpec>>,
    pub platform: Platform,
    /// The platform's user: after the profile's `user` and the ssh config's User.
    pub preset_user: Option<String>,
    /// What the platform preset set (key, value, why), for `check`.
    pub preset: Vec<(String, String, String)>,
    /// Slurm: run the GPU/cgroup sections inside the job's allocation (`srun --overlap`).
    pub slurm_node_probe: bool,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
    pub probe_timeout: Duration,
    pub section_timeout: Duration,
    pub gpu_samples: u32,
    pub gpu_interval: Duration,
    pub log_scan_max: u64,
    pub crash_window: u64,
    pub job: Job,
    pub artifacts: Vec<Artifact>,
    pub data_mount: Option<String>,
    pub thresholds: Thresholds,
    pub alert: Option<Alert>,
    pub chain: Option<crate::chain::Chain>,
    /// What the box costs per hour (rentals bill by the hour).
    pub cost_per_hour: Option<f64>,
    /// Ticks the history keeps.
    pub history: usize,
}

// ---- raw, as written -------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    version: Option<Spanned<u32>>,
    name: Option<Spanned<String>>,
    transport: Option<TransportKind>,
    host: Option<Spanned<String>>,
    port: Option<u16>,
    user: Option<String>,
    identity_file: Option<String>,
    known_hosts: Option<String>,
    ssh_config: Option<String>,
    proxy_jump: Option<Spanned<String>>,
    platform: Option<Spanned<Platform>>,
    slurm: Option<RawSlurm>,
    host_key_policy: Option<HostKeyPolicy>,
    connect_timeout: Option<Spanned<String>>,
    keepalive_interval: Option<Spanned<String>>,
    keepalive_count: Option<u32>,
    probe_timeout: Option<Spanned<String>>,
    section_timeout: Option<Spanned<String>>,
    gpu: Option<RawGpu>,
    log_scan_max_mb: Option<u64>,
    crash_window_kb: Option<u64>,
    job: Option<RawJob>,
    #[serde(default)]
    artifacts: Vec<RawArtifact>,
    data_mount: Option<String>,
    thresholds: Option<RawThresholds>,
    alert: Option<RawAlert>,
    chain: Option<crate::chain::RawChain>,
    cost_per_hour: Option<Spanned<f64>>,
    history: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    command: Option<Spanned<String>>,
    flag_file: Option<String>,
    cooldown: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
    webhook_file: Option<Spanned<String>>,
    ntfy: Option<Spanned<String>>,
    ntfy_file: Option<Spanned<String>>,
    slack: Option<Spanned<String>>,
    slack_file: Option<Spanned<String>>,
    heartbeat_url: Option<Spanned<String>>,
    heartbeat_url_file: Option<Spanned<String>>,
    http_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlurm {
    node_probe: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpu {
    samples: Option<Spanned<u32>>,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    alive: Option<Spanned<RawAlive>>,
    log: Option<Spanned<String>>,
    master_log: Option<String>,
    progress: Option<Spanned<String>>,
    done_marker: Option<String>,
    done_pattern: Option<Spanned<String>>,
    stall_after: Option<Spanned<String>>,
    max_runtime: Option<Spanned<String>>,
    resume: Option<String>,
    auto_resume: Option<Spanned<bool>>,
    max_restarts: Option<u32>,
    restart_window: Option<Spanned<String>>,
    restart_cooldown: Option<Spanned<String>>,
    total_steps: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlive {
    tmux: Option<String>,
    slurm: Option<String>,
    pgrep: Option<String>,
    pidfile: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    path: Spanned<String>,
    expect_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    disk_pct: Option<Spanned<f64>>,
    inodes_pct: Option<Spanned<f64>>,
    mem_pct: Option<Spanned<f64>>,
    gpu_idle_pct: Option<Spanned<f64>>,
    slow_pct: Option<Spanned<f64>>,
    gpu_idle_for: Option<Spanned<String>>,
}

// ---- loading ---------------------------------------------------------------

/// Read and validate a profile file.
pub fn load(file: &Path) -> Result<Profile> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::ProfileRead {
        file: file.to_path_buf(),
        source,
    })?;
    parse(file, &text)
}

/// A profile's name without the rest of its validation (`status` needs no
/// more: it connects nowhere). The same rules as [`load`] for the name.
pub fn name_of(file: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct NameOnly {
        name: Option<Spanned<String>>,
    }
    let text = std::fs::read_to_string(file).map_err(|source| Error::ProfileRead {
        file: file.to_path_buf(),
        source,
    })?;
    let raw: NameOnly = serde_saphyr::from_str(&text).map_err(|e| yaml_error(file, &text, &e))?;
    let v = Validator { file };
    match raw.name {
        None => Err(v.err(1, "name", "missing required key `name`")),
        Some(n) if valid_name(&n.value) => Ok(n.value),
        Some(n) => Err(v.err(n.referenced.line(), "name", name_rule(&n.value))),
    }
}

/// A profile name names its state file: letters, digits, `-_.`, at most 64,
/// not hidden.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !n.starts_with('.')
}

fn name_rule(n: &str) -> String {
    format!("invalid name {n:?} (letters, digits, '-', '_' and '.', at most 64; it names the state file)")
}

/// Validate profile text; `file` is used in error messages and to resolve
/// relative local paths.
pub fn parse(file: &Path, text: &str) -> Result<Profile> {
    let raw: RawProfile = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, text, &e))?;
    Validator { file }.build(raw)
}

fn yaml_error(file: &Path, text: &str, e: &serde_saphyr::Error) -> Error {
    let line = e.location().map(|l| l.line()).unwrap_or(0);
    let rendered = e.to_string();
    // The crate renders a snippet after the message; users get file:line
    // from us, so keep only the first line of its text.
    let mut message = rendered.lines().next().unwrap_or("").trim().to_string();
    if let Some(stripped) = message.strip_prefix("error: ") {
        message = stripped.to_string();
    }
    // We print file:line: ourselves; drop the crate's own "line N column M: ".
    if let Some(rest) = message.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
        && rest.split(':').next().is_some_and(|loc| loc.contains(" column "))
    {
        message = after.to_string();
    }
    let key = key_at_line(text, line).unwrap_or_else(|| "(document)".into());
    let message = if message.contains("unknown field") {
        format!("{message} (unknown keys are errors, not ignored)")
    } else {
        message
    };
    Error::Profile {
        file: file.to_path_buf(),
        line,
        key,
        message,
    }
}

/// The dotted key path of the mapping key on (1-based) `line`, from indentation.
fn key_at_line(text: &str, line: u64) -> Option<String> {
    if line == 0 {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let idx = (line as usize).checked_sub(1)?;
    let key_of = |l: &str| -> Option<(usize, String)> {
        let indent = l.len() - l.trim_start().len();
        let t = l.trim_start().trim_start_matches("- ");
        let (k, _) = t.split_once(':')?;
        let k = k.trim();
        if k.is_empty() || k.starts_with('#') || k.contains(' ') && !k.starts_with('"') {
            return None;
        }
        Some((indent, k.trim_matches('"').to_string()))
    };
    let (mut indent, first) = key_of(lines.get(idx)?)?;
    let mut path = vec![first];
    for l in lines[..idx].iter().rev() {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if let Some((i, k)) = key_of(l)
            && i < indent
        {
            path.push(k);
            indent = i;
            if i == 0 {
                break;
            }
        }
    }
    path.reverse();
    Some(path.join("."))
}

struct Validator<'a> {
    file: &'a Path,
}

impl Validator<'_> {
    fn err(&self, line: u64, key: &str, message: impl Into<String>) -> Error {
        Error::Profile {
            file: self.file.to_path_buf(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn dur(&self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Result<Duration> {
        match v {
            None => Ok(default),
            Some(s) => duration::parse(&s.value).map_err(|m| self.err(s.referenced.line(), key, m)),
        }
    }

    /// `alert.KEY: URL` or `alert.KEY_file: PATH` (not both).
    fn endpoint(
        &self,
        channel: &'static str,
        key: &str,
        url: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
    ) -> Result<Option<crate::notify::Endpoint>> {
        use crate::notify::{Endpoint, Source};
        match (url, file) {
            (None, None) => Ok(None),
            (Some(_), Some(f)) => Err(self.err(
                f.referenced.line(),
                &format!("alert.{key}_file"),
                format!("give alert.{key} or alert.{key}_file, not both"),
            )),
            (Some(u), None) => {
                crate::notify::check_template(&u.value)
                    .map_err(|m| self.err(u.referenced.line(), &format!("alert.{key}"), &m))?;
                Ok(Some(Endpoint {
                    channel,
                    source: Source::Url(u.value.clone()),
                }))
            }
            (None, Some(f)) => {
                if f.value.trim().is_empty() {
                    return Err(self.err(f.referenced.line(), &format!("alert.{key}_file"), "empty path"));
                }
                Ok(Some(Endpoint {
                    channel,
                    source: Source::File(self.local_path(&f.value)),
                }))
            }
        }
    }

    fn local_path(&self, p: &str) -> PathBuf {
        let expanded = expand_tilde(p);
        if expanded.is_relative() {
            // Relative local paths are relative to the profile's folder.
            self.file.parent().map(|d| d.join(&expanded)).unwrap_or(expanded)
        } else {
            expanded
        }
    }

    fn build(&self, raw: RawProfile) -> Result<Profile> {
        if let Some(v) = &raw.version
            && (v.value == 0 || v.value > PROFILE_VERSION)
        {
            return Err(self.err(
                v.referenced.line(),
                "version",
                format!(
                    "profile version {} is not supported (this gpupatrol reads version {PROFILE_VERSION})",
                    v.value
                ),
            ));
        }
        let name = match &raw.name {
            None => return Err(self.err(1, "name", "missing required key `name`")),
            Some(n) => {
                if !valid_name(&n.value) {
                    return Err(self.err(n.referenced.line(), "name", name_rule(&n.value)));
                }
                n.value.clone()
            }
        };
        let transport = raw.transport.unwrap_or(TransportKind::Ssh);
        if transport == TransportKind::Ssh && raw.host.is_none() {
            return Err(self.err(1, "host", "missing required key `host` for transport ssh"));
        }
        if let Some(h) = &raw.host
            && (h.value.trim().is_empty() || h.value.contains(char::is_whitespace))
        {
            return Err(self.err(h.referenced.line(), "host", format!("invalid host {:?}", h.value)));
        }
        if let Some(h) = &raw.host
            && is_runpod_proxy(&h.value)
        {
            return Err(self.err(h.referenced.line(), "host", RUNPOD_PROXY));
        }
        let proxy_jump = match &raw.proxy_jump {
            None => None,
            Some(j) => Some(parse_jumps(&j.value).map_err(|m| self.err(j.referenced.line(), "proxy_jump", m))?),
        };
        if transport == TransportKind::Local
            && let Some(j) = &raw.proxy_jump
        {
            return Err(self.err(
                j.referenced.line(),
                "proxy_jump",
                "transport local runs on this machine: there is no host to jump to",
            ));
        }
        let platform = raw.platform.as_ref().map(|p| p.value).unwrap_or_default();
        let mut preset: Vec<(String, String, String)> = Vec::new();
        let mut set = |key: &str, value: &str, why: &str| {
            preset.push((key.to_string(), value.to_string(), why.to_string()));
            Some(value.to_string())
        };
        // the platform's user comes after the ssh config's User (where the
        // config names one for the host, it wins), never over the profile's
        let preset_user = raw.user.is_none().then_some(()).and_then(|_| match platform {
            Platform::Vast => set(
                "user",
                "root",
                "vast.ai containers log you in as root; the ssh config's User wins",
            ),
            Platform::Runpod => set(
                "user",
                "root",
                "RunPod pods log you in as root; the ssh config's User wins",
            ),
            Platform::Lambda => set(
                "user",
                "ubuntu",
                "Lambda instances log you in as ubuntu; the ssh config's User wins",
            ),
            _ => None,
        });
        let has_log = raw.job.as_ref().is_some_and(|j| j.log.is_some());
        let preset_mount = match (platform, &raw.data_mount, has_log) {
            (Platform::Vast, None, false) => set("data_mount", "/workspace", "vast.ai's persistent volume"),
            (Platform::Runpod, None, false) => set(
                "data_mount",
                "/workspace",
                "RunPod's persistent volume (the container disk is not)",
            ),
            _ => None,
        };
        let slurm_node_probe = raw.slurm.as_ref().and_then(|s| s.node_probe).unwrap_or(true);

        let connect_timeout = self.dur(&raw.connect_timeout, "connect_timeout", Duration::from_secs(15))?;
        let keepalive_interval = self.dur(&raw.keepalive_interval, "keepalive_interval", Duration::from_secs(10))?;
        let probe_timeout = self.dur(&raw.probe_timeout, "probe_timeout", Duration::from_secs(60))?;
        let section_timeout = self.dur(&raw.section_timeout, "section_timeout", Duration::from_secs(10))?;
        for (d, key, v) in [
            (connect_timeout, "connect_timeout", &raw.connect_timeout),
            (keepalive_interval, "keepalive_interval", &raw.keepalive_interval),
            (probe_timeout, "probe_timeout", &raw.probe_timeout),
            (section_timeout, "section_timeout", &raw.section_timeout),
        ] {
            if d < Duration::from_millis(100) {
                let line = v.as_ref().map(|s| s.referenced.line()).unwrap_or(0);
                return Err(self.err(line, key, "must be at least 100ms"));
            }
        }
        if section_timeout >= probe_timeout {
            let line = raw.section_timeout.as_ref().map(|s| s.referenced.line()).unwrap_or(0);
            return Err(self.err(line, "section_timeout", "must be shorter than probe_timeout"));
        }

        let (gpu_samples, gpu_interval) = match &raw.gpu {
            None => (3, Duration::from_millis(400)),
            Some(g) => {
                let samples = match &g.samples {
                    None => 3,
                    Some(s) if (1..=10).contains(&s.value) => s.value,
                    Some(s) => return Err(self.err(s.referenced.line(), "gpu.samples", "must be between 1 and 10")),
                };
                (
                    samples,
                    self.dur(&g.interval, "gpu.interval", Duration::from_millis(400))?,
                )
            }
        };

        let job = self.job(raw.job)?;

        let mut artifacts = Vec::new();
        for a in raw.artifacts {
            if a.path.value.is_empty() {
                return Err(self.err(a.path.referenced.line(), "artifacts.path", "empty path"));
            }
            artifacts.push(Artifact {
                path: a.path.value,
                expect_count: a.expect_count,
            });
        }

        let mut thresholds = Thresholds::default();
        if let Some(t) = raw.thresholds {
            for (slot, v, key) in [
                (&mut thresholds.disk_pct, &t.disk_pct, "thresholds.disk_pct"),
                (&mut thresholds.inodes_pct, &t.inodes_pct, "thresholds.inodes_pct"),
                (&mut thresholds.mem_pct, &t.mem_pct, "thresholds.mem_pct"),
                (&mut thresholds.gpu_idle_pct, &t.gpu_idle_pct, "thresholds.gpu_idle_pct"),
                (&mut thresholds.slow_pct, &t.slow_pct, "thresholds.slow_pct"),
            ] {
                if let Some(v) = v {
                    if !(0.0..=100.0).contains(&v.value) {
                        return Err(self.err(v.referenced.line(), key, "must be a percentage between 0 and 100"));
                    }
                    *slot = v.value;
                }
            }
            thresholds.gpu_idle_for = self.dur(&t.gpu_idle_for, "thresholds.gpu_idle_for", thresholds.gpu_idle_for)?;
        }
        let cost_per_hour = match &raw.cost_per_hour {
            Some(c) if !(c.value.is_finite() && (0.0..=1e6).contains(&c.value)) => {
                return Err(self.err(
                    c.referenced.line(),
                    "cost_per_hour",
                    "must be a price per hour from 0 to 1000000 (2.49)",
                ));
            }
            c => c.as_ref().map(|c| c.value),
        };
        let history = match &raw.history {
            Some(h) if !(1..=crate::history::MAX_KEEP as u64).contains(&h.value) => {
                return Err(self.err(
                    h.referenced.line(),
                    "history",
                    format!("must keep between 1 and {} ticks", crate::history::MAX_KEEP),
                ));
            }
            h => h.as_ref().map_or(crate::history::DEFAULT_KEEP, |h| h.value as usize),
        };

        let data_mount = raw.data_mount.or(preset_mount).or_else(|| {
            job.log.as_ref().map(|l| match l.rsplit_once('/') {
                Some(("", _)) => "/".to_string(),
                Some((dir, _)) => dir.to_string(),
                None => ".".to_string(),
            })
        });

        let alert = match raw.alert {
            None => None,
            Some(a) => {
                if let Some(c) = &a.command
                    && c.value.trim().is_empty()
                {
                    return Err(self.err(c.referenced.line(), "alert.command", "must not be empty"));
                }
                let webhook = self.endpoint("webhook", "webhook", &a.webhook, &a.webhook_file)?;
                let ntfy = self.endpoint("ntfy", "ntfy", &a.ntfy, &a.ntfy_file)?;
                let slack = self.endpoint("slack", "slack", &a.slack, &a.slack_file)?;
                let heartbeat = self.endpoint("heartbeat", "heartbeat_url", &a.heartbeat_url, &a.heartbeat_url_file)?;
                let http_timeout = self.dur(&a.http_timeout, "alert.http_timeout", Duration::from_secs(10))?;
                if http_timeout < Duration::from_secs(1) {
                    let line = a.http_timeout.as_ref().map(|c| c.referenced.line()).unwrap_or(0);
                    return Err(self.err(line, "alert.http_timeout", "must be at least 1s"));
                }
                let alert = Alert {
                    cooldown: self.dur(&a.cooldown, "alert.cooldown", Duration::from_secs(15 * 60))?,
                    timeout: self.dur(&a.timeout, "alert.timeout", Duration::from_secs(30))?,
                    command: a.command.map(|c| c.value),
                    flag_file: a.flag_file.as_deref().map(|p| self.local_path(p)),
                    webhook,
                    ntfy,
                    slack,
                    heartbeat,
                    http_timeout,
                };
                if !alert.notifies() && alert.heartbeat.is_none() {
                    let line = a.cooldown.as_ref().map(|c| c.referenced.line()).unwrap_or(0);
                    return Err(self.err(
                        line,
                        "alert",
                        "give at least one of alert.command, flag_file, webhook, ntfy, slack, heartbeat_url",
                    ));
                }
                Some(alert)
            }
        };

        let chain = match raw.chain {
            None => None,
            Some(c) => Some(self.chain(c, job.log.as_deref())?),
        };
        let data_mount = data_mount.or_else(|| chain.as_ref().map(|c| c.dir.clone()));
        if platform == Platform::Slurm
            && !matches!(job.alive, Some(AliveCheck::Slurm(_)))
            && !chain.as_ref().is_some_and(|c| c.detach == crate::chain::Detach::Slurm)
        {
            let line = raw.platform.as_ref().map(|p| p.referenced.line()).unwrap_or(0);
            return Err(self.err(
                line,
                "platform",
                "platform slurm watches a Slurm job from its login node: give job.alive: { slurm: JOB_NAME_OR_ID } (or a chain with detach: slurm)",
            ));
        }

        Ok(Profile {
            chain,
            alert,
            file: self.file.to_path_buf(),
            name,
            transport,
            host: raw.host.map(|h| h.value),
            port: raw.port,
            user: raw.user,
            preset_user,
            identity_file: raw.identity_file.as_deref().map(|p| self.local_path(p)),
            known_hosts: raw.known_hosts.as_deref().map(|p| self.local_path(p)),
            ssh_config: raw.ssh_config.as_deref().map(|p| self.local_path(p)),
            proxy_jump,
            platform,
            preset,
            slurm_node_probe,
            host_key_policy: raw.host_key_policy.unwrap_or(HostKeyPolicy::Strict),
            connect_timeout,
            keepalive_interval,
            keepalive_count: raw.keepalive_count.unwrap_or(3).max(1),
            probe_timeout,
            section_timeout,
            gpu_samples,
            gpu_interval,
            log_scan_max: raw.log_scan_max_mb.unwrap_or(64).max(1) * 1024 * 1024,
            crash_window: raw.crash_window_kb.unwrap_or(256).max(4) * 1024,
            job,
            artifacts,
            data_mount,
            thresholds,
            cost_per_hour,
            history,
        })
    }

    fn chain(&self, c: crate::chain::RawChain, job_log: Option<&str>) -> Result<crate::chain::Chain> {
        use crate::chain::{Action, Chain, Detach, Stage, valid_stage_name};
        let Some(dir) = c.dir else {
            return Err(self.err(
                0,
                "chain.dir",
                "missing: the on-box folder for the chain's script and sentinels",
            ));
        };
        if dir.value.trim().is_empty() {
            return Err(self.err(dir.referenced.line(), "chain.dir", "must not be empty"));
        }
        let Some(raw_stages) = c.stages else {
            return Err(self.err(dir.referenced.line(), "chain.stages", "missing: list the stages to run"));
        };
        if raw_stages.value.is_empty() {
            return Err(self.err(
                raw_stages.referenced.line(),
                "chain.stages",
                "must list at least one stage",
            ));
        }
        let mut stages = Vec::new();
        let mut names = std::collections::HashSet::new();
        for st in raw_stages.value {
            let line = st.name.referenced.line();
            let name = st.name.value.clone();
            if !valid_stage_name(&name) {
                return Err(self.err(
                    line,
                    "chain.stages.name",
                    format!("invalid stage name {name:?} (letters, digits, '-', '_'; it names files on the box)"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.err(line, "chain.stages.name", format!("two stages are named {name:?}")));
            }
            let action = match (st.run, st.wait_for) {
                (Some(r), None) if !r.trim().is_empty() => Action::Run(r),
                (None, Some(w)) => match (w.log_pattern, w.file, w.marker) {
                    (Some(t), f, None) if !t.is_empty() => {
                        let Some(file) = f.or_else(|| job_log.map(str::to_string)) else {
                            return Err(self.err(
                                line,
                                "chain.stages.wait_for.file",
                                "log_pattern needs a file (or a job.log)",
                            ));
                        };
                        Action::WaitPattern { text: t, file }
                    }
                    (None, None, Some(m)) if !m.is_empty() => Action::WaitMarker(m),
                    _ => {
                        return Err(self.err(
                            line,
                            "chain.stages.wait_for",
                            "give { log_pattern: TEXT, file: PATH } or { marker: PATH }",
                        ));
                    }
                },
                _ => {
                    return Err(self.err(
                        line,
                        &format!("chain.stages.{name}"),
                        "give exactly one of `run: CMD` or `wait_for: {...}`",
                    ));
                }
            };
            let timeout = match &st.timeout {
                None => None,
                Some(_) => Some(self.dur(&st.timeout, "chain.stages.timeout", Duration::ZERO)?),
            };
            let stall_after = match &st.stall_after {
                None => None,
                Some(_) => Some(self.dur(&st.stall_after, "chain.stages.stall_after", Duration::ZERO)?),
            };
            stages.push(Stage {
                name,
                action,
                timeout,
                stall_after,
            });
        }
        Ok(Chain {
            dir: dir.value,
            detach: c.detach.unwrap_or(Detach::Nohup),
            stages,
            notify: c.notify.filter(|n| !n.trim().is_empty()),
            heartbeat: self
                .dur(&c.heartbeat, "chain.heartbeat", Duration::from_secs(10))?
                .max(Duration::from_secs(1)),
            poll: self
                .dur(&c.poll, "chain.poll", Duration::from_secs(15))?
                .max(Duration::from_secs(1)),
            sbatch_args: c.sbatch_args,
        })
    }

    fn job(&self, raw: Option<RawJob>) -> Result<Job> {
        let Some(raw) = raw else {
            return Ok(Job {
                alive: None,
                log: None,
                master_log: None,
                progress: None,
                done_marker: None,
                done_pattern: None,
                stall_after: Duration::from_secs(30 * 60),
                max_runtime: None,
                resume: None,
                auto_resume: false,
                max_restarts: 3,
                restart_window: Duration::from_secs(6 * 3600),
                restart_cooldown: Duration::from_secs(10 * 60),
                total_steps: None,
            });
        };
        let alive = match &raw.alive {
            None => None,
            Some(a) => {
                let line = a.referenced.line();
                let v = &a.value;
                let set: Vec<AliveCheck> = [
                    v.tmux.clone().map(AliveCheck::Tmux),
                    v.slurm.clone().map(AliveCheck::Slurm),
                    v.pgrep.clone().map(AliveCheck::Pgrep),
                    v.pidfile.clone().map(AliveCheck::Pidfile),
                ]
                .into_iter()
                .flatten()
                .collect();
                if set.len() != 1 {
                    return Err(self.err(
                        line,
                        "job.alive",
                        "give exactly one of { tmux: SESSION }, { slurm: JOB }, { pgrep: PATTERN }, { pidfile: PATH }",
                    ));
                }
                let check = set.into_iter().next().expect("one element");
                if check.arg().is_empty() {
                    return Err(self.err(line, &format!("job.alive.{}", check.kind()), "must not be empty"));
                }
                if let AliveCheck::Slurm(n) = &check
                    && n.contains([',', ' ', '\t', '\n'])
                {
                    return Err(self.err(
                        line,
                        "job.alive.slurm",
                        format!("{n:?}: squeue -n reads a comma as a list and a space splits its output: watch this job by its id"),
                    ));
                }
                if let AliveCheck::Tmux(n) = &check
                    && n.contains(['.', ':'])
                {
                    return Err(self.err(
                        line,
                        "job.alive.tmux",
                        format!(
                            "{n:?}: tmux names such a session {:?} (it replaces '.' and ':' with '_'): write that",
                            n.replace(['.', ':'], "_")
                        ),
                    ));
                }
                Some(check)
            }
        };
        let progress = match &raw.progress {
            None => None,
            Some(p) => {
                let line = p.referenced.line();
                let re = Regex::new(&p.value).map_err(|e| {
                    self.err(
                        line,
                        "job.progress",
                        format!("invalid regex: {}", one_line(&e.to_string())),
                    )
                })?;
                if re.captures_len() < 2 {
                    return Err(self.err(
                        line,
                        "job.progress",
                        format!("regex {:?} has no capture group; the first group must capture the step number, e.g. 'Epoch (\\d+)'", p.value),
                    ));
                }
                if raw.log.is_none() {
                    return Err(self.err(
                        line,
                        "job.log",
                        "`job.progress` is set but `job.log` is missing: progress is read from the per-run log",
                    ));
                }
                Some(re)
            }
        };
        if let Some(d) = &raw.done_pattern {
            if d.value.is_empty() {
                return Err(self.err(d.referenced.line(), "job.done_pattern", "must not be empty"));
            }
            if raw.log.is_none() && raw.master_log.is_none() {
                return Err(self.err(
                    d.referenced.line(),
                    "job.log",
                    "`job.done_pattern` is set but neither `job.log` nor `job.master_log` is",
                ));
            }
        }
        if let Some(l) = &raw.log
            && l.value.is_empty()
        {
            return Err(self.err(l.referenced.line(), "job.log", "must not be empty"));
        }
        let stall_after = self.dur(&raw.stall_after, "job.stall_after", Duration::from_secs(30 * 60))?;
        let max_runtime = match &raw.max_runtime {
            None => None,
            Some(_) => Some(self.dur(&raw.max_runtime, "job.max_runtime", Duration::ZERO)?),
        };
        let auto_resume = raw.auto_resume.as_ref().is_some_and(|a| a.value);
        if let Some(a) = &raw.auto_resume
            && a.value
        {
            if raw.resume.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(self.err(
                    a.referenced.line(),
                    "job.auto_resume",
                    "needs `job.resume`: the command that resumes the run",
                ));
            }
            if alive.is_none() {
                return Err(self.err(
                    a.referenced.line(),
                    "job.auto_resume",
                    "needs `job.alive`: a resume is only ever run after verifying the run is not alive",
                ));
            }
        }
        if let Some(t) = &raw.total_steps
            && t.value == 0
        {
            return Err(self.err(t.referenced.line(), "job.total_steps", "must be 1 or more"));
        }
        Ok(Job {
            total_steps: raw.total_steps.map(|t| t.value),
            auto_resume,
            max_restarts: raw.max_restarts.unwrap_or(3),
            restart_window: self.dur(&raw.restart_window, "job.restart_window", Duration::from_secs(6 * 3600))?,
            restart_cooldown: self.dur(
                &raw.restart_cooldown,
                "job.restart_cooldown",
                Duration::from_secs(10 * 60),
            )?,
            alive,
            log: raw.log.map(|l| l.value),
            master_log: raw.master_log,
            progress,
            done_marker: raw.done_marker,
            done_pattern: raw.done_pattern.map(|d| d.value),
            stall_after,
            max_runtime,
            resume: raw.resume,
        })
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Expand a leading `~/` with `$HOME` (local paths only; box paths are sent as written).
pub fn expand_tilde(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: a100-box
transport: ssh
host: 203.0.113.7
port: 22
user: root
identity_file: ~/.ssh/id_ed25519
known_hosts: ~/.ssh/known_hosts
host_key_policy: strict
connect_timeout: 15s
job:
  alive: { tmux: train }
  log: /workspace/runs/exp1/train.log
  master_log: /workspace/all.log
  progress: 'Epoch (\d+)'
  done_marker: /workspace/runs/exp1/DONE
  done_pattern: 'Training completed'
  stall_after: 30m
  max_runtime: 48h
  resume: 'cd /workspace && tmux new -d -s train "python train.py --resume latest"'
artifacts:
  - { path: /workspace/ckpt, expect_count: 10 }
data_mount: /workspace
"#;

    fn err(text: &str) -> String {
        parse(Path::new("profiles/x.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn the_contract_example_parses() {
        let p = parse(Path::new("p.yaml"), GOOD).unwrap();
        assert_eq!(p.name, "a100-box");
        assert_eq!(p.job.alive, Some(AliveCheck::Tmux("train".into())));
        assert_eq!(p.job.stall_after, Duration::from_secs(1800));
        assert_eq!(p.job.max_runtime, Some(Duration::from_secs(48 * 3600)));
        assert_eq!(p.artifacts[0].expect_count, Some(10));
        assert_eq!(p.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(p.data_mount.as_deref(), Some("/workspace"));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("name: x\nhost: h\njob:\n  log: /l\n  stall_aftr: 5m\n");
        assert!(e.starts_with("profiles/x.yaml:5: job.stall_aftr: "), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn bad_duration_names_line_and_key() {
        let e = err("name: x\nhost: h\njob:\n  log: /l\n  stall_after: 15 minutes\n");
        assert!(
            e.starts_with("profiles/x.yaml:5: job.stall_after: invalid duration"),
            "{e}"
        );
    }

    #[test]
    fn regex_without_group_is_refused() {
        let e = err("name: x\nhost: h\njob:\n  log: /l\n  progress: 'Epoch \\d+'\n");
        assert!(e.starts_with("profiles/x.yaml:5: job.progress: "), "{e}");
        assert!(e.contains("capture group"), "{e}");
    }

    #[test]
    fn invalid_regex_is_refused() {
        let e = err("name: x\nhost: h\njob:\n  log: /l\n  progress: 'Epoch (\\d+'\n");
        assert!(e.starts_with("profiles/x.yaml:5: job.progress: invalid regex"), "{e}");
    }

    #[test]
    fn progress_without_log_is_refused() {
        let e = err("name: x\nhost: h\njob:\n  progress: 'Epoch (\\d+)'\n");
        assert!(e.contains("job.log"), "{e}");
        assert!(e.starts_with("profiles/x.yaml:4:"), "{e}");
    }

    #[test]
    fn missing_host_for_ssh() {
        assert!(err("name: x\n").contains("host"));
    }

    #[test]
    fn two_alive_methods_refused() {
        let e = err("name: x\nhost: h\njob:\n  alive: { tmux: a, pgrep: b }\n");
        assert!(e.contains("job.alive"), "{e}");
        assert!(e.contains(":4:"), "{e}");
    }

    #[test]
    fn unknown_alive_method_refused() {
        let e = err("name: x\nhost: h\njob:\n  alive: { docker: a }\n");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn bad_name_refused() {
        assert!(err("name: ../etc\nhost: h\n").contains("invalid name"));
    }

    #[test]
    fn slurm_numeric_job_id() {
        let p = parse(
            Path::new("p.yaml"),
            "name: x\nhost: h\njob:\n  alive: { slurm: '1234' }\n",
        )
        .unwrap();
        assert_eq!(p.job.alive, Some(AliveCheck::Slurm("1234".into())));
    }

    #[test]
    fn yaml_syntax_error_has_a_line() {
        let e = err("name: x\nhost: [unclosed\n");
        assert!(e.starts_with("profiles/x.yaml:"), "{e}");
        assert!(!e.starts_with("profiles/x.yaml:0:"), "{e}");
    }
}
