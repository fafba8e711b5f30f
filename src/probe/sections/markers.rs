//! `markers`: the done marker (and its mtime, box clock) and the done text
//! in the shared master log, read from the last tick's cursor.

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Markers {
    pub done_marker: Option<bool>,
    pub done_marker_mtime: Option<i64>,
    pub master_done: Option<bool>,
    pub master_size: Option<u64>,
    pub master_inode: Option<u64>,
    pub master_fp: Option<String>,
    pub master_fp_len: Option<u64>,
    /// The master log was replaced under the cursor (rotated, truncated).
    pub master_replaced: bool,
}

pub fn parse(f: &Frame) -> Markers {
    Markers {
        done_marker: f.get("done_marker").map(|v| v == "yes"),
        done_marker_mtime: f.get_num("done_marker_mtime"),
        master_done: f.get("master_done").map(|v| v == "1"),
        master_size: f.get_num("master_size"),
        master_inode: f.get_num("master_inode"),
        master_fp: f.get("master_fp").map(str::to_string),
        master_fp_len: f.get_num("master_fp_len"),
        master_replaced: f.get("master_replaced") == Some("1"),
    }
}
