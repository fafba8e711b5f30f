//! `wait`: what `gpupatrol wait` looks for — a marker, or literal text in the
//! per-run log from the waiter's own cursor.

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, Default, Serialize)]
pub struct WaitFacts {
    pub marker: Option<bool>,
    pub pattern: Option<bool>,
    /// The next scan's offset (the start of an unfinished last line).
    pub pattern_size: Option<u64>,
    pub pattern_inode: Option<u64>,
    pub pattern_fp: Option<String>,
    pub pattern_fp_len: Option<u64>,
}

impl WaitFacts {
    pub fn found(&self) -> bool {
        self.marker == Some(true) || self.pattern == Some(true)
    }
}

pub fn parse(f: &Frame) -> WaitFacts {
    WaitFacts {
        marker: f.get("marker").map(|v| v == "yes"),
        pattern: f.get("pattern").map(|v| v == "1"),
        pattern_size: f.get_num("pattern_size"),
        pattern_inode: f.get_num("pattern_inode"),
        pattern_fp: f.get("pattern_fp").map(str::to_string),
        pattern_fp_len: f.get_num("pattern_fp_len"),
    }
}
