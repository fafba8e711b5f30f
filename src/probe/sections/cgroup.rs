//! `cgroup`: the job's memory against its nearest limit (v2, v1), the
//! oom_kill counter, the CPU quota; the host's memory, load and CPUs.

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cgroup {
    pub version: Option<u8>,
    pub current: Option<u64>,
    pub max: Option<u64>,
    pub inactive_file: Option<u64>,
    pub oom_kills: Option<u64>,
    pub mem_used_pct: Option<f64>,
    pub host_mem_used_pct: Option<f64>,
    pub loadavg1: Option<f64>,
    pub nproc: Option<u32>,
    pub cpu_quota: Option<f64>,
}

pub fn parse(f: &Frame) -> Cgroup {
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let current = num("cg_current");
    // v1 reports "no limit" as a huge page-aligned number.
    let max = num("cg_max").filter(|m| *m < (1u64 << 60));
    let inactive = num("cg_inactive_file");
    let mem_used_pct = match (current, max) {
        (Some(c), Some(m)) if m > 0 => {
            let working = c.saturating_sub(inactive.unwrap_or(0));
            Some(super::round1(working as f64 * 100.0 / m as f64))
        }
        _ => None,
    };
    let host_mem_used_pct = match (num("mem_total_kb"), num("mem_avail_kb")) {
        (Some(t), Some(a)) if t > 0 => Some(super::round1((t.saturating_sub(a)) as f64 * 100.0 / t as f64)),
        _ => None,
    };
    let cpu_quota = f.get("cg_cpu_max").and_then(|v| {
        let (q, p) = v.split_once(' ')?;
        let q: f64 = q.parse().ok()?;
        let p: f64 = p.parse().ok()?;
        (p > 0.0 && q.is_finite()).then(|| q / p)
    });
    Cgroup {
        version: f.get_num("cg_version"),
        current,
        max,
        inactive_file: inactive,
        oom_kills: num("cg_oom_kill"),
        mem_used_pct,
        host_mem_used_pct,
        loadavg1: f
            .get("loadavg")
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok()),
        nproc: f.get_num("nproc"),
        cpu_quota,
    }
}
