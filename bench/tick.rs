//! `cargo bench --bench tick`: gpupatrol against the obvious alternative, in
//! one run, against one throw-away loopback sshd (the tests' `Sshd`):
//!
//! 1. the box's side: CPU and processes of one gpupatrol probe vs the seeds'
//!    hand-written combined probe (003 §2), both run by the box's own `sh`;
//! 2. one tick: `gpupatrol tick` (the whole process) vs OpenSSH
//!    `ssh host sh -s < seed-probe`: wall time and client CPU;
//! 3. a tick with the default `gpu.samples: 3`;
//! 4. a fleet: 200 profiles in one `gpupatrol tick` vs `xargs -P 32 ssh` with
//!    the seed probe over the same 200 (wall, false UNREACHABLE at
//!    `connect_timeout: 3s`, client CPU and peak RSS per box);
//! 5. the steady tick on a 2 GB per-run log vs a 1 MB one;
//! 6. a tick through a jump host vs OpenSSH's jump (`-W` ProxyCommand) with
//!    the seed probe, and vs the same tick direct.
//!
//! Prints medians and ratios; asserts nothing (performance is measured, not
//! timed in tests). CPU is read from this process's reaped children
//! (`/proc/self/stat` cutime+cstime, over a whole batch: one rounding per
//! batch, not per run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[path = "util.rs"]
mod util;
use util::{median, ms};

/// CPU of every child this process has reaped so far (user + system).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // after the command: state(0) … utime(11) stime(12) cutime(13) cstime(14), in 1/100 s
    Duration::from_millis((f[13] + f[14]) * 10)
}

/// Run `make()` `n` times: the wall times, and the children's CPU per run.
fn batch(n: usize, mut make: impl FnMut() -> Command) -> (Vec<Duration>, Duration) {
    let cpu0 = children_cpu();
    let walls = (0..n)
        .map(|_| {
            let mut c = make();
            c.stdout(Stdio::null()).stderr(Stdio::null());
            let t = Instant::now();
            let st = c.status().unwrap();
            let e = t.elapsed();
            assert!(st.code().unwrap_or(9) <= 2, "{c:?} failed: {st}");
            e
        })
        .collect();
    (walls, (children_cpu() - cpu0) / n as u32)
}

/// OpenSSH against the bench's sshd, running `remote`.
fn openssh(sshd: &Sshd, remote: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", sshd.known_hosts.display()))
        .args(["-F", "/dev/null", "-i"])
        .arg(&sshd.user_key)
        .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", remote]);
    c
}

/// The seeds' combined health probe (003 §2): the profile's alive primitive,
/// the done marker, the last progress lines of the run's own log, a
/// traceback count, artifacts, `df -h`/`df -i`, one `nvidia-smi`, the cgroup.
fn seed_probe(log: &Path, marker: &Path, art: &Path, mount: &Path) -> String {
    let (log, marker, art, mount) = (
        q(&log.to_string_lossy()),
        q(&marker.to_string_lossy()),
        q(&art.to_string_lossy()),
        q(&mount.to_string_lossy()),
    );
    format!(
        "tmux has-session -t bench 2>/dev/null && echo alive || echo dead\n\
         test -e {marker} && echo done || echo not-done\n\
         grep -nE 'Epoch [0-9]+|Training completed|Early stopping|FINISHED|QUEUE DONE' {log} | tail -6\n\
         grep -c Traceback {log}\n\
         ls {art} | wc -l\n\
         df -h {mount}; df -i {mount}\n\
         nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader\n\
         [ -f /sys/fs/cgroup/memory.current ] && cat /sys/fs/cgroup/memory.current /sys/fs/cgroup/memory.max\n\
         true\n"
    )
}

/// Box CPU of one run of the script in `file`: `k` runs by the box's `sh`
/// in one login, read from that shell's reaped children.
fn box_cpu(sshd: &Sshd, file: &Path, k: usize) -> Duration {
    let remote = format!(
        "env GPUPATROL_PROBE=1 sh -c 'i=0; while [ $i -lt {k} ]; do sh {} >/dev/null 2>&1; i=$((i+1)); done; read l </proc/$$/stat; echo \"$l\"'",
        file.display()
    );
    let out = openssh(sshd, &remote).output().unwrap();
    let stat = String::from_utf8_lossy(&out.stdout);
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    Duration::from_millis((f[13] + f[14]) * 10) / k as u32
}

/// Processes (forks) and execs of one run of `file` on the box, by strace.
fn processes(sshd: &Sshd, file: &Path) -> Option<(usize, usize)> {
    if !have("strace") {
        return None;
    }
    let trace = sshd.path("bench.strace");
    let remote = format!(
        "env GPUPATROL_PROBE=1 strace -f -qq -e trace=clone,clone3,fork,vfork,execve -o {} sh {} >/dev/null 2>&1",
        trace.display(),
        file.display()
    );
    openssh(sshd, &remote).status().unwrap();
    let t = std::fs::read_to_string(&trace).ok()?;
    let lines: Vec<&str> = t
        .lines()
        .filter(|l| !l.contains("resumed") && !l.contains("= -1"))
        .collect();
    let forks = lines
        .iter()
        .filter(|l| l.contains("clone") || l.contains("fork("))
        .count();
    // the first execve is `sh` itself
    let execs = lines.iter().filter(|l| l.contains("execve(")).count().saturating_sub(1);
    Some((forks, execs))
}

/// `/usr/bin/time -f '%e %U %S %M'` around `c`: wall s, cpu s, peak RSS KiB.
fn timed(c: Command) -> Option<(f64, f64, u64, String)> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let mut t = Command::new(time);
    t.args(["-f", "GPTIME %e %U %S %M"])
        .arg(c.get_program())
        .args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    let out = t.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().rev().find(|l| l.starts_with("GPTIME "))?;
    let f: Vec<f64> = line[7..].split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    Some((
        f[0],
        f[1] + f[2],
        f[3] as u64,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn rewrite(p: &Path, from: &str, to: &str) {
    let t = std::fs::read_to_string(p).unwrap();
    assert!(t.contains(from), "{from} in {}", p.display());
    std::fs::write(p, t.replace(from, to)).unwrap();
}

fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let fleet_n: usize = std::env::var("BENCH_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    // a real nvidia-smi is one process: so is this fake (the tests' fake is a script of several)
    let smi = sshd.path("bin/nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\necho '0, 97, 72908, 81920, 64, 310.5, 400.0'\n").unwrap();
    // the run: alive in tmux, a 1 MB log, 50 checkpoints
    assert!(
        sshd.tmux()
            // a job, not a pane kept open by a bare `sleep`
            .args(["new-session", "-d", "-s", "bench", "sh -c 'while :; do sleep 1; done'"])
            .status()
            .unwrap()
            .success()
    );
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
    let art = b.join("ckpt");
    std::fs::create_dir_all(&art).unwrap();
    for k in 0..50 {
        std::fs::write(art.join(format!("epoch_{k}.pt")), "").unwrap();
    }
    let marker = b.join("bench.DONE");
    let job = |log: &Path| {
        format!(
            "job:\n  alive: {{ tmux: bench }}\n  log: {}\n  progress: 'Epoch (\\d+)'\n  done_marker: {}\nartifacts:\n  - {{ path: {}, expect_count: 50 }}\ndata_mount: {}\n",
            yq(&log.to_string_lossy()),
            yq(&marker.to_string_lossy()),
            yq(&art.to_string_lossy()),
            yq(&b.to_string_lossy())
        )
    };
    let p_small = sshd.profile("bench-small", &job(&small));
    let tick = |p: &Path| {
        let mut c = sshd.gpupatrol();
        c.args(["tick", "-p"]).arg(p);
        c
    };
    // warm the page cache and save the offset (steady state)
    let _ = batch(2, || tick(&p_small));

    // ---- 1. the box's side ----------------------------------------------------
    let prof = gpupatrol::profile::load(&p_small).unwrap();
    let store = gpupatrol::state::Store::open(sshd.state_dir()).unwrap();
    let ours = gpupatrol::probe::render(&prof, &store.load("bench-small").0);
    let ours_file = b.join("ours.sh");
    std::fs::write(&ours_file, &ours.script).unwrap();
    let seed = seed_probe(&small, &marker, &art, &b);
    let seed_file = b.join("seed.sh");
    std::fs::write(&seed_file, &seed).unwrap();
    let k = n.max(10);
    // rounds alternate the two (a shared VM's speed drifts by 20% between
    // minutes): the medians of the rounds, and the median of their ratios
    let rounds = 5;
    let (mut ours_r, mut seed_r, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (o, s) = (box_cpu(&sshd, &ours_file, k), box_cpu(&sshd, &seed_file, k));
        ratios.push(o.as_secs_f64() / s.as_secs_f64().max(1e-9));
        ours_r.push(o);
        seed_r.push(s);
    }
    ratios.sort_by(f64::total_cmp);
    let spread = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        format!("{:.1}..{:.1}", ms(v[0]), ms(v[v.len() - 1]))
    };
    println!(
        "box side, one probe (the box's sh, steady state, gpu.samples 1; {rounds} alternating rounds of {k} runs):"
    );
    println!(
        "  box CPU: gpupatrol probe {:6.1} ms ({}), seed probe (003 §2) {:6.1} ms ({}), ratio {:.2} (rounds {:.2}..{:.2}; target <= 2.00)",
        ms(median(ours_r.clone())),
        spread(&ours_r),
        ms(median(seed_r.clone())),
        spread(&seed_r),
        ratios[rounds / 2],
        ratios[0],
        ratios[rounds - 1]
    );
    match (processes(&sshd, &ours_file), processes(&sshd, &seed_file)) {
        (Some((fo, eo)), Some((fs, es))) => println!(
            "  processes: gpupatrol probe {fo} forks ({eo} execs), seed probe {fs} forks ({es} execs)  (target <= 30)"
        ),
        _ => println!("  processes: not counted (strace is not installed)"),
    }

    // ---- 2. one tick vs OpenSSH with the seed probe ---------------------------
    let before = sshd.accepted();
    let (w_ours, c_ours) = batch(n, || tick(&p_small));
    let conns = sshd.accepted() - before;
    let (w_seed, c_seed) = batch(n, || {
        let mut c = openssh(&sshd, "sh -s");
        c.stdin(std::fs::File::open(&seed_file).unwrap());
        c
    });
    let (w_raw, _) = batch(n, || {
        let mut c = openssh(&sshd, gpupatrol::transport::PROBE_COMMAND);
        c.stdin(std::fs::File::open(&ours_file).unwrap());
        c
    });
    let (mo, msd, mr) = (median(w_ours), median(w_seed), median(w_raw));
    println!("one tick (n={n}, medians; CPU per run):");
    println!(
        "  gpupatrol tick (whole process: profile, connect, probe, decide, save, print) {:7.1} ms wall {:5.1} ms client CPU",
        ms(mo),
        ms(c_ours)
    );
    println!(
        "  ssh host sh -s < seed probe (transport and the seed probe only)             {:7.1} ms wall {:5.1} ms client CPU",
        ms(msd),
        ms(c_seed)
    );
    println!(
        "  ratio gpupatrol/openssh: wall {:.2} (target <= 0.50), client CPU {:.2} (target <= 0.10)",
        mo.as_secs_f64() / msd.as_secs_f64(),
        c_ours.as_secs_f64() / c_seed.as_secs_f64().max(1e-9)
    );
    println!(
        "  (OpenSSH carrying gpupatrol's own probe: {:.1} ms wall; {conns} SSH connections for {n} ticks)",
        ms(mr)
    );

    // ---- 3. the default gpu.samples: 3 ----------------------------------------
    let p3 = sshd.profile("bench-s3", &job(&small));
    rewrite(&p3, "gpu: { samples: 1 }\n", "");
    let _ = batch(1, || tick(&p3));
    let (w3, _) = batch(n.min(10), || tick(&p3));
    println!(
        "default gpu.samples 3 (400ms apart, sampled beside the other sections): tick {:.1} ms wall (target <= 1300)",
        ms(median(w3))
    );

    // ---- 4. a fleet ------------------------------------------------------------
    let fleet: Vec<PathBuf> = (0..fleet_n)
        .map(|k| {
            let p = sshd.profile(&format!("fleet-{k}"), &job(&small));
            rewrite(&p, "connect_timeout: 5s", "connect_timeout: 3s");
            p
        })
        .collect();
    let fleet_tick = || {
        let mut c = sshd.gpupatrol();
        c.arg("tick");
        for p in &fleet {
            c.arg("-p").arg(p);
        }
        c
    };
    // the first tick of each reads its whole 1 MB log; the bench is the steady one after it
    let first = Instant::now();
    let out = fleet_tick().output().unwrap();
    let first = first.elapsed();
    let unreachable_first = String::from_utf8_lossy(&out.stdout).matches(" UNREACHABLE").count();
    let list = sshd.path("fleet.list");
    std::fs::write(&list, (0..fleet_n).map(|k| format!("{k}\n")).collect::<String>()).unwrap();
    let xargs = || {
        let mut c = Command::new("xargs");
        c.args(["-P", "32", "-a"]).arg(&list).args(["-I{}"]);
        let o = openssh(&sshd, &seed);
        c.arg(o.get_program()).args(o.get_args());
        c
    };
    let reps = 3;
    let mut fw = Vec::new();
    let mut xw = Vec::new();
    let mut unreachable = 0;
    let mut lines = 0;
    let cpu0 = children_cpu();
    for _ in 0..reps {
        let t = Instant::now();
        let out = fleet_tick().output().unwrap();
        fw.push(t.elapsed());
        let s = String::from_utf8_lossy(&out.stdout);
        unreachable += s.matches(" UNREACHABLE").count();
        lines += s.lines().count();
    }
    let fcpu = (children_cpu() - cpu0) / reps;
    let cpu0 = children_cpu();
    for _ in 0..reps {
        let t = Instant::now();
        let st = xargs()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        xw.push(t.elapsed());
        assert!(st.success(), "xargs ssh failed: {st} (an ssh that could not connect)");
    }
    let xcpu = (children_cpu() - cpu0) / reps;
    let (fm, xm) = (median(fw), median(xw));
    println!("fleet: {fleet_n} profiles, one tick each, one loopback sshd (medians of {reps}):");
    println!(
        "  gpupatrol tick -p ×{fleet_n} (--jobs 32)  {:7.2} s wall, {:5.1} ms client CPU per box, {unreachable} UNREACHABLE of {lines} lines",
        fm.as_secs_f64(),
        ms(fcpu) / fleet_n as f64
    );
    println!(
        "  xargs -P 32 ssh <seed probe> ×{fleet_n}     {:7.2} s wall, {:5.1} ms client CPU per box",
        xm.as_secs_f64(),
        ms(xcpu) / fleet_n as f64
    );
    println!(
        "  ratio gpupatrol/xargs wall {:.2} (target <= 1.00); false UNREACHABLE at connect_timeout 3s: {unreachable} (target 0; first tick: {unreachable_first}, {:.2} s)",
        fm.as_secs_f64() / xm.as_secs_f64(),
        first.as_secs_f64()
    );
    let one = {
        let mut c = sshd.gpupatrol();
        c.args(["tick", "-p"]).arg(&fleet[0]);
        timed(c)
    };
    match (timed(fleet_tick()), one, timed(xargs())) {
        (Some((_, _, rss_all, _)), Some((_, _, rss_one, _)), Some((_, _, rss_ssh, _))) => println!(
            "  peak RSS: gpupatrol {rss_one} KiB for 1 box, {rss_all} KiB for {fleet_n} ({:.0} KiB per more box); one ssh client {rss_ssh} KiB, 32 at once",
            (rss_all.saturating_sub(rss_one)) as f64 / (fleet_n.max(2) - 1) as f64
        ),
        _ => println!("  peak RSS: not measured (/usr/bin/time is not installed)"),
    }

    // ---- 5. 2 GB log vs 1 MB log, once the offset is saved ---------------------
    let big = b.join("big.log");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for _ in 0..2048 {
            f.write_all(block.as_bytes()).unwrap();
        }
    }
    let p_big = sshd.profile("bench-big", &job(&big));
    let first = batch(1, || tick(&p_big)).0[0];
    let append = |path: &Path, k: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(f, "Epoch {} loss 0.1", 1_000_000 + k).unwrap();
    };
    let mut big_t = Vec::new();
    let mut small_t = Vec::new();
    for k in 0..n {
        append(&big, k);
        big_t.push(batch(1, || tick(&p_big)).0[0]);
        append(&small, k);
        small_t.push(batch(1, || tick(&p_small)).0[0]);
    }
    let (mb, msm) = (median(big_t), median(small_t));
    println!("log size (offset saved, one new line per tick, n={n}, medians):");
    println!(
        "  first tick on the 2 GB log (scan capped at log_scan_max_mb=64) {:8.1} ms",
        ms(first)
    );
    println!(
        "  steady tick: 2 GB log {:6.1} ms, 1 MB log {:6.1} ms, ratio {:.2}  (target ~1.0)",
        ms(mb),
        ms(msm),
        mb.as_secs_f64() / msm.as_secs_f64()
    );
    let _ = std::fs::remove_file(&big);

    // ---- 6. through a jump host -------------------------------------------------
    let bastion = Sshd::start();
    let mut ak = std::fs::read_to_string(bastion.path("authorized_keys")).unwrap();
    ak.push_str(&std::fs::read_to_string(sshd.user_key.with_extension("pub")).unwrap());
    std::fs::write(bastion.path("authorized_keys"), ak).unwrap();
    let kh = sshd.path("known_hosts_jump");
    std::fs::write(
        &kh,
        std::fs::read_to_string(&bastion.known_hosts).unwrap() + &std::fs::read_to_string(&sshd.known_hosts).unwrap(),
    )
    .unwrap();
    let p_jump = sshd.profile(
        "bench-jump",
        &format!("proxy_jump: root@127.0.0.1:{}\n{}", bastion.port, job(&small)),
    );
    rewrite(
        &p_jump,
        &format!("known_hosts: {}", yq(&sshd.known_hosts.to_string_lossy())),
        &format!("known_hosts: {}", yq(&kh.to_string_lossy())),
    );
    let _ = batch(2, || tick(&p_jump));
    // OpenSSH's -J, spelled as the ProxyCommand it stands for (a jump
    // connection does not inherit -i and -o from the command line)
    let ssh_jump = || {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .arg("-o")
            .arg(format!(
                "ProxyCommand=ssh -F /dev/null -i {} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -p {} -W %h:%p root@127.0.0.1",
                sshd.user_key.display(),
                kh.display(),
                bastion.port
            ))
            .args(["-F", "/dev/null", "-i"])
            .arg(&sshd.user_key)
            .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "sh -s"])
            .stdin(std::fs::File::open(&seed_file).unwrap())
            .stdout(Stdio::null());
        c
    };
    let (mut gj, mut oj, mut gd) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gj_cpu, mut oj_cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let (w, c) = batch(1, || tick(&p_jump));
        gj.push(w[0]);
        gj_cpu += c;
        let (w, c) = batch(1, ssh_jump);
        oj.push(w[0]);
        oj_cpu += c;
        gd.push(batch(1, || tick(&p_small)).0[0]);
    }
    let (gj, oj, gd) = (median(gj), median(oj), median(gd));
    println!("through one jump host (n={n}, medians, alternating):");
    println!(
        "  tick via the jump host {:6.1} ms (direct {:6.1} ms, +{:.1} ms for the hop); OpenSSH -J with the seed probe {:6.1} ms; ratio {:.2}",
        ms(gj),
        ms(gd),
        ms(gj) - ms(gd),
        ms(oj),
        gj.as_secs_f64() / oj.as_secs_f64()
    );
    println!(
        "  client CPU per tick: gpupatrol {:5.1} ms (one process), OpenSSH {:5.1} ms (two ssh processes); ratio {:.2}",
        ms(gj_cpu / n as u32),
        ms(oj_cpu / n as u32),
        gj_cpu.as_secs_f64() / oj_cpu.as_secs_f64().max(1e-9)
    );
    let _ = sshd.tmux().args(["kill-server"]).status();
}
