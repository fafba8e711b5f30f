//! Resolve a profile's `host` through `~/.ssh/config` (or the profile's
//! `ssh_config`): HostName, User, Port and IdentityFile come from there;
//! explicit profile keys win.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use ssh2_config::{ParseRule, SshConfig};

use super::Failure;
use super::ssh::Target;
use crate::profile::{Profile, expand_tilde};

pub fn resolve(p: &Profile) -> Result<Target, Failure> {
    let alias = p.host.clone().unwrap_or_default();
    let config_path = p
        .ssh_config
        .clone()
        .or_else(|| Some(expand_tilde("~/.ssh/config")).filter(|c| c.exists()));
    let params = match &config_path {
        Some(path) => {
            let f = File::open(path)
                .map_err(|e| Failure::Unreachable(format!("cannot read ssh config {}: {e}", path.display())))?;
            let cfg = SshConfig::default()
                .parse(
                    &mut BufReader::new(f),
                    ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
                )
                .map_err(|e| Failure::Unreachable(format!("cannot parse ssh config {}: {e}", path.display())))?;
            Some(cfg.query(&alias))
        }
        None => None,
    };
    if let Some(jump) = params
        .as_ref()
        .and_then(|q| q.proxy_jump.clone())
        .filter(|j| !j.is_empty())
    {
        return Err(Failure::Unreachable(format!(
            "host {alias} uses ProxyJump {} in the ssh config; gpupatrol does not support ProxyJump yet",
            jump.join(",")
        )));
    }
    let hostname = params
        .as_ref()
        .and_then(|q| q.host_name.clone())
        .unwrap_or_else(|| alias.clone());
    let port = p.port.or_else(|| params.as_ref().and_then(|q| q.port)).unwrap_or(22);
    let user = p
        .user
        .clone()
        .or_else(|| params.as_ref().and_then(|q| q.user.clone()))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into());
    let explicit_identity = p.identity_file.is_some();
    let identities: Vec<PathBuf> = match &p.identity_file {
        Some(f) => vec![f.clone()],
        None => match params.as_ref().and_then(|q| q.identity_file.clone()) {
            Some(list) if !list.is_empty() => list.iter().map(|f| expand_tilde(&f.to_string_lossy())).collect(),
            _ => ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"]
                .iter()
                .map(|f| expand_tilde(f))
                .filter(|f| f.exists())
                .collect(),
        },
    };
    Ok(Target {
        alias,
        hostname,
        port,
        user,
        identities,
        explicit_identity,
        known_hosts: p
            .known_hosts
            .clone()
            .unwrap_or_else(|| expand_tilde("~/.ssh/known_hosts")),
        policy: p.host_key_policy,
        connect_timeout: p.connect_timeout,
        keepalive_interval: p.keepalive_interval,
        keepalive_count: p.keepalive_count,
    })
}
