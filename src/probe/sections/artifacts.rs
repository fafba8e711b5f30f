//! `artifacts`: per configured path, whether it exists, its entry COUNT
//! (never `test -d`), and when its newest entry is newer than the per-run
//! log, that entry's mtime. A folder the box could not list is unknown
//! (`None`), never a count of 0.

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactFacts {
    pub exists: bool,
    pub count: u64,
    /// Box clock: the newest entry's mtime, when it is newer than the
    /// per-run log (a checkpoint written while the log stayed quiet).
    pub newest_after_log: Option<i64>,
}

impl ArtifactFacts {
    /// A checkpoint written after the log's last write and within `within`
    /// seconds of `now` (box clock): the job still works while its log is
    /// quiet. An old checkpoint beside an older log says nothing of now.
    pub fn written_lately(&self, now: i64, within: i64) -> bool {
        self.newest_after_log.is_some_and(|m| now.saturating_sub(m) <= within)
    }
}

pub fn parse(f: &Frame, n: usize) -> Vec<Option<ArtifactFacts>> {
    (1..=n)
        .map(|i| {
            let v = f.get(&format!("artifact_{i}"))?;
            let mut w = v.split(' ');
            let kind = w.next()?;
            if !matches!(kind, "dir" | "file" | "missing") {
                return None;
            }
            let count = w.next()?.parse().ok()?;
            let newest: i64 = w.next()?.parse().ok()?;
            Some(ArtifactFacts {
                exists: kind != "missing",
                count,
                newest_after_log: (newest > 0).then_some(newest),
            })
        })
        .collect()
}
