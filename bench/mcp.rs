//! `cargo bench --bench mcp`: what the MCP server adds over running the
//! command line, which is what an agent without it does (its shell tool runs
//! `gpupatrol tick --json`), in one run against a loopback sshd:
//!
//! 1. start to the `initialize` answer (clients give a server ~10 s);
//! 2. a `tick` tool call in a live session vs the `gpupatrol tick --json`
//!    process;
//! 3. a `status` tool call vs `gpupatrol status` and `status --json` run
//!    one after the other (the call returns both).
//!
//! Prints medians and ratios; asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

#[path = "util.rs"]
mod util;
use util::{median, ms};

struct Session {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<String>,
    id: i64,
}

impl Session {
    fn start(sshd: &Sshd, dir: &std::path::Path) -> (Session, Duration) {
        let t = Instant::now();
        let mut c = sshd.gpupatrol();
        c.arg("mcp")
            .arg("--profiles")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut s = Session {
            child,
            stdin,
            rx,
            id: 0,
        };
        s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}),
        );
        let took = t.elapsed();
        writeln!(
            s.stdin,
            "{}",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .unwrap();
        (s, took)
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        writeln!(
            self.stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        )
        .unwrap();
        self.stdin.flush().unwrap();
        loop {
            let l = self
                .rx
                .recv_timeout(Duration::from_secs(60))
                .expect("an answer within 60s");
            let v: Value = serde_json::from_str(&l).unwrap();
            if v["id"] == self.id {
                return v;
            }
        }
    }

    fn tool(&mut self, name: &str, args: Value) -> Value {
        let v = self.request("tools/call", json!({"name": name, "arguments": args}));
        assert_ne!(v["result"]["isError"], true, "{v}");
        v
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn timed(mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let sshd = Sshd::start();
    let p = sshd.profile("mb", &sshd.steady_job("mcpb"));
    let dir = sshd.path("mcp-bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::rename(&p, dir.join("mb.yaml")).unwrap();
    let p = dir.join("mb.yaml");

    let starts: Vec<Duration> = (0..n).map(|_| Session::start(&sshd, &dir).1).collect();
    let (mut s, _) = Session::start(&sshd, &dir);
    let cli = |args: &[&str]| {
        let mut c = sshd.gpupatrol();
        c.args(args)
            .arg("-p")
            .arg(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        assert!(c.status().unwrap().code().unwrap_or(9) <= 3);
    };
    let (mut mcp_tick, mut cli_tick, mut mcp_status, mut cli_status) = (vec![], vec![], vec![], vec![]);
    // alternate the two (the VM's speed drifts)
    for _ in 0..n {
        mcp_tick.push(timed(|| {
            s.tool("tick", json!({"profiles": ["mb"]}));
        }));
        cli_tick.push(timed(|| cli(&["tick", "--json"])));
        mcp_status.push(timed(|| {
            s.tool("status", json!({}));
        }));
        cli_status.push(timed(|| {
            cli(&["status"]);
            cli(&["status", "--json"]);
        }));
    }
    let (mt, ct, ms_, cs) = (
        median(mcp_tick),
        median(cli_tick),
        median(mcp_status),
        median(cli_status),
    );
    println!("gpupatrol mcp, n={n} (medians, loopback sshd)");
    println!("  start to the initialize answer     {:>8.1} ms", ms(median(starts)));
    println!(
        "  tick tool call                     {:>8.1} ms   vs `gpupatrol tick --json` {:>8.1} ms   ({:.2}x)",
        ms(mt),
        ms(ct),
        ms(mt) / ms(ct)
    );
    println!(
        "  status tool call                   {:>8.1} ms   vs `status` + `status --json` {:>5.1} ms   ({:.2}x)",
        ms(ms_),
        ms(cs),
        ms(ms_) / ms(cs)
    );
}
