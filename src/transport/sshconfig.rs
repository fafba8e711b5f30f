//! Resolve a profile's `host` through `~/.ssh/config` (or the profile's
//! `ssh_config`): HostName, User, Port and IdentityFile come from there;
//! explicit profile keys win.

use std::io::BufReader;
use std::path::PathBuf;

use ssh2_config::{HostParams, ParseRule, SshConfig};

use super::Failure;
use super::ssh::Target;
use crate::profile::{JumpSpec, Profile, expand_tilde};

pub use crate::profile::{RUNPOD_PROXY, is_runpod_proxy};

/// The ssh config as read once for a profile.
struct Config {
    path: Option<PathBuf>,
    cfg: Option<SshConfig>,
}

impl Config {
    fn load(p: &Profile) -> Result<Config, Failure> {
        let path = p
            .ssh_config
            .clone()
            .or_else(|| Some(expand_tilde("~/.ssh/config")).filter(|c| c.exists()));
        let Some(path) = path else {
            return Ok(Config { path: None, cfg: None });
        };
        let bytes = std::fs::read(&path)
            .map_err(|e| Failure::Unreachable(format!("cannot read ssh config {}: {e}", path.display())))?;
        // Match blocks are not evaluated by the config reader (it files
        // their lines under the Host before them): one that may apply and
        // sets what decides where we connect is refused, never guessed at;
        // the others are left out
        let text = without_match_blocks(&String::from_utf8_lossy(&bytes));
        let cfg = SshConfig::default()
            .parse(
                &mut BufReader::new(text.as_bytes()),
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .map_err(|e| Failure::Unreachable(format!("cannot parse ssh config {}: {e}", path.display())))?;
        Ok(Config {
            path: Some(path),
            cfg: Some(cfg),
        })
    }

    /// The Host blocks' answer for `alias`; a Match block that may apply to
    /// it (by alias or by HostName) and sets a decisive key is an error.
    fn query(&self, alias: &str) -> Result<Option<HostParams>, Failure> {
        let (Some(path), Some(cfg)) = (&self.path, &self.cfg) else {
            return Ok(None);
        };
        match_blocks(path, alias, alias, 0)?;
        let q = cfg.query(alias);
        if let Some(h) = &q.host_name
            && h != alias
        {
            match_blocks(path, alias, h, 0)?;
        }
        Ok(Some(q))
    }
}

/// The first value of an unsupported (raw) field, `none` and empty left out.
fn field(params: Option<&HostParams>, k: &str) -> Option<String> {
    params
        .and_then(|q| q.unsupported_fields.get(k))
        .and_then(|v| v.first().cloned())
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"))
}

/// A ProxyCommand the config sets for this host (`none` is none).
fn proxy_command(params: Option<&HostParams>) -> Option<String> {
    params
        .and_then(|q| q.unsupported_fields.get("proxycommand"))
        .filter(|cmd| !cmd.is_empty() && !cmd.iter().all(|w| w.eq_ignore_ascii_case("none")))
        .map(|cmd| cmd.join(" "))
}

/// The ProxyJump the config sets for this host (`none` is none).
fn config_jumps(alias: &str, params: Option<&HostParams>) -> Result<Vec<JumpSpec>, Failure> {
    let Some(j) = params
        .and_then(|q| q.proxy_jump.clone())
        .filter(|j| !j.is_empty() && !j.iter().all(|h| h.eq_ignore_ascii_case("none")))
    else {
        return Ok(Vec::new());
    };
    crate::profile::parse_jumps(&j.join(","))
        .map_err(|m| Failure::Unreachable(format!("host {alias}: ProxyJump in the ssh config: {m}")))
}

pub fn resolve(p: &Profile) -> Result<Target, Failure> {
    let alias = p.host.clone().unwrap_or_default();
    let cfg = Config::load(p)?;
    let params = cfg.query(&alias)?;
    let mut t = host_target(p, &alias, params.as_ref(), None);
    // a platform's user (the one place it applies) loses only to a User
    // written for this host, not to a catch-all `Host *` default
    if p.user.is_none()
        && let Some(u) = &p.preset_user
        && !cfg.path.as_deref().is_some_and(|c| user_for_host(c, &alias, 0))
    {
        t.user = u.clone();
    }
    // How to reach it: the profile's proxy_jump wins (`none`: directly),
    // else the config's ProxyJump or ProxyCommand (both set is refused:
    // OpenSSH takes whichever comes first, which the reader cannot tell)
    // the hops being expanded (a hop reached through itself is a loop)
    let mut seen: Vec<String> = Vec::new();
    let specs = match &p.proxy_jump {
        Some(j) => j.clone(),
        None => {
            seen.push(alias.clone());
            let j = config_jumps(&alias, params.as_ref())?;
            let cmd = proxy_command(params.as_ref());
            if !j.is_empty() && cmd.is_some() {
                return Err(Failure::Unreachable(format!(
                    "host {alias} sets both ProxyJump and ProxyCommand in the ssh config; OpenSSH uses whichever comes first — keep one, or set proxy_jump in the profile"
                )));
            }
            t.proxy_command = cmd;
            j
        }
    };
    t.jumps = expand_jumps(p, &cfg, &specs, &mut seen, 0)?;
    for (i, hop) in t.jumps.iter().enumerate() {
        if i > 0 && hop.proxy_command.is_some() {
            return Err(Failure::Unreachable(format!(
                "jump host {} uses ProxyCommand in the ssh config, but it is not the first hop: only the first hop can be reached by a command",
                hop.alias
            )));
        }
    }
    for h in t.jumps.iter().chain(std::iter::once(&t)) {
        if is_runpod_proxy(&h.hostname) {
            return Err(Failure::Unreachable(format!("host {}: {RUNPOD_PROXY}", h.alias)));
        }
    }
    Ok(t)
}

/// The hops of a ProxyJump list, each resolved through the ssh config; a
/// hop's own ProxyJump puts its hops before it (as OpenSSH does).
fn expand_jumps(
    p: &Profile,
    cfg: &Config,
    specs: &[JumpSpec],
    seen: &mut Vec<String>,
    depth: u8,
) -> Result<Vec<Target>, Failure> {
    let mut out = Vec::new();
    for spec in specs {
        if depth > 8 || seen.len() > 16 {
            return Err(Failure::Unreachable(format!(
                "ProxyJump through {spec}: more than 16 hops (a loop in the ssh config?)"
            )));
        }
        let name = spec.to_string();
        if seen.contains(&name) {
            return Err(Failure::Unreachable(format!(
                "ProxyJump in the ssh config loops: {name} is reached through itself ({} → {name})",
                seen.join(" → ")
            )));
        }
        let params = cfg.query(&spec.host)?;
        seen.push(name);
        let before = config_jumps(&spec.host, params.as_ref())?;
        let mut hop = host_target(p, &spec.host, params.as_ref(), Some(spec));
        if !before.is_empty() {
            if proxy_command(params.as_ref()).is_some() {
                return Err(Failure::Unreachable(format!(
                    "jump host {} sets both ProxyJump and ProxyCommand in the ssh config; keep one",
                    spec.host
                )));
            }
            out.extend(expand_jumps(p, cfg, &before, seen, depth + 1)?);
        } else {
            hop.proxy_command = proxy_command(params.as_ref());
        }
        seen.pop();
        out.push(hop);
    }
    Ok(out)
}

/// One host as the ssh config and the profile describe it. `spec` is None
/// for the target (the profile's port, user, identity and known_hosts
/// apply) and the `proxy_jump` entry for a jump host (its own `user@` and
/// `:port`, else the config's; the profile's identity_file is tried after
/// the config's). The profile's known_hosts, where it names one, is where
/// every hop's key is looked up; else each hop's UserKnownHostsFile.
fn host_target(p: &Profile, alias: &str, params: Option<&HostParams>, spec: Option<&JumpSpec>) -> Target {
    let hostname = params
        .and_then(|q| q.host_name.clone())
        .unwrap_or_else(|| alias.to_string());
    let host_key_alias = field(params, "hostkeyalias");
    let mut global_known_hosts: Vec<PathBuf> =
        match params.and_then(|q| q.unsupported_fields.get("globalknownhostsfile")) {
            Some(files) if !files.is_empty() => files
                .iter()
                .filter(|f| !f.eq_ignore_ascii_case("none"))
                .map(|f| expand_tilde(f))
                .collect(),
            _ => super::known_hosts::default_global(),
        };
    // UserKnownHostsFile may name several files (OpenSSH reads them all and
    // writes to the first): a host recorded in the second is known, never learned
    let user_files: Vec<PathBuf> = params
        .and_then(|q| q.unsupported_fields.get("userknownhostsfile"))
        .map(|v| {
            v.iter()
                .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case("none"))
                .map(|f| expand_tilde(f))
                .collect()
        })
        .unwrap_or_default();
    let config_known_hosts = user_files.first().cloned();
    // the profile's known_hosts, where it names one, holds every hop's key
    // (profile keys win over the config, for jump hosts too)
    let profile_known_hosts = p.known_hosts.clone();
    if profile_known_hosts.is_none() {
        global_known_hosts.splice(0..0, user_files.into_iter().skip(1));
    }
    let config_port = params.and_then(|q| q.port);
    let config_user = params.and_then(|q| q.user.clone());
    let (port, user) = match spec {
        None => (p.port.or(config_port).unwrap_or(22), p.user.clone().or(config_user)),
        Some(s) => (s.port.or(config_port).unwrap_or(22), s.user.clone().or(config_user)),
    };
    let user = user
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    let config_ids: Vec<PathBuf> = params
        .and_then(|q| q.identity_file.clone())
        .unwrap_or_default()
        .iter()
        .map(|f| expand_tilde(&f.to_string_lossy()))
        .collect();
    let defaults = || -> Vec<PathBuf> {
        ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"]
            .iter()
            .map(|f| expand_tilde(f))
            .filter(|f| f.exists())
            .collect()
    };
    let (identities, explicit_identity) = match (spec, &p.identity_file) {
        (None, Some(f)) => (vec![f.clone()], true),
        (None, None) if !config_ids.is_empty() => (config_ids, false),
        (None, None) => (defaults(), false),
        (Some(_), profile_id) => {
            let mut v = config_ids;
            let explicit = !v.is_empty() || profile_id.is_some();
            if let Some(f) = profile_id
                && !v.contains(f)
            {
                v.push(f.clone());
            }
            if v.is_empty() {
                v = defaults();
            }
            (v, explicit)
        }
    };
    Target {
        alias: alias.to_string(),
        hostname,
        port,
        user,
        identities,
        explicit_identity,
        known_hosts: profile_known_hosts
            .or(config_known_hosts)
            .unwrap_or_else(|| expand_tilde("~/.ssh/known_hosts")),
        global_known_hosts,
        host_key_alias,
        policy: p.host_key_policy,
        connect_timeout: p.connect_timeout,
        keepalive_interval: p.keepalive_interval,
        keepalive_count: p.keepalive_count,
        jumps: Vec::new(),
        proxy_command: None,
    }
}

/// Keys that decide where and as whom we connect, and how the host is checked.
const DECISIVE: [&str; 9] = [
    "hostname",
    "port",
    "user",
    "identityfile",
    "proxycommand",
    "proxyjump",
    "hostkeyalias",
    "userknownhostsfile",
    "globalknownhostsfile",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Yes,
    No,
    /// `exec`, `user`, `canonical`, … : cannot be told here.
    Unknown,
}

/// Does `Match CRITERIA` apply to this host? The criteria are ANDed; `host`
/// and `originalhost` are matched as OpenSSH pattern lists (either name),
/// `all` always applies, `localuser` is this user; the rest are unknown.
fn match_applies(words: &[String], alias: &str, hostname: &str) -> Applies {
    let mut out = Applies::Yes;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].to_ascii_lowercase();
        let (neg, crit) = match w.strip_prefix('!') {
            Some(c) => (true, c.to_string()),
            None => (false, w.clone()),
        };
        let arg = words.get(i + 1).cloned().unwrap_or_default();
        let r = match crit.as_str() {
            "all" => {
                i += 1;
                Applies::Yes
            }
            "canonical" | "final" => {
                i += 1;
                Applies::Unknown
            }
            "host" | "originalhost" => {
                i += 2;
                let pats = arg.to_ascii_lowercase();
                let hit = super::known_hosts::matches(&alias.to_ascii_lowercase(), &pats)
                    || super::known_hosts::matches(&hostname.to_ascii_lowercase(), &pats);
                if hit { Applies::Yes } else { Applies::No }
            }
            "localuser" => {
                i += 2;
                let me = std::env::var("USER").unwrap_or_default();
                if super::known_hosts::matches(&me, &arg) {
                    Applies::Yes
                } else {
                    Applies::No
                }
            }
            _ => {
                i += 2;
                Applies::Unknown
            }
        };
        let r = match (neg, r) {
            (true, Applies::Yes) => Applies::No,
            (true, Applies::No) => Applies::Yes,
            (_, r) => r,
        };
        out = match (out, r) {
            (Applies::No, _) | (_, Applies::No) => Applies::No,
            (Applies::Unknown, _) | (_, Applies::Unknown) => Applies::Unknown,
            _ => Applies::Yes,
        };
    }
    out
}

/// A line as keyword and arguments (`Key value`, `Key=value`, quoted words).
fn words(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => (
            &line[..i],
            line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
        ),
        None => (line, ""),
    };
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && cur.is_empty() => break,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        args.push(cur);
    }
    Some((key.to_ascii_lowercase(), args))
}

/// Refuse a `Match` block (here or in an included file) that may apply to
/// this host and sets a key in [`DECISIVE`].
fn match_blocks(path: &std::path::Path, alias: &str, hostname: &str, depth: u8) -> Result<(), Failure> {
    if depth > 8 {
        return Ok(());
    }
    let Ok(bytes) = std::fs::read(path) else { return Ok(()) };
    let text = String::from_utf8_lossy(&bytes);
    let mut block: Option<(usize, Applies)> = None;
    for (n, line) in text.lines().enumerate() {
        let Some((key, args)) = words(line) else { continue };
        match key.as_str() {
            "host" => block = None,
            "match" => block = Some((n + 1, match_applies(&args, alias, hostname))),
            "include" => {
                for pat in &args {
                    for f in include_files(pat) {
                        match_blocks(&f, alias, hostname, depth + 1)?;
                    }
                }
            }
            k if DECISIVE.contains(&k) => {
                if let Some((at, applies)) = block
                    && applies != Applies::No
                {
                    let how = if applies == Applies::Yes {
                        "applies to"
                    } else {
                        "may apply to"
                    };
                    return Err(Failure::Unreachable(format!(
                        "ssh config {} line {}: the Match block at line {at} {how} {alias} and sets {}; gpupatrol reads Host blocks only — put it under a Host block or in the profile",
                        path.display(),
                        n + 1,
                        line.trim()
                            .split(|c: char| c.is_whitespace() || c == '=')
                            .next()
                            .unwrap_or(&key)
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Does a `Host` block that names `alias` itself (no wildcard) set `User`?
fn user_for_host(path: &std::path::Path, alias: &str, depth: u8) -> bool {
    if depth > 8 {
        return false;
    }
    let Ok(bytes) = std::fs::read(path) else { return false };
    let text = String::from_utf8_lossy(&bytes);
    let mut named = false;
    for line in text.lines() {
        let Some((key, args)) = words(line) else { continue };
        match key.as_str() {
            "host" => {
                named = args
                    .iter()
                    .any(|a| !a.contains(['*', '?', '!']) && a.eq_ignore_ascii_case(alias));
            }
            "match" => named = false,
            "user" if named => return true,
            "include" => {
                for pat in &args {
                    if include_files(pat).iter().any(|f| user_for_host(f, alias, depth + 1)) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The config without its Match blocks (each up to the next Host or Match).
fn without_match_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_match = false;
    for line in text.lines() {
        match words(line).map(|(k, _)| k) {
            Some(k) if k == "match" => in_match = true,
            Some(k) if k == "host" => in_match = false,
            _ => {}
        }
        if !in_match {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The files an `Include` names: `~` expanded, relative to `~/.ssh`, `*`/`?`
/// in the file name.
fn include_files(pat: &str) -> Vec<PathBuf> {
    let p = expand_tilde(pat);
    let p = if p.is_absolute() {
        p
    } else {
        expand_tilde("~/.ssh").join(p)
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![p];
    }
    let dir = p.parent().map(|d| d.to_path_buf()).unwrap_or_default();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| super::known_hosts::matches(&e.file_name().to_string_lossy(), &name))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn match_criteria_as_openssh_reads_them() {
        assert_eq!(match_applies(&w("host gpu-*"), "gpu-box", "10.0.0.5"), Applies::Yes);
        assert_eq!(match_applies(&w("host 10.0.0.*"), "gpu-box", "10.0.0.5"), Applies::Yes);
        assert_eq!(match_applies(&w("host other.corp"), "gpu-box", "10.0.0.5"), Applies::No);
        assert_eq!(
            match_applies(&w("!host other.corp"), "gpu-box", "10.0.0.5"),
            Applies::Yes
        );
        assert_eq!(match_applies(&w("all"), "gpu-box", "h"), Applies::Yes);
        assert_eq!(match_applies(&w("exec true"), "gpu-box", "h"), Applies::Unknown);
        assert_eq!(
            match_applies(&w("host other exec true"), "gpu-box", "h"),
            Applies::No,
            "ANDed: one criterion that fails is enough"
        );
        assert_eq!(
            match_applies(&w("host gpu-box user root"), "gpu-box", "h"),
            Applies::Unknown
        );
    }

    #[test]
    fn config_lines_split_like_openssh() {
        assert_eq!(
            words("  ProxyCommand=nc %h %p"),
            Some(("proxycommand".into(), w("nc %h %p")))
        );
        assert_eq!(
            words("Match host \"a b\""),
            Some(("match".into(), vec!["host".into(), "a b".into()]))
        );
        assert_eq!(words("# c"), None);
    }
}

#[cfg(test)]
mod preset_tests {
    #[test]
    fn a_platforms_user_comes_after_the_ssh_configs() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("config");
        std::fs::write(&cfg, "Host vbox\n  HostName 127.0.0.1\n  User daemon\n").unwrap();
        let prof = |host: &str, user: &str| {
            let text = format!(
                "name: v\nplatform: vast\nhost: {host}\nssh_config: {}\n{user}",
                cfg.display()
            );
            crate::profile::parse(&d.path().join("v.yaml"), &text).unwrap()
        };
        assert_eq!(
            super::resolve(&prof("vbox", "")).unwrap().user,
            "daemon",
            "the config's User wins"
        );
        assert_eq!(
            super::resolve(&prof("10.0.0.9", "")).unwrap().user,
            "root",
            "else the platform's"
        );
        assert_eq!(
            super::resolve(&prof("vbox", "user: me\n")).unwrap().user,
            "me",
            "the profile's first"
        );
        // a catch-all default is not a User for this host
        std::fs::write(&cfg, "Host vbox\n  HostName 127.0.0.1\n\nHost *\n  User nobody\n").unwrap();
        assert_eq!(super::resolve(&prof("vbox", "")).unwrap().user, "root");
        let generic = crate::profile::parse(
            &d.path().join("g.yaml"),
            &format!("name: g\nhost: vbox\nssh_config: {}\n", cfg.display()),
        )
        .unwrap();
        assert_eq!(
            super::resolve(&generic).unwrap().user,
            "nobody",
            "without a platform, the config's"
        );
    }
}
