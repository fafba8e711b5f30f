//! `cargo bench --bench fleet`: the fleet view and the push, against the
//! obvious alternative, in one run:
//!
//! 1. `gpupatrol status` over 1,000 saved states (the table, and `--json`),
//!    and `status -p DIR` (1,000 profiles read too), vs `cat` of the same
//!    1,000 state files (the floor: reading them) and vs `jq` reading them,
//!    where jq is installed;
//! 2. a tick with `alert.heartbeat_url` (the ping inside the tick) vs a plain
//!    tick followed by `curl` of the same URL (the shell alternative: `tick &&
//!    curl hc-ping…`), both against a loopback sshd and a loopback HTTP server.
//!
//! 3. a tick whose profile has 288 ticks of history (six days at 30 min)
//!    against one with none yet (what the history costs a tick), and
//!    `gpupatrol history` over those 288.
//!
//! Prints medians and ratios; asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[path = "util.rs"]
mod util;
use util::{median, ms};

/// Wall time of `n` runs, alternating with the others (the VM's speed drifts).
fn rounds(n: usize, makes: &mut [&mut dyn FnMut() -> Command]) -> Vec<Duration> {
    let mut walls: Vec<Vec<Duration>> = makes.iter().map(|_| Vec::new()).collect();
    for _ in 0..n {
        for (i, make) in makes.iter_mut().enumerate() {
            let mut c = make();
            c.stdout(Stdio::null()).stderr(Stdio::null());
            let t = Instant::now();
            let st = c.status().unwrap();
            walls[i].push(t.elapsed());
            assert!(st.code().unwrap_or(9) <= 3, "{c:?} failed: {st}");
        }
    }
    walls.into_iter().map(median).collect()
}

fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let sshd = Sshd::start();
    let job = sshd.steady_job("fleet");

    // ---- 1. status over 1,000 saved states --------------------------------------
    let p = sshd.profile("f-0000", &job);
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(&p);
    assert!(c.output().unwrap().status.code().unwrap_or(9) <= 2);
    let state = std::fs::read_to_string(sshd.state_dir().join("f-0000.json")).unwrap();
    let profile_text = std::fs::read_to_string(&p).unwrap();
    let fleet_dir = sshd.path("fleet");
    std::fs::create_dir_all(&fleet_dir).unwrap();
    for i in 0..1000 {
        let name = format!("f-{i:04}");
        std::fs::write(
            sshd.state_dir().join(format!("{name}.json")),
            state.replace("\"f-0000\"", &format!("\"{name}\"")),
        )
        .unwrap();
        std::fs::write(
            fleet_dir.join(format!("{name}.yaml")),
            profile_text.replacen("name: f-0000", &format!("name: {name}"), 1),
        )
        .unwrap();
    }
    let files: Vec<String> = (0..1000)
        .map(|i| {
            sshd.state_dir()
                .join(format!("f-{i:04}.json"))
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let sd = sshd.state_dir();
    let status = |args: &[&str]| {
        let mut c = sshd.gpupatrol();
        c.arg("status").args(args);
        c
    };
    let mut table = || status(&[]);
    let mut json = || status(&["--json"]);
    let mut with_profiles = || {
        let mut c = status(&["-p"]);
        c.arg(&fleet_dir);
        c
    };
    let mut cat = || {
        let mut c = Command::new("cat");
        c.args(&files);
        c
    };
    let have_jq = have("jq");
    let mut jq = || {
        let mut c = Command::new("jq");
        c.args(["-r", ".summary.verdict"]).args(&files);
        c
    };
    let mut makes: Vec<&mut dyn FnMut() -> Command> = vec![&mut table, &mut json, &mut with_profiles, &mut cat];
    if have_jq {
        makes.push(&mut jq);
    }
    let m = rounds(n, &mut makes);
    println!(
        "1. status over 1,000 saved states (n={n}, medians; state dir {})",
        sd.display()
    );
    println!("   gpupatrol status (table)          {:8.1} ms", ms(m[0]));
    println!("   gpupatrol status --json           {:8.1} ms", ms(m[1]));
    println!("   gpupatrol status -p DIR (1,000)   {:8.1} ms", ms(m[2]));
    println!(
        "   cat of the 1,000 state files      {:8.1} ms   status/cat {:.2}x",
        ms(m[3]),
        ms(m[0]) / ms(m[3])
    );
    if have_jq {
        println!(
            "   jq .summary.verdict of the 1,000  {:8.1} ms   status/jq  {:.2}x",
            ms(m[4]),
            ms(m[0]) / ms(m[4])
        );
    } else {
        println!("   (jq not installed: no jq row)");
    }

    // ---- 2. the heartbeat inside the tick vs tick && curl --------------------------
    let sink = Sink::start(&sshd.path("")).expect("python3 for the HTTP sink");
    let sink_log = sink.log.clone();
    let url = sink.url("/ok/ping/5f1c");
    let with_hb = sshd.profile("f-hb", &format!("{job}alert:\n  heartbeat_url: {}\n", yq(&url)));
    let plain = sshd.profile("f-plain", &job);
    let tick = |p: &Path| {
        let mut c = sshd.gpupatrol();
        c.args(["tick", "-p"]).arg(p);
        c
    };
    let mut ours = || tick(&with_hb);
    let mut bare = || tick(&plain);
    let gp = env!("CARGO_BIN_EXE_gpupatrol");
    let sd2 = sshd.state_dir();
    let home = sshd.path("home");
    let mut shell = || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#""$0" --state-dir "$1" tick -p "$2"; curl -fsS -m 10 --data-binary done "$3" >/dev/null"#)
            .arg(gp)
            .arg(&sd2)
            .arg(&plain)
            .arg(&url)
            .env("HOME", &home)
            .env_remove("SSH_AUTH_SOCK");
        c
    };
    let m = rounds(n, &mut [&mut ours, &mut bare, &mut shell]);
    let pings = count_in(&sink_log, "/ok/ping/5f1c");
    println!("2. a tick with its heartbeat ping (n={n}, medians; {pings} pings received)");
    println!("   gpupatrol tick + heartbeat_url    {:8.1} ms", ms(m[0]));
    println!(
        "   gpupatrol tick (no ping)          {:8.1} ms   ping cost {:+.1} ms",
        ms(m[1]),
        ms(m[0]) - ms(m[1])
    );
    println!(
        "   gpupatrol tick; curl URL          {:8.1} ms   ours/shell {:.2}x",
        ms(m[2]),
        ms(m[0]) / ms(m[2])
    );
    drop(sink);

    // ---- 3. a tick with a full history vs an empty one; `history` itself ----------
    // the history a 30-minute patrol keeps for six days, written as a tick would
    let hist = sshd.profile("f-hist", &job);
    let fresh = sshd.profile("f-fresh", &job);
    let t = std::process::Command::new("date").arg("+%s").output().unwrap();
    let now: i64 = String::from_utf8_lossy(&t.stdout).trim().parse().unwrap();
    let entries: Vec<String> = (0..288)
        .map(|i| {
            format!(
                r#"{{"at":{},"verdict":"RUNNING","step":{},"total":100000,"gpu_util":97.0,"gpu_mem_pct":88.0,"gpus":8,"mem_pct":44.0,"run":{}}}"#,
                now - (288 - i) * 1800,
                i * 40,
                now - 300 * 1800
            )
        })
        .collect();
    let full = format!(
        r#"{{"version":1,"profile":"f-hist","entries":[{}]}}"#,
        entries.join(",")
    );
    let hist_file = sd.join("f-hist.history");
    let fresh_file = sd.join("f-fresh.history");
    let mut with_hist = || {
        std::fs::write(&hist_file, &full).unwrap();
        tick(&hist)
    };
    let mut without = || {
        let _ = std::fs::remove_file(&fresh_file);
        tick(&fresh)
    };
    let mut show = || {
        std::fs::write(&hist_file, &full).unwrap();
        let mut c = sshd.gpupatrol();
        c.args(["history", "-p"]).arg(&hist);
        c
    };
    let m = rounds(n, &mut [&mut with_hist, &mut without, &mut show]);
    let size = std::fs::metadata(&hist_file).map(|m| m.len()).unwrap_or(0);
    println!("3. the history (n={n}, medians; 288 ticks = {} KiB)", size / 1024);
    println!("   gpupatrol tick, 288 ticks of history {:8.1} ms", ms(m[0]));
    println!(
        "   gpupatrol tick, no history yet        {:8.1} ms   history cost {:+.1} ms",
        ms(m[1]),
        ms(m[0]) - ms(m[1])
    );
    println!("   gpupatrol history (288 ticks)          {:8.1} ms", ms(m[2]));
}
