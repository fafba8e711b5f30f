//! `gpupatrol mcp` driven by a real MCP client (the official Rust SDK's,
//! rmcp, over the server's stdio as an agent launches it) against the
//! loopback sshd box; and the raw protocol on stdout, line by line.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ReadResourceRequestParams};
use serde_json::{Value, json};

/// Put the profiles an agent may use in their own directory.
fn serve_dir(sshd: &Sshd, files: &[PathBuf]) -> PathBuf {
    let dir = sshd.path("agent-profiles");
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::rename(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    dir
}

/// The server as an agent starts it: `gpupatrol --state-dir … mcp --profiles DIR`.
fn server_cmd(sshd: &Sshd, dir: &Path) -> tokio::process::Command {
    let mut c = sshd.gpupatrol();
    // no PATH at all (clients launch servers with little): it needs none,
    // not even a `kill` to stop an abandoned call's run
    c.arg("mcp").arg("--profiles").arg(dir).env("PATH", "/nonexistent");
    tokio::process::Command::from(c)
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn connect(sshd: &Sshd, dir: &Path) -> Client {
    let (transport, _stderr) = rmcp::transport::TokioChildProcess::builder(server_cmd(sshd, dir))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gpupatrol mcp");
    tokio::time::timeout(Duration::from_secs(20), ().serve(transport))
        .await
        .expect("initialize within 20s")
        .expect("initialize")
}

async fn call(c: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(m) = args else {
        panic!("arguments are an object")
    };
    let p = CallToolRequestParams::new(tool.to_string()).with_arguments(m);
    tokio::time::timeout(Duration::from_secs(90), c.call_tool(p))
        .await
        .unwrap_or_else(|_| panic!("{tool} answered within 90s"))
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// A resource's text.
async fn resource(c: &Client, uri: &str) -> String {
    let r = c.read_resource(ReadResourceRequestParams::new(uri)).await.unwrap();
    match &r.contents[0] {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{uri}: not text: {other:?}"),
    }
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_error(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_ticks_reads_status_and_resources_and_cannot_leave_the_profiles() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.start_job("mrun", &b.join("m1.log"), "forever", 1, "0.2", None, None);
    assert!(
        wait_for(Duration::from_secs(10), || count_in(&b.join("m1.log"), "Epoch") >= 2),
        "the job writes epochs"
    );
    let m1 = sshd.run_profile("m1", "mrun", "");
    let m2 = sshd.run_profile("m2", "nosession", "");
    std::fs::write(b.join("m2.log"), "Epoch 4 loss 0.3\n").unwrap();
    let bad = sshd.path("broken.yaml");
    std::fs::write(&bad, "name: broken\ntransport: ssh\nhots: x\n").unwrap();
    let dir = serve_dir(&sshd, &[m1, m2, bad]);

    let c = connect(&sshd, &dir).await;
    let info = c.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "gpupatrol");
    assert!(info.capabilities.tools.is_some() && info.capabilities.resources.is_some());

    // the tools, each with a closed schema
    let tools = c.list_tools(None).await.unwrap().tools;
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "chain_status",
            "doctor",
            "handbook",
            "history",
            "status",
            "tick",
            "triage",
            "wait"
        ]
    );
    for t in &tools {
        assert_eq!(
            t.input_schema.get("additionalProperties"),
            Some(&json!(false)),
            "{}",
            t.name
        );
    }

    // tick one profile: the line and the JSON object
    let r = call(&c, "tick", json!({"profiles": ["m1"]})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = r.structured_content.clone().expect("structured");
    let rep = &s["reports"][0];
    assert_eq!(rep["profile"], "m1");
    assert_eq!(rep["verdict"], "RUNNING", "{rep}");
    assert_eq!(s["exit_code"], 0);
    assert_eq!(
        r.content[0].as_text().unwrap().text,
        rep["line"].as_str().unwrap(),
        "the first block is the one-line report"
    );

    // every served profile; the broken one is not served and says why nowhere it could mislead
    let r = call(&c, "tick", json!({})).await;
    let s = r.structured_content.clone().unwrap();
    let verdicts: Vec<(&str, &str)> = s["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["profile"].as_str().unwrap(), o["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(verdicts.contains(&("m2", "DIED")), "{verdicts:?}");
    assert_eq!(s["exit_code"], 2, "the worst severity: critical");

    // status from saved state: the table, then the rows
    let r = call(&c, "status", json!({})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let table = &r.content[0].as_text().unwrap().text;
    assert!(table.contains("m1") && table.contains("DIED"), "{table}");
    let rows = r.structured_content.clone().unwrap()["profiles"].clone();
    assert_eq!(rows[0]["profile"], "m2", "worst first: {rows}");
    assert_eq!(rows[1]["verdict"], "RUNNING");

    // triage, doctor, handbook, chain_status
    let r = call(&c, "triage", json!({"profile": "m2"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(r.structured_content.clone().unwrap()["profile"], "m2");
    let r = call(&c, "doctor", json!({"profile": "m1"})).await;
    let d = r.structured_content.clone().unwrap();
    assert!(d["checks"].as_array().unwrap().len() > 3, "{d}");
    assert!(text(&r).contains("m1 doctor:"), "{}", text(&r));
    let r = call(&c, "handbook", json!({"profile": "m1"})).await;
    assert!(text(&r).starts_with("# Recovery handbook: m1"), "{}", text(&r));
    let r = call(&c, "history", json!({"profile": "m1"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(text(&r).starts_with("m1: "), "{}", text(&r));
    assert!(
        text(&r).contains("rate  ") && text(&r).contains("RUNNING"),
        "{}",
        text(&r)
    );
    let n = r.structured_content.clone().unwrap()["ticks"].as_array().unwrap().len();
    assert!(
        (1..=2).contains(&n),
        "m1 ticked twice (two in one second of the box's clock count once): {n}"
    );
    let r = call(&c, "chain_status", json!({"profile": "m1"})).await;
    assert!(is_error(&r), "m1 has no chain: {}", text(&r));
    assert!(text(&r).contains("chain"), "{}", text(&r));

    // scope: a profile name only — no other host, file or argument
    for (tool, args, says) in [
        ("tick", json!({"profiles": ["evil"]}), "served: m1, m2"),
        ("tick", json!({"profiles": ["../../etc/passwd"]}), "no profile named"),
        ("tick", json!({"host": "198.51.100.7"}), "unknown argument \"host\""),
        (
            "triage",
            json!({"profile": "m1", "log": "/etc/shadow"}),
            "unknown argument \"log\"",
        ),
        ("triage", json!({}), "profile is required"),
        ("handbook", json!({"profile": 7}), "must be a string"),
        (
            "wait",
            json!({"profile": "m1", "marker": "/etc/shadow"}),
            "not a marker profile m1 declares",
        ),
        (
            "wait",
            json!({"profile": "m1", "max_seconds": 999999}),
            "max_seconds: must be",
        ),
        ("status", json!({"profiles": []}), "the list is empty"),
    ] {
        let r = call(&c, tool, args.clone()).await;
        assert!(is_error(&r), "{tool} {args} must be refused: {}", text(&r));
        assert!(text(&r).contains(says), "{tool} {args}: {}", text(&r));
    }
    // a second file named m1 appears while the server runs: neither m1 is served
    std::fs::write(
        dir.join("00-m1.yaml"),
        std::fs::read_to_string(dir.join("m1.yaml")).unwrap(),
    )
    .unwrap();
    let r = call(&c, "tick", json!({"profiles": ["m1"]})).await;
    assert!(is_error(&r), "{}", text(&r));
    let t = &resource(&c, "gpupatrol://profiles").await;
    assert!(t.contains(r#"two profiles are named \"m1\""#), "{t}");
    std::fs::remove_file(dir.join("00-m1.yaml")).unwrap();
    let unknown = c
        .call_tool(CallToolRequestParams::new("shell").with_arguments(Default::default()))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    // resources: the profiles and each handbook
    let res = c.list_resources(None).await.unwrap().resources;
    let uris: Vec<&str> = res.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "gpupatrol://profiles",
            "gpupatrol://handbook/m1",
            "gpupatrol://handbook/m2"
        ]
    );
    let t = &resource(&c, "gpupatrol://profiles").await;
    let v: Value = serde_json::from_str(t).unwrap();
    assert_eq!(v["profiles"][0]["name"], "m1");
    assert_eq!(v["profiles"][0]["alive"], "tmux:mrun");
    assert_eq!(v["profiles"][0]["host"], "127.0.0.1");
    assert!(
        v["not_served"][0].as_str().unwrap().contains("broken.yaml"),
        "the broken profile is named: {v}"
    );
    let t = &resource(&c, "gpupatrol://handbook/m2").await;
    assert!(t.starts_with("# Recovery handbook: m2"), "{t}");
    assert!(
        c.read_resource(ReadResourceRequestParams::new("gpupatrol://handbook/../m1"))
            .await
            .is_err()
    );
    assert!(
        c.read_resource(ReadResourceRequestParams::new("file:///etc/passwd"))
            .await
            .is_err()
    );
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_on_the_marker_and_gives_up_within_max_seconds() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    // w1 finishes in about 3 s; w2 never does
    sshd.start_job(
        "w1",
        &b.join("w1.log"),
        "finish",
        6,
        "0.5",
        Some(&b.join("w1.DONE")),
        None,
    );
    sshd.start_job("w2", &b.join("w2.log"), "forever", 1, "0.5", None, None);
    let w1 = sshd.run_profile("w1", "w1", "");
    let w2 = sshd.run_profile("w2", "w2", "");
    let dir = serve_dir(&sshd, &[w1, w2]);
    let c = connect(&sshd, &dir).await;

    // without marker or pattern: the profile's done marker
    let started = Instant::now();
    let r = call(
        &c,
        "wait",
        json!({"profile": "w1", "interval_seconds": 1, "max_seconds": 60}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = r.structured_content.clone().unwrap();
    let last = s["ticks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["wait"], "found", "{s}");
    assert_eq!(s["exit_code"], 0);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    // a run that does not end: back within max_seconds, with the last tick's line
    let started = Instant::now();
    let r = call(
        &c,
        "wait",
        json!({"profile": "w2", "interval_seconds": 1, "max_seconds": 4}),
    )
    .await;
    let took = started.elapsed();
    let s = r.structured_content.clone().unwrap();
    let ticks = s["ticks"].as_array().unwrap();
    let last = ticks.last().unwrap();
    assert_eq!(last["wait"], "gave-up", "{s}");
    assert!(last["detail"].as_str().unwrap().contains("max-seconds 4s"), "{last}");
    assert!(
        last["detail"].as_str().unwrap().contains("w2 RUNNING"),
        "the current line comes back: {last}"
    );
    assert!(ticks.len() >= 3, "ticks of the wait and its end: {s}");
    assert!(took < Duration::from_secs(10), "max_seconds 4 took {took:?}");
    assert_eq!(s["exit_code"], 1);

    // a pattern may start with a dash: it is text, not an option
    let r = call(
        &c,
        "wait",
        json!({"profile": "w2", "pattern": "--- eval done", "interval_seconds": 1, "max_seconds": 2}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(
        r.structured_content.clone().unwrap()["ticks"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["wait"],
        "gave-up"
    );

    // a call the agent abandons stops its waiter: the next wait is not refused
    let p = CallToolRequestParams::new("wait").with_arguments(
        json!({"profile": "w2", "interval_seconds": 1, "max_seconds": 60})
            .as_object()
            .unwrap()
            .clone(),
    );
    let abandoned = tokio::time::timeout(Duration::from_secs(3), c.call_tool(p)).await;
    assert!(abandoned.is_err(), "still waiting after 3s");
    let mut refused = String::new();
    let ok = {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = call(
                &c,
                "wait",
                json!({"profile": "w2", "interval_seconds": 1, "max_seconds": 1}),
            )
            .await;
            if !text(&r).contains("already watching") {
                break true;
            }
            refused = text(&r);
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    assert!(ok, "the abandoned waiter was never stopped: {refused}");
    c.cancel().await.unwrap();
}

/// The protocol, read as bytes: every line on stdout is a JSON-RPC 2.0
/// message, and the diagnostics are on stderr.
#[test]
fn stdout_carries_only_the_protocol() {
    let sshd = Sshd::start();
    let p = sshd.run_profile("raw", "nosession", "");
    let dir = serve_dir(&sshd, &[p]);
    let mut cmd = sshd.gpupatrol();
    cmd.arg("mcp")
        .arg("--profiles")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for l in stdout.lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let send = |stdin: &mut std::process::ChildStdin, v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    let recv = |id: i64| -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {id} within 60s"));
            let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("stdout line is not JSON: {l:?}: {e}"));
            assert_eq!(v["jsonrpc"], "2.0", "{l}");
            if v["id"] == id {
                return v;
            }
        }
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}),
    );
    let init = recv(1);
    assert_eq!(init["result"]["serverInfo"]["name"], "gpupatrol", "{init}");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "tick", "arguments": {"profiles": ["raw"]}}}),
    );
    let t = recv(2);
    assert_eq!(t["result"]["structuredContent"]["reports"][0]["verdict"], "DIED", "{t}");
    assert_ne!(t["result"]["isError"], true, "an answer, not a tool error: {t}");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "tick", "arguments": {"profiles": "nope"}}}),
    );
    let e = recv(3);
    assert_eq!(e["result"]["isError"], true, "{e}");
    // end of input ends the server, with exit 0
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server outlived its stdin by 10s");
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("serving 1 profile(s)"), "diagnostics go to stderr: {err}");
}

#[test]
fn mcp_refuses_to_start_without_a_profile_to_serve() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("bad.yaml"), "name: x\nnope: 1\n").unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_gpupatrol"));
    c.args(["--state-dir"])
        .arg(d.path().join("st"))
        .arg("mcp")
        .arg("--profiles")
        .arg(d.path());
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.stdout);
    assert!(r.stderr.contains("no profile to serve"), "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.yaml"),
        "names the file that failed: {}",
        r.stderr
    );
}
