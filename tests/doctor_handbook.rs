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
    let p = gpupatrol::profile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/a100-box.yaml")).unwrap();
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
