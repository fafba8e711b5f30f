//! Profile values reach the box verbatim; every credential kind and the
//! `~/.ssh/config` alias work; `check`, `demo` and usage errors keep the contract.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn nasty_paths_arrive_verbatim() {
    let sshd = Sshd::start();
    let dir = sshd.box_dir().join("we'ird $(touch PWNED) `id` |x| dir\nnl");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("train log's $HOME.txt");
    let done = dir.join("DONE $(id)");
    let ckpt = dir.join("ckpt | tee");
    std::fs::create_dir_all(&ckpt).unwrap();
    for i in 0..3 {
        std::fs::write(ckpt.join(format!("c{i}")), "").unwrap();
    }
    std::fs::write(&log, "Epoch 1 | a\nEpoch 7 $(x) `y`\n").unwrap();
    let p = sshd.profile(
        "nasty",
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\n  done_marker: {}\n  done_pattern: 'a|b \"$(id)\"'\nartifacts:\n  - {{ path: {}, expect_count: 3 }}\ndata_mount: {}\n",
            yd(&log.to_string_lossy()),
            yd(&done.to_string_lossy()),
            yd(&ckpt.to_string_lossy()),
            yd(&dir.to_string_lossy()),
        ),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["progress"]["step"], 7);
    assert!(j["disk"]["used_pct"].is_number(), "{j}");
    assert!(!sshd.path("home/PWNED").exists() && !std::path::Path::new("/root/PWNED").exists());
    // the done pattern is literal text: `|` is not alternation, `$(id)` not a command
    std::fs::write(&log, "Epoch 1 | a\nEpoch 7\nsaw a|b \"$(id)\" here\n").unwrap();
    std::fs::write(&done, "").unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DONE", "{j}");
}

#[test]
fn pgrep_alive_never_matches_the_probe_and_pipes_are_alternation() {
    let sshd = Sshd::start();
    let log = sshd.box_dir().join("pg.log");
    std::fs::write(&log, "Epoch 1\n").unwrap();
    // no job at all: a pattern that would match the probe's own text must not
    // (other tests' probes run concurrently: they must not match either)
    let p = sshd.profile(
        "pg",
        &format!("job:\n  alive: {{ pgrep: 'gp_alive|GP_LIB|gp-probe|timeout -k 2' }}\n  log: {}\n  progress: 'Epoch (\\d+)'\n", yq(&log.to_string_lossy())),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED", "the probe matched itself: {j}");
    // a real job, matched through an alternation
    let script = sshd.box_dir().join("train.py");
    std::fs::write(&script, "sleep 30\n").unwrap();
    let mut job = Command::new("sh")
        .arg(&script)
        .args(["--run", "pgtest"])
        .spawn()
        .unwrap();
    let p2 = sshd.profile(
        "pg2",
        &format!(
            "job:\n  alive: {{ pgrep: 'nomatch|train.py --run pgtest' }}\n  log: {}\n  progress: 'Epoch (\\d+)'\n",
            yq(&log.to_string_lossy())
        ),
    );
    // the job is up: its command line is visible to pgrep
    assert!(wait_for(Duration::from_secs(5), || std::process::Command::new("pgrep")
        .args(["-f", "train.py --run pgtest"])
        .output()
        .is_ok_and(|o| o.status.success())));
    let j = tick_json(&sshd, &p2).one();
    let _ = job.kill();
    let _ = job.wait();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
}

#[test]
fn pidfile_alive_and_done_text_in_the_master_log() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("m.log");
    let master = b.join("all.log");
    std::fs::write(&log, "Epoch 4\n").unwrap();
    std::fs::write(&master, "run A: Training completed\n").unwrap();
    let mut job = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(b.join("job.pid"), format!("{}\n", job.id())).unwrap();
    let p = sshd.profile(
        "m",
        &format!(
            "job:\n  alive: {{ pidfile: {} }}\n  log: {}\n  master_log: {}\n  progress: 'Epoch (\\d+)'\n  done_pattern: 'run B: Training completed'\n",
            yq(&b.join("job.pid").to_string_lossy()),
            yq(&log.to_string_lossy()),
            yq(&master.to_string_lossy()),
        ),
    );
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "RUNNING");
    let _ = job.kill();
    let _ = job.wait();
    std::fs::write(&master, "run A: Training completed\nrun B: Training completed\n").unwrap();
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "DONE");
    // the master log goes on (another run appends); DONE stays DONE
    std::fs::write(
        &master,
        "run A: Training completed\nrun B: Training completed\nrun C: Epoch 1\n",
    )
    .unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DONE", "{j}");
    assert_eq!(j["changed"], false);
}

#[test]
fn done_marker_with_short_artifacts_is_incomplete() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let ckpt = b.join("ckpt");
    std::fs::create_dir_all(ckpt.join("a-directory-left-by-a-killed-copy")).unwrap();
    std::fs::write(b.join("i.DONE"), "").unwrap();
    std::fs::write(b.join("i.log"), "Epoch 10\n").unwrap();
    let p = sshd.run_profile(
        "i",
        "gone",
        &format!(
            "artifacts:\n  - {{ path: {}, expect_count: 10 }}\n",
            yq(&ckpt.to_string_lossy())
        ),
    );
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 1);
    let j = r.one();
    assert_eq!(j["verdict"], "INCOMPLETE", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("1/10"));
}

#[test]
fn rsa_ecdsa_and_agent_credentials() {
    let sshd = Sshd::start();
    for kind in ["ecdsa", "rsa"] {
        let key = sshd.path(&format!("id_{kind}"));
        keygen(&key, kind);
        let mut auth = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
        auth.push_str(&std::fs::read_to_string(key.with_extension("pub")).unwrap());
        std::fs::write(sshd.path("authorized_keys"), auth).unwrap();
        let p = sshd.profile(&format!("k-{kind}"), "job:\n  alive: { tmux: none }\n");
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace(&yq(&sshd.user_key.to_string_lossy()), &yq(&key.to_string_lossy()));
        std::fs::write(&p, text).unwrap();
        let j = tick_json(&sshd, &p).one();
        if kind == "rsa" {
            // never signed in-process (RUSTSEC-2023-0071): the message says what to do
            assert_eq!(j["verdict"], "AUTH_FAILED", "{kind}: {j}");
            assert!(j["detail"].as_str().unwrap().contains("load it into ssh-agent"), "{j}");
        } else {
            assert_eq!(j["verdict"], "DIED", "{kind}: {j}");
        }
    }
    // ssh-agent: no identity_file in the profile
    let sock = sshd.path("agent.sock");
    let agent = Command::new("ssh-agent").arg("-a").arg(&sock).output().unwrap();
    assert!(agent.status.success());
    let agent_pid: String = String::from_utf8_lossy(&agent.stdout)
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap()
        .to_string();
    // the RSA key works through the agent (the agent signs)
    let add = Command::new("ssh-add")
        .arg(sshd.path("id_rsa"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let p = sshd.profile("k-agent", "job:\n  alive: { tmux: none }\n");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("identity_file"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&p, text).unwrap();
    let mut c = sshd.gpupatrol();
    c.env("SSH_AUTH_SOCK", &sock).args(["tick", "--json", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    let _ = Command::new("kill").arg(&agent_pid).status();
    assert_eq!(r.one()["verdict"], "DIED", "{}", r.stdout);
}

#[test]
fn host_alias_from_ssh_config() {
    let sshd = Sshd::start();
    let cfg = sshd.path("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n",
            sshd.port,
            sshd.user_key.display()
        ),
    )
    .unwrap();
    let p = sshd.path("alias.yaml");
    std::fs::write(
        &p,
        format!(
            "name: alias\nhost: gpu-box\nssh_config: {}\nknown_hosts: {}\ngpu: {{ samples: 1 }}\njob:\n  alive: {{ tmux: none }}\n",
            yq(&cfg.to_string_lossy()),
            yq(&sshd.known_hosts.to_string_lossy())
        ),
    )
    .unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert_eq!(sshd.accepted(), 1);
}

#[test]
fn check_names_file_line_and_key_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\nhost: h\njob:\n  log: /l\n  stall_after: 15 minutes\n").unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "name: g\nhost: h\njob:\n  alive: { tmux: t }\n  done_marker: /d\n",
    )
    .unwrap();
    let mut c = Command::new(BIN);
    c.args(["check", "-p"]).arg(&bad).arg("-p").arg(&good);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains(&format!("{}:5: job.stall_after: invalid duration", bad.display())),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("ok ") && r.stdout.contains("(g)"), "{}", r.stdout);
    // a profile error in tick is unknown (3), never critical
    let mut c = Command::new(BIN);
    c.args(["--state-dir"]).arg(dir.path()).args(["tick", "-p"]).arg(&bad);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3);
    let mut c = Command::new(BIN);
    c.args(["tick", "--bogus-flag"]);
    assert_eq!(run(c, Duration::from_secs(10)).code, 3, "usage errors are unknown (3)");
    let mut c = Command::new(BIN);
    c.args(["check", "-p"]).arg(dir.path().join("missing.yaml"));
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("missing.yaml"), "{}", r.stderr);
}

#[test]
fn demo_shows_running_done_and_a_classified_crash() {
    // a shared /tmp where another user planted the old, guessable demo folders
    let tmp = tempfile::tempdir().unwrap();
    let planted = tmp.path().join("planted");
    std::fs::create_dir_all(&planted).unwrap();
    for pid in 1..=4u32 {
        let _ = std::os::unix::fs::symlink(&planted, tmp.path().join(format!("gpupatrol-demo-{pid}")));
    }
    let mut c = Command::new(BIN);
    c.env("TMPDIR", tmp.path()).args(["demo", "--interval", "0.4"]);
    let r = run(c, Duration::from_secs(60));
    assert!(
        std::fs::read_dir(&planted).unwrap().next().is_none(),
        "nothing was written through a planted folder"
    );
    let used = r
        .stdout
        .split("lived in ")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string();
    let suffix = used.rsplit('-').next().unwrap_or("");
    assert!(
        suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
        "a random name: {used}"
    );
    assert!(!std::path::Path::new(&used).exists(), "removed at the end");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" demo-finish RUNNING step"), "{}", r.stdout);
    assert!(r.stdout.contains(" demo-finish DONE"), "{}", r.stdout);
    assert!(r.stdout.contains(" demo-crash CRASHED cuda_oom"), "{}", r.stdout);
    assert!(r.stdout.contains("# triage: cuda_oom"), "{}", r.stdout);
}

#[test]
fn a_proxy_command_in_the_ssh_config_is_used_never_ignored() {
    let sshd = Sshd::start();
    let cfg = sshd.path("ssh_config_pc");
    // the config reaches the box through a proxy (a SOCKS proxy that is not
    // there); connecting directly instead would reach another host
    std::fs::write(
        &cfg,
        format!(
            "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  ProxyCommand nc -x 127.0.0.1:1080 %h %p\n",
            sshd.port,
            sshd.user_key.display()
        ),
    )
    .unwrap();
    let p = sshd.path("pc.yaml");
    std::fs::write(
        &p,
        format!(
            "name: pc\nhost: gpu-box\nssh_config: {}\nknown_hosts: {}\ngpu: {{ samples: 1 }}\njob:\n  alive: {{ tmux: none }}\n",
            yq(&cfg.to_string_lossy()),
            yq(&sshd.known_hosts.to_string_lossy())
        ),
    )
    .unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    // the proxy's own words (nc cannot reach its proxy, or there is no nc)
    assert!(j["detail"].as_str().unwrap().contains("the ProxyCommand said: "), "{j}");
    assert_eq!(sshd.accepted(), 0, "no direct connection instead");
}

/// A profile for host `gpu-box` read through the ssh config `cfg` (`known` as
/// known_hosts, or none: the config's own).
fn via_config(sshd: &Sshd, name: &str, cfg_text: &str, known: Option<&std::path::Path>) -> std::path::PathBuf {
    let cfg = sshd.path(&format!("ssh_config_{name}"));
    std::fs::write(&cfg, cfg_text).unwrap();
    let p = sshd.path(&format!("{name}.yaml"));
    let kh = known
        .map(|k| format!("known_hosts: {}\n", yq(&k.to_string_lossy())))
        .unwrap_or_default();
    std::fs::write(
        &p,
        format!(
            "name: {name}\nhost: gpu-box\nssh_config: {}\n{kh}gpu: {{ samples: 1 }}\njob:\n  alive: {{ tmux: none }}\n",
            yq(&cfg.to_string_lossy()),
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_match_block_that_may_apply_is_refused_and_one_for_another_host_is_not_misfiled() {
    let sshd = Sshd::start();
    let host = format!(
        "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n",
        sshd.port,
        sshd.user_key.display()
    );
    // a proxy that applies through Match: connecting directly would bypass it
    let p = via_config(
        &sshd,
        "mp",
        &format!("{host}Match host 127.0.0.1\n  ProxyCommand nc -x 127.0.0.1:1080 %h %p\n"),
        Some(&sshd.known_hosts),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    let d = j["detail"].as_str().unwrap();
    assert!(
        d.contains("line 7") && d.contains("Match block at line 6 applies to gpu-box"),
        "{j}"
    );
    assert_eq!(sshd.accepted(), 0, "no direct connection instead");
    // `exec` cannot be told here: refused too
    let p = via_config(
        &sshd,
        "me",
        &format!("{host}Match exec \"test -e /nonexistent\"\n  Port 1\n"),
        Some(&sshd.known_hosts),
    );
    let j = tick_json(&sshd, &p).one();
    assert!(j["detail"].as_str().unwrap().contains("may apply to gpu-box"), "{j}");
    // a Match for another host is neither refused nor filed under the Host before it
    let p = via_config(
        &sshd,
        "mo",
        &format!("{host}Match host other.corp\n  Port 1\n  User nobody\n"),
        Some(&sshd.known_hosts),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED", "{j}");
}

#[test]
fn host_key_alias_and_user_known_hosts_file_from_the_ssh_config() {
    let sshd = Sshd::start();
    // the key recorded under the alias, in a file the config names
    let pubkey = std::fs::read_to_string(sshd.host_key.with_extension("pub")).unwrap();
    let mut w = pubkey.split_whitespace();
    let (alg, b64) = (w.next().unwrap(), w.next().unwrap());
    let kh = sshd.path("kh_alias");
    std::fs::write(&kh, format!("Box-Seven {alg} {b64}\n")).unwrap();
    let p = via_config(
        &sshd,
        "ha",
        &format!(
            "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  HostKeyAlias box-seven\n  UserKnownHostsFile {}\n",
            sshd.port,
            sshd.user_key.display(),
            kh.display()
        ),
        None,
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED", "strict, known under its alias: {j}");
}

#[test]
fn every_user_known_hosts_file_the_ssh_config_names_is_read() {
    // OpenSSH reads each UserKnownHostsFile and writes to the first: a host
    // recorded only in the second is known, never learned anew
    let sshd = Sshd::start();
    let other = sshd.path("other_key");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut w = wrong.split_whitespace();
    let (alg, b64) = (w.next().unwrap(), w.next().unwrap());
    let first = sshd.path("kh_first");
    let second = sshd.path("kh_second");
    std::fs::write(&second, format!("[127.0.0.1]:{} {alg} {b64}\n", sshd.port)).unwrap();
    let p = via_config(
        &sshd,
        "kh2",
        &format!(
            "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  UserKnownHostsFile {} {}\n",
            sshd.port,
            sshd.user_key.display(),
            first.display(),
            second.display()
        ),
        None,
    );
    let text = std::fs::read_to_string(&p).unwrap() + "host_key_policy: accept-new\n";
    std::fs::write(&p, text).unwrap();
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert_eq!(sshd.accepted(), 0, "nothing ran");
    assert!(!first.exists(), "the changed key was not learned into the first file");
}
