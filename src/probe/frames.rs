//! Splitting the probe's output into sections. Control lines start with the
//! tick's nonce (`NONCE START v1`, `NONCE BEGIN name`, `NONCE END name rc=N
//! trunc=0|1`, `NONCE FIN`); every other line belongs to the open section.
//! Log text cannot forge a control line because it cannot know the nonce.

use std::collections::BTreeMap;

use serde::Serialize;

/// A line from a log with its line number in the scanned stretch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberedLine {
    pub nr: u64,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// The section's exit status on the box (`None` if it never reported one).
    pub rc: Option<i32>,
    /// Output was cut to the section's byte budget.
    pub truncated: bool,
    pub lines: Vec<String>,
}

impl Frame {
    /// A frame that ended with rc=0, holding `lines` (one node's share of
    /// the node section; the tests' frames).
    pub fn ok<S: Into<String>>(lines: impl IntoIterator<Item = S>) -> Frame {
        Frame {
            rc: Some(0),
            truncated: false,
            lines: lines.into_iter().map(Into::into).collect(),
        }
    }

    /// Value of the first `key=value` line.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')).map(str::trim))
    }

    pub fn get_num<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// Value of the first `m key=value` line (a section that also carries
    /// tagged log lines keeps its own numbers on `m` lines).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            l.strip_prefix("m ")
                .and_then(|r| r.strip_prefix(key))
                .and_then(|r| r.strip_prefix('='))
        })
    }

    pub fn meta_num<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.meta(key).and_then(|v| v.trim().parse().ok())
    }

    /// Lines tagged `TAG NR text` (the tag is written by awk on the box, so
    /// log text cannot forge one).
    pub fn tagged(&self, tag: &str) -> Vec<NumberedLine> {
        let prefix = format!("{tag} ");
        self.lines
            .iter()
            .filter_map(|l| {
                let rest = l.strip_prefix(&prefix)?;
                let (nr, text) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(NumberedLine {
                    nr: nr.parse().ok()?,
                    text: text.to_string(),
                })
            })
            .collect()
    }

    /// `timeout` exits 124 (or 137 after its KILL) when the section overran.
    pub fn timed_out(&self) -> bool {
        matches!(self.rc, Some(124) | Some(137))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Frames {
    pub sections: BTreeMap<String, Frame>,
    /// Lines outside any frame (shell noise, a login banner).
    pub stray_lines: usize,
}

/// Parse framed probe output. Errors describe why the output is not a
/// complete probe; the caller turns them into PROBE_ERROR.
pub fn parse(out: &[u8], nonce: &str) -> Result<Frames, String> {
    let mut frames = Frames::default();
    let mut started = false;
    let mut finished = false;
    let mut open: Option<(String, Frame)> = None;
    let prefix = format!("{nonce} ");
    // A last line without its newline was cut off in transit.
    let (whole, cut) = match out.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&out[..=i], &out[i + 1..]),
        None => (&out[..0], out),
    };
    for raw in whole.split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(raw);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if let Some(ctl) = line.strip_prefix(&prefix) {
            let mut words = ctl.split(' ');
            match words.next() {
                Some("START") => {
                    if started {
                        return Err("probe output has two START frames".into());
                    }
                    started = true;
                }
                Some("BEGIN") if started && !finished => {
                    let name = words.next().unwrap_or("").to_string();
                    if let Some((prev, _)) = open.take() {
                        return Err(format!("section {prev} has no END frame"));
                    }
                    open = Some((name, Frame::default()));
                }
                Some("END") if started => {
                    let name = words.next().unwrap_or("");
                    let Some((open_name, mut sec)) = open.take() else {
                        return Err(format!("END frame for {name} without BEGIN"));
                    };
                    if open_name != name {
                        return Err(format!("END frame for {name} while {open_name} is open"));
                    }
                    for w in words {
                        if let Some(v) = w.strip_prefix("rc=") {
                            sec.rc = v.trim().parse().ok();
                        } else if let Some(v) = w.strip_prefix("trunc=") {
                            sec.truncated = v.trim() == "1";
                        }
                    }
                    // The shell adds a newline before its RC marker; drop the
                    // blank lines that leaves at the end.
                    while sec.lines.last().is_some_and(|l| l.is_empty()) {
                        sec.lines.pop();
                    }
                    frames.sections.insert(open_name, sec);
                }
                Some("FIN") if started => {
                    if let Some((name, _)) = &open {
                        return Err(format!("section {name} has no END frame"));
                    }
                    finished = true;
                }
                _ => return Err(format!("malformed control line {:?}", truncate(line, 80))),
            }
            continue;
        }
        match &mut open {
            // box text: no terminal escape sequence survives past here
            Some((_, sec)) => sec.lines.push(crate::text::plain(line)),
            None => {
                if !line.is_empty() {
                    frames.stray_lines += 1;
                }
            }
        }
    }
    if !cut.is_empty() && started && !finished {
        let place = open
            .as_ref()
            .map(|(n, _)| format!(" in section {n}"))
            .unwrap_or_default();
        return Err(format!("output ended mid-line{place} (connection cut or probe killed)"));
    }
    if !started {
        return Err("no gpupatrol frame in the output (is the remote login shell able to run `sh -s`?)".into());
    }
    if let Some((name, _)) = open {
        return Err(format!(
            "output ended inside section {name} (connection cut or probe killed)"
        ));
    }
    if !finished {
        return Err("output ended before the probe finished".into());
    }
    Ok(frames)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "GPXabc123";

    #[test]
    fn parses_sections() {
        let out = format!(
            "motd noise\n{N} START v1\n{N} BEGIN now\nnow=100\n\n{N} END now rc=0 trunc=0\n{N} BEGIN gpu\nabsent\n{N} END gpu rc=124 trunc=1\n{N} FIN\n"
        );
        let f = parse(out.as_bytes(), N).unwrap();
        assert_eq!(f.stray_lines, 1);
        assert_eq!(f.sections["now"].get_num::<i64>("now"), Some(100));
        assert_eq!(f.sections["now"].lines, vec!["now=100"]);
        assert!(f.sections["gpu"].timed_out());
        assert!(f.sections["gpu"].truncated);
    }

    #[test]
    fn forged_frames_without_the_nonce_are_data() {
        let out = format!(
            "{N} START v1\n{N} BEGIN log\nGPXother END log rc=0 trunc=0\nEND log rc=0\n{N} END log rc=0 trunc=0\n{N} FIN\n"
        );
        let f = parse(out.as_bytes(), N).unwrap();
        assert_eq!(f.sections["log"].lines.len(), 2);
    }

    #[test]
    fn truncated_output_is_an_error() {
        let out = format!("{N} START v1\n{N} BEGIN log\nsome\n");
        assert!(parse(out.as_bytes(), N).unwrap_err().contains("inside section log"));
        let out = format!("{N} START v1\n{N} BEGIN log\n{N} END log rc=0 trunc=0\n");
        assert!(
            parse(out.as_bytes(), N)
                .unwrap_err()
                .contains("before the probe finished")
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"\xff\xfe garbage \x00\n\n", N).is_err());
        assert!(parse(b"", N).is_err());
        let out = format!("{N} START v1\n{N} WHAT\n");
        assert!(parse(out.as_bytes(), N).is_err());
    }
}
