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

use super::known_hosts::Check;
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
    /// Read too, never written (OpenSSH's `GlobalKnownHostsFile`).
    pub global_known_hosts: Vec<PathBuf>,
    /// `HostKeyAlias` from the ssh config: the name the host key is recorded under.
    pub host_key_alias: Option<String>,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
    /// The jump hosts, first hop first (`proxy_jump`, or the config's ProxyJump).
    pub jumps: Vec<Target>,
    /// The config's ProxyCommand: run it and speak SSH over its stdio.
    pub proxy_command: Option<String>,
}

impl Target {
    fn label(&self) -> String {
        format!("{}:{}", self.hostname, self.port)
    }
}

/// Who a hop is in messages: the box itself when reached directly, else
/// "jump host …" or "the target …".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Direct,
    Jump,
    Target,
}

impl Role {
    fn prefix(self) -> &'static str {
        match self {
            Role::Direct => "",
            Role::Jump => "jump host ",
            Role::Target => "the target ",
        }
    }
}

struct Checker {
    role: Role,
    host: String,
    port: u16,
    known_hosts: PathBuf,
    global_known_hosts: Vec<PathBuf>,
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
            format!("{}{}", self.role.prefix(), self.host)
        } else {
            format!("{}[{}]:{}", self.role.prefix(), self.host, self.port)
        };
        let entries = match super::known_hosts::load_all(&self.known_hosts, &self.global_known_hosts) {
            Ok(e) => e,
            Err(e) => return self.refuse(format!("cannot read {}: {e}", self.known_hosts.display())),
        };
        let kh = self.known_hosts.display();
        match super::known_hosts::check(&entries, &self.host, self.port, key) {
            Check::Known => {
                *self.seen.lock().expect("seen lock") = Some((desc, false));
                Ok(true)
            }
            Check::Revoked { at } => {
                self.refuse(format!("host key of {shown} ({desc}) is REVOKED ({at}); nothing was run"))
            }
            Check::Changed { recorded } => {
                let was: Vec<String> = recorded.iter().map(|(at, t)| format!("{t} at {at}")).collect();
                self.refuse(format!(
                    "host key of {shown} CHANGED (now {desc}; known_hosts has {}); nothing was run",
                    was.join(", ")
                ))
            }
            Check::CertificateOnly { at } => self.refuse(format!(
                "{at} trusts a @cert-authority for {shown}; gpupatrol does not support host certificates: add the host's own key (ssh-keyscan -t ed25519)"
            )),
            Check::Unknown => match self.policy {
                HostKeyPolicy::AcceptNew => {
                    // a file that cannot remember (/dev/null, a FIFO) would
                    // make every key "new", every time
                    if std::fs::metadata(&self.known_hosts).is_ok_and(|m| !m.is_file()) {
                        return self.refuse(format!(
                            "host key of {shown} ({desc}) is not known, and {kh} is not a file that can remember it: accept-new would accept any key every time; name a real known_hosts file"
                        ));
                    }
                    if let Err(e) = super::known_hosts::learn(&self.known_hosts, &self.host, self.port, key) {
                        return self.refuse(format!("cannot record the host key of {shown} in {kh}: {e}"));
                    }
                    *self.seen.lock().expect("seen lock") = Some((desc, true));
                    Ok(true)
                }
                HostKeyPolicy::Strict => self.refuse(format!(
                    "host key of {shown} ({desc}) is not in {kh} and host_key_policy is strict; add it (ssh-keyscan) or use accept-new"
                )),
            },
        }
    }
}

/// Host key algorithms to ask for: the types known_hosts records for this host
/// first (as OpenSSH orders them), then the rest; never SHA-1 `ssh-rsa`.
fn host_key_order(recorded: &[String]) -> Vec<keys::Algorithm> {
    use keys::Algorithm;
    let defaults: Vec<Algorithm> = russh::Preferred::DEFAULT
        .key
        .iter()
        .filter(|a| !matches!(a, Algorithm::Rsa { hash: None }))
        .cloned()
        .collect();
    let mut out: Vec<Algorithm> = Vec::new();
    for t in recorded {
        let wanted: Vec<Algorithm> = match t.parse::<Algorithm>() {
            Ok(Algorithm::Rsa { .. }) => vec![
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256),
                },
            ],
            Ok(a) => vec![a],
            Err(_) => vec![],
        };
        for a in wanted {
            if defaults.contains(&a) && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    for a in defaults {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// What `doctor` wants to know about a connection besides the command's output.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub host_key: Option<String>,
    pub host_key_recorded: bool,
    pub auth_method: String,
}

/// One open, authenticated connection. Several commands may run on it (the
/// probe, then a guarded resume) — still one SSH connection per tick. Through
/// jump hosts, `handle` is the target's session, carried over direct-tcpip
/// channels of `jumps` (kept open as long as it is).
pub struct Conn {
    handle: Handle<Checker>,
    jumps: Vec<Handle<Checker>>,
    /// A ProxyCommand's process group (killed when the connection is dropped).
    _proxy: Option<ProxyGuard>,
    target: Target,
    pub session: Session,
}

impl Conn {
    pub async fn open(t: &Target) -> Result<Conn, Failure> {
        let (handle, jumps, proxy, session) = connect_chain(t).await?;
        Ok(Conn {
            handle,
            jumps,
            _proxy: proxy,
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
        for j in self.jumps.iter().rev() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                j.disconnect(Disconnect::ByApplication, "", "en"),
            )
            .await;
        }
    }
}

/// Where the chain is, for the message when connect_timeout runs out.
type Stage = Arc<Mutex<String>>;

fn at(stage: &Stage, what: String) {
    *stage.lock().expect("stage lock") = what;
}

type Opened = (Handle<Checker>, Vec<Handle<Checker>>, Option<ProxyGuard>, Session);

/// A ProxyCommand runs in a process group of its own; whatever it started
/// (`sh -c 'a | b'`, a helper it forks) goes with it when the connection does.
pub struct ProxyGuard(tokio::process::Child);

impl Drop for ProxyGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = self.0.start_kill();
    }
}

/// Connect to the target, through its jump hosts if it has any: one TCP
/// connection (or ProxyCommand) to the first hop, every further hop and the
/// target through a direct-tcpip channel of the hop before. Each hop's key is
/// checked and each hop authenticates before anything goes further. The
/// whole chain is bounded by the target's connect_timeout.
async fn connect_chain(t: &Target) -> Result<Opened, Failure> {
    let budget = t.connect_timeout;
    let stage: Stage = Arc::new(Mutex::new(String::new()));
    let hops: Vec<(&Target, Role)> = t
        .jumps
        .iter()
        .map(|j| (j, Role::Jump))
        .chain(std::iter::once((
            t,
            if t.jumps.is_empty() { Role::Direct } else { Role::Target },
        )))
        .collect();
    let mut opened: Vec<Handle<Checker>> = Vec::new();
    let mut proxy: Option<ProxyGuard> = None;
    let work = async {
        let mut session = Session::default();
        for (i, (hop, role)) in hops.iter().enumerate() {
            let who = format!("{}{}", role.prefix(), hop.label());
            let handle = if i == 0 {
                match &hop.proxy_command {
                    Some(cmd) => {
                        at(&stage, format!("no SSH answer from {who} through ProxyCommand"));
                        proxy_handshake(cmd, hop, *role, &mut proxy).await?
                    }
                    None => {
                        at(&stage, format!("no SSH answer from {who}"));
                        let stream = tcp(hop, *role).await?;
                        handshake(hop, *role, stream).await?
                    }
                }
            } else {
                let (prev, _) = hops[i - 1];
                let via = opened.last().expect("the hop before");
                at(
                    &stage,
                    format!("jump host {} did not open a channel to {}", prev.label(), hop.label()),
                );
                let ch = via
                    .channel_open_direct_tcpip(hop.hostname.clone(), u32::from(hop.port), "127.0.0.1", 0)
                    .await
                    .map_err(|e| forward_failure(prev, hop, &e))?;
                at(
                    &stage,
                    format!("no SSH answer from {who} through jump host {}", prev.label()),
                );
                handshake(hop, *role, ch.into_stream()).await?
            };
            let (mut handle, key, recorded) = handle;
            at(&stage, format!("authentication with {who} did not finish"));
            let method = authenticate(&mut handle, hop).await.map_err(|f| with_role(f, *role))?;
            if i + 1 == hops.len() {
                session = Session {
                    host_key: key,
                    host_key_recorded: recorded,
                    auth_method: method,
                };
            }
            opened.push(handle);
        }
        Ok::<Session, Failure>(session)
    };
    let session = match tokio::time::timeout(budget, work).await {
        Ok(r) => r?,
        Err(_) => {
            let what = stage.lock().expect("stage lock").clone();
            let why = if what.starts_with("no SSH answer") {
                " (dropped packets or a silent listener)"
            } else {
                ""
            };
            return Err(Failure::Unreachable(format!(
                "{what} within connect_timeout {}{why}",
                human(budget)
            )));
        }
    };
    let handle = opened.pop().expect("the target's session");
    Ok((handle, opened, proxy, session))
}

/// SSH over a ProxyCommand's stdio (the command is kept in `guard`); a
/// failure carries the command's last stderr line.
async fn proxy_handshake(
    cmd: &str,
    hop: &Target,
    role: Role,
    guard: &mut Option<ProxyGuard>,
) -> Result<(Handle<Checker>, Option<String>, bool), Failure> {
    let (child, stream, (said, reader)) = spawn_proxy(cmd, hop)?;
    *guard = Some(ProxyGuard(child));
    let shook = handshake(hop, role, stream).await;
    let Err(Failure::Unreachable(m)) = shook else {
        return shook;
    };
    // a command that failed at once: its last words
    if let Some(r) = reader {
        let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
    }
    let said = String::from_utf8_lossy(&said.lock().expect("said lock")).to_string();
    Err(Failure::Unreachable(
        match said.lines().map(str::trim).rfind(|l| !l.is_empty()) {
            Some(l) => format!(
                "{m}; the ProxyCommand said: {}",
                crate::text::plain(&l.chars().take(200).collect::<String>())
            ),
            None => m,
        },
    ))
}

/// The first hop's TCP connection.
async fn tcp(t: &Target, role: Role) -> Result<TcpStream, Failure> {
    let label = format!("{}{}", role.prefix(), t.label());
    let addrs: Vec<_> = tokio::net::lookup_host((t.hostname.as_str(), t.port))
        .await
        .map_err(|e| Failure::Unreachable(format!("cannot resolve {}{}: {e}", role.prefix(), t.hostname)))?
        .collect();
    let mut last_err = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(Failure::Unreachable(match last_err {
        Some(e) => format!("connect to {label}: {}", io_words(&e)),
        None => format!("{}{} resolved to no address", role.prefix(), t.hostname),
    }))
}

/// Start a ProxyCommand (`%h %p %r %n %%` as OpenSSH expands them) under
/// `sh -c`; SSH runs over its stdin and stdout.
/// A ProxyCommand's stderr as read so far, and the task reading it.
type Said = (Arc<Mutex<Vec<u8>>>, Option<tokio::task::JoinHandle<()>>);

fn spawn_proxy(
    cmd: &str,
    t: &Target,
) -> Result<
    (
        tokio::process::Child,
        impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        Said,
    ),
    Failure,
> {
    // what is put into the command line must be a plain name: a host or
    // user from a profile never becomes shell syntax (as OpenSSH 9.6 refuses)
    let plain = |what: &str, v: &str| -> Result<String, Failure> {
        // (nor an option: a leading `-`)
        if !v.is_empty() && !v.starts_with('-') && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-:@".contains(c)) {
            Ok(v.to_string())
        } else {
            Err(Failure::Unreachable(format!(
                "ProxyCommand: the {what} {:?} has characters a command line would read as shell syntax or an option; not run",
                crate::text::plain(v)
            )))
        }
    };
    let mut line = String::new();
    let mut it = cmd.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            line.push(c);
            continue;
        }
        match it.next() {
            Some('h') => line.push_str(&plain("host", &t.hostname)?),
            Some('p') => line.push_str(&t.port.to_string()),
            Some('r') => line.push_str(&plain("user", &t.user)?),
            Some('n') => line.push_str(&plain("host alias", &t.alias)?),
            Some('%') => line.push('%'),
            Some(o) => {
                return Err(Failure::Unreachable(format!(
                    "ProxyCommand `{}` uses %{o}, which gpupatrol does not expand (it knows %h %p %r %n %%)",
                    crate::text::plain(cmd)
                )));
            }
            None => line.push('%'),
        }
    }
    let mut proc = tokio::process::Command::new("sh");
    proc.arg("-c")
        .arg(format!("exec {line}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // a process group of its own (killed whole with the connection), but not
    // under a terminal: a command that asks there (a passphrase, a 2FA
    // bastion) would be stopped for reading it from the background
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        proc.process_group(0);
    }
    let mut child = proc
        .spawn()
        .map_err(|e| Failure::Unreachable(format!("cannot start ProxyCommand: {e}")))?;
    let out = child.stdout.take().expect("piped stdout");
    let inp = child.stdin.take().expect("piped stdin");
    // what it says on stderr (the last 2 KB), for the failure's message
    let said = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut reader = None;
    if let Some(mut err) = child.stderr.take() {
        let said = said.clone();
        reader = Some(tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut s = said.lock().expect("said lock");
                s.extend_from_slice(&buf[..n]);
                let over = s.len().saturating_sub(2048);
                s.drain(..over);
            }
        }));
    }
    Ok((child, tokio::io::join(out, inp), (said, reader)))
}

/// SSH over `stream`: version exchange, key exchange, the host key checked.
async fn handshake<S>(t: &Target, role: Role, stream: S) -> Result<(Handle<Checker>, Option<String>, bool), Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let refusal = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(None));
    // with HostKeyAlias the key is looked up and recorded under the alias, no port
    let (kh_host, kh_port) = match &t.host_key_alias {
        Some(a) => (a.clone(), 22),
        None => (t.hostname.clone(), t.port),
    };
    let checker = Checker {
        role,
        host: kh_host.clone(),
        port: kh_port,
        known_hosts: t.known_hosts.clone(),
        global_known_hosts: t.global_known_hosts.clone(),
        policy: t.policy,
        refusal: refusal.clone(),
        seen: seen.clone(),
    };
    let recorded = super::known_hosts::load_all(&t.known_hosts, &t.global_known_hosts)
        .map(|e| super::known_hosts::recorded_types(&e, &kh_host, kh_port))
        .unwrap_or_default();
    let config = Arc::new(client::Config {
        keepalive_interval: Some(t.keepalive_interval),
        keepalive_max: t.keepalive_count as usize,
        nodelay: true,
        preferred: russh::Preferred {
            key: std::borrow::Cow::Owned(host_key_order(&recorded)),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    });
    let label = format!("{}{}", role.prefix(), t.label());
    let handle = client::connect_stream(config, stream, checker).await.map_err(|e| {
        if let Some(why) = refusal.lock().expect("refusal lock").take() {
            return Failure::HostKey(why);
        }
        Failure::Unreachable(format!("SSH handshake with {label} failed: {}", russh_words(&e)))
    })?;
    let (key, rec) = seen
        .lock()
        .expect("seen lock")
        .clone()
        .map(|(d, r)| (Some(d), r))
        .unwrap_or((None, false));
    Ok((handle, key, rec))
}

/// A jump host's refusal to open the channel, in words.
fn forward_failure(via: &Target, to: &Target, e: &russh::Error) -> Failure {
    use russh::ChannelOpenFailure as F;
    let (v, t) = (via.label(), to.label());
    Failure::Unreachable(match e {
        russh::Error::ChannelOpenFailure(F::AdministrativelyProhibited) => format!(
            "jump host {v} does not allow forwarding to {t} (AllowTcpForwarding no, or a PermitOpen that leaves it out)"
        ),
        russh::Error::ChannelOpenFailure(F::ConnectFailed) => format!(
            "jump host {v} could not connect to {t} (nothing listening there, or not reachable from the jump host)"
        ),
        other => format!("jump host {v} did not forward to {t}: {}", russh_words(other)),
    })
}

/// A hop's auth failure names the hop.
fn with_role(f: Failure, role: Role) -> Failure {
    match (f, role) {
        (Failure::Auth(m), Role::Jump | Role::Target) => Failure::Auth(format!("{}{m}", role.prefix())),
        (f, _) => f,
    }
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
            Ok(key) if key.algorithm().is_rsa() => {
                // RUSTSEC-2023-0071: the rsa crate's private-key operations are
                // not constant-time, and a hostile box sees every signature.
                // Public-key RSA (host keys) and agent-held RSA keys are fine.
                problems.push(format!(
                    "{} is an RSA key: gpupatrol does not sign with RSA private keys itself (RUSTSEC-2023-0071); load it into ssh-agent (ssh-add {}) or use an ed25519 key",
                    path.display(),
                    path.display()
                ));
            }
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
