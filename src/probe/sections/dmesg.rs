//! `dmesg`: the kernel's OOM-killer lines (triage only; empty when unreadable).

use crate::probe::frames::Frame;

pub fn parse(f: &Frame) -> Vec<String> {
    f.lines.clone()
}
