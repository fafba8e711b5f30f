//! `gpupatrol init` end to end against a real sshd: the profile it writes,
//! the doctor checks and the first tick; never an overwrite without --force.

mod common;

use std::time::Duration;

use common::*;

fn init(sshd: &Sshd, home: &std::path::Path, args: &[&str]) -> Run {
    let mut c = sshd.gpupatrol();
    // a home of its own: no ~/.ssh of the machine running the test is read or written
    c.env("HOME", home).env_remove("SSH_AUTH_SOCK").arg("init").args(args);
    run(c, Duration::from_secs(60))
}

#[test]
fn init_writes_a_profile_checks_the_box_and_ticks_once() {
    let sshd = Sshd::start();
    let home = tempfile::tempdir().unwrap();
    sshd.start_job("train", &sshd.box_dir().join("in.log"), "forever", 0, "0.2", None, None);
    assert!(wait_for(Duration::from_secs(10), || count_in(
        &sshd.box_dir().join("in.log"),
        "Epoch 2"
    ) >= 1));
    let out = sshd.path("in.yaml");
    let kh = sshd.path("init_known_hosts");
    let dest = format!("root@127.0.0.1:{}", sshd.port);
    let log = sshd.box_dir().join("in.log");
    let key = sshd.user_key.to_string_lossy().to_string();
    let args = [
        dest.as_str(),
        "--name",
        "in",
        "--alive",
        "tmux:train",
        "--log",
        log.to_str().unwrap(),
        "-i",
        key.as_str(),
        "--known-hosts",
        kh.to_str().unwrap(),
        "--accept-new",
        "-o",
        out.to_str().unwrap(),
    ];
    let r = init(&sshd, home.path(), &args);
    // 1: the doctor's warning that the host key was new and is now recorded
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with(&format!("wrote {}", out.display())),
        "{}",
        r.stdout
    );
    // the doctor's table, then the first tick's line
    assert!(r.stdout.contains("gpupatrol doctor: in"), "{}", r.stdout);
    assert!(r.stdout.contains("was not known; recorded in"), "{}", r.stdout);
    let last = r.stdout.lines().last().unwrap();
    // no progress regex was guessed: the log's age is the sign of life
    assert!(last.contains(" in RUNNING log "), "{last}");
    // one connection for the doctor, one for the tick
    assert_eq!(sshd.accepted(), 2);
    // the key was recorded where the profile says, not in the home's known_hosts
    assert!(
        std::fs::read_to_string(&kh)
            .unwrap()
            .contains(&format!("[127.0.0.1]:{}", sshd.port))
    );
    assert!(!home.path().join(".ssh/known_hosts").exists());
    // the file is a profile check accepts, with its keys visible
    let text = std::fs::read_to_string(&out).unwrap();
    for k in [
        "host: '127.0.0.1'",
        "user: 'root'",
        "alive: { tmux: 'train' }",
        "host_key_policy: accept-new",
        "stall_after: 30m",
    ] {
        assert!(text.contains(k), "{k}: {text}");
    }
    let mut c = sshd.gpupatrol();
    c.args(["check", "-p"]).arg(&out);
    assert_eq!(run(c, Duration::from_secs(20)).code, 0);

    // again, without --force: refused, the file untouched, no connection
    std::fs::write(&out, format!("{text}# edited by hand\n")).unwrap();
    let r = init(&sshd, home.path(), &args);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("exists; pass --force"), "{}", r.stderr);
    assert!(std::fs::read_to_string(&out).unwrap().ends_with("# edited by hand\n"));
    assert_eq!(sshd.accepted(), 2);
    // with --force: rewritten
    let mut forced = args.to_vec();
    forced.push("--force");
    let r = init(&sshd, home.path(), &forced);
    // the key is known now: nothing to warn about
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!std::fs::read_to_string(&out).unwrap().contains("edited by hand"));
}

#[test]
fn init_through_a_jump_host_and_with_an_unknown_key_under_strict() {
    let target = Sshd::start();
    let bastion = Sshd::start();
    // the bastion trusts the target's user key too
    let mut ak = std::fs::read_to_string(bastion.path("authorized_keys")).unwrap();
    ak.push_str(&std::fs::read_to_string(target.user_key.with_extension("pub")).unwrap());
    std::fs::write(bastion.path("authorized_keys"), ak).unwrap();
    let home = tempfile::tempdir().unwrap();
    let kh = target.path("kh_both");
    std::fs::write(
        &kh,
        std::fs::read_to_string(&bastion.known_hosts).unwrap() + &std::fs::read_to_string(&target.known_hosts).unwrap(),
    )
    .unwrap();
    let dest = format!("root@127.0.0.1:{}", target.port);
    let jump = format!("root@127.0.0.1:{}", bastion.port);
    let key = target.user_key.to_string_lossy().to_string();
    let out = target.path("j.yaml");
    let r = init(
        &target,
        home.path(),
        &[
            &dest,
            "--name",
            "j",
            "-J",
            &jump,
            "-i",
            &key,
            "--known-hosts",
            kh.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    // no alive check, no log: the tick says DIED, the doctor notes what is missing
    assert!(r.stdout.contains("gpupatrol doctor: j"), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.lines().last().unwrap().contains(" j "), "{}", r.stdout);
    assert_eq!(bastion.accepted(), 2, "doctor and tick both went through the bastion");
    assert_eq!(target.accepted(), 2);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains(&format!("proxy_jump: '{jump}'"))
    );

    // strict and an empty known_hosts: refused, said, nothing run
    let empty = target.path("kh_empty");
    std::fs::write(&empty, "").unwrap();
    let out2 = target.path("s.yaml");
    let r = init(
        &target,
        home.path(),
        &[
            &dest,
            "--name",
            "s",
            "-i",
            &key,
            "--known-hosts",
            empty.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("host_key_policy is strict"), "{}", r.stdout);
    assert!(
        r.stdout.lines().last().unwrap().contains("HOSTKEY_MISMATCH"),
        "{}",
        r.stdout
    );
    assert_eq!(target.accepted(), 2);
}

#[test]
fn init_force_replaces_a_symlink_never_writes_through_it() {
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let out = d.path().join("x.yaml");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let mut c = std::process::Command::new(BIN);
    c.env("HOME", d.path())
        .args(["--state-dir"])
        .arg(d.path().join("st"))
        .args(["init", "127.0.0.1:1", "--name", "x", "-o"])
        .arg(&out);
    // without --force: refused, the link and its target untouched
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
    let mut c = std::process::Command::new(BIN);
    c.env("HOME", d.path())
        .args(["--state-dir"])
        .arg(d.path().join("st"))
        .args(["init", "127.0.0.1:1", "--name", "x", "--force", "-o"])
        .arg(&out);
    let r = run(c, Duration::from_secs(30));
    // written; the box is not there (UNREACHABLE, exit 3)
    assert!(r.stdout.starts_with("wrote "), "{}{}", r.stdout, r.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&out).unwrap().contains("host: '127.0.0.1'"));
}
