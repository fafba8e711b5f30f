//! Every shell script gpupatrol renders passes `sh -n`, `dash -n`/`bash -n`
//! where installed, and `shellcheck` where installed, for each option combination.

use std::path::Path;
use std::process::Command;

use gpupatrol::probe::script::render_with_nonce;
use gpupatrol::profile;
use gpupatrol::state::State;

mod common;
use common::{have, peer_missing};

fn syntax_ok(shell: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("probe.sh");
    std::fs::write(&f, script).unwrap();
    let mut words = shell.split(' ');
    let out = Command::new(words.next().unwrap())
        .args(words)
        .arg("-n")
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell} -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn shellcheck(script: &str, what: &str) {
    if !have("shellcheck") && peer_missing(&format!("shellcheck not installed; not run on {what}")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.sh");
    std::fs::write(&f, format!("#!/bin/sh\n{script}")).unwrap();
    let out = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck {what}:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

const VARIANTS: &[&str] = &[
    "name: a\nhost: h\n",
    "name: b\nhost: h\njob:\n  alive: { tmux: t }\n  log: /l\n  progress: 'Epoch (\\d+)'\n",
    "name: c\nhost: h\njob:\n  alive: { pgrep: 'a|b' }\n  log: \"/we'ird $(x)\\n\"\n  master_log: /m\n  done_pattern: 'x|y'\n  done_marker: /d\nartifacts:\n  - { path: /a, expect_count: 2 }\n  - { path: /b }\ndata_mount: /\n",
    "name: d\nhost: h\njob:\n  alive: { slurm: '123' }\n  log: /l\n  progress: '(?i)step[= ](\\d+)'\n",
    "name: e\nhost: h\njob:\n  alive: { pidfile: /p }\n  log: /l\n  progress: '(\\d+)'\n",
];

#[test]
fn probe_scripts_parse_in_every_shell_and_pass_shellcheck() {
    for v in VARIANTS {
        let p = profile::parse(Path::new("v.yaml"), v).unwrap();
        let probe = render_with_nonce(
            &p,
            &State::new(&p.name),
            &gpupatrol::probe::Request::tick(),
            "GPXtest".into(),
        );
        for shell in ["sh", "dash", "bash", "busybox sh"] {
            let bin = shell.split(' ').next().unwrap();
            if have(bin) || !peer_missing(&format!("{bin} not installed; the probe was not parsed by it")) {
                syntax_ok(shell, &probe.script);
            }
        }
        shellcheck(&probe.script, &format!("probe for {}", p.name));
    }
}

#[test]
fn the_section_library_passes_shellcheck() {
    let lib = gpupatrol::probe::script::LIB;
    syntax_ok("sh", lib);
    shellcheck(lib, "templates/proc.sh + src/probe/sections/*.sh");
    // what a Slurm job step runs on each node (the node section)
    let node = gpupatrol::probe::sections::NODE_LIB;
    for shell in ["sh", "dash", "bash", "busybox sh"] {
        let bin = shell.split(' ').next().unwrap();
        if have(bin) || !peer_missing(&format!("{bin} not installed; the node script was not parsed by it")) {
            syntax_ok(shell, node);
        }
    }
    shellcheck(node, "the node script (common.sh + cgroup.sh + gpu.sh + node_main.sh)");
    let job = include_str!("../templates/demo_job.sh");
    syntax_ok("sh", job);
    shellcheck(job, "templates/demo_job.sh");
}

const CHAIN: &str = "name: ch\nhost: h\njob:\n  alive: { tmux: t }\n  log: /l\n  resume: 'tmux new -d -s t \"python train.py\"'\n  auto_resume: true\nchain:\n  dir: \"/c d/it's\"\n  detach: DETACH\n  notify: 'curl -d \"$GPUPATROL_CHAIN_STATUS\" http://127.0.0.1:9/x'\n  sbatch_args: ['--partition=debug', '--gres=gpu:1']\n  stages:\n    - { name: train, run: 'python train.py | tee -a \"a b.log\"', timeout: 2h }\n    - { name: wait, wait_for: { log_pattern: 'a|b \"c\"' }, timeout: 1h }\n    - { name: marker, wait_for: { marker: /m } }\n    - { name: eval, run: 'python eval.py' }\n";

#[test]
fn chain_resume_and_installer_scripts_parse_and_pass_shellcheck() {
    for detach in ["nohup", "tmux", "slurm"] {
        let p = profile::parse(Path::new("c.yaml"), &CHAIN.replace("DETACH", detach)).unwrap();
        let text = gpupatrol::commands::chain::render_text(&p).unwrap();
        if detach == "slurm" {
            for part in text.split("# ===== ").skip(1) {
                let script = &part[part.find('\n').unwrap() + 1..];
                syntax_ok("sh", script);
                shellcheck(script, &format!("slurm stage of {detach}"));
            }
        } else {
            syntax_ok("sh", &text);
            syntax_ok("dash", &text);
            shellcheck(&text, &format!("chain ({detach})"));
        }
        let inst = gpupatrol::commands::chain::installer_text(&p, true).unwrap();
        syntax_ok("sh", &inst);
        shellcheck(&inst, &format!("installer ({detach})"));
    }
    let p = profile::parse(Path::new("c.yaml"), &CHAIN.replace("DETACH", "nohup")).unwrap();
    let r = gpupatrol::resume::script(&p);
    syntax_ok("sh", &r);
    shellcheck(&r, "guarded resume");
}
