//! The transport seam: run one command with a script on its stdin, bounded
//! in time and output, and say how it failed in the contract's words. The
//! SSH transport opens exactly one connection per call; the local one runs
//! `sh -s` on this machine (the demo, and boxes you are logged into).

pub mod known_hosts;
pub mod local;
pub mod ssh;
pub mod sshconfig;

use std::time::Duration;

/// The command every script of ours runs under (the probe, a resume, the
/// chain installer, doctor): the script arrives on stdin, so nothing of it
/// (or of the profile) is in any process's argv. The environment marker lets
/// a `pgrep` alive check skip gpupatrol probes (ours or a second watcher's).
pub const PROBE_COMMAND: &str = "env GPUPATROL_PROBE=1 sh -s";

use crate::profile::{Profile, TransportKind};
use crate::verdict::Verdict;

/// What came back from the box.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_status: Option<u32>,
    /// SSH connections this call opened (1, or 0 for local).
    pub connections: u32,
}

/// How a call failed, already in the contract's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Could not connect, or the connection died (refused, timeout, half-open).
    Unreachable(String),
    /// The box refused every credential we have.
    Auth(String),
    /// The host key is unknown (strict) or changed. Nothing was run.
    HostKey(String),
    /// Connected, but the command misbehaved (too much output, hung).
    Probe(String),
}

impl Failure {
    pub fn verdict(&self) -> Verdict {
        match self {
            Failure::Unreachable(_) => Verdict::Unreachable,
            Failure::Auth(_) => Verdict::AuthFailed,
            Failure::HostKey(_) => Verdict::HostkeyMismatch,
            Failure::Probe(_) => Verdict::ProbeError,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m) | Failure::Auth(m) | Failure::HostKey(m) | Failure::Probe(m) => m,
        }
    }
}

/// Bounds for one call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the command, after the connection is up.
    pub deadline: Duration,
    pub max_stdout: usize,
}

/// A ready-to-use transport for one profile.
#[derive(Debug, Clone)]
pub enum Transport {
    Ssh(Box<ssh::Target>),
    Local,
}

impl Transport {
    /// Build the transport for a profile (reads `~/.ssh/config` for aliases).
    pub fn for_profile(p: &Profile) -> Result<Transport, Failure> {
        match p.transport {
            TransportKind::Local => Ok(Transport::Local),
            TransportKind::Ssh => Ok(Transport::Ssh(Box::new(sshconfig::resolve(p)?))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Ssh(_) => "ssh",
            Transport::Local => "local",
        }
    }

    /// Open the connection (for SSH: connect, check the host key, authenticate).
    pub async fn connect(&self) -> Result<Conn, Failure> {
        match self {
            Transport::Ssh(t) => Ok(Conn::Ssh(Box::new(ssh::Conn::open(t).await?))),
            Transport::Local => Ok(Conn::Local),
        }
    }

    /// Connect, run `command` with `stdin` fed to it, disconnect.
    pub async fn exec(&self, command: &str, stdin: &[u8], limits: Limits) -> Result<Output, Failure> {
        let conn = self.connect().await?;
        let out = conn.exec(command, stdin, limits).await;
        conn.close().await;
        out
    }
}

/// An open connection: run one or more commands, then close.
pub enum Conn {
    Ssh(Box<ssh::Conn>),
    Local,
}

impl Conn {
    /// Run `command` with `stdin` fed to it, then EOF; read until it ends.
    pub async fn exec(&self, command: &str, stdin: &[u8], limits: Limits) -> Result<Output, Failure> {
        match self {
            Conn::Ssh(c) => c.exec(command, stdin, limits).await,
            Conn::Local => local::exec(command, stdin, limits).await,
        }
    }

    pub fn connections(&self) -> u32 {
        match self {
            Conn::Ssh(_) => 1,
            Conn::Local => 0,
        }
    }

    pub fn session(&self) -> Option<&ssh::Session> {
        match self {
            Conn::Ssh(c) => Some(&c.session),
            Conn::Local => None,
        }
    }

    pub async fn close(self) {
        if let Conn::Ssh(c) = self {
            c.close().await;
        }
    }
}
