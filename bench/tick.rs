//! `cargo bench --bench tick`: measures, against a real loopback sshd,
//! 1. a gpupatrol tick vs OpenSSH `ssh host 'sh -s' < probe.sh` with the same
//!    probe on the same sshd (wall time, medians, ratio; target <= 1.0),
//! 2. SSH connections per tick (sshd's `Accepted publickey` lines),
//! 3. a steady-state tick on a 2 GB per-run log vs on a 1 MB log.
//!
//! Prints ratios; asserts nothing (performance is measured, not timed in tests).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn time_tick(sshd: &Sshd, profile: &std::path::Path, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let mut c = sshd.gpupatrol();
            c.args(["tick", "-p"]).arg(profile).stdout(Stdio::null());
            let t = Instant::now();
            let st = c.status().unwrap();
            let e = t.elapsed();
            assert!(st.code().unwrap_or(9) <= 2, "tick could not reach the box");
            e
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let small = b.join("small.log");
    let mut block = String::new();
    let mut i = 0u64;
    while block.len() < 1024 * 1024 {
        block.push_str(&format!(
            "Epoch {i} loss 0.123 lr 3e-4 throughput 1234 samples/s padding padding\n"
        ));
        i += 1;
    }
    std::fs::write(&small, &block).unwrap();
    let p_small = sshd.profile(
        "bench-small",
        &format!(
            "job:\n  alive: {{ tmux: nosuch }}\n  log: {}\n  progress: 'Epoch (\\d+)'\ndata_mount: {}\n",
            yq(&small.to_string_lossy()),
            yq(&b.to_string_lossy())
        ),
    );

    // ---- 1. gpupatrol tick vs OpenSSH with the same probe ----------------
    let _ = time_tick(&sshd, &p_small, 2); // warm the page cache and the state file
    let prof = gpupatrol::profile::load(&p_small).unwrap();
    let store = gpupatrol::state::Store::open(sshd.state_dir()).unwrap();
    let probe = gpupatrol::probe::render(&prof, &store.load("bench-small").0);
    let probe_file = sshd.path("probe.sh");
    std::fs::write(&probe_file, &probe.script).unwrap();
    let before = sshd.accepted();
    let ours = time_tick(&sshd, &p_small, n);
    let conns = sshd.accepted() - before;
    let openssh: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new("ssh")
                .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
                .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
                .args(["-F", "/dev/null", "-i"])
                .arg(&sshd.user_key)
                .args([
                    "-p",
                    &sshd.port.to_string(),
                    "root@127.0.0.1",
                    gpupatrol::tick::PROBE_COMMAND,
                ])
                .stdin(std::fs::File::open(&probe_file).unwrap())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "ssh failed");
            t.elapsed()
        })
        .collect();
    let (mo, ms_) = (median(ours), median(openssh));
    println!("tick vs OpenSSH (same probe, same sshd, n={n}, medians):");
    println!(
        "  gpupatrol tick (whole process: parse, connect, probe, decide, save)  {:8.1} ms",
        ms(mo)
    );
    println!(
        "  ssh -o BatchMode=yes host 'sh -s' < probe.sh (transport only)     {:8.1} ms",
        ms(ms_)
    );
    println!(
        "  ratio gpupatrol/openssh = {:.2}  (target <= 1.00)",
        mo.as_secs_f64() / ms_.as_secs_f64()
    );
    println!(
        "connections: {conns} SSH connections for {n} ticks ({:.2} per tick)",
        conns as f64 / n as f64
    );

    // ---- 3. 2 GB log vs 1 MB log, once the offset is saved ---------------
    let big = b.join("big.log");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for _ in 0..2048 {
            f.write_all(block.as_bytes()).unwrap();
        }
    }
    let p_big = sshd.profile(
        "bench-big",
        &format!(
            "job:\n  alive: {{ tmux: nosuch }}\n  log: {}\n  progress: 'Epoch (\\d+)'\ndata_mount: {}\n",
            yq(&big.to_string_lossy()),
            yq(&b.to_string_lossy())
        ),
    );
    let first = time_tick(&sshd, &p_big, 1)[0];
    let append = |path: &std::path::Path, k: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(f, "Epoch {} loss 0.1", 1_000_000 + k).unwrap();
    };
    let mut big_t = Vec::new();
    let mut small_t = Vec::new();
    for k in 0..n {
        append(&big, k);
        big_t.push(time_tick(&sshd, &p_big, 1)[0]);
        append(&small, k);
        small_t.push(time_tick(&sshd, &p_small, 1)[0]);
    }
    let (mb, msm) = (median(big_t), median(small_t));
    println!("log size (offset saved, one new line per tick, n={n}, medians):");
    println!(
        "  first tick on the 2 GB log (scan capped at log_scan_max_mb=64)   {:8.1} ms",
        ms(first)
    );
    println!(
        "  steady tick on a 2 GB log                                        {:8.1} ms",
        ms(mb)
    );
    println!(
        "  steady tick on a 1 MB log                                        {:8.1} ms",
        ms(msm)
    );
    println!(
        "  ratio 2GB/1MB = {:.2}  (target ~1.0)",
        mb.as_secs_f64() / msm.as_secs_f64()
    );
    let _ = std::fs::remove_file(&big);
}
