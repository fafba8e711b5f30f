//! The probe's sections: one enum, and per section one `.sh` snippet (its
//! shell function `gp_NAME`) beside one `.rs` file with its types and its
//! parser. The list a command runs is a [`Plan`], computed once from the
//! profile and what the command asks; the section names live here only.

pub mod alive;
pub mod artifacts;
pub mod cgroup;
pub mod chain;
pub mod disk;
pub mod dmesg;
pub mod gpu;
pub mod log;
pub mod markers;
pub mod node;
pub mod now;
pub mod wait;

use crate::profile::Profile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Now,
    Alive,
    Markers,
    Log,
    Artifacts,
    Disk,
    Chain,
    Wait,
    Dmesg,
    Cgroup,
    Gpu,
    /// A Slurm job's cgroup and GPUs, from a job step on its nodes.
    Node,
}

impl Section {
    /// The frame name, and the shell function `gp_NAME` that prints it.
    pub fn name(self) -> &'static str {
        match self {
            Section::Now => "now",
            Section::Alive => "alive",
            Section::Markers => "markers",
            Section::Log => "log",
            Section::Artifacts => "artifacts",
            Section::Disk => "disk",
            Section::Chain => "chain",
            Section::Wait => "wait",
            Section::Dmesg => "dmesg",
            Section::Cgroup => "cgroup",
            Section::Gpu => "gpu",
            Section::Node => "node",
        }
    }
}

/// Every section's shell code, with the shared helpers: the probe's library
/// (the guarded resume runs its alive check too).
pub const LIB: &str = concat!(
    include_str!("../../../templates/proc.sh"),
    include_str!("common.sh"),
    include_str!("now.sh"),
    include_str!("alive.sh"),
    include_str!("markers.sh"),
    include_str!("log.sh"),
    include_str!("artifacts.sh"),
    include_str!("disk.sh"),
    include_str!("chain.sh"),
    include_str!("wait.sh"),
    include_str!("dmesg.sh"),
    include_str!("cgroup.sh"),
    include_str!("gpu.sh"),
    include_str!("node.sh"),
);

/// What a Slurm job step runs on each node (the `node` section): the
/// helpers, the cgroup and GPU readers, its driver. Static text: it travels
/// in the environment, and no profile value is in it.
pub const NODE_LIB: &str = concat!(
    include_str!("../../../templates/proc.sh"),
    include_str!("common.sh"),
    include_str!("cgroup.sh"),
    include_str!("gpu.sh"),
    include_str!("node_main.sh"),
);

/// The driver that runs the planned sections.
pub const MAIN: &str = include_str!("main.sh");

/// What a command asks of the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The tick: alive, progress, done, crash, resources.
    Tick,
    /// The tick plus a wait's marker or text.
    Wait,
    /// The tick plus the kernel's OOM lines.
    Triage,
    /// The chain's sentinels only (no GPU samples, no log).
    ChainStatus,
}

/// The sections one probe runs, in order: `now` and `alive` first (every
/// age uses the box's clock; the cgroup follows the job's pid), the GPU last
/// (its sampler started first and ran meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan(pub Vec<Section>);

impl Plan {
    pub fn for_profile(p: &Profile, ask: Ask) -> Plan {
        use Section::*;
        if ask == Ask::ChainStatus {
            return Plan(vec![Now, Chain]);
        }
        let mut v = vec![Now, Alive, Markers];
        if p.job.log.is_some() {
            v.push(Log);
        }
        if !p.artifacts.is_empty() {
            v.push(Artifacts);
        }
        if p.data_mount.is_some() {
            v.push(Disk);
        }
        if p.chain.is_some() {
            v.push(Chain);
        }
        match ask {
            Ask::Wait => v.push(Wait),
            Ask::Triage => v.push(Dmesg),
            Ask::Tick | Ask::ChainStatus => {}
        }
        // a Slurm job's GPUs and memory are on its nodes, not the login node
        if p.slurm_node_probe && matches!(p.job.alive, Some(crate::profile::AliveCheck::Slurm(_))) {
            // each read is a job step (MaxStepCount); a wait's frequent
            // polls do not spend them
            if ask != Ask::Wait {
                v.push(Node);
            }
        } else {
            v.extend([Cgroup, Gpu]);
        }
        Plan(v)
    }

    pub fn has(&self, s: Section) -> bool {
        self.0.contains(&s)
    }

    /// As the driver reads it: `GP_SECTIONS='now alive …'`.
    pub fn names(&self) -> String {
        self.0.iter().map(|s| s.name()).collect::<Vec<_>>().join(" ")
    }
}

/// One decimal, as the line and JSON show percentages.
pub(crate) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
