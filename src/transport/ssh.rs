//! The SSH transport (russh): one connection per call. Connect and
//! authenticate under our own deadline (`connect_timeout`: russh's keepalives
//! only start after auth), check the host key against known_hosts before
//! anything runs, open ONE exec channel, feed the script on stdin, read until
//! the channel closes (OpenSSH sends EOF before exit-status), disconnect.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{self, HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use tokio::net::TcpStream;

use super::{Failure, Limits, Output};
use crate::duration::human;
use crate::profile::HostKeyPolicy;

/// A resolved SSH destination.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the profile names it (maybe a `~/.ssh/config` alias).
    pub alias: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub identities: Vec<PathBuf>,
    pub explicit_identity: bool,
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
}

impl Target {
    fn label(&self) -> String {
        format!("{}:{}", self.hostname, self.port)
    }
}

struct Checker {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    policy: HostKeyPolicy,
    /// Why the key was refused, for the report.
    refusal: Arc<Mutex<Option<String>>>,
    /// The key we saw and whether we just recorded it (doctor shows this).
    seen: Arc<Mutex<Option<(String, bool)>>>,
}

impl Checker {
    fn refuse(&self, why: String) -> Result<bool, russh::Error> {
        *self.refusal.lock().expect("refusal lock") = Some(why);
        Ok(false)
    }
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return self
                .refuse("the server presented a host certificate; gpupatrol checks plain host keys only".into());
        };
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let desc = format!("{} {fp}", key.algorithm().as_str());
        let shown = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        match keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => {
                *self.seen.lock().expect("seen lock") = Some((desc, false));
                Ok(true)
            }
            Ok(false) => match self.policy {
                HostKeyPolicy::AcceptNew => {
                    if let Err(e) = keys::known_hosts::learn_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
                        return self.refuse(format!("cannot record the host key of {shown} in {}: {e}", self.known_hosts.display()));
                    }
                    *self.seen.lock().expect("seen lock") = Some((desc, true));
                    Ok(true)
                }
                HostKeyPolicy::Strict => self.refuse(format!(
                    "host key of {shown} ({desc}) is not in {} and host_key_policy is strict; add it (ssh-keyscan) or use accept-new",
                    self.known_hosts.display()
                )),
            },
            Err(keys::Error::KeyChanged { line }) => self.refuse(format!(
                "host key of {shown} CHANGED (now {desc}; {} line {line} has another); nothing was run",
                self.known_hosts.display()
            )),
            Err(e) => self.refuse(format!("cannot check {}: {e}", self.known_hosts.display())),
        }
    }
}

/// What `doctor` wants to know about a connection besides the command's output.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub host_key: Option<String>,
    pub host_key_recorded: bool,
    pub auth_method: String,
}

/// One open, authenticated connection. Several commands may run on it (the
/// probe, then a guarded resume) — still one SSH connection per tick.
pub struct Conn {
    handle: Handle<Checker>,
    target: Target,
    pub session: Session,
}

impl Conn {
    pub async fn open(t: &Target) -> Result<Conn, Failure> {
        let (handle, session) = connect(t).await?;
        Ok(Conn {
            handle,
            target: t.clone(),
            session,
        })
    }

    pub async fn exec(&self, command: &str, stdin: &[u8], limits: Limits) -> Result<Output, Failure> {
        run(&self.handle, command, stdin, limits, &self.target).await
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.handle.disconnect(Disconnect::ByApplication, "", "en"),
        )
        .await;
    }
}

async fn connect(t: &Target) -> Result<(Handle<Checker>, Session), Failure> {
    let refusal = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(None));
    let checker = Checker {
        host: t.hostname.clone(),
        port: t.port,
        known_hosts: t.known_hosts.clone(),
        policy: t.policy,
        refusal: refusal.clone(),
        seen: seen.clone(),
    };
    let config = Arc::new(client::Config {
        keepalive_interval: Some(t.keepalive_interval),
        keepalive_max: t.keepalive_count as usize,
        nodelay: true,
        ..Default::default()
    });
    let label = t.label();
    let budget = t.connect_timeout;
    let connect = async {
        let addrs: Vec<_> = tokio::net::lookup_host((t.hostname.as_str(), t.port))
            .await
            .map_err(|e| Failure::Unreachable(format!("cannot resolve {}: {e}", t.hostname)))?
            .collect();
        let mut last_err = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            Failure::Unreachable(match last_err {
                Some(e) => format!("connect to {label}: {}", io_words(&e)),
                None => format!("{} resolved to no address", t.hostname),
            })
        })?;
        let _ = stream.set_nodelay(true);
        client::connect_stream(config, stream, checker).await.map_err(|e| {
            if let Some(why) = refusal.lock().expect("refusal lock").take() {
                return Failure::HostKey(why);
            }
            Failure::Unreachable(format!("SSH handshake with {label} failed: {}", russh_words(&e)))
        })
    };
    let mut handle = match tokio::time::timeout(budget, connect).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failure::Unreachable(format!(
                "no SSH answer from {label} within connect_timeout {} (dropped packets or a silent listener)",
                human(budget)
            )));
        }
    };
    let (host_key, host_key_recorded) = seen
        .lock()
        .expect("seen lock")
        .clone()
        .map(|(d, r)| (Some(d), r))
        .unwrap_or((None, false));
    let method = match tokio::time::timeout(budget, authenticate(&mut handle, t)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failure::Unreachable(format!(
                "authentication with {label} did not finish within connect_timeout {}",
                human(budget)
            )));
        }
    };
    Ok((
        handle,
        Session {
            host_key,
            host_key_recorded,
            auth_method: method,
        },
    ))
}

/// Try the profile's identity file, then ssh-agent keys, then default key files.
async fn authenticate(handle: &mut Handle<Checker>, t: &Target) -> Result<String, Failure> {
    let mut tried: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let rsa_hash = || async { handle_rsa_hash(handle).await };
    let rsa = rsa_hash().await;

    if t.explicit_identity
        && let Some(m) = try_files(handle, t, rsa, &mut tried, &mut problems).await?
    {
        return Ok(m);
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match AgentClient::connect_env().await {
            Ok(mut agent) => match agent.request_identities().await {
                Ok(ids) => {
                    for id in ids {
                        let keys::agent::AgentIdentity::PublicKey { key, .. } = &id else {
                            continue;
                        };
                        tried.push("ssh-agent key".into());
                        let res = handle
                            .authenticate_publickey_with(&t.user, key.clone(), rsa, &mut agent)
                            .await;
                        match res {
                            Ok(AuthResult::Success) => return Ok("publickey via ssh-agent".into()),
                            Ok(_) => {}
                            Err(e) => problems.push(format!("ssh-agent: {e}")),
                        }
                        if handle.is_closed() {
                            break;
                        }
                    }
                }
                Err(e) => problems.push(format!("ssh-agent: {e}")),
            },
            Err(e) => problems.push(format!("ssh-agent at SSH_AUTH_SOCK: {e}")),
        }
    }
    if !t.explicit_identity
        && let Some(m) = try_files(handle, t, rsa, &mut tried, &mut problems).await?
    {
        return Ok(m);
    }
    let mut msg = format!("{}@{} refused", t.user, t.label());
    if tried.is_empty() {
        msg = format!(
            "no usable credential for {}@{} (no identity_file, no ssh-agent key)",
            t.user,
            t.label()
        );
    } else {
        msg.push_str(&format!(" {}", tried.join(", ")));
    }
    if !problems.is_empty() {
        msg.push_str(&format!("; {}", problems.join("; ")));
    }
    Err(Failure::Auth(msg))
}

/// Offer each identity file; the method that worked, if one did.
async fn try_files(
    handle: &mut Handle<Checker>,
    t: &Target,
    rsa: Option<HashAlg>,
    tried: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> Result<Option<String>, Failure> {
    for path in &t.identities {
        match keys::load_secret_key(path, None) {
            Ok(key) => {
                tried.push(format!("key {}", path.display()));
                let k = PrivateKeyWithHashAlg::new(Arc::new(key), rsa);
                if auth_ok(handle.authenticate_publickey(&t.user, k).await)? {
                    return Ok(Some(format!("publickey {}", path.display())));
                }
            }
            Err(e) => problems.push(key_problem(path, &e)),
        }
    }
    Ok(None)
}

async fn handle_rsa_hash(handle: &Handle<Checker>) -> Option<HashAlg> {
    // Waits for the server's server-sig-algs; bounded by the auth deadline.
    handle.best_supported_rsa_hash().await.ok().flatten().flatten()
}

fn auth_ok(r: Result<AuthResult, russh::Error>) -> Result<bool, Failure> {
    match r {
        Ok(AuthResult::Success) => Ok(true),
        Ok(AuthResult::Failure { .. }) => Ok(false),
        Err(e) => Err(Failure::Unreachable(format!(
            "connection lost during authentication: {}",
            russh_words(&e)
        ))),
    }
}

fn key_problem(p: &std::path::Path, e: &keys::Error) -> String {
    let s = e.to_string();
    if s.to_lowercase().contains("encrypted") || s.to_lowercase().contains("passphrase") {
        format!(
            "identity {} is passphrase-protected: load it into ssh-agent",
            p.display()
        )
    } else {
        format!("cannot load identity {}: {s}", p.display())
    }
}

async fn run(
    handle: &Handle<Checker>,
    command: &str,
    stdin: &[u8],
    limits: Limits,
    t: &Target,
) -> Result<Output, Failure> {
    let label = t.label();
    let work = async {
        let mut ch = handle
            .channel_open_session()
            .await
            .map_err(|e| lost(&label, "opening the channel", &e))?;
        ch.exec(true, command)
            .await
            .map_err(|e| lost(&label, "starting the probe", &e))?;
        ch.data(stdin)
            .await
            .map_err(|e| lost(&label, "sending the probe", &e))?;
        ch.eof().await.map_err(|e| lost(&label, "sending the probe", &e))?;
        let mut out = Output {
            connections: 1,
            ..Default::default()
        };
        // Read until the channel closes: exit-status may come after EOF.
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    if out.stdout.len() + data.len() > limits.max_stdout {
                        return Err(Failure::Probe(format!("output exceeded {} bytes", limits.max_stdout)));
                    }
                    out.stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, .. } if out.stderr.len() < 64 * 1024 => {
                    out.stderr.extend_from_slice(&data);
                }
                ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok(out)
    };
    match tokio::time::timeout(limits.deadline, work).await {
        Ok(Ok(out)) => {
            if handle.is_closed() && out.exit_status.is_none() {
                return Err(Failure::Unreachable(format!(
                    "connection to {label} died mid-probe (keepalive or reset)"
                )));
            }
            Ok(out)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => {
            // Hung box or dead link? Ask the server for a pong.
            let alive = !handle.is_closed()
                && matches!(
                    tokio::time::timeout(Duration::from_secs(3), handle.send_ping()).await,
                    Ok(Ok(()))
                );
            if alive {
                Err(Failure::Probe(format!(
                    "probe did not finish within {} (box answers, probe hung)",
                    human(limits.deadline)
                )))
            } else {
                Err(Failure::Unreachable(format!(
                    "connection to {label} froze mid-probe (no answer within {})",
                    human(limits.deadline)
                )))
            }
        }
    }
}

fn lost(label: &str, doing: &str, e: &russh::Error) -> Failure {
    Failure::Unreachable(format!("connection to {label} lost while {doing}: {}", russh_words(e)))
}

fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused (no sshd listening)".into(),
        TimedOut => "timed out".into(),
        HostUnreachable | NetworkUnreachable => format!("unreachable ({e})"),
        _ => e.to_string(),
    }
}

fn russh_words(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io_words(io),
        russh::Error::HUP | russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::KeepaliveTimeout => "no keepalive answer (link dead)".into(),
        other => other.to_string(),
    }
}
