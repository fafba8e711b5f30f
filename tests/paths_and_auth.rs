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
    std::thread::sleep(Duration::from_millis(200));
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
    for kind in ["rsa", "ecdsa"] {
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
        assert_eq!(j["verdict"], "DIED", "{kind}: {j}");
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
    let add = Command::new("ssh-add")
        .arg(&sshd.user_key)
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
    let mut c = Command::new(BIN);
    c.args(["demo", "--interval", "0.4"]);
    let r = run(c, Duration::from_secs(60));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(" demo-finish RUNNING step"), "{}", r.stdout);
    assert!(r.stdout.contains(" demo-finish DONE"), "{}", r.stdout);
    assert!(r.stdout.contains(" demo-crash CRASHED cuda_oom"), "{}", r.stdout);
    assert!(r.stdout.contains("# triage: cuda_oom"), "{}", r.stdout);
}
