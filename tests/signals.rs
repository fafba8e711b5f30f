//! Signals a user expects beyond the verdict, against a real sshd and tmux
//! with the fake nvidia-smi: an idle rank among busy GPUs, a collective hang
//! (busy at idle power), a traceback while the job is still alive, a `\r`-only
//! progress bar that never ends a line, and `chain status` not sampling GPUs.

mod common;

use std::time::Duration;

use common::*;

/// nvidia-smi rows for 8 H100s: utilisation, memory used (MiB), power (W).
fn eight(util: &[u32], mem: &[u32], power: &[f64]) -> String {
    (0..8)
        .map(|i| {
            format!(
                "{i} {} {} 81920 60 NVIDIA-H100-80GB-HBM3 {:.2} 700.00\n",
                util[i], mem[i], power[i]
            )
        })
        .collect()
}

fn running_profile(sshd: &Sshd, name: &str, extra: &str) -> std::path::PathBuf {
    job_profile(sshd, name, extra, "forever")
}

/// A tmux job in `mode` (fake_train.sh: `forever` progresses, `stall` stops at epoch 2).
fn job_profile(sshd: &Sshd, name: &str, extra: &str, mode: &str) -> std::path::PathBuf {
    let log = sshd.box_dir().join(format!("{name}.log"));
    sshd.start_job("train", &log, mode, 2, "0.2", None, None);
    assert!(wait_for(Duration::from_secs(5), || count_in(&log, "Epoch 2") >= 1));
    let p = sshd.run_profile(name, "train", "");
    if !extra.is_empty() {
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("gpu: { samples: 1 }\n", extra);
        std::fs::write(&p, text).unwrap();
    }
    p
}

#[test]
fn an_idle_gpu_among_busy_ones_is_named_and_the_line_stays_one_line() {
    let sshd = Sshd::start();
    let mut util = [98; 8];
    util[5] = 0;
    sshd.gpu_rows(&eight(&util, &[70000; 8], &[520.0; 8]));
    let p = running_profile(&sshd, "g8", "");
    let idle = |j: &serde_json::Value| {
        j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().starts_with("gpu5 idle while 7 busy"))
    };
    let j = tick_json(&sshd, &p).one();
    assert!(
        !idle(&j),
        "one tick is not enough (a checkpoint save idles rank 0 for a while): {j}"
    );
    let r = tick_json(&sshd, &p);
    let j = r.one();
    assert_eq!(j["verdict"], "RUNNING", "{j}");
    assert_eq!(j["gpus"].as_array().unwrap().len(), 8, "JSON carries every GPU");
    assert_eq!(j["gpus"][3]["power_w"], 520.0);
    assert_eq!(j["gpus"][3]["power_limit_w"], 700.0);
    assert!(idle(&j), "two ticks in a row: {j}");
    assert_eq!(r.code, 1, "a warning");
    let line = j["line"].as_str().unwrap();
    assert!(!line.contains('\n'));
    assert!(line.contains("8 gpus 86% avg 0% min"), "{line}");
}

#[test]
fn a_job_on_a_subset_of_the_gpus_has_no_dead_rank() {
    // CUDA_VISIBLE_DEVICES=0-5 on an 8-GPU box: gpu6 and gpu7 were never used
    let sshd = Sshd::start();
    sshd.gpu_rows(&eight(
        &[97, 97, 97, 97, 97, 97, 0, 0],
        &[70000, 70000, 70000, 70000, 70000, 70000, 3, 3],
        &[500.0, 500.0, 500.0, 500.0, 500.0, 500.0, 60.0, 60.0],
    ));
    let p = running_profile(&sshd, "gs", "");
    for _ in 0..2 {
        let j = tick_json(&sshd, &p).one();
        assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
    }
}

#[test]
fn every_gpu_busy_at_idle_power_with_no_new_step_is_a_suspected_collective_hang() {
    let sshd = Sshd::start();
    sshd.gpu_rows(&eight(&[100; 8], &[70000; 8], &[92.0; 8]));
    // the job stops printing steps (its ranks wait on each other)
    let p = job_profile(&sshd, "gh", "gpu: { samples: 2, interval: 100ms }\n", "stall");
    let j = tick_json(&sshd, &p).one();
    let w: Vec<&str> = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        w.iter().any(|x| x.starts_with("collective hang suspected: all 8 GPUs")),
        "{j}"
    );
    // the same utilisation at training power is training
    sshd.gpu_rows(&eight(&[100; 8], &[70000; 8], &[610.0; 8]));
    let j = tick_json(&sshd, &p).one();
    assert!(j["warnings"].as_array().unwrap().is_empty(), "{j}");
}

#[test]
fn low_power_while_the_steps_advance_is_a_small_model_not_a_hang() {
    let sshd = Sshd::start();
    sshd.gpu_rows(&eight(&[97; 8], &[20000; 8], &[150.0; 8]));
    let p = running_profile(&sshd, "gl", "gpu: { samples: 2, interval: 100ms }\n");
    let first = tick_json(&sshd, &p).one();
    let log = sshd.box_dir().join("gl.log");
    let step = first["progress"]["step"].as_u64().unwrap();
    assert!(wait_for(Duration::from_secs(10), || count_in(
        &log,
        &format!("Epoch {} ", step + 2)
    ) >= 1));
    let j = tick_json(&sshd, &p).one();
    assert!(
        !j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().contains("collective hang")),
        "{j}"
    );
}

#[test]
fn one_sample_of_a_hang_needs_a_second_tick() {
    let sshd = Sshd::start();
    sshd.gpu_rows(&eight(&[100; 8], &[70000; 8], &[92.0; 8]));
    let p = job_profile(&sshd, "g1", "", "stall");
    let hang = |j: &serde_json::Value| {
        j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().starts_with("collective hang"))
    };
    let j = tick_json(&sshd, &p).one();
    assert!(!hang(&j), "one snapshot is not enough: {j}");
    let j = tick_json(&sshd, &p).one();
    assert!(hang(&j), "two in a row are: {j}");
}

#[test]
fn a_traceback_while_alive_is_a_warning_not_a_crash() {
    let sshd = Sshd::start();
    // the other ranks wait on the dead one: no step after the traceback (a
    // step after it would mean the run went on past it, which is not this case)
    let p = job_profile(&sshd, "ta", "", "stall");
    let log = sshd.box_dir().join("ta.log");
    // one rank's traceback lands in the shared per-run log; the job goes on
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    use std::io::Write;
    // one write: `writeln!` writes piece by piece, and the job's own lines
    // (every 0.2 s) would land inside the traceback
    f.write_all(
        b"[rank3]: Traceback (most recent call last):\n[rank3]:   File \"train.py\", line 9, in <module>\n[rank3]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
    )
    .unwrap();
    drop(f);
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["verdict"], "RUNNING", "never CRASHED while alive: {j}");
    assert!(j["crash"].is_null());
    assert!(
        j["warnings"].as_array().unwrap().iter().any(|x| x
            .as_str()
            .unwrap()
            .starts_with("traceback in the log while alive (cuda_oom")),
        "{j}"
    );
}

#[test]
fn a_carriage_return_only_bar_is_progress() {
    let sshd = Sshd::start();
    let log = sshd.box_dir().join("cr.log");
    // hours of tqdm: one "line" of redraws, no newline at all
    let mut bar = String::new();
    for i in 1..=40 {
        bar.push_str(&format!(
            "\rEpoch {i}: {i:3}%|###       | {i}/100 [00:{i:02}<00:30, 3.30it/s]"
        ));
    }
    std::fs::write(&log, &bar).unwrap();
    let p = sshd.profile(
        "cr",
        &format!(
            "job:\n  log: {}\n  progress: 'Epoch (\\d+)'\n",
            yq(&log.to_string_lossy())
        ),
    );
    let j = tick_json(&sshd, &p).one();
    // the last bar may still be drawing: the one before it is complete
    assert_eq!(j["progress"]["step"], 39, "{j}");
    bar.push_str("\rEpoch 41:  41%|####      | 41/100 [00:41<00:30, 3.30it/s]");
    std::fs::write(&log, &bar).unwrap();
    let j = tick_json(&sshd, &p).one();
    assert_eq!(j["progress"]["step"], 40, "{j}");
    assert!(j["line"].as_str().unwrap().contains("step 40 (+1 since"), "{j}");
    let j = tick_json(&sshd, &p).one();
    assert!(
        j["line"].as_str().unwrap().contains("step 40 (no new step since"),
        "the gain only when there is one: {j}"
    );
}

#[test]
fn chain_status_samples_no_gpu() {
    let sshd = Sshd::start();
    let dir = sshd.box_dir().join("cs-chain");
    let p = sshd.profile(
        "cs",
        &format!(
            "gpu: {{ samples: 3, interval: 1s }}\nchain:\n  dir: {}\n  stages:\n    - {{ name: train, run: 'true' }}\n",
            yq(&dir.to_string_lossy())
        ),
    );
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("gpu: { samples: 1 }\n", "");
    std::fs::write(&p, text).unwrap();
    std::fs::write(sshd.path("gpu/freeze-flag-on-call"), "").unwrap();
    let mut c = sshd.gpupatrol();
    c.args(["chain", "status", "-p"]).arg(&p);
    let r = run(c, Duration::from_secs(30));
    assert!(r.stdout.contains("chain"), "{}{}", r.stdout, r.stderr);
    assert!(!sshd.path("gpu/called").exists(), "chain status ran nvidia-smi");
}
