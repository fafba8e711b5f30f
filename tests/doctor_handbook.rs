//! `gpupatrol doctor` against a real box (full and stripped PATH) and the
//! `handbook` rendering.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn doctor_passes_on_a_complete_box_with_one_connection() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    std::fs::write(b.join("dr.log"), "Epoch 1\n").unwrap();
    let p = sshd.run_profile("dr", "train", "");
    let mut c = sshd.gpupatrol();
    c.args(["doctor", "--json", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    let j = r.one();
    let checks = j["checks"].as_array().unwrap();
    let get = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name}: {j}"))
            .clone()
    };
    assert_eq!(get("reachable")["status"], "pass");
    assert!(
        get("host key")["detail"]
            .as_str()
            .unwrap()
            .contains("ssh-ed25519 SHA256:"),
        "{j}"
    );
    assert!(get("auth")["detail"].as_str().unwrap().contains("publickey"), "{j}");
    assert_eq!(get("remote shell")["status"], "pass");
    assert_eq!(get("tool tmux")["status"], "pass");
    assert_eq!(get("tool nvidia-smi")["status"], "pass");
    assert_eq!(get("job.log")["status"], "pass");
    assert_eq!(
        get("job.done_marker")["status"],
        "pass",
        "a marker that is not there yet is fine"
    );
    assert_eq!(get("clock skew")["status"], "pass");
    assert_eq!(get("gpus")["detail"], "nvidia-smi -L lists 1");
    assert!(r.code <= 1, "{}", r.stdout);
    assert_eq!(sshd.accepted(), 1);
    // the human table
    let mut c = sshd.gpupatrol();
    c.args(["doctor", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert!(r.stdout.contains("│ reachable"), "{}", r.stdout);
}

#[test]
fn doctor_names_missing_tools_and_paths() {
    let sshd = Sshd::start_with(Options {
        only_tools: Some(vec![
            "sh", "env", "awk", "sed", "tail", "head", "df", "stat", "date", "readlink", "dirname", "wc", "tr", "cat",
        ]),
        ..Default::default()
    });
    let p = sshd.run_profile("dm", "train", "");
    let mut c = sshd.gpupatrol();
    c.args(["doctor", "--json", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 2, "a required tool is missing: {}", r.stdout);
    let j = r.one();
    let checks = j["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .map(|c| c["status"].clone())
            .unwrap()
    };
    assert_eq!(status("tool tmux"), "fail");
    assert_eq!(status("tool timeout"), "warn");
    assert_eq!(status("tool nvidia-smi"), "warn");
    assert_eq!(status("job.log"), "warn");
    // the probe itself still runs without `timeout`, and says what is wrong
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "PROBE_ERROR", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("tmux not installed"), "{j}");
    assert!(j["disk"]["used_pct"].is_number(), "the other sections still count: {j}");
}

#[test]
fn doctor_on_a_dead_box_and_a_changed_key() {
    let mut sshd = Sshd::start();
    let p = sshd.run_profile("dd", "train", "");
    sshd.known_hosts_with_impostor();
    let mut c = sshd.gpupatrol();
    c.args(["doctor", "--json", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 3);
    assert!(r.stdout.contains("CHANGED"), "{}", r.stdout);
    sshd.stop();
    let mut c = sshd.gpupatrol();
    c.args(["doctor", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains("FAIL") && r.stdout.contains("connection refused"),
        "{}",
        r.stdout
    );
}

#[test]
fn handbook_snapshot() {
    // the example profile with its `~` spelled out: the snapshot must not depend on $HOME
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/a100-box.yaml"))
        .unwrap()
        .replace("~/", "/home/me/");
    let p = gpupatrol::profile::parse(Path::new("/home/me/profiles/a100-box.yaml"), &text).unwrap();
    let mut st = gpupatrol::state::State::new("a100-box");
    st.progress.step = Some(37);
    st.progress.line = Some("Epoch 37 loss 0.41".into());
    st.log.offset = 123456;
    st.log.inode = 42;
    st.last = Some(gpupatrol::state::LastTick {
        ts: "2026-11-24T12:00:03Z".into(),
        verdict: Some(gpupatrol::verdict::Verdict::Running),
        step: Some(37),
        box_now: Some(1),
    });
    let text = gpupatrol::commands::handbook::render(
        &p,
        &st,
        "2026-11-24T12:05:00Z",
        "gpupatrol",
        Path::new("/home/me/.local/state/gpupatrol"),
        Path::new("/home/me/profiles/a100-box.yaml"),
    );
    insta::assert_snapshot!("handbook_a100", text);
}

#[test]
fn handbook_writes_a_file() {
    let sshd = Sshd::start();
    let p = sshd.run_profile(
        "hb",
        "train",
        "  resume: 'tmux new -d -s train \"python train.py --resume latest\"'\n",
    );
    let out = sshd.path("HANDBOOK.md");
    let mut c = sshd.gpupatrol();
    c.args(["handbook", "-o"]).arg(&out).arg("-p").arg(&p);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("python train.py --resume latest"));
    assert!(text.contains("## First thing on reconnect"));
    assert!(text.contains(&sshd.state_dir().canonicalize().unwrap().display().to_string()));
}

#[test]
fn doctor_checks_the_tools_the_profiles_chain_will_use() {
    let base = vec![
        "sh", "env", "awk", "sed", "tail", "head", "df", "stat", "date", "readlink", "dirname", "wc", "tr", "cat",
        "cut", "cksum", "nohup",
    ];
    let sshd = Sshd::start_with(Options {
        only_tools: Some(base),
        ..Default::default()
    });
    let doctor = |name: &str, chain: &str| {
        let p = sshd.profile(
            name,
            &format!(
                "chain:\n  dir: {}\n{chain}",
                yq(&sshd.box_dir().join(format!("{name}-chain")).to_string_lossy())
            ),
        );
        let mut c = sshd.gpupatrol();
        c.args(["doctor", "--json", "-p"]).arg(&p);
        let r = run(c, Duration::from_secs(30));
        let j = r.one();
        let rows: Vec<(String, String, String)> = j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["check"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                    c["detail"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (r.code, rows)
    };
    let row = |rows: &[(String, String, String)], n: &str| rows.iter().find(|r| r.0 == n).cloned();
    let (code, rows) = doctor(
        "dsl",
        "  detach: slurm\n  stages:\n    - { name: train, run: 'python t.py' }\n",
    );
    assert_eq!(code, 2);
    for t in ["tool sbatch", "tool squeue", "tool scancel"] {
        assert_eq!(row(&rows, t).unwrap().1, "fail", "{t}: {rows:?}");
    }
    assert!(row(&rows, "tool flock").is_none(), "nothing uses flock");
    let (_, rows) = doctor(
        "dtm",
        "  detach: tmux\n  stages:\n    - { name: train, run: 'python t.py' }\n",
    );
    assert_eq!(row(&rows, "tool tmux").unwrap().1, "fail", "{rows:?}");
    let (code, rows) = doctor(
        "dto",
        "  stages:\n    - { name: train, run: 'python t.py', timeout: 2h }\n",
    );
    assert_eq!(code, 2);
    let t = row(&rows, "tool timeout").unwrap();
    assert_eq!(t.1, "fail");
    assert!(t.2.contains("stage timeouts are ignored"), "{t:?}");
    assert_eq!(row(&rows, "tool setsid").unwrap().1, "warn");
}

#[test]
fn every_command_the_handbook_prints_runs_as_printed() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    // a finished run with a chain, watched by done text only
    std::fs::write(b.join("hc.log"), "Epoch 1\nEpoch 2\nTraining completed\n").unwrap();
    let p = sshd.profile(
        "hc",
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\n  done_pattern: 'Training completed'\nchain:\n  dir: {}\n  stages:\n    - {{ name: train, run: 'echo trained' }}\n",
            yq(&b.join("hc.log").to_string_lossy()),
            yq(&b.join("hc-chain").to_string_lossy()),
        ),
    );
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "DONE");
    let mut c = sshd.gpupatrol();
    c.args(["handbook", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(20));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = r.stdout;
    assert!(!text.contains("No on-box chain"), "the profile has a chain:\n{text}");
    assert!(text.contains("--pattern 'Training completed'"), "{text}");
    assert!(!text.contains("--marker PATH"), "{text}");
    // every command in backticks that starts with gpupatrol or ssh
    let spans: Vec<&str> = text
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .filter(|s| s.starts_with(&format!("'{BIN}'")) || s.starts_with(BIN) || s.starts_with("ssh "))
        .collect();
    assert!(spans.len() >= 8, "{spans:?}");
    for cmd in spans {
        let cmd = if cmd.starts_with("ssh ") {
            // the login line, made non-interactive
            format!("{cmd} -o BatchMode=yes true")
        } else {
            cmd.to_string()
        };
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(&cmd)
            .env("HOME", sshd.path("home"))
            .env_remove("SSH_AUTH_SOCK");
        let r = run(sh, Duration::from_secs(60));
        assert!(
            !r.stderr.contains("error:") && !r.stderr.contains("Syntax error") && !r.stderr.contains("not found"),
            "{cmd}\n{}",
            r.stderr
        );
        // a finished run: every command answers ok (0) or "nothing found" (1), never a usage error (3)
        assert!(
            r.code == 0 || r.code == 1,
            "{cmd}: exit {}\n{}{}",
            r.code,
            r.stdout,
            r.stderr
        );
        if cmd.starts_with("ssh ") {
            assert_eq!(r.code, 0, "{cmd}: {}", r.stderr);
        }
    }
}
