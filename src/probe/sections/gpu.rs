//! `gpu`: `nvidia-smi --query-gpu` rows over several samples (`g SAMPLE RC
//! row`), averaged per GPU; how many samples show every GPU busy at idle
//! power (a collective hang's signature).

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Gpu {
    pub index: u32,
    /// `None` where the GPU does not report it (`[N/A]`: MIG, some boards).
    pub util_pct: Option<f64>,
    pub mem_used_mib: f64,
    pub mem_total_mib: f64,
    pub temp_c: Option<f64>,
    /// Board power draw and its limit (watts), where the GPU reports them.
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    /// The Slurm node it is on (GPUs read by a job step on the job's nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its index on that node, where `index` numbers the GPUs of several nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_index: Option<u32>,
}

/// A GPU counts as busy at or above this utilisation for the collective-hang
/// check, and its power as near idle below this share of its limit. NCCL's
/// busy-wait shows ~100% utilisation at idle power; real training draws far more.
pub const SPIN_UTIL_PCT: f64 = 90.0;
pub const SPIN_POWER_SHARE: f64 = 0.25;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Gpus {
    /// No `nvidia-smi` on the box.
    Absent,
    /// Averaged over the samples. `spin_samples`: samples in which every GPU
    /// was busy while drawing near-idle power (a collective hang's signature).
    Present {
        gpus: Vec<Gpu>,
        samples: u32,
        spin_samples: u32,
        /// What nvidia-smi said instead of a row (a GPU it lost: "Unable to
        /// determine the device handle for GPU …: GPU is lost").
        #[serde(skip_serializing_if = "Vec::is_empty")]
        errors: Vec<String>,
    },
    /// `nvidia-smi` failed or answered nonsense.
    Failed { why: String },
    /// The section did not report (timed out, not run).
    Unknown,
    /// A Slurm job's GPUs could not be read on its nodes (why); the login
    /// node's are not shown in their place.
    #[serde(rename = "not-visible")]
    NotVisible { why: String },
}

pub fn parse(f: &Frame) -> Gpus {
    if f.lines.iter().any(|l| l.trim() == "absent") {
        return Gpus::Absent;
    }
    let mut by_index: std::collections::BTreeMap<u32, Vec<Gpu>> = Default::default();
    let mut by_sample: std::collections::BTreeMap<String, Vec<Gpu>> = Default::default();
    let mut failures = Vec::new();
    for l in &f.lines {
        let Some(rest) = l.strip_prefix("g ") else { continue };
        let mut w = rest.splitn(3, ' ');
        let (Some(sample), Some(rc), Some(body)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if rc != "0" {
            failures.push(body.trim().to_string());
            continue;
        }
        match parse_csv(body) {
            Some(g) => {
                by_sample.entry(sample.to_string()).or_default().push(g.clone());
                by_index.entry(g.index).or_default().push(g);
            }
            None => failures.push(body.trim().to_string()),
        }
    }
    if by_index.is_empty() {
        let why = failures
            .into_iter()
            .find(|f| !f.is_empty())
            .unwrap_or_else(|| "nvidia-smi printed nothing".into());
        return Gpus::Failed {
            why: why.chars().take(160).collect(),
        };
    }
    let spin_samples = by_sample.values().filter(|gs| spinning(gs)).count() as u32;
    let gpus = by_index
        .into_iter()
        .map(|(index, v)| {
            let avg = |xs: Vec<f64>| (!xs.is_empty()).then(|| super::round1(xs.iter().sum::<f64>() / xs.len() as f64));
            Gpu {
                index,
                util_pct: avg(v.iter().filter_map(|g| g.util_pct).collect()),
                mem_used_mib: avg(v.iter().map(|g| g.mem_used_mib).collect()).unwrap_or(0.0),
                mem_total_mib: v[0].mem_total_mib,
                temp_c: v.last().and_then(|g| g.temp_c),
                power_w: avg(v.iter().filter_map(|g| g.power_w).collect()),
                power_limit_w: v.iter().find_map(|g| g.power_limit_w),
                ..Default::default()
            }
        })
        .collect();
    let mut errors: Vec<String> = failures
        .into_iter()
        .filter(|f| !f.is_empty())
        .map(|f| f.chars().take(160).collect())
        .collect();
    errors.dedup();
    errors.truncate(4);
    Gpus::Present {
        gpus,
        samples: by_sample.len() as u32,
        spin_samples,
        errors,
    }
}

/// Every GPU of one sample busy while drawing near-idle power.
fn spinning(gs: &[Gpu]) -> bool {
    !gs.is_empty()
        && gs.iter().all(|g| {
            g.util_pct.is_some_and(|u| u >= SPIN_UTIL_PCT)
                && matches!((g.power_w, g.power_limit_w), (Some(p), Some(l)) if l > 0.0 && p < l * SPIN_POWER_SHARE)
        })
}

/// One `--format=csv,noheader,nounits` row. `[N/A]` / `[Not Supported]` fields parse as absent.
pub fn parse_csv(row: &str) -> Option<Gpu> {
    let f: Vec<&str> = row.split(',').map(str::trim).collect();
    if f.len() < 4 {
        return None;
    }
    let num = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    Some(Gpu {
        index: f[0].parse().ok()?,
        util_pct: num(f[1]).map(|u| u.min(100.0)),
        mem_used_mib: num(f[2])?,
        mem_total_mib: num(f[3])?,
        temp_c: f.get(4).and_then(|t| num(t)),
        power_w: f.get(5).and_then(|t| num(t)),
        power_limit_w: f.get(6).and_then(|t| num(t)),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(lines: &[&str]) -> Frame {
        Frame::ok(lines.iter().copied())
    }

    #[test]
    fn rows() {
        let g = parse_csv("0, 97, 72908, 81920, 64").unwrap();
        assert_eq!(g.index, 0);
        assert_eq!(g.util_pct, Some(97.0));
        assert_eq!(g.mem_total_mib, 81920.0);
        let g = parse_csv("1, [N/A], 100, 200, [N/A]").unwrap();
        assert_eq!(g.util_pct, None, "[N/A] is unknown, never 0%");
        assert_eq!(g.temp_c, None);
        assert!(parse_csv("NVIDIA-SMI has failed because it couldn't communicate").is_none());
    }

    #[test]
    fn samples_average_and_spin() {
        match parse(&frame(&["g 1 0 0, 90, 1000, 2000, 50", "g 2 0 0, 100, 1200, 2000, 51"])) {
            Gpus::Present { gpus, samples, .. } => {
                assert_eq!(samples, 2);
                assert_eq!(gpus[0].util_pct, Some(95.0));
                assert_eq!(gpus[0].mem_used_mib, 1100.0);
            }
            other => panic!("{other:?}"),
        }
        let spin = frame(&[
            "g 1 0 0, 100, 1000, 2000, 50, 71.20, 400.00",
            "g 1 0 1, 100, 1000, 2000, 50, 70.00, 400.00",
            "g 2 0 0, 100, 1000, 2000, 50, 71.20, 400.00",
            "g 2 0 1, 100, 1000, 2000, 50, 350.00, 400.00",
            "g 3 0 0, 100, 1000, 2000, 50, [N/A], [N/A]",
            "g 3 0 1, 100, 1000, 2000, 50, 70.00, 400.00",
        ]);
        match parse(&spin) {
            // sample 1 spins; 2 has one GPU at training power; 3 cannot tell
            Gpus::Present {
                samples,
                spin_samples,
                gpus,
                ..
            } => {
                assert_eq!((samples, spin_samples), (3, 1));
                assert_eq!(gpus[0].power_w, Some(71.2));
                assert_eq!(gpus[0].power_limit_w, Some(400.0));
            }
            other => panic!("{other:?}"),
        }
        let failed = frame(&["g 1 9 NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."]);
        assert!(matches!(parse(&failed), Gpus::Failed { .. }));
    }
}
