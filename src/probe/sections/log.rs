//! `log`: one pass over the per-run log — progress candidates, the last lines
//! and the done text from the part new since the last tick, and crash
//! evidence from its last `crash_window_kb`.

use serde::Serialize;

use crate::probe::frames::Frame;
pub use crate::probe::frames::NumberedLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    Present,
    Missing,
    Unreadable,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogFacts {
    pub status: LogStatus,
    pub size: u64,
    pub inode: u64,
    /// Fingerprint of the first `fp_len` bytes (copytruncate detection).
    pub fp: String,
    pub fp_len: u64,
    pub mtime: i64,
    /// Offset the box started reading from.
    pub start: u64,
    pub rotated: bool,
    pub skipped: u64,
    pub ends_with_newline: bool,
    /// Length of the last (possibly unfinished) line of the scanned stretch.
    pub last_len: u64,
    /// Records in the scanned stretch (the last one is unfinished unless
    /// `ends_with_newline`).
    pub lines: u64,
    /// Line number of the last `done_pattern` line in the new stretch.
    pub done_line: Option<u64>,
    /// The box's scan of the new stretch ran out of time: nothing was read
    /// from it, and the next tick starts after it.
    pub scan_timed_out: bool,
    /// Lines that contain a progress prefilter literal (latest last).
    pub candidates: Vec<NumberedLine>,
    /// The last lines of the new stretch.
    pub tail: Vec<NumberedLine>,
}

impl LogFacts {
    fn absent(status: LogStatus) -> LogFacts {
        LogFacts {
            status,
            size: 0,
            inode: 0,
            fp: String::new(),
            fp_len: 0,
            mtime: 0,
            start: 0,
            rotated: false,
            skipped: 0,
            ends_with_newline: true,
            last_len: 0,
            lines: 0,
            done_line: None,
            scan_timed_out: false,
            candidates: vec![],
            tail: vec![],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CrashEvidence {
    /// The last `Traceback` block (2 lines before, up to 40 after).
    pub traceback: Vec<NumberedLine>,
    /// Lines that look like errors.
    pub signatures: Vec<NumberedLine>,
    /// The last lines of the log.
    pub end: Vec<NumberedLine>,
    /// Line number (in this window) of the last line with a progress literal.
    pub last_progress_nr: u64,
}

impl CrashEvidence {
    pub fn is_empty(&self) -> bool {
        self.traceback.is_empty() && self.signatures.is_empty() && self.end.is_empty()
    }
}

/// The log and its crash evidence. `Ok(None)` when the profile has no log.
pub fn parse(f: &Frame) -> Result<Option<(LogFacts, CrashEvidence)>, String> {
    let status = match f.meta("log") {
        Some("present") => LogStatus::Present,
        Some("missing") => LogStatus::Missing,
        Some("unreadable") => LogStatus::Unreadable,
        Some("none") => return Ok(None),
        other => return Err(format!("log section answered {other:?}")),
    };
    if status != LogStatus::Present {
        return Ok(Some((LogFacts::absent(status), CrashEvidence::default())));
    }
    let need = |k: &str| f.meta_num::<u64>(k).ok_or_else(|| format!("log section lacks {k}"));
    let log = LogFacts {
        status,
        size: need("size")?,
        inode: need("inode")?,
        fp: f.meta("fp").unwrap_or("").to_string(),
        fp_len: f.meta_num("fp_len").unwrap_or(0),
        mtime: f.meta_num("mtime").ok_or("log section lacks mtime")?,
        start: need("start")?,
        rotated: f.meta("rotated") == Some("1"),
        skipped: f.meta_num("skipped").unwrap_or(0),
        ends_with_newline: f.meta("ends_nl") != Some("0"),
        last_len: f.meta_num("last_len").unwrap_or(0),
        lines: f.meta_num("lines").unwrap_or(0),
        done_line: f.meta_num("done_line"),
        scan_timed_out: false,
        candidates: f.tagged("c"),
        tail: f.tagged("t"),
    };
    let crash = CrashEvidence {
        traceback: f.tagged("x"),
        signatures: f.tagged("s"),
        end: f.tagged("e"),
        last_progress_nr: f.meta_num("lastprog").unwrap_or(0),
    };
    Ok(Some((log, crash)))
}

/// A scan that overran its budget (one enormous line, a slow disk) still
/// said where the log ends: move past the stretch rather than read the same
/// bytes into the same timeout every tick. Its lines are not trusted.
pub fn parse_timed_out(f: &Frame) -> Option<LogFacts> {
    let (mut l, _) = parse(f).ok().flatten()?;
    l.scan_timed_out = true;
    l.candidates.clear();
    l.tail.clear();
    l.done_line = None;
    l.ends_with_newline = true;
    Some(l)
}
