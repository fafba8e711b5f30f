//! Reaching boxes that do not answer SSH directly: jump hosts (ProxyJump,
//! from the profile or the ssh config, one and two hops), ProxyCommand, and
//! how each hop's failure is named. Every hop is a real OpenSSH sshd on
//! 127.0.0.1 with its own host key and its own authorized key.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Replace `from` (which must be there) with `to` in the file `p`.
fn edit(p: &Path, from: &str, to: &str) {
    let t = std::fs::read_to_string(p).unwrap();
    assert!(t.contains(from), "{from:?} in {}", p.display());
    std::fs::write(p, t.replacen(from, to, 1)).unwrap();
}

/// A hop that logs forwarded connections (debug1 names direct-tcpip).
fn hop() -> Sshd {
    Sshd::start_with(Options {
        config: vec!["LogLevel DEBUG1".into()],
        ..Default::default()
    })
}

/// One known_hosts file holding every hop's key.
fn known_hosts(dir: &Path, hops: &[&Sshd]) -> PathBuf {
    let p = dir.join("known_hosts_all");
    let text: String = hops
        .iter()
        .map(|h| std::fs::read_to_string(&h.known_hosts).unwrap())
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// The hop lets the target's user key in too (one key for every hop, the
/// common case; per-hop keys come from the ssh config below).
fn trust_key_of(hop: &Sshd, key_owner: &Sshd) {
    let mut ak = std::fs::read_to_string(hop.path("authorized_keys")).unwrap();
    ak.push_str(&std::fs::read_to_string(key_owner.user_key.with_extension("pub")).unwrap());
    std::fs::write(hop.path("authorized_keys"), ak).unwrap();
}

/// A profile for `target` with `extra` connection lines (proxy_jump, ssh_config).
fn profile(target: &Sshd, name: &str, kh: &Path, extra: &str) -> PathBuf {
    let p = target.path(&format!("{name}.yaml"));
    let log = target.box_dir().join(format!("{name}.log"));
    std::fs::write(&log, "Epoch 1 loss 0.9\nEpoch 2 loss 0.8\n").unwrap();
    std::fs::write(
        &p,
        format!(
            "name: {name}\nhost: 127.0.0.1\nport: {}\nuser: root\nidentity_file: {}\nknown_hosts: {}\nconnect_timeout: 5s\nkeepalive_interval: 1s\nkeepalive_count: 2\nprobe_timeout: 20s\nsection_timeout: 5s\ngpu: {{ samples: 1 }}\n{extra}job:\n  alive: {{ pgrep: 'gp-no-such-job-[0-9]' }}\n  log: {}\n  progress: 'Epoch (\\d+)'\n  done_marker: {}\n",
            target.port,
            yq(&target.user_key.to_string_lossy()),
            yq(&kh.to_string_lossy()),
            yq(&log.to_string_lossy()),
            yq(&target.box_dir().join(format!("{name}.DONE")).to_string_lossy()),
        ),
    )
    .unwrap();
    p
}

fn tick(target: &Sshd, p: &Path) -> serde_json::Value {
    let mut c = target.gpupatrol();
    c.args(["tick", "--json", "-p"]).arg(p);
    run(c, Duration::from_secs(60)).one()
}

/// The forwarded connections a hop's sshd logged, to `port`.
fn forwarded_to(hop: &Sshd, port: u16) -> usize {
    hop.log()
        .lines()
        .filter(|l| l.contains("direct") && l.contains(&format!("target 127.0.0.1 port {port}")))
        .count()
}

#[test]
fn one_jump_host_from_the_profile_reaches_the_target_over_one_connection() {
    let target = hop();
    let bastion = hop();
    trust_key_of(&bastion, &target);
    let kh = known_hosts(target.dir.path(), &[&bastion, &target]);
    let p = profile(
        &target,
        "pj",
        &kh,
        &format!("proxy_jump: root@127.0.0.1:{}\n", bastion.port),
    );
    let j = tick(&target, &p);
    // not alive, no crash: DIED — the probe ran on the target
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(j["progress"]["step"], 2, "{j}");
    assert_eq!(j["connections"], 1, "one TCP connection, to the bastion: {j}");
    assert_eq!(bastion.accepted(), 1, "{}", bastion.log());
    assert_eq!(target.accepted(), 1);
    assert_eq!(forwarded_to(&bastion, target.port), 1, "{}", bastion.log());

    // the bastion gone, the target up: unreachable, and the bastion is named
    let mut bastion = bastion;
    bastion.stop();
    let t = Instant::now();
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let detail = j["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("jump host 127.0.0.1:{}", bastion.port)) && detail.contains("refused"),
        "{detail}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(target.accepted(), 1, "nothing reached the target directly");
}

#[test]
fn two_hops_each_with_its_own_key_from_the_ssh_config() {
    let target = hop();
    let outer = hop();
    let inner = hop();
    let kh = known_hosts(target.dir.path(), &[&outer, &inner, &target]);
    // each hop its own key (the config names it), the target the profile's
    let cfg = target.path("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host outer\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n\nHost inner\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  ProxyJump outer\n\nHost gpu-box\n  HostName 127.0.0.1\n  Port {}\n  ProxyJump inner\n",
            outer.port,
            outer.user_key.display(),
            inner.port,
            inner.user_key.display(),
            target.port
        ),
    )
    .unwrap();
    // the alias's ProxyJump (inner, itself behind outer) is taken unchanged
    let p = profile(
        &target,
        "cfg",
        &kh,
        &format!("ssh_config: {}\n", yq(&cfg.to_string_lossy())),
    );
    edit(&p, "host: 127.0.0.1\n", "host: gpu-box\n");
    edit(&p, &format!("port: {}\n", target.port), "");
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(j["connections"], 1, "{j}");
    assert_eq!(outer.accepted(), 1);
    assert_eq!(inner.accepted(), 1);
    assert_eq!(target.accepted(), 1);
    assert_eq!(forwarded_to(&outer, inner.port), 1, "outer carries inner");
    assert_eq!(forwarded_to(&inner, target.port), 1, "inner carries the target");
    assert_eq!(forwarded_to(&outer, target.port), 0);

    // the profile's proxy_jump wins over the config; `none` goes direct
    let direct = std::fs::read_to_string(&p).unwrap() + "proxy_jump: none\n";
    std::fs::write(&p, direct).unwrap();
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(outer.accepted(), 1, "proxy_jump: none skips the config's hops");
    assert_eq!(target.accepted(), 2);

    // a hop whose key the config names but the hop does not accept
    let p2 = profile(
        &target,
        "bad",
        &kh,
        &format!(
            "ssh_config: {}\nproxy_jump: outer,root@127.0.0.1:{}\n",
            yq(&cfg.to_string_lossy()),
            inner.port
        ),
    );
    // inner, given by address, is not the config's `inner`: it gets the
    // profile's key, which it does not trust
    let j = tick(&target, &p2);
    assert_eq!(j["verdict"], "AUTH_FAILED", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(d.starts_with("jump host root@127.0.0.1:"), "{d}");
    assert!(d.contains(&inner.port.to_string()), "{d}");
    assert_eq!(target.accepted(), 2, "nothing ran on the target");
}

#[test]
fn a_changed_key_is_named_at_the_hop_that_has_it_and_nothing_runs() {
    let target = hop();
    let bastion = hop();
    trust_key_of(&bastion, &target);
    let impostor = target.dir.path().join("impostor");
    keygen(&impostor, "ed25519");
    let line = |s: &Sshd, key: &Path| s.known_hosts_line(&key.with_extension("pub")) + "\n";
    let jump = format!("proxy_jump: root@127.0.0.1:{}\n", bastion.port);

    // the bastion's key changed
    let kh = target.dir.path().join("kh_bastion_changed");
    std::fs::write(&kh, line(&bastion, &impostor) + &line(&target, &target.host_key)).unwrap();
    let j = tick(&target, &profile(&target, "kb", &kh, &jump));
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(
        d.contains(&format!("host key of jump host [127.0.0.1]:{} CHANGED", bastion.port)),
        "{d}"
    );
    assert_eq!(bastion.accepted(), 0, "no credential goes to a box with the wrong key");
    assert_eq!(target.accepted(), 0);

    // the target's key changed behind a good bastion
    let kh = target.dir.path().join("kh_target_changed");
    std::fs::write(&kh, line(&bastion, &bastion.host_key) + &line(&target, &impostor)).unwrap();
    let j = tick(&target, &profile(&target, "kt", &kh, &jump));
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(
        d.contains(&format!("host key of the target [127.0.0.1]:{} CHANGED", target.port)),
        "{d}"
    );
    assert_eq!(target.accepted(), 0, "nothing ran on the target");

    // the target unknown under strict: refused, named as the target
    let kh = target.dir.path().join("kh_target_unknown");
    std::fs::write(&kh, line(&bastion, &bastion.host_key)).unwrap();
    let j = tick(&target, &profile(&target, "ku", &kh, &jump));
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("the target [127.0.0.1]"), "{j}");
    assert_eq!(target.accepted(), 0);
}

#[test]
fn a_bastion_that_forbids_forwarding_or_cannot_reach_the_target_says_so() {
    let target = hop();
    let bastion = Sshd::start_with(Options {
        config: vec!["AllowTcpForwarding no".into()],
        ..Default::default()
    });
    trust_key_of(&bastion, &target);
    let kh = known_hosts(target.dir.path(), &[&bastion, &target]);
    let p = profile(
        &target,
        "nf",
        &kh,
        &format!("proxy_jump: root@127.0.0.1:{}\n", bastion.port),
    );
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(
        d.contains(&format!(
            "jump host 127.0.0.1:{} does not allow forwarding",
            bastion.port
        )) && d.contains("AllowTcpForwarding no"),
        "{d}"
    );
    assert_eq!(target.accepted(), 0);

    // a bastion that allows it, towards a port where nothing listens
    let good = hop();
    trust_key_of(&good, &target);
    let kh = known_hosts(target.dir.path(), &[&good, &target]);
    let p = profile(
        &target,
        "cf",
        &kh,
        &format!("proxy_jump: root@127.0.0.1:{}\n", good.port),
    );
    let closed = free_port();
    edit(&p, &format!("port: {}\n", target.port), &format!("port: {closed}\n"));
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(d.contains(&format!("could not connect to 127.0.0.1:{closed}")), "{d}");
}

/// A listener that accepts and then says nothing (packets swallowed).
fn silent_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn a_silent_hop_ends_unreachable_within_connect_timeout() {
    let target = hop();
    let (_l, silent) = silent_listener();
    let kh = known_hosts(target.dir.path(), &[&target]);
    // the first hop swallows everything
    let p = profile(&target, "s1", &kh, &format!("proxy_jump: root@127.0.0.1:{silent}\n"));
    let t = Instant::now();
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(
        d.contains(&format!("no SSH answer from jump host 127.0.0.1:{silent}")) && d.contains("connect_timeout 5s"),
        "{d}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // a good bastion, and behind it a target that swallows everything
    let bastion = hop();
    trust_key_of(&bastion, &target);
    let kh = known_hosts(target.dir.path(), &[&bastion, &target]);
    let p = profile(
        &target,
        "s2",
        &kh,
        &format!("proxy_jump: root@127.0.0.1:{}\n", bastion.port),
    );
    edit(&p, &format!("port: {}\n", target.port), &format!("port: {silent}\n"));
    let t = Instant::now();
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(
        d.contains(&format!(
            "no SSH answer from the target 127.0.0.1:{silent} through jump host"
        )),
        "{d}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn a_proxy_command_from_the_ssh_config_carries_the_session() {
    let target = hop();
    let bastion = hop();
    trust_key_of(&bastion, &target);
    let kh = known_hosts(target.dir.path(), &[&bastion, &target]);
    // the way people write it: OpenSSH's own client as the proxy
    let cfg = target.path("ssh_config_pc");
    std::fs::write(
        &cfg,
        format!(
            "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  ProxyCommand ssh -F none -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -p {} -W %h:%p root@127.0.0.1\n",
            target.port,
            target.user_key.display(),
            kh.display(),
            bastion.port
        ),
    )
    .unwrap();
    let p = profile(
        &target,
        "pc",
        &kh,
        &format!("ssh_config: {}\n", yq(&cfg.to_string_lossy())),
    );
    edit(&p, "host: 127.0.0.1\n", "host: gpu-box\n");
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(bastion.accepted(), 1);
    assert_eq!(target.accepted(), 1);
    assert_eq!(forwarded_to(&bastion, target.port), 1, "{}", bastion.log());
    // no ssh -W left behind
    std::thread::sleep(Duration::from_millis(300));
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("-W 127.0.0.1:{} root@127.0.0.1", target.port)])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "the proxy command outlived the tick");
}

/// `check` on a profile with `host` and an extra line 3 fails naming `line:key` and `says`.
fn check_fails(dir: &Path, host: &str, line3: &str, at: &str, says: &str) {
    let p = dir.join("p.yaml");
    std::fs::write(
        &p,
        format!("name: x\nhost: {host}\n{line3}\njob:\n  alive: {{ tmux: t }}\n"),
    )
    .unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_gpupatrol"));
    c.args(["check", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(20));
    assert_eq!(r.code, 3, "{line3}: {}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains(at) && all.contains(says), "{line3}: {all}");
}

#[test]
fn proxy_jump_syntax_errors_name_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, says) in [
        ("root@:22", "invalid host"),
        ("bastion:0", "invalid port"),
        ("bastion:99999", "invalid port"),
        ("a,,b", "empty jump host"),
        ("@bastion", "empty user"),
    ] {
        check_fails(
            dir.path(),
            "10.0.0.1",
            &format!("proxy_jump: '{bad}'"),
            ":3: proxy_jump",
            says,
        );
    }
    // RunPod's PTY-only proxy, refused with the way out
    check_fails(dir.path(), "ssh.runpod.io", "", ":2: host", "exposed TCP");
    // names the tools would read otherwise
    let p = dir.path().join("n.yaml");
    for (alive, key, says) in [
        ("{ tmux: llama3.1 }", "job.alive.tmux", "\"llama3_1\""),
        ("{ slurm: 'a,b' }", "job.alive.slurm", "by its id"),
    ] {
        std::fs::write(&p, format!("name: x\nhost: h\njob:\n  alive: {alive}\n")).unwrap();
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_gpupatrol"));
        c.args(["check", "-p"]).arg(&p);
        let r = run(c, Duration::from_secs(20));
        assert_eq!(r.code, 3, "{alive}");
        assert!(
            r.stderr.contains(&format!(":4: {key}")) && r.stderr.contains(says),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn a_proxy_jump_loop_in_the_ssh_config_is_refused_before_any_connection() {
    let target = hop();
    let kh = known_hosts(target.dir.path(), &[&target]);
    let cfg = target.path("ssh_config_loop");
    std::fs::write(
        &cfg,
        "Host a\n  HostName 127.0.0.1\n  ProxyJump b\n\nHost b\n  HostName 127.0.0.1\n  ProxyJump a\n\nHost gpu-box\n  HostName 127.0.0.1\n  ProxyJump a\n",
    )
    .unwrap();
    let p = profile(
        &target,
        "lp",
        &kh,
        &format!("ssh_config: {}\n", yq(&cfg.to_string_lossy())),
    );
    edit(&p, "host: 127.0.0.1\n", "host: gpu-box\n");
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("loops"), "{j}");
    assert_eq!(j["connections"], 0, "{j}");
}

/// `sbatch ARGS… --wrap SCRIPT`: the job, cancelled when dropped.
fn sbatch(args: &[&str], script: &str) -> Scancel {
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg("--wrap")
        .arg(script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Scancel(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A Slurm job `gp-TAG-PORT` stepping forever into box/TAG.log (`extra`:
/// more sbatch options); unless held, once it has stepped twice.
fn stepping(sshd: &Sshd, tag: &str, extra: &[&str]) -> (String, PathBuf, Scancel) {
    let name = format!("gp-{tag}-{}", sshd.port);
    let log = sshd.box_dir().join(format!("{tag}.log"));
    let mut args = vec!["--oversubscribe", "-J", &name, "-o", "/dev/null"];
    args.extend_from_slice(extra);
    let job = sbatch(
        &args,
        &format!(
            "i=1; while :; do echo step=$i >> {}; i=$((i + 1)); sleep 0.3; done",
            q(&log.to_string_lossy())
        ),
    );
    if !extra.contains(&"--hold") {
        assert!(wait_for(Duration::from_secs(30), || count_in(&log, "step=") >= 2));
    }
    (name, log, job)
}

/// A box whose Slurm job steps see `rows` (the fake nvidia-smi's rows.step)
/// where its login shell sees the usual 97%.
fn slurm_box(rows: &str) -> Sshd {
    let sshd = Sshd::start();
    std::fs::write(sshd.path("gpu/rows.step"), rows).unwrap();
    sshd
}

const STEP_ROW: &str = "0 41 30000 81920 55 NVIDIA-H100 250.0 700.0\n";

struct Scancel(String);
impl Drop for Scancel {
    fn drop(&mut self) {
        let _ = std::process::Command::new("scancel").arg(&self.0).status();
    }
}

fn slurm_profile(sshd: &Sshd, profile: &str, name: &str, log: &Path, extra: &str) -> PathBuf {
    sshd.profile(
        profile,
        &format!(
            "{extra}job:\n  alive: {{ slurm: {name} }}\n  log: {}\n  progress: 'step=(\\d+)'\n  done_marker: {}\n",
            yq(&log.to_string_lossy()),
            yq(&sshd.box_dir().join(format!("{name}.DONE")).to_string_lossy())
        ),
    )
}

#[test]
fn a_slurm_job_shows_the_gpus_of_its_node_not_the_login_nodes() {
    if !slurm_ready() {
        return;
    }
    // the login shell sees 97% (the fake's rows); the job's step sees 41%
    let sshd = slurm_box(STEP_ROW);
    let (name, log, _job) = stepping(&sshd, "node", &[]);
    let p = slurm_profile(&sshd, "on", &name, &log, "");
    let j = tick(&sshd, &p);
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["gpus"][0]["util_pct"], 41.0, "the step's numbers: {j}");
    let host = String::from_utf8_lossy(
        &std::process::Command::new("hostname")
            .arg("-s")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    assert_eq!(j["gpus"][0]["node"], host.as_str(), "{j}");
    assert!(j["line"].as_str().unwrap().contains("gpu0 41%"), "{j}");
    assert!(j["cgroup"]["mem_used_pct"].is_number(), "the node's memory: {j}");

    // the node-side step turned off: the login node's own numbers, as asked
    let off = slurm_profile(&sshd, "off", &name, &log, "slurm: { node_probe: false }\n");
    let j = tick(&sshd, &off);
    assert_eq!(j["gpus"][0]["util_pct"], 97.0, "{j}");

    // an older Slurm without --overlap: said, never the login node's GPUs
    let old = sshd.path("bin/srun");
    std::fs::write(
        &old,
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --overlap) echo \"srun: unrecognized option '--overlap'\" >&2; echo 'Try \"srun --help\" for more information' >&2; exit 1 ;; esac; done\nexec /usr/bin/srun \"$@\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&old)
        .status()
        .unwrap();
    let j = tick(&sshd, &p);
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["gpu_status"], "not-visible", "{j}");
    assert_eq!(j["gpus"].as_array().unwrap().len(), 0, "{j}");
    let line = j["line"].as_str().unwrap();
    assert!(
        line.contains("gpu not visible from the login node: srun --overlap into the job failed")
            && line.contains("unrecognized option"),
        "{line}"
    );
    std::fs::remove_file(&old).unwrap();
}

#[test]
fn a_pending_slurm_job_says_its_gpus_are_not_running_yet() {
    if !slurm_ready() {
        return;
    }
    let sshd = Sshd::start();
    let (name, log, _job) = stepping(&sshd, "held", &["--hold"]);
    let p = slurm_profile(&sshd, "on", &name, &log, "");
    let j = tick(&sshd, &p);
    assert_eq!(j["verdict"], "PENDING", "{j}");
    assert_eq!(j["gpu_status"], "not-visible", "{j}");
    assert!(j["line"].as_str().unwrap().contains("gpu n/a (job not running)"), "{j}");
}

#[test]
fn a_proxy_command_that_fails_hangs_or_would_run_shell_syntax_is_bounded_and_said() {
    let target = hop();
    let kh = known_hosts(target.dir.path(), &[&target]);
    let with_cmd = |name: &str, cmd: &str, host: &str| {
        let cfg = target.path(&format!("ssh_config_{name}"));
        std::fs::write(&cfg, format!("Host *\n  ProxyCommand {cmd}\n")).unwrap();
        let p = profile(
            &target,
            name,
            &kh,
            &format!("ssh_config: {}\n", yq(&cfg.to_string_lossy())),
        );
        edit(&p, "host: 127.0.0.1\n", &format!("host: {}\n", yq(host)));
        p
    };
    // fails at once: its own words are in the message
    let closed = free_port();
    let p = with_cmd(
        "pf",
        &format!("ssh -F none -o BatchMode=yes -p {closed} -W %h:%p root@127.0.0.1"),
        "127.0.0.1",
    );
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(d.contains("the ProxyCommand said:") && d.contains("refused"), "{d}");

    // never speaks: connect_timeout ends it, and the command does not outlive the tick
    // (a shell with a child: the whole group goes, not just the shell)
    let tag = format!("gp-proxy-hang-{}", target.port);
    let script = target.path(&format!("{tag}.sh"));
    std::fs::write(&script, "sleep 600\n").unwrap();
    let p = with_cmd(
        "ph",
        &format!("env GP_PROXY_TAG={tag} sh {} %h", script.display()),
        "127.0.0.1",
    );
    let t = Instant::now();
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    assert!(
        j["detail"]
            .as_str()
            .unwrap()
            .contains("through ProxyCommand within connect_timeout 5s"),
        "{j}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let left = std::process::Command::new("pgrep").args(["-f", &tag]).output().unwrap();
    assert!(left.stdout.is_empty(), "the ProxyCommand outlived the tick");
    // its child too: no `sleep 600` whose parent was that script
    let ps = std::process::Command::new("ps")
        .args(["-eo", "pid,ppid,args"])
        .output()
        .unwrap();
    let sleeping = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.ends_with("sleep 600"))
        .filter(|l| {
            let pid = l.split_whitespace().next().unwrap_or("");
            std::fs::read_to_string(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.contains(&format!("GP_PROXY_TAG={tag}")))
        })
        .count();
    assert_eq!(sleeping, 0, "the ProxyCommand's child outlived the tick");

    // a host that would be shell syntax in the command line is never run
    let flag = target.path("injected");
    let host = format!("x;touch${{IFS}}{}", flag.display());
    let p = with_cmd("pi", "nc %h %p", &host);
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("shell syntax"), "{j}");
    assert!(!flag.exists(), "the host's text ran as a command");
}

#[test]
fn the_profiles_known_hosts_holds_every_hops_key_and_dev_null_never_learns() {
    let target = hop();
    let bastion = hop();
    trust_key_of(&bastion, &target);
    let kh = known_hosts(target.dir.path(), &[&bastion, &target]);
    // a blanket `UserKnownHostsFile /dev/null`, common for cloud boxes: the
    // profile's known_hosts still decides, for the jump host too
    let cfg = target.path("ssh_config_devnull");
    std::fs::write(&cfg, "Host *\n  UserKnownHostsFile /dev/null\n").unwrap();
    let jump = format!(
        "proxy_jump: root@127.0.0.1:{}\nssh_config: {}\n",
        bastion.port,
        yq(&cfg.to_string_lossy())
    );
    let j = tick(&target, &profile(&target, "dn", &kh, &jump));
    assert_eq!(j["verdict"], "DIED", "{j}");
    // a pinned key that differs is CHANGED, whatever the config says
    let impostor = target.dir.path().join("impostor2");
    keygen(&impostor, "ed25519");
    let pinned = target.path("kh_pinned");
    std::fs::write(
        &pinned,
        bastion.known_hosts_line(&impostor.with_extension("pub"))
            + "\n"
            + &std::fs::read_to_string(&target.known_hosts).unwrap(),
    )
    .unwrap();
    let p = profile(&target, "dn2", &pinned, &format!("{jump}host_key_policy: accept-new\n"));
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("CHANGED"), "{j}");
    // accept-new into /dev/null would accept any key every time: refused
    let p = profile(&target, "dn3", Path::new("/dev/null"), "host_key_policy: accept-new\n");
    let j = tick(&target, &p);
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert!(
        j["detail"]
            .as_str()
            .unwrap()
            .contains("not a file that can remember it"),
        "{j}"
    );
    // a FIFO is never opened: the read would wait for a writer past every deadline
    let fifo = target.path("kh_fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let j = tick(
        &target,
        &profile(&target, "dn4", &fifo, "host_key_policy: accept-new\n"),
    );
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(target.accepted(), 1, "only the first tick ran anything");
}

/// The node script, as a job step runs it on one node, with `env`.
fn node_script(env: &[(&str, &str)]) -> String {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("bin")).unwrap();
    std::fs::copy(fixtures().join("fake-nvidia-smi"), d.path().join("bin/nvidia-smi")).unwrap();
    std::fs::write(
        d.path().join("rows"),
        "0 97 70000 81920 60 NVIDIA-A100\n1 12 100 81920 40 NVIDIA-A100\n2 99 70000 81920 60 NVIDIA-A100\n",
    )
    .unwrap();
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(gpupatrol::probe::sections::NODE_LIB)
        .env(
            "PATH",
            format!("{}:{}", d.path().join("bin").display(), std::env::var("PATH").unwrap()),
        )
        .env("GP_FAKE_GPU_DIR", d.path())
        .env("GP_GPU_SAMPLES", "1")
        .env("GP_GPU_INTERVAL", "0.1")
        .env("GP_NODE_CALL_TIMEOUT", "5")
        .env("SLURMD_NODENAME", "n1");
    for (k, v) in env {
        c.env(k, v);
    }
    String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
}

#[test]
fn on_a_shared_node_only_the_jobs_gpus_are_read() {
    let gpus = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix("g 1 0 "))
            .map(|r| r.split(',').next().unwrap().to_string())
            .collect()
    };
    // the job holds GPUs 0 and 2 of three: GPU 1 is another user's
    let out = node_script(&[("SLURM_JOB_GPUS", "0,2")]);
    assert!(out.starts_with("node=n1\n"), "{out}");
    assert_eq!(gpus(&out), ["0", "2"], "{out}");
    // the step's own list wins over the job's
    assert_eq!(
        gpus(&node_script(&[("SLURM_JOB_GPUS", "0,2"), ("SLURM_STEP_GPUS", "2")])),
        ["2"]
    );
    // ids the node's nvidia-smi does not know (renumbered inside a device
    // cgroup): what it shows is the job's
    assert_eq!(gpus(&node_script(&[("SLURM_JOB_GPUS", "5,6")])), ["0", "1", "2"]);
    // no GPU list (no GRES): every GPU it shows
    assert_eq!(gpus(&node_script(&[])), ["0", "1", "2"]);
}

#[test]
fn array_tasks_and_heterogeneous_jobs_are_slurm_jobs_too() {
    if !slurm_ready() {
        return;
    }
    let sshd = slurm_box(STEP_ROW);
    // an array task: squeue calls it 97_1, srun wants its own id
    let (name, log, _arr) = stepping(&sshd, "arr", &["--array=1-1"]);
    let j = tick(&sshd, &slurm_profile(&sshd, "arr", &name, &log, ""));
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["gpus"][0]["util_pct"], 41.0, "the array task's node: {j}");

    // a heterogeneous job, held: its components are 98+0 and 98+1
    let het = format!("gp-het-{}", sshd.port);
    let het_job = sbatch(
        &["--hold", "-J", &het, "-o", "/dev/null", "--wrap", "sleep 100", ":"],
        "sleep 100",
    );
    let hlog = sshd.box_dir().join("het.log");
    let j = tick(&sshd, &slurm_profile(&sshd, "het", &het, &hlog, ""));
    assert_eq!(j["verdict"], "PENDING", "still queued, never DIED: {j}");
    // watched by a component's id, as squeue prints it
    let j = tick(
        &sshd,
        &slurm_profile(&sshd, "hetid", &format!("'{}+0'", het_job.0), &hlog, ""),
    );
    assert_eq!(j["verdict"], "PENDING", "{j}");

    // two jobs of one name, the second waiting on the first (singleton):
    // squeue lists the pending one first, the running one is the run
    let (single, slog, a) = stepping(&sshd, "single", &[]);
    let _b = sbatch(
        &["-J", &single, "--dependency=singleton", "-o", "/dev/null"],
        "sleep 100",
    );
    let sp = slurm_profile(&sshd, "single", &single, &slog, "");
    let j = tick(&sshd, &sp);
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    // suspended by the scheduler: held, not running
    assert!(
        std::process::Command::new("scontrol")
            .args(["suspend", &a.0])
            .status()
            .unwrap()
            .success()
    );
    let j = tick(&sshd, &sp);
    let _ = std::process::Command::new("scontrol").args(["resume", &a.0]).status();
    assert_eq!(j["verdict"], "PENDING", "{j}");
}

#[test]
fn the_callers_own_slurm_settings_never_shape_the_node_step() {
    if !slurm_ready() {
        return;
    }
    // gpupatrol run from inside an allocation of its own (`transport: local`
    // on a login node, from an salloc shell): its SLURM_* must not leak
    let sshd = slurm_box(&format!("{STEP_ROW}1 43 30000 81920 55 NVIDIA-H100 250.0 700.0\n"));
    let (name, log, _job) = stepping(&sshd, "leak", &[]);
    let p = sshd.path("leak.yaml");
    std::fs::write(
        &p,
        format!(
            "name: leak\ntransport: local\ngpu: {{ samples: 1 }}\njob:\n  alive: {{ slurm: {name} }}\n  log: {}\n  progress: 'step=(\\d+)'\n",
            yq(&log.to_string_lossy())
        ),
    )
    .unwrap();
    let mut c = sshd.gpupatrol();
    c.env(
        "PATH",
        format!("{}:{}", sshd.path("bin").display(), std::env::var("PATH").unwrap()),
    )
    .env("GP_FAKE_GPU_DIR", sshd.path("gpu"))
    .env("SLURM_JOB_GPUS", "0")
    .env("SLURM_STEP_GPUS", "0")
    .env("SLURM_NTASKS", "7")
    .args(["tick", "--json", "-p"])
    .arg(&p);
    let j = run(c, Duration::from_secs(60)).one();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["gpus"].as_array().unwrap().len(), 2, "both of the job's GPUs: {j}");
}
