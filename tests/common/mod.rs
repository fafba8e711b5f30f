//! Test harness: a real OpenSSH `sshd` on 127.0.0.1 (random free port,
//! throw-away host and user keys, `UsePAM no`, its own PATH with a fake
//! `nvidia-smi`, its own tmux socket folder), a simulated training job, and a
//! bounded runner for the real `gpupatrol` binary. Every wait is bounded.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gpupatrol");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn keygen(path: &Path, kind: &str) {
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-t", kind, "-f"]).arg(path);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    sh(&mut c);
}

pub fn sshd_path() -> PathBuf {
    for p in ["/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("sshd not found: install openssh-server (.ci/run does: apt-get install -y openssh-server tmux)");
}

#[derive(Default)]
pub struct Options {
    /// `ForceCommand` for this sshd (to make the box answer garbage).
    pub force_command: Option<String>,
    /// Give the box a PATH with only these tools (to test missing ones).
    pub only_tools: Option<Vec<&'static str>>,
    /// More `SetEnv NAME=value` for the box's login environment.
    pub env: Vec<(&'static str, String)>,
    /// The box's host key types (default: ed25519 only). known_hosts records the first.
    pub host_keys: Vec<&'static str>,
    /// sshd_config lines that win over the defaults (sshd takes a key's first value).
    pub config: Vec<String>,
}

pub struct Sshd {
    pub dir: tempfile::TempDir,
    box_path: String,
    pub port: u16,
    child: Option<Child>,
    pub user_key: PathBuf,
    pub known_hosts: PathBuf,
    pub host_key: PathBuf,
    pub force_command: Option<String>,
    env: Vec<(&'static str, String)>,
    more_host_keys: Vec<PathBuf>,
    config: Vec<String>,
}

impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Sshd {
        let dir = tempfile::Builder::new().prefix("gp-sshd-").tempdir().unwrap();
        let d = dir.path().to_path_buf();
        for sub in ["bin", "gpu", "box", "tmux", "state", "boxhome"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let _ = std::fs::create_dir_all("/run/sshd");
        let kinds = if opts.host_keys.is_empty() {
            vec!["ed25519"]
        } else {
            opts.host_keys.clone()
        };
        let host_key = d.join("host_key");
        keygen(&host_key, kinds[0]);
        let mut more_keys = Vec::new();
        for (i, k) in kinds.iter().enumerate().skip(1) {
            let p = d.join(format!("host_key_{i}"));
            keygen(&p, k);
            more_keys.push(p);
        }
        let user_key = d.join("id_ed25519");
        keygen(&user_key, "ed25519");
        std::fs::copy(user_key.with_extension("pub"), d.join("authorized_keys")).unwrap();
        std::fs::copy(fixtures().join("fake-nvidia-smi"), d.join("bin/nvidia-smi")).unwrap();
        std::fs::write(d.join("gpu/rows"), "0 97 72908 81920 64 NVIDIA-A100-SXM4-80GB\n").unwrap();
        std::fs::write(d.join("gpu/mode"), "ok\n").unwrap();
        let mut path = format!(
            "{}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            d.display()
        );
        if let Some(tools) = &opts.only_tools {
            let only = d.join("onlybin");
            std::fs::create_dir_all(&only).unwrap();
            for t in tools {
                let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                    .iter()
                    .map(|p| Path::new(p).join(t))
                    .find(|p| p.exists());
                if let Some(src) = found {
                    std::os::unix::fs::symlink(src, only.join(t)).unwrap();
                }
            }
            path = only.display().to_string();
        }
        let mut s = Sshd {
            port: 0,
            child: None,
            user_key,
            known_hosts: d.join("known_hosts"),
            host_key,
            force_command: opts.force_command,
            env: opts.env,
            more_host_keys: more_keys,
            config: opts.config,
            box_path: path,
            dir,
        };
        s.spawn();
        let pubkey = std::fs::read_to_string(s.host_key.with_extension("pub")).unwrap();
        let mut parts = pubkey.split_whitespace();
        let (alg, b64) = (parts.next().unwrap(), parts.next().unwrap());
        std::fs::write(&s.known_hosts, format!("[127.0.0.1]:{} {alg} {b64}\n", s.port)).unwrap();
        s
    }

    fn spawn(&mut self) {
        let d = self.dir.path().to_path_buf();
        let path = self.box_path.clone();
        for _attempt in 0..5 {
            let port = free_port();
            let mut cfg: String = self.config.iter().map(|l| format!("{l}\n")).collect();
            cfg += &format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
                 UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 StrictModes no\nPermitRootLogin yes\nLogLevel VERBOSE\nMaxStartups 200\nMaxSessions 50\n\
                 SetEnv PATH={path} TMUX_TMPDIR={d}/tmux GP_FAKE_GPU_DIR={d}/gpu HOME={d}/boxhome{extra}\n",
                hk = self.host_key.display(),
                d = d.display(),
                extra = self.env.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>(),
            );
            for k in &self.more_host_keys {
                cfg.push_str(&format!("HostKey {}\n", k.display()));
            }
            if let Some(fc) = &self.force_command {
                cfg.push_str(&format!("ForceCommand {fc}\n"));
            }
            let cfg_path = d.join("sshd_config");
            std::fs::write(&cfg_path, cfg).unwrap();
            let child = Command::new(sshd_path())
                .arg("-D")
                .arg("-f")
                .arg(&cfg_path)
                .arg("-E")
                .arg(d.join("sshd.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start sshd");
            self.child = Some(child);
            self.port = port;
            if self.wait_ready(Duration::from_secs(10)) {
                return;
            }
            self.stop();
        }
        panic!("sshd did not start; log:\n{}", self.log());
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(c) = &mut self.child
                && let Ok(Some(_)) = c.try_wait()
            {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 8];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        false
    }

    /// Stop sshd (the box becomes unreachable; the port is refused).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A folder on "the box" for logs, markers and checkpoints.
    pub fn box_dir(&self) -> PathBuf {
        self.path("box")
    }

    /// The login's home on the box (sshd's SetEnv HOME): the resume log lives here.
    pub fn box_home(&self) -> PathBuf {
        self.path("boxhome")
    }

    /// Resumes the box side ran for profile `name` (its resume log's entries).
    pub fn resumes(&self, name: &str) -> usize {
        count_in(
            &self.box_home().join(format!(".gpupatrol-resume-{name}.log")),
            "gpupatrol resume:",
        )
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// SSH connections that authenticated (one per tick expected).
    pub fn accepted(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// The known_hosts line of host key `path` (its .pub) for this box.
    pub fn known_hosts_line(&self, pub_path: &Path) -> String {
        let pubkey = std::fs::read_to_string(pub_path).unwrap();
        let mut w = pubkey.split_whitespace();
        format!("[127.0.0.1]:{} {} {}", self.port, w.next().unwrap(), w.next().unwrap())
    }

    /// The n-th extra host key's .pub (Options::host_keys[n]).
    pub fn extra_host_key_pub(&self, n: usize) -> PathBuf {
        self.more_host_keys[n - 1].with_extension("pub")
    }

    /// Put a different host key for this box in known_hosts (a rebuilt box, or a MITM).
    pub fn known_hosts_with_impostor(&self) {
        let impostor = self.path("impostor");
        keygen(&impostor, "ed25519");
        let pubkey = std::fs::read_to_string(impostor.with_extension("pub")).unwrap();
        let mut w = pubkey.split_whitespace();
        std::fs::write(
            &self.known_hosts,
            format!(
                "[127.0.0.1]:{} {} {}\n",
                self.port,
                w.next().unwrap(),
                w.next().unwrap()
            ),
        )
        .unwrap();
    }

    pub fn gpu_mode(&self, mode: &str) {
        std::fs::write(self.path("gpu/mode"), mode).unwrap();
    }

    pub fn gpu_rows(&self, rows: &str) {
        std::fs::write(self.path("gpu/rows"), rows).unwrap();
    }

    pub fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.env("TMUX_TMPDIR", self.path("tmux")).env_remove("TMUX");
        c
    }

    /// Start the fake training job in a detached tmux session on the box.
    #[expect(clippy::too_many_arguments, reason = "mirrors fake_train.sh's arguments")]
    pub fn start_job(
        &self,
        session: &str,
        log: &Path,
        mode: &str,
        steps: u32,
        pause: &str,
        done: Option<&Path>,
        ckpt: Option<&Path>,
    ) {
        let cmd = format!(
            "sh {} {} {} {} {} {} {}",
            q(&fixtures().join("fake_train.sh").to_string_lossy()),
            q(&log.to_string_lossy()),
            mode,
            steps,
            pause,
            q(&done.map(|p| p.to_string_lossy().to_string()).unwrap_or_default()),
            q(&ckpt.map(|p| p.to_string_lossy().to_string()).unwrap_or_default()),
        );
        sh(self.tmux().args(["new-session", "-d", "-s", session, &cmd]));
    }

    /// A live tmux session whose run stays at step 1 (the benches' steady
    /// box): the `job:` and `data_mount` lines of its profile.
    pub fn steady_job(&self, session: &str) -> String {
        sh(self
            .tmux()
            .args(["new-session", "-d", "-s", session, "sh -c 'while :; do sleep 1; done'"]));
        let log = self.box_dir().join(format!("{session}.log"));
        std::fs::write(&log, "Epoch 1\n").unwrap();
        format!(
            "job:\n  alive: {{ tmux: {session} }}\n  log: {}\n  progress: 'Epoch (\\d+)'\ndata_mount: {}\n",
            yq(&log.to_string_lossy()),
            yq(&self.box_dir().to_string_lossy())
        )
    }

    pub fn kill_session(&self, session: &str) {
        let _ = self.tmux().args(["kill-session", "-t", session]).output();
    }

    /// The YAML lines that reach this sshd.
    pub fn ssh_yaml(&self) -> String {
        format!(
            "transport: ssh\nhost: 127.0.0.1\nport: {}\nuser: root\nidentity_file: {}\nknown_hosts: {}\nconnect_timeout: 5s\nkeepalive_interval: 1s\nkeepalive_count: 2\nprobe_timeout: 20s\nsection_timeout: 5s\ngpu: {{ samples: 1 }}\n",
            self.port,
            yq(&self.user_key.to_string_lossy()),
            yq(&self.known_hosts.to_string_lossy()),
        )
    }

    /// Write a profile named `name` with the connection lines plus `rest`.
    pub fn profile(&self, name: &str, rest: &str) -> PathBuf {
        let p = self.path(&format!("{name}.yaml"));
        std::fs::write(&p, format!("name: {name}\n{}{rest}", self.ssh_yaml())).unwrap();
        p
    }

    /// A typical tmux-watched profile for a run whose files live in box/.
    pub fn run_profile(&self, name: &str, session: &str, extra_job: &str) -> PathBuf {
        let b = self.box_dir();
        self.profile(
            name,
            &format!(
                "job:\n  alive: {{ tmux: {session} }}\n  log: {}\n  progress: 'Epoch (\\d+)'\n  done_marker: {}\n  stall_after: 1h\n{extra_job}data_mount: {}\n",
                yq(&b.join(format!("{name}.log")).to_string_lossy()),
                yq(&b.join(format!("{name}.DONE")).to_string_lossy()),
                yq(&b.to_string_lossy()),
            ),
        )
    }

    pub fn gpupatrol(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--state-dir")
            .arg(self.state_dir())
            .env_remove("SSH_AUTH_SOCK")
            .env("HOME", self.path("home"))
            .env("GPUPATROL_TRACE_DIR", self.path("trace"));
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
        self.stop();
    }
}

/// Shell-quote for the harness's own tmux command lines.
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// YAML single-quoted scalar.
pub fn yq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
    pub fn one(&self) -> serde_json::Value {
        let v = self.json();
        assert_eq!(v.len(), 1, "expected one JSON line, got {}", self.stdout);
        v.into_iter().next().unwrap()
    }
}

/// YAML double-quoted scalar (keeps newlines and every other byte).
pub fn yd(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Run a command, killing it (and failing the test) past `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} ran past {limit:?}; stderr: {}",
                t_err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        elapsed: started.elapsed(),
    }
}

/// Run `gpupatrol tick --json -p PROFILE` against `sshd`.
pub fn tick_json(sshd: &Sshd, profile: &Path) -> Run {
    let mut c = sshd.gpupatrol();
    c.args(["tick", "--json", "-p"]).arg(profile);
    run(c, Duration::from_secs(40))
}

/// Poll `cond` every 50 ms for at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Count lines matching `needle` in a file (0 if missing).
pub fn count_in(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.matches(needle).count())
        .unwrap_or(0)
}

/// A peer this test needs is missing. Under `CI=true` that fails the test:
/// CI installs every peer, so a skip there would hide a broken install step.
/// Elsewhere it prints `SKIPPED: …` and the caller returns early.
pub fn peer_missing(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} (CI=true: .ci/run installs every peer, so this is a broken install step)");
    }
    eprintln!("SKIPPED: {what}");
    true
}

/// Is `tool` on this machine's PATH?
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A usable single-node Slurm (`tests/slurm/start.sh` starts one).
pub fn slurm_ready() -> bool {
    let ok = Command::new("sinfo").args(["-h", "-o", "%T"]).output().map(|o| {
        let s = String::from_utf8_lossy(&o.stdout);
        // idle, mixed, allocated, completing…: a node that takes jobs
        o.status.success()
            && s.lines().any(|l| {
                let l = l.trim();
                !l.is_empty()
                    && !["down", "drain", "fail", "unk", "not_resp", "inval"]
                        .iter()
                        .any(|b| l.starts_with(b))
            })
    });
    matches!(ok, Ok(true))
        || !peer_missing(
            "no single-node Slurm here (sinfo shows no usable node); .ci/run starts one with tests/slurm/start.sh",
        )
}

// ---- a real HTTP server for the push tests (Python's http.server) ---------

/// Python with the stdlib HTTP server (and, for the textfile test, the
/// prometheus_client package CI installs from the distribution).
pub fn python() -> Option<PathBuf> {
    ["/usr/bin/python3", "python3"].iter().map(PathBuf::from).find(|p| {
        Command::new(p)
            .arg("-c")
            .arg("import http.server")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The HTTP sink: records every request, answers by the first path segment.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Sink {
    pub fn start(dir: &Path) -> Option<Sink> {
        let Some(py) = python() else {
            peer_missing("python3 (the HTTP server of the push tests)");
            return None;
        };
        let log = dir.join("sink.jsonl");
        let mut child = Command::new(py)
            .arg(fixtures().join("http_sink.py"))
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the HTTP sink");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the sink prints its port");
        Some(Sink { child, port, log })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn to(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"].as_str().unwrap().starts_with(prefix))
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
