//! Failure modes end in the right verdict within a bounded time, with the
//! state file intact: dead box, silent port, frozen link, wrong key, changed
//! host key, garbage output, hung nvidia-smi, signals, concurrent ticks.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn simple_profile(sshd: &Sshd, name: &str) -> std::path::PathBuf {
    let log = sshd.box_dir().join(format!("{name}.log"));
    std::fs::write(&log, "Epoch 1\nEpoch 2\n").unwrap();
    sshd.profile(
        name,
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\n",
            yq(&log.to_string_lossy())
        ),
    )
}

#[test]
fn sshd_not_running_is_unreachable_fast() {
    let mut sshd = Sshd::start();
    let p = simple_profile(&sshd, "u");
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "RUNNING");
    let state_before = std::fs::read_to_string(sshd.state_dir().join("u.json")).unwrap();
    sshd.stop();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 3);
    let j = r.one();
    assert_eq!(j["verdict"], "UNREACHABLE");
    assert_eq!(j["severity"], "unknown");
    assert!(j["remediation"].as_str().unwrap().contains("provider console"));
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    // offsets survive a failed tick
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sshd.state_dir().join("u.json")).unwrap()).unwrap();
    let before: serde_json::Value = serde_json::from_str(&state_before).unwrap();
    assert_eq!(after["log"], before["log"]);
    assert_eq!(after["failures_in_a_row"], 1);
}

#[test]
fn silent_listener_is_unreachable_within_connect_timeout() {
    // accepts TCP connections and never says a word (a half-open box)
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    listener.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let sshd = Sshd::start();
    let p = sshd.profile("silent", "job:\n  alive: { tmux: x }\n");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(&format!("port: {}", sshd.port), &format!("port: {port}"))
        .replace("connect_timeout: 5s", "connect_timeout: 2s");
    std::fs::write(&p, text).unwrap();
    let r = tick_json(&sshd, &p);
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
    assert_eq!(r.code, 3);
    let j = r.one();
    assert_eq!(j["verdict"], "UNREACHABLE");
    assert!(j["detail"].as_str().unwrap().contains("connect_timeout"), "{j}");
    assert!(
        r.elapsed >= Duration::from_secs(2) && r.elapsed < Duration::from_secs(6),
        "{:?}",
        r.elapsed
    );
}

/// A TCP proxy in front of sshd that stops forwarding (both ways, sockets
/// kept open) once `freeze` is set: a link that dies silently mid-probe.
fn freezing_proxy(target: u16, freeze: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else { return };
        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let pump = |mut from: TcpStream, mut to: TcpStream, freeze: Arc<AtomicBool>| {
            std::thread::spawn(move || {
                from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let mut buf = [0u8; 16384];
                let deadline = Instant::now() + Duration::from_secs(40);
                while Instant::now() < deadline {
                    if freeze.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    match from.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if freeze.load(Ordering::SeqCst) {
                                continue; // swallow: the link is dead
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
            })
        };
        let a = pump(client.try_clone().unwrap(), server.try_clone().unwrap(), freeze.clone());
        let b = pump(server, client, freeze);
        let _ = a.join();
        let _ = b.join();
    });
    port
}

#[test]
fn link_freezing_mid_probe_is_unreachable_within_keepalive_budget() {
    let sshd = Sshd::start();
    // the fake nvidia-smi marks when the probe reaches it; then it hangs
    std::fs::write(sshd.path("gpu/freeze-flag-on-call"), "").unwrap();
    sshd.gpu_mode("hang");
    let freeze = Arc::new(AtomicBool::new(false));
    let port = freezing_proxy(sshd.port, freeze.clone());
    let p = simple_profile(&sshd, "frozen");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(&format!("port: {}", sshd.port), &format!("port: {port}"))
        .replace("section_timeout: 5s", "section_timeout: 15s");
    std::fs::write(&p, text).unwrap();
    // known_hosts names the proxy's port
    let kh = std::fs::read_to_string(&sshd.known_hosts)
        .unwrap()
        .replace(&format!("]:{} ", sshd.port), &format!("]:{port} "));
    std::fs::write(&sshd.known_hosts, kh).unwrap();
    let called = sshd.path("gpu/called");
    let f2 = freeze.clone();
    let watcher = std::thread::spawn(move || {
        if wait_for(Duration::from_secs(20), || called.exists()) {
            f2.store(true, Ordering::SeqCst);
        }
    });
    let r = tick_json(&sshd, &p);
    watcher.join().unwrap();
    assert!(freeze.load(Ordering::SeqCst), "the probe never reached nvidia-smi");
    let j = r.one();
    assert_eq!(j["verdict"], "UNREACHABLE", "{j}");
    assert_eq!(r.code, 3);
    // keepalive 1s x 2 → well under the 20s probe deadline
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
}

#[test]
fn wrong_key_is_auth_failed() {
    let sshd = Sshd::start();
    let other = sshd.path("other_key");
    keygen(&other, "ed25519");
    let p = simple_profile(&sshd, "a");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(&yq(&sshd.user_key.to_string_lossy()), &yq(&other.to_string_lossy()));
    std::fs::write(&p, text).unwrap();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 3);
    let j = r.one();
    assert_eq!(j["verdict"], "AUTH_FAILED", "{j}");
    assert!(j["remediation"].as_str().unwrap().contains("authorized_keys"));
}

#[test]
fn changed_host_key_runs_nothing() {
    let sshd = Sshd::start();
    let p = simple_profile(&sshd, "hk");
    sshd.known_hosts_with_impostor();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 3);
    let j = r.one();
    assert_eq!(j["verdict"], "HOSTKEY_MISMATCH", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("CHANGED"));
    assert_eq!(sshd.accepted(), 0, "nothing may run on a box whose key changed");
    assert!(!sshd.log().contains("Starting session"));
}

#[test]
fn unknown_host_key_strict_refuses_accept_new_records() {
    let sshd = Sshd::start();
    let p = simple_profile(&sshd, "kn");
    std::fs::write(&sshd.known_hosts, "").unwrap();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["verdict"], "HOSTKEY_MISMATCH");
    assert_eq!(sshd.accepted(), 0);
    let text = std::fs::read_to_string(&p).unwrap() + "host_key_policy: accept-new\n";
    std::fs::write(&p, text).unwrap();
    let r = tick_json(&sshd, &p);
    assert_eq!(r.one()["verdict"], "RUNNING", "{}", r.stdout);
    let kh = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    assert!(kh.contains(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)), "{kh}");
    // and a later change is still refused under accept-new
    sshd.known_hosts_with_impostor();
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "HOSTKEY_MISMATCH");
}

fn forced(cmd: &str) -> (Sshd, std::path::PathBuf) {
    let sshd = Sshd::start_with(Options {
        force_command: Some(cmd.to_string()),
        ..Default::default()
    });
    let p = simple_profile(&sshd, "g");
    (sshd, p)
}

#[test]
fn garbage_output_is_probe_error() {
    let (sshd, p) = forced("echo 'GPX0000 START v1'; echo hello; head -c 5000 /dev/urandom");
    let r = tick_json(&sshd, &p);
    assert_eq!(r.code, 3);
    assert_eq!(r.one()["verdict"], "PROBE_ERROR", "{}", r.stdout);
}

#[test]
fn truncated_probe_output_is_probe_error() {
    let (sshd, p) = forced("sh -s | head -c 400");
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "PROBE_ERROR", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("ended"), "{j}");
}

#[test]
fn a_hundred_megabytes_of_output_is_bounded() {
    let (sshd, p) = forced("head -c 100000000 /dev/zero");
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "PROBE_ERROR", "{j}");
    assert!(j["detail"].as_str().unwrap().contains("exceeded"), "{j}");
    assert!(r.elapsed < Duration::from_secs(15));
}

#[test]
fn hung_nvidia_smi_costs_one_section_not_the_tick() {
    let sshd = Sshd::start();
    sshd.gpu_mode("hang");
    let p = simple_profile(&sshd, "h");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("section_timeout: 5s", "section_timeout: 2s");
    std::fs::write(&p, text).unwrap();
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["severity"], "warning");
    assert_eq!(r.code, 1);
    assert!(j["warnings"].to_string().contains("gpu: timed out"), "{j}");
    assert_eq!(j["progress"]["step"], 2);
    assert!(j["disk"]["used_pct"].is_number(), "the rest of the tick still counts");
    assert!(r.elapsed < Duration::from_secs(8), "{:?}", r.elapsed);
}

#[test]
fn failing_nvidia_smi_is_a_warning_and_absent_is_no_gpu() {
    let sshd = Sshd::start();
    sshd.gpu_mode("fail");
    let p = simple_profile(&sshd, "f");
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["severity"], "warning");
    assert!(j["warnings"].to_string().contains("NVIDIA-SMI has failed"), "{j}");
    std::fs::remove_file(sshd.path("bin/nvidia-smi")).unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("| no gpu |"), "{}", r.stdout);
}

#[test]
fn sigterm_mid_tick_exits_promptly_with_state_intact() {
    let sshd = Sshd::start();
    let p = simple_profile(&sshd, "sig");
    assert_eq!(tick_json(&sshd, &p).one()["verdict"], "RUNNING");
    let state_path = sshd.state_dir().join("sig.json");
    let before = std::fs::read(&state_path).unwrap();
    let (status, err) = signal_mid_tick(&sshd, &p, "-TERM");
    assert_eq!(status.code(), Some(3));
    assert!(err.contains("SIGTERM"), "{err}");
    assert_eq!(
        std::fs::read(&state_path).unwrap(),
        before,
        "state untouched by the interrupted tick"
    );
}

#[test]
fn concurrent_ticks_of_one_profile_do_not_corrupt_state() {
    let sshd = Sshd::start();
    let p = simple_profile(&sshd, "cc");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut c = sshd.gpupatrol();
            c.args(["tick", "--json", "-p"]).arg(&p);
            std::thread::spawn(move || run(c, Duration::from_secs(60)))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.one()["verdict"], "RUNNING", "{}", r.stdout);
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sshd.state_dir().join("cc.json")).unwrap()).unwrap();
    assert_eq!(s["progress"]["step"], 2);
    assert_eq!(sshd.accepted(), 4);
}

#[test]
fn corrupt_state_is_reported_and_replaced() {
    let sshd = Sshd::start();
    let p = simple_profile(&sshd, "cs");
    std::fs::write(sshd.state_dir().join("cs.json"), "{\"version\":1,\"log\":{\"off").unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "RUNNING");
    assert!(j["warnings"].to_string().contains("corrupt"), "{j}");
    let j = tick_json(&sshd, &p).one();
    assert!(
        j["warnings"].as_array().unwrap().is_empty(),
        "replaced by a good file: {j}"
    );
}

#[test]
fn several_profiles_run_concurrently_and_the_worst_wins() {
    let sshd = Sshd::start();
    let ok = simple_profile(&sshd, "p-ok");
    let dead = sshd.run_profile("p-dead", "nosuchsession", "");
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(&ok).arg("-p").arg(&dead);
    let r = run(c, Duration::from_secs(30));
    assert_eq!(r.code, 2, "{}", r.stdout);
    // lines come out as each box finishes (the contract orders nothing)
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(
        lines.iter().filter(|l| l.contains(" p-ok RUNNING")).count(),
        1,
        "{}",
        r.stdout
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" p-dead DIED no tmux session"))
            .count(),
        1,
        "{}",
        r.stdout
    );
    assert_eq!(sshd.accepted(), 2);
}

#[test]
fn a_wedged_df_costs_one_section_not_the_tick() {
    let sshd = Sshd::start();
    // an NFS mount that hangs `df`: a df on the box's PATH that never returns
    std::fs::write(sshd.path("bin/df"), "#!/bin/sh\nsleep 3600\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(sshd.path("bin/df"))
        .status()
        .unwrap();
    let p = simple_profile(&sshd, "nfs");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("section_timeout: 5s", "section_timeout: 2s")
        + &format!("data_mount: {}\n", yq(&sshd.box_dir().to_string_lossy()));
    std::fs::write(&p, text).unwrap();
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(r.code, 1);
    assert!(j["warnings"].to_string().contains("disk: timed out on the box"), "{j}");
    assert!(j["disk"].is_null());
    assert_eq!(j["progress"]["step"], 2, "the rest of the tick still counts");
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
}

#[test]
fn sigint_mid_tick_exits_promptly_with_3() {
    let sshd = Sshd::start();
    let p = simple_profile(&sshd, "int");
    let (status, err) = signal_mid_tick(&sshd, &p, "-INT");
    assert_eq!(status.code(), Some(3));
    assert!(err.contains("SIGINT"), "{err}");
}

/// Start a tick that hangs in the gpu section, send `sig` once it is in there, and
/// return its exit status (bounded: fails the test past 5 s) and stderr.
fn signal_mid_tick(sshd: &Sshd, p: &std::path::Path, sig: &str) -> (std::process::ExitStatus, String) {
    sshd.gpu_mode("hang");
    std::fs::write(sshd.path("gpu/freeze-flag-on-call"), "").unwrap();
    let text = std::fs::read_to_string(p)
        .unwrap()
        .replace("section_timeout: 5s", "section_timeout: 15s");
    std::fs::write(p, text).unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(p);
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // mid-tick: the probe is inside the hung nvidia-smi
    assert!(wait_for(Duration::from_secs(20), || sshd.path("gpu/called").exists()));
    let t = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "did not exit after {sig}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err)
}
