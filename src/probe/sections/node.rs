//! `node`: a Slurm job's cgroup and GPUs, read by one job step
//! (`srun --overlap`, one task per node, `--label`) on the job's nodes.
//! Per node: its name, its cgroup lines, its GPU rows — parsed by the same
//! readers as the login node's, then folded: the GPUs of every node (named
//! by node), and the worst node's memory.

use super::cgroup::{self, Cgroup};
use super::gpu::{self, Gpus};
use crate::probe::frames::Frame;

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub gpus: Gpus,
    pub cgroup: Cgroup,
}

#[derive(Debug, Clone)]
pub enum NodeFacts {
    /// What the job step read, one entry per node, in node order.
    Visible(Vec<Node>),
    /// Why the job's nodes could not be read (the line says so instead of
    /// showing the login node's GPUs as the job's).
    NotVisible(String),
}

/// Why, when the job has no running step to read from (pending, gone).
pub const NOT_RUNNING: &str = "no running job to read from";

pub fn parse(f: &Frame) -> NodeFacts {
    let status = f.get("node_status").unwrap_or("");
    match status {
        "job-not-running" => return NodeFacts::NotVisible(NOT_RUNNING.into()),
        "no-srun" => return NodeFacts::NotVisible("no srun on the login node".into()),
        "no-job-id" => return NodeFacts::NotVisible("squeue gave no job id to step into".into()),
        "ran" => {}
        other => return NodeFacts::NotVisible(format!("node section said {:?}", crate::text::plain(other))),
    }
    let rc: i32 = f.get("node_rc").and_then(|v| v.parse().ok()).unwrap_or(-1);
    let mut tasks: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    let mut other: Vec<String> = Vec::new();
    for l in &f.lines {
        if l.starts_with("node_status=")
            || l.starts_with("node_rc=")
            || l.starts_with("node_want=")
            || l.starts_with("node_cut=")
        {
            continue;
        }
        // srun --label: "N: line" (padded to the widest task number)
        let t = l.trim_start();
        match t.split_once(": ") {
            Some((n, rest)) if n.parse::<u32>().is_ok() => {
                tasks.entry(n.parse().unwrap_or(0)).or_default().push(rest.to_string());
            }
            _ if !t.is_empty() => other.push(t.to_string()),
            _ => {}
        }
    }
    let mut nodes: Vec<Node> = tasks
        .into_values()
        .filter_map(|lines| {
            let name = lines.iter().find_map(|l| l.strip_prefix("node="))?.to_string();
            let fr = Frame::ok(lines);
            // a wedged nvidia-smi on the node says so (not "printed nothing")
            let gpus = match (gpu::parse(&fr), fr.get("gpu_rc")) {
                (Gpus::Failed { .. }, Some("124")) => Gpus::Failed {
                    why: "nvidia-smi timed out on the node (wedged driver?)".into(),
                },
                (g, _) => g,
            };
            Some(Node {
                name: crate::text::plain(&name),
                gpus,
                cgroup: cgroup::parse(&fr),
            })
        })
        .collect();
    if nodes.is_empty() {
        let why = other
            .iter()
            .find(|l| !l.is_empty())
            .map(|l| crate::text::plain(&l.chars().take(160).collect::<String>()))
            .unwrap_or_else(|| "it printed nothing".into());
        return NodeFacts::NotVisible(if rc == 124 {
            "the job step did not answer within section_timeout".into()
        } else {
            format!("srun --overlap into the job failed (exit {rc}): {why}")
        });
    }
    // every node or none: a partial read would read as GPUs fallen off the
    // bus, OOM kills undone, and GPUs renumbered
    let want: usize = f.get("node_want").and_then(|v| v.parse().ok()).unwrap_or(nodes.len());
    if let Some(n) = f.get("node_cut") {
        return NodeFacts::NotVisible(format!(
            "the job step's output was cut at 16384 of {} lines ({} of {want} nodes read)",
            crate::text::plain(n),
            nodes.len()
        ));
    }
    if nodes.len() < want {
        let why = other
            .iter()
            .find(|l| !l.is_empty())
            .map(|l| format!(": {}", crate::text::plain(&l.chars().take(160).collect::<String>())))
            .unwrap_or_default();
        return NodeFacts::NotVisible(format!(
            "{} of the job's {want} nodes answered (exit {rc}){why}",
            nodes.len()
        ));
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    NodeFacts::Visible(nodes)
}

/// The facts the rest of the tick reads: every node's GPUs (each named by
/// its node; with several nodes numbered across them, the node's own index
/// kept), and the cgroup of the node closest to its memory limit, with the
/// OOM kills of all of them.
pub fn fold(n: &NodeFacts) -> (Gpus, Cgroup) {
    let nodes = match n {
        NodeFacts::NotVisible(why) => {
            return (Gpus::NotVisible { why: why.clone() }, Cgroup::default());
        }
        NodeFacts::Visible(nodes) => nodes,
    };
    let several = nodes.len() > 1;
    let mut all = Vec::new();
    let mut samples = u32::MAX;
    let mut spin = u32::MAX;
    let mut errors = Vec::new();
    let mut first_other: Option<Gpus> = None;
    for node in nodes {
        match &node.gpus {
            Gpus::Present {
                gpus,
                samples: s,
                spin_samples,
                errors: e,
            } => {
                for g in gpus {
                    let mut g = g.clone();
                    g.node = Some(node.name.clone());
                    if several {
                        g.node_index = Some(g.index);
                        g.index = all.len() as u32;
                    }
                    all.push(g);
                }
                samples = samples.min(*s);
                spin = spin.min(*spin_samples);
                errors.extend(e.iter().map(|x| format!("{}: {x}", node.name)));
            }
            Gpus::Failed { why } if several => errors.push(format!("{}: nvidia-smi failed: {why}", node.name)),
            other => {
                first_other.get_or_insert_with(|| other.clone());
            }
        }
    }
    let gpus = if all.is_empty() {
        first_other.unwrap_or(Gpus::Unknown)
    } else {
        Gpus::Present {
            gpus: all,
            samples,
            spin_samples: spin,
            errors,
        }
    };
    let mut worst = nodes
        .iter()
        .map(|n| n.cgroup.clone())
        .max_by(|a, b| {
            a.mem_used_pct
                .unwrap_or(-1.0)
                .partial_cmp(&b.mem_used_pct.unwrap_or(-1.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or_default();
    let kills: Vec<u64> = nodes.iter().filter_map(|n| n.cgroup.oom_kills).collect();
    worst.oom_kills = (!kills.is_empty()).then(|| kills.iter().sum());
    (gpus, worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(lines: &[&str]) -> Frame {
        Frame::ok(lines.iter().copied())
    }

    const TWO: &[&str] = &[
        "node_rc=0",
        "node_status=ran",
        "1: node=gpu-b",
        "0: node=gpu-a",
        "0: cg_version=2",
        "0: cg_current=1000",
        "0: cg_max=10000",
        "0: cg_oom_kill=0",
        "1: cg_version=2",
        "1: cg_current=9500",
        "1: cg_max=10000",
        "1: cg_oom_kill=2",
        "0: g 1 0 0, 97, 70000, 81920, 60, 390.0, 400.0",
        "0: g 1 0 1, 96, 70000, 81920, 60, 385.0, 400.0",
        "1: g 1 0 0, 98, 70000, 81920, 60, 391.0, 400.0",
        "1: g 1 0 1, 0, 70000, 81920, 40, 70.0, 400.0",
        "0: gpu_rc=0",
        "1: gpu_rc=0",
    ];

    #[test]
    fn two_nodes_fold_into_named_gpus_and_the_worst_memory() {
        let n = parse(&frame(TWO));
        let NodeFacts::Visible(nodes) = &n else { panic!("{n:?}") };
        assert_eq!(
            nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["gpu-a", "gpu-b"]
        );
        let (gpus, cg) = fold(&n);
        let Gpus::Present { gpus, .. } = gpus else { panic!() };
        assert_eq!(gpus.len(), 4);
        assert_eq!(
            gpus.iter()
                .map(|g| (g.index, g.node.clone().unwrap(), g.node_index))
                .collect::<Vec<_>>(),
            [
                (0, "gpu-a".into(), Some(0)),
                (1, "gpu-a".into(), Some(1)),
                (2, "gpu-b".into(), Some(0)),
                (3, "gpu-b".into(), Some(1))
            ]
        );
        // gpu-b is at 95% of its limit and had the OOM kills
        assert_eq!(cg.mem_used_pct, Some(95.0));
        assert_eq!(cg.oom_kills, Some(2));
    }

    #[test]
    fn a_node_that_did_not_answer_makes_the_read_not_visible() {
        let mut lines: Vec<&str> = TWO.iter().copied().filter(|l| !l.starts_with("1: ")).collect();
        lines.push("node_want=2");
        lines.push("srun: error: gpu-b: task 1: Exited with exit code 1");
        lines[0] = "node_rc=1";
        let (g, cg) = fold(&parse(&frame(&lines)));
        match g {
            Gpus::NotVisible { why } => {
                assert!(
                    why.starts_with("1 of the job's 2 nodes answered (exit 1): srun: error: gpu-b"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(cg.oom_kills.is_none(), "no partial OOM count to compare with");
        let mut cut: Vec<&str> = TWO.to_vec();
        cut.push("node_cut=20000");
        assert!(matches!(fold(&parse(&frame(&cut))).0, Gpus::NotVisible { .. }));
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        for (lines, says) in [
            (vec!["node_status=job-not-running"], "no running job"),
            (vec!["node_status=no-srun"], "no srun"),
            (
                vec!["node_rc=1", "node_status=ran", "srun: unrecognized option '--overlap'"],
                "unrecognized option",
            ),
            (vec!["node_rc=124", "node_status=ran"], "did not answer"),
        ] {
            let (g, cg) = fold(&parse(&frame(&lines)));
            match g {
                Gpus::NotVisible { why } => assert!(why.contains(says), "{why}"),
                other => panic!("{other:?}"),
            }
            assert!(cg.mem_used_pct.is_none());
        }
    }
}
