//! Push, the watcher's watcher, and the fleet at a glance, against real
//! peers: a real sshd box, a real HTTP server (Python's http.server) that
//! receives webhook, ntfy, Slack and heartbeat deliveries, and the real
//! parsers of the monitoring systems (Monitoring::Plugin::Performance for
//! perfdata, prometheus_client for the textfile).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const TOKEN: &str = "tok-9f3a1c7e";

fn tick_env(sshd: &Sshd, p: &Path, args: &[&str]) -> Run {
    let mut c = sshd.gpupatrol();
    c.env("GP_TEST_TOKEN", TOKEN).arg("tick").args(args).arg("-p").arg(p);
    run(c, Duration::from_secs(40))
}

#[test]
fn webhook_ntfy_and_slack_get_the_tick_and_the_token_is_never_printed() {
    let sshd = Sshd::start();
    let Some(sink) = Sink::start(&sshd.path("")) else {
        return;
    };
    let p = sshd.run_profile(
        "pw",
        "nosession",
        &format!(
            "alert:\n  webhook: {}\n  ntfy: {}\n  slack: {}\n  cooldown: 1h\n",
            yq(&sink.url("/ok/hook/${GP_TEST_TOKEN}")),
            yq(&sink.url("/ok/topic-${GP_TEST_TOKEN}")),
            yq(&sink.url("/ok/services/T0/B0/${GP_TEST_TOKEN}")),
        ),
    );
    let r = tick_env(&sshd, &p, &["--json"]);
    let j = r.one();
    assert_eq!(j["verdict"], "DIED", "{}", r.stdout);
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    let line = j["line"].as_str().unwrap();

    let hook = sink.to("/ok/hook/");
    assert_eq!(hook.len(), 1, "{:?}", sink.requests());
    assert_eq!(hook[0]["method"], "POST");
    assert_eq!(hook[0]["path"], format!("/ok/hook/{TOKEN}"), "the token is expanded");
    assert_eq!(hook[0]["headers"]["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(hook[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["verdict"], "DIED");
    assert_eq!(body["profile"], "pw");
    assert_eq!(body["line"], line, "the same object --json prints");

    let ntfy = sink.to("/ok/topic-");
    assert_eq!(ntfy.len(), 1);
    assert_eq!(ntfy[0]["headers"]["title"], "gpupatrol pw DIED");
    assert_eq!(ntfy[0]["headers"]["priority"], "5", "critical is ntfy's max");
    assert_eq!(ntfy[0]["body"], line);

    let slack = sink.to("/ok/services/");
    assert_eq!(slack.len(), 1);
    let body: serde_json::Value = serde_json::from_str(slack[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({ "text": line }));

    // the cooldown holds across ticks: DIED again is not news yet
    let r2 = tick_env(&sshd, &p, &[]);
    assert_eq!(sink.requests().len(), 3, "{}", r2.stdout);

    // the token shows nowhere: lines, JSON, stderr, check, the state file
    let mut c = sshd.gpupatrol();
    c.env("GP_TEST_TOKEN", TOKEN).args(["check", "-p"]).arg(&p);
    let check = run(c, Duration::from_secs(10));
    assert!(
        check
            .stdout
            .contains(&format!("alert: webhook http://127.0.0.1:{}", sink.port)),
        "{}",
        check.stdout
    );
    let state = std::fs::read_to_string(sshd.state_dir().join("pw.json")).unwrap();
    for text in [
        &r.stdout,
        &r.stderr,
        &r2.stdout,
        &r2.stderr,
        &check.stdout,
        &check.stderr,
        &state,
    ] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}

#[test]
fn a_refused_a_500_and_a_hanging_endpoint_leave_the_tick_on_time_with_a_warning() {
    let sshd = Sshd::start();
    let Some(sink) = Sink::start(&sshd.path("")) else {
        return;
    };
    let closed = free_port();
    let p = sshd.run_profile(
        "pf",
        "nosession",
        &format!(
            "alert:\n  webhook: {}\n  ntfy: {}\n  slack: {}\n  http_timeout: 2s\n",
            yq(&format!("http://127.0.0.1:{closed}/hook/${{GP_TEST_TOKEN}}")),
            yq(&sink.url("/e500/${GP_TEST_TOKEN}")),
            yq(&sink.url("/hang/${GP_TEST_TOKEN}")),
        ),
    );
    let r = tick_env(&sshd, &p, &["--json"]);
    let j = r.one();
    assert_eq!(j["verdict"], "DIED", "a failed delivery never changes the verdict");
    let w: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    let w = w[0];
    assert!(w.starts_with("alert: delivery failed: "), "{w}");
    assert!(
        w.contains(&format!("webhook http://127.0.0.1:{closed}: connection refused")),
        "{w}"
    );
    assert!(
        w.contains(&format!("ntfy http://127.0.0.1:{}: answered 500", sink.port)),
        "{w}"
    );
    assert!(
        w.contains(&format!("slack http://127.0.0.1:{}: no answer within 2s", sink.port)),
        "{w}"
    );
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));
    // bounded: the three run at once, each within http_timeout (2 s), plus the tick
    assert!(r.elapsed < Duration::from_secs(12), "the tick took {:?}", r.elapsed);
    // the 500 was retried inside the deadline; the hang was not (no time left)
    assert!(sink.to("/e500/").len() >= 2, "{:?}", sink.requests());
    assert_eq!(sink.to("/hang/").len(), 1);
    // the failure is remembered for a retry at a later tick
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sshd.state_dir().join("pf.json")).unwrap()).unwrap();
    assert_eq!(st["alert"]["undelivered"], "DIED", "{st}");
    assert_eq!(st["alert"]["failed"], serde_json::json!(["webhook", "ntfy", "slack"]));
}

#[test]
fn a_failed_channel_is_retried_alone_at_a_later_tick() {
    let sshd = Sshd::start();
    let Some(sink) = Sink::start(&sshd.path("")) else {
        return;
    };
    let url_file = sshd.path("ntfy.url");
    std::fs::write(&url_file, format!("{}\n", sink.url("/e404/topic"))).unwrap();
    let p = sshd.run_profile(
        "pr",
        "nosession",
        &format!(
            "alert:\n  webhook: {}\n  ntfy_file: {}\n  cooldown: 1h\n",
            yq(&sink.url("/ok/hook")),
            yq(&url_file.to_string_lossy()),
        ),
    );
    let j = tick_json(&sshd, &p).one();
    let w = j["warnings"][0].as_str().unwrap_or("");
    assert!(w.contains("ntfy (URL in") && w.contains("answered 404"), "{j}");
    assert_eq!(
        sink.to("/e404/").len(),
        1,
        "a 404 is not retried: it will not fix itself"
    );
    assert_eq!(sink.to("/ok/hook").len(), 1);
    // the topic is fixed; the backoff's minute has passed
    std::fs::write(&url_file, format!("{}\n", sink.url("/ok/topic"))).unwrap();
    let state = sshd.state_dir().join("pr.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(v["alert"]["failed"], serde_json::json!(["ntfy"]), "{v}");
    v["alert"]["retry_at"] = serde_json::json!(0);
    std::fs::write(&state, v.to_string()).unwrap();
    let j = tick_json(&sshd, &p).one();
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    assert_eq!(sink.to("/ok/topic").len(), 1, "the failed channel got it");
    assert_eq!(
        sink.to("/ok/hook").len(),
        1,
        "the one that had it was not sent it twice"
    );
    tick_json(&sshd, &p);
    assert_eq!(sink.requests().len(), 3, "then the cooldown holds");
}

#[test]
fn the_heartbeat_pings_every_tick_fails_on_critical_and_not_when_no_tick_ran() {
    let sshd = Sshd::start();
    let Some(sink) = Sink::start(&sshd.path("")) else {
        return;
    };
    let b = sshd.box_dir();
    sshd.start_job("hb", &b.join("ph.log"), "forever", 0, "0.2", None, None);
    let p = sshd.run_profile(
        "ph",
        "hb",
        &format!("alert:\n  heartbeat_url: {}\n", yq(&sink.url("/ok/ping/5f1c-uuid"))),
    );
    let k = sshd.run_profile(
        "pk",
        "hb",
        &format!(
            "alert:\n  heartbeat_url: {}\n",
            yq(&sink.url("/ok/api/push/Ab1?status=up&msg=OK&ping="))
        ),
    );
    assert!(wait_for(Duration::from_secs(10), || count_in(
        &b.join("ph.log"),
        "Epoch"
    ) >= 2));
    for _ in 0..2 {
        let j = tick_json(&sshd, &p).one();
        assert_eq!(j["verdict"], "RUNNING", "{j}");
    }
    let pings = sink.to("/ok/ping/");
    assert_eq!(pings.len(), 2, "once per tick: {pings:?}");
    assert!(
        pings
            .iter()
            .all(|r| r["path"] == "/ok/ping/5f1c-uuid" && r["method"] == "POST")
    );
    assert!(
        pings[0]["body"].as_str().unwrap().contains(" ph RUNNING "),
        "the line is the body"
    );
    assert_eq!(tick_json(&sshd, &k).one()["verdict"], "RUNNING");

    sshd.kill_session("hb");
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "DIED");
    let pings = sink.to("/ok/ping/");
    assert_eq!(pings.len(), 3);
    assert_eq!(pings[2]["path"], "/ok/ping/5f1c-uuid/fail", "critical pings /fail");
    assert_eq!(tick_json(&sshd, &k).one()["verdict"], "DIED");
    let kuma = sink.to("/ok/api/push/");
    assert_eq!(kuma.len(), 2);
    assert_eq!(kuma[0]["method"], "GET");
    assert_eq!(kuma[0]["path"], "/ok/api/push/Ab1?status=up&msg=RUNNING&ping=");
    assert_eq!(kuma[1]["path"], "/ok/api/push/Ab1?status=down&msg=DIED&ping=");

    // a tick that could not run (its state dir is not a directory) pings nothing
    let not_a_dir = sshd.path("state-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpupatrol"));
    c.arg("--state-dir")
        .arg(&not_a_dir)
        .args(["tick", "-p"])
        .arg(&p)
        .env("HOME", sshd.path("home"));
    let r = run(c, Duration::from_secs(20));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(sink.to("/ok/ping/").len(), 3, "no ping for a tick that never ran");
}

#[test]
fn status_reads_saved_state_worst_first_and_flags_a_stale_patrol() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    let fleet = sshd.path("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    sshd.start_job("alive", &b.join("s-ok.log"), "forever", 0, "0.2", None, None);
    let write = |name: &str, session: &str| {
        let src = sshd.run_profile(name, session, "");
        let dst = fleet.join(format!("{name}.yaml"));
        std::fs::rename(&src, &dst).unwrap();
        dst
    };
    write("s-dead", "nosession");
    write("s-ok", "alive");
    write("s-stale", "alive");
    write("s-never", "alive");
    assert!(wait_for(Duration::from_secs(10), || count_in(
        &b.join("s-ok.log"),
        "Epoch"
    ) >= 1));
    // a glob and a file: three of the four profiles
    let mut c = sshd.gpupatrol();
    c.args(["tick", "--every", "1s", "-p"])
        .arg(fleet.join("s-[ds]*.yaml"))
        .arg("-p")
        .arg(fleet.join("s-ok.yaml"));
    let r = run(c, Duration::from_secs(60));
    assert_eq!(r.stdout.lines().count(), 3, "{}{}", r.stdout, r.stderr);
    // two minutes pass (the saved tick times move back): s-stale's watcher,
    // every second, has missed its ticks; s-ok is ticked again, every hour
    for name in ["s-stale", "s-ok", "s-dead"] {
        let path = sshd.state_dir().join(format!("{name}.json"));
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let at = v["summary"]["at"].as_i64().unwrap();
        v["summary"]["at"] = serde_json::json!(at - 120);
        std::fs::write(&path, v.to_string()).unwrap();
    }
    let mut c = sshd.gpupatrol();
    c.args(["tick", "--every", "1h", "-p"]).arg(fleet.join("s-ok.yaml"));
    run(c, Duration::from_secs(30));
    // a tick by hand in between says no interval: the watcher's stays
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(fleet.join("s-ok.yaml"));
    run(c, Duration::from_secs(30));

    let mut c = sshd.gpupatrol();
    c.args(["status", "--json", "-p"]).arg(&fleet);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3, "stale and never ticked count as unknown: {}", r.stdout);
    let rows = r.json();
    let names: Vec<&str> = rows.iter().map(|j| j["profile"].as_str().unwrap()).collect();
    assert_eq!(names, ["s-dead", "s-never", "s-stale", "s-ok"], "worst first");
    assert_eq!(rows[0]["verdict"], "DIED");
    assert_eq!(rows[1]["missing"], "never ticked");
    assert_eq!(rows[2]["verdict"], "RUNNING");
    assert_eq!(rows[2]["stale"], true, "{}", rows[2]);
    assert_eq!(rows[2]["severity"], "unknown");
    assert_eq!(rows[3]["stale"], false);
    assert_eq!(rows[3]["expected_interval_s"], 3600);

    // the table, as a person sees it, fits 80 columns
    let mut c = sshd.gpupatrol();
    c.env_remove("COLUMNS").args(["status", "-p"]).arg(&fleet);
    let r = run(c, Duration::from_secs(10));
    assert!(r.stdout.contains("patrol stale"), "{}", r.stdout);
    for l in r.stdout.lines() {
        assert!(l.chars().count() <= 80, "{l}");
    }
    let order: Vec<usize> = ["s-dead", "s-never", "s-stale", "s-ok"]
        .iter()
        .map(|n| r.stdout.find(n).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", r.stdout);
    // without -p: every profile with saved state; nothing was written by status
    let before = std::fs::read(sshd.state_dir().join("s-dead.json")).unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["status", "--json"]);
    let r = run(c, Duration::from_secs(10));
    let names: Vec<String> = r
        .json()
        .iter()
        .map(|j| j["profile"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["s-dead", "s-stale", "s-ok"]);
    assert_eq!(std::fs::read(sshd.state_dir().join("s-dead.json")).unwrap(), before);
    // a directory also works for tick, and one that holds nothing says so
    let empty = sshd.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["tick", "-p"]).arg(&empty);
    let r = run(c, Duration::from_secs(10));
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("no *.yaml or *.yml profile"), "{}", r.stderr);
}

#[test]
fn perfdata_and_the_prometheus_textfile_parse_with_the_real_parsers() {
    let sshd = Sshd::start();
    let b = sshd.box_dir();
    sshd.gpu_rows("0 97 71234 81559 60 A100\n1 95 70000 81559 61 A100\n");
    sshd.start_job("pd", &b.join("pp.log"), "forever", 0, "0.2", None, None);
    let p = sshd.run_profile("pp", "pd", "");
    let d = sshd.run_profile("pq", "nosession", "");
    assert!(wait_for(Duration::from_secs(10), || count_in(
        &b.join("pp.log"),
        "Epoch"
    ) >= 1));
    let prom = sshd.path("textfile/gpupatrol.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["tick", "--perfdata", "--prom-file"])
        .arg(&prom)
        .arg("-p")
        .arg(&p)
        .arg("-p")
        .arg(&d);
    let r = run(c, Duration::from_secs(60));
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(" pp RUNNING"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let (text, perf) = line.split_once(" | ").unwrap();
    assert!(!text.contains('|'), "one | only, before the perfdata: {line}");
    assert!(!perf.contains('|'));

    // Monitoring::Plugin::Performance, the parser of the Perl plugin library
    let script = r#"use Monitoring::Plugin::Performance;
my @p = Monitoring::Plugin::Performance->parse_perfstring($ARGV[0]);
for (@p) { printf "%s %s %s %s %s %s\n", $_->label, $_->value, $_->uom, (defined $_->threshold->warning->end && $_->threshold->warning->is_set ? $_->threshold->warning->end : "-"), (defined $_->min ? $_->min : "-"), (defined $_->max ? $_->max : "-"); }"#;
    let out = Command::new("perl").arg("-e").arg(script).arg(perf).output();
    let parsed = match out {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => String::from_utf8(o.stdout).unwrap(),
        Ok(o) => {
            if peer_missing(&format!(
                "perl's Monitoring::Plugin::Performance (libmonitoring-plugin-perl): {}",
                String::from_utf8_lossy(&o.stderr)
            )) {
                return;
            }
            unreachable!()
        }
        Err(e) => {
            if peer_missing(&format!("perl: {e}")) {
                return;
            }
            unreachable!()
        }
    };
    let labels: Vec<&str> = parsed.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        labels.len(),
        perf.split(' ').count(),
        "every item parsed: {perf}\n{parsed}"
    );
    assert!(parsed.contains("gpu0_util 97 % - 0 100"), "{parsed}");
    assert!(parsed.contains("gpu1_mem 70000 MB - 0 81559"), "{parsed}");
    assert!(
        parsed
            .lines()
            .any(|l| l.starts_with("disk ") && l.contains(" % 90 0 100")),
        "{parsed}"
    );
    assert!(
        parsed.lines().any(|l| l.starts_with("step ") && l.contains(" c ")),
        "{parsed}"
    );

    // the textfile: python's prometheus_client text parser (strict about the format)
    let meta = std::fs::metadata(&prom).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o644,
        "node_exporter's user reads it"
    );
    let check = r#"import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        assert s.timestamp is None, s
        print(fam.name, fam.type, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())), s.value)
"#;
    let py = python()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "python3".into());
    let o = Command::new(&py).arg("-c").arg(check).arg(&prom).output().unwrap();
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("No module named 'prometheus_client'") && peer_missing("python3-prometheus-client") {
            return;
        }
        panic!(
            "the textfile does not parse: {err}\n{}",
            std::fs::read_to_string(&prom).unwrap()
        );
    }
    let s = String::from_utf8(o.stdout).unwrap();
    for want in [
        "gpupatrol_verdict gauge profile=pp,verdict=RUNNING 1.0",
        "gpupatrol_verdict gauge profile=pp,verdict=DIED 0.0",
        "gpupatrol_verdict gauge profile=pq,verdict=DIED 1.0",
        "gpupatrol_severity gauge profile=pq 2.0",
        "gpupatrol_gpu_utilization_percent gauge gpu=0,profile=pp 97.0",
        "gpupatrol_gpu_memory_total_bytes gauge gpu=1,profile=pp 85520809984.0",
    ] {
        assert!(s.contains(want), "{want} not in\n{s}");
    }
    assert!(s.contains("gpupatrol_last_tick_timestamp_seconds gauge profile=pq "));
    assert!(s.contains("gpupatrol_disk_used_percent gauge profile=pp "));
    let leftovers: Vec<_> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
}

#[test]
fn patrol_writes_the_textfile_each_tick_and_table_without_a_terminal_prints_lines() {
    let sshd = Sshd::start();
    let p = sshd.run_profile("pt", "nosession", "");
    let prom = sshd.path("pt.prom");
    let mut c = sshd.gpupatrol();
    c.args([
        "patrol",
        "--every",
        "200ms",
        "--max-ticks",
        "2",
        "--table",
        "--prom-file",
    ])
    .arg(&prom)
    .arg("-p")
    .arg(&p);
    let r = run(c, Duration::from_secs(60));
    assert_eq!(
        r.stdout.lines().filter(|l| l.contains(" pt DIED")).count(),
        2,
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("--table needs a terminal"), "{}", r.stderr);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("gpupatrol_verdict{profile=\"pt\",verdict=\"DIED\"} 1"),
        "{text}"
    );
}

#[test]
fn patrol_table_on_a_terminal_redraws_one_table_of_every_profile() {
    if !have("script") && peer_missing("script (util-linux: a real pty)") {
        return;
    }
    let sshd = Sshd::start();
    let a = sshd.run_profile("ta", "nosession", "");
    let b = sshd.run_profile("tb", "nosession", "");
    // a third whose lock cannot be taken: its row says what its tick found
    let c3 = sshd.run_profile("tc", "nosession", "");
    std::fs::create_dir_all(sshd.state_dir().join("tc.lock")).unwrap();
    let cmd = format!(
        "{} --state-dir {} patrol --every 300ms --max-ticks 2 --table -p {} -p {} -p {}",
        q(env!("CARGO_BIN_EXE_gpupatrol")),
        q(&sshd.state_dir().to_string_lossy()),
        q(&a.to_string_lossy()),
        q(&b.to_string_lossy()),
        q(&c3.to_string_lossy())
    );
    // util-linux script(1): the patrol's stdout is a real terminal
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("HOME", sshd.path("home"))
        .env("COLUMNS", "80")
        .env_remove("SSH_AUTH_SOCK");
    let r = run(c, Duration::from_secs(60));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let redraws = r.stdout.matches("\u{1b}[H\u{1b}[2J").count();
    assert_eq!(redraws, 6, "one redraw per tick of any profile: {:?}", r.stdout);
    let last = r.stdout.rsplit("\u{1b}[H\u{1b}[2J").next().unwrap();
    assert!(
        last.contains("PROFILE") && last.contains("ta") && last.contains("tb"),
        "{last}"
    );
    assert_eq!(last.matches("DIED").count(), 2, "{last}");
    assert!(last.contains("PROBE_ERROR") && !last.contains("never ticked"), "{last}");
    assert!(!r.stdout.contains("| was "), "no scrolling lines: {:?}", r.stdout);
}
