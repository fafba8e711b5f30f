//! What a hostile box, a hostile log line or another local user can make
//! gpupatrol do — against a real sshd: host key rules as OpenSSH's, escape
//! sequences stripped, private files, no secret in JSON, no overflow.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

fn accept_new(sshd: &Sshd, name: &str) -> std::path::PathBuf {
    let p = sshd.run_profile(name, "train", "");
    let text = std::fs::read_to_string(&p).unwrap() + "host_key_policy: accept-new\n";
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn accept_new_refuses_a_known_host_offering_another_key_type() {
    // known_hosts has the box's ed25519 key; the box now offers only ECDSA
    let sshd = Sshd::start_with(Options {
        host_keys: vec!["ecdsa"],
        ..Default::default()
    });
    let impostor = sshd.path("old_ed25519");
    keygen(&impostor, "ed25519");
    std::fs::write(
        &sshd.known_hosts,
        sshd.known_hosts_line(&impostor.with_extension("pub")) + "\n",
    )
    .unwrap();
    let before = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    for policy in ["strict", "accept-new"] {
        let p = if policy == "strict" {
            sshd.run_profile("kt", "train", "")
        } else {
            accept_new(&sshd, "kt")
        };
        let j = tick_json(&sshd, &p).one();
        assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{policy}: {j}");
        assert!(j["detail"].as_str().unwrap().contains("CHANGED"), "{j}");
        assert!(j["detail"].as_str().unwrap().contains("ssh-ed25519 at "), "{j}");
        assert!(j["detail"].as_str().unwrap().contains("known_hosts line 1"), "{j}");
    }
    assert_eq!(
        std::fs::read_to_string(&sshd.known_hosts).unwrap(),
        before,
        "nothing was learned"
    );
    assert!(!sshd.log().contains("Starting session"), "nothing ran");
}

#[test]
fn a_host_with_several_keys_is_asked_for_the_recorded_type() {
    // ed25519 and ECDSA on the box; only the ECDSA one is recorded
    let sshd = Sshd::start_with(Options {
        host_keys: vec!["ed25519", "ecdsa"],
        ..Default::default()
    });
    std::fs::write(
        &sshd.known_hosts,
        sshd.known_hosts_line(&sshd.extra_host_key_pub(1)) + "\n",
    )
    .unwrap();
    let p = sshd.run_profile("km", "train", "");
    let j = tick_json(&sshd, &p).one();
    assert_ne!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
}

#[test]
fn a_revoked_key_is_refused_and_never_learned() {
    let sshd = Sshd::start();
    let real = sshd.known_hosts_line(&sshd.host_key.with_extension("pub"));
    let (kind, b64) = {
        let mut w = real.split_whitespace().skip(1);
        (w.next().unwrap().to_string(), w.next().unwrap().to_string())
    };
    for (policy, known) in [("strict", format!("{real}\n")), ("accept-new", String::new())] {
        std::fs::write(&sshd.known_hosts, format!("{known}@revoked * {kind} {b64}\n")).unwrap();
        let p = if policy == "strict" {
            sshd.run_profile("kr", "train", "")
        } else {
            accept_new(&sshd, "kr")
        };
        let j = tick_json(&sshd, &p).one();
        assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{policy}: {j}");
        assert!(j["detail"].as_str().unwrap().contains("REVOKED"), "{j}");
        let kh = std::fs::read_to_string(&sshd.known_hosts).unwrap();
        assert_eq!(
            kh.lines().count(),
            known.lines().count() + 1,
            "{policy}: not learned: {kh}"
        );
    }
    // a host trusted only through a CA: certificates are not supported, said plainly
    std::fs::write(
        &sshd.known_hosts,
        format!("@cert-authority [127.0.0.1]:* {kind} {b64}\n"),
    )
    .unwrap();
    let p = accept_new(&sshd, "kc");
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert!(
        j["detail"]
            .as_str()
            .unwrap()
            .contains("does not support host certificates"),
        "{j}"
    );
}

#[test]
fn accept_new_creates_a_private_ssh_folder() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    let kh = home.path().join(".ssh/known_hosts");
    let p = accept_new(&sshd, "kp");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(&yq(&sshd.known_hosts.to_string_lossy()), &yq(&kh.to_string_lossy()));
    std::fs::write(&p, text).unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_ne!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(kh.parent().unwrap()), 0o700);
    assert_eq!(mode(&kh), 0o600);
}

/// Terminal escapes a hostile log line carries: clear screen, a title, an
/// OSC 52 clipboard write, an OSC 8 link, a C1 CSI.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}\u{1b}]52;c;Y3VybCB4fHNo\u{1b}\\\u{1b}]8;;http://evil\u{1b}\\click\u{1b}]8;;\u{1b}\\\u{9b}31m";

fn no_escapes(what: &str, s: &str) {
    assert!(
        !s.chars().any(|c| c == '\u{1b}' || c == '\u{9b}' || c == '\u{7}'),
        "{what} carries an escape sequence: {s:?}"
    );
}

#[test]
fn escape_sequences_from_the_log_never_reach_the_terminal() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let log = b.join("es.log");
    std::fs::write(
        &log,
        format!("Epoch 1 {HOSTILE}\nEpoch 2 loss {HOSTILE}\nTraceback (most recent call last):\n  File \"t.py\", line 1\ntorch.OutOfMemoryError: CUDA out of memory {HOSTILE}\n"),
    )
    .unwrap();
    let alerts = sshd.path("alert.txt");
    let p = sshd.run_profile(
        "es",
        "nosession",
        &format!(
            "alert:\n  command: {}\n",
            yd(&format!(
                "printf '%s' \"$GPUPATROL_LINE\" > {}",
                q(&alerts.to_string_lossy())
            ))
        ),
    );
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert!(r.stdout.contains(" es CRASHED cuda_oom"), "{}", r.stdout);
    no_escapes("the tick line", &r.stdout);
    no_escapes("the alert's GPUPATROL_LINE", &std::fs::read_to_string(&alerts).unwrap());
    // JSON escapes what it carries; its human line is plain
    let j = tick_json(&sshd, &p).one();
    no_escapes("the JSON line field", j["line"].as_str().unwrap());
    for args in [vec!["triage", "-p"], vec!["handbook", "-p"]] {
        let mut c = sshd.gpupatrol();
        c.args(&args).arg(&p);
        let r = run(c, Duration::from_secs(30));
        no_escapes(&args.join(" "), &r.stdout);
    }
    let mut c = sshd.gpupatrol();
    c.args(["triage", "--log"]).arg(&log);
    let r = run(c, Duration::from_secs(30));
    assert!(r.stdout.contains("cuda_oom"), "{}", r.stdout);
    no_escapes("triage --log", &r.stdout);
}

#[test]
fn a_chain_stage_result_with_escapes_is_printed_plain() {
    let sshd = Sshd::start();
    let dir = sshd.box_dir().join("ec-chain");
    let p = sshd.profile(
        "ec",
        &format!(
            "chain:\n  dir: {}\n  stages:\n    - {{ name: train, run: {} }}\n",
            yq(&dir.to_string_lossy()),
            yq(r"printf 'acc=0.9 \033[2J\033]0;owned\007\033]52;c;Y3VybA==\033\\ done\n'")
        ),
    );
    let mut c = sshd.gpupatrol();
    c.args(["chain", "install", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(wait_for(Duration::from_secs(10), || dir.join("DONE").exists()));
    assert!(
        std::fs::read(dir.join("train.result")).unwrap().contains(&0x1b),
        "the box holds the escapes"
    );
    let mut c = sshd.gpupatrol();
    c.args(["chain", "status", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert!(r.stdout.contains("acc=0.9"), "{}", r.stdout);
    no_escapes("chain status", &r.stdout);
}

#[test]
fn one_enormous_carriage_return_line_does_not_blind_the_scan() {
    let sshd = Sshd::start();
    let log = sshd.box_dir().join("big.log");
    // 48 MB of a tqdm bar redrawn with `\r` only: one "line" to a line reader
    let mut bar = String::with_capacity(49 << 20);
    let mut i = 0u64;
    while bar.len() < 48 << 20 {
        bar.push_str(&format!(
            "\rEpoch {}: {:3}%|#####     | {i}/100000 [00:10<00:30, 3.30it/s]",
            i / 1000,
            i % 100
        ));
        i += 1;
    }
    std::fs::write(&log, &bar).unwrap();
    let p = sshd.profile(
        "big",
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\nlog_scan_max_mb: 64\n",
            yq(&log.to_string_lossy())
        ),
    );
    let j = tick_json(&sshd, &p).one();
    let last = (i - 1) / 1000;
    let step = j["progress"]["step"].as_u64().unwrap_or_else(|| panic!("no step: {j}"));
    assert!(step == last || step + 1 == last, "step {step}, last bar {last}: {j}");
    assert!(
        !j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("timed out")),
        "{j}"
    );
    // the offset moved: the next bars are read, not the 48 MB again
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sshd.state_dir().join("big.json")).unwrap()).unwrap();
    assert!(state["log"]["offset"].as_u64().unwrap() > 40 << 20, "{state}");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    write!(
        f,
        "\rEpoch {}: 1%|          | 1/100000\rEpoch {}: 2%|",
        last + 5,
        last + 5
    )
    .unwrap();
    drop(f);
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["progress"]["step"], last + 5, "{j}");
}

#[test]
fn local_files_are_private_and_json_carries_no_resume_secret() {
    let sshd = Sshd::start();
    let p = sshd.run_profile(
        "pf",
        "nosession",
        "  resume: 'HF_TOKEN=hf_secret123 nohup python train.py --resume latest &'\n",
    );
    let state = sshd.path("fresh/state");
    let trace = sshd.path("fresh/trace");
    let mut c = std::process::Command::new(BIN);
    c.env_remove("SSH_AUTH_SOCK")
        .env("GPUPATROL_TRACE_DIR", &trace)
        .arg("--state-dir")
        .arg(&state)
        .args(["tick", "--json", "-p"])
        .arg(&p);
    let r = run(c, Duration::from_secs(30));
    let j = r.one();
    assert_eq!(j["verdict"], "DIED", "{j}");
    assert!(j.get("resume").is_none(), "{j}");
    assert!(
        !r.stdout.contains("hf_secret123"),
        "a token in job.resume reached the JSON: {}",
        r.stdout
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("pf.json")), 0o600);
    assert_eq!(mode(&state.join("pf.lock")), 0o600);
    assert_eq!(mode(&trace), 0o700);
    assert_eq!(mode(&trace.join("pf.out")), 0o600);
}

#[test]
fn files_are_never_written_through_a_planted_link() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    let flag = dir.path().join("alert.flag");
    let book = dir.path().join("handbook.md");
    // the names the old code wrote through: FILE.tmp
    std::os::unix::fs::symlink(&victim, flag.with_extension("tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, book.with_extension("tmp")).unwrap();
    let p = sshd.run_profile(
        "pl",
        "nosession",
        &format!("alert:\n  flag_file: {}\n", yq(&flag.to_string_lossy())),
    );
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED");
    assert!(std::fs::read_to_string(&flag).unwrap().contains(" pl DIED "));
    let mut c = sshd.gpupatrol();
    c.args(["handbook", "-o"]).arg(&book).arg("-p").arg(&p);
    assert_eq!(run(c, Duration::from_secs(20)).code, 0);
    assert!(
        std::fs::read_to_string(&book)
            .unwrap()
            .starts_with("# Recovery handbook: pl")
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep\n",
        "the victim is untouched"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&flag), 0o600);
}

#[test]
fn a_state_or_trace_folder_that_belongs_to_another_user_is_never_written_into() {
    // another user made the folder first (a shared /tmp); needs root to hand it over
    let me = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    if me != 0 && !peer_missing("root (to give a folder to another user with chown)") {
        return;
    }
    let sshd = Sshd::start();
    let p = sshd.run_profile("fo", "train", "");
    let theirs = sshd.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(
        std::process::Command::new("chown")
            .args(["65534:65534"])
            .arg(&theirs)
            .status()
            .unwrap()
            .success()
    );
    let mut c = std::process::Command::new(BIN);
    c.arg("--state-dir").arg(&theirs).args(["tick", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not to you"), "{}", r.stderr);
    let mut c = sshd.gpupatrol();
    c.env("GPUPATROL_TRACE_DIR", &theirs).args(["tick", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert!(r.code < 3, "the tick itself runs: {}{}", r.stdout, r.stderr);
    assert!(
        std::fs::read_dir(&theirs).unwrap().next().is_none(),
        "a probe trace was written into another user's folder"
    );
}
