//! `disk`: bytes and inodes at the data mount: GNU df's `--output` line
//! (both in one call), else `df -P` and `df -P -i` (busybox).

use serde::Serialize;

use crate::probe::frames::Frame;

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub used_pct: Option<f64>,
    pub inodes_used_pct: Option<f64>,
    pub avail_kib: Option<u64>,
}

/// `df -P` line: the first `NN%` token is the capacity; the three numbers
/// before it are size, used, available (a filesystem name may hold spaces).
pub fn df_line(line: &str) -> Option<(f64, u64)> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let pct_at = toks
        .iter()
        .position(|t| t.ends_with('%') && t[..t.len() - 1].parse::<u64>().is_ok())?;
    if pct_at < 3 {
        // `-` for filesystems without inode counts
        return None;
    }
    let used: u64 = toks[pct_at - 2].parse().ok()?;
    let avail: u64 = toks[pct_at - 1].parse().ok()?;
    // f64: no pair of numbers a box prints can overflow the sum
    let total = used as f64 + avail as f64;
    let pct = if total == 0.0 { 0.0 } else { used as f64 * 100.0 / total };
    Some((pct, avail))
}

/// Used percent and available units of one df figure.
type Usage = Option<(f64, u64)>;

/// GNU `df -k --output=size,used,avail,pcent,itotal,iused,iavail,ipcent`:
/// the bytes' and the inodes' (size used avail pct) in one line.
fn output_line(line: &str) -> (Usage, Usage) {
    let t: Vec<&str> = line.split_whitespace().collect();
    if t.len() != 8 {
        return (None, None);
    }
    (
        df_line(&format!("fs {} {} {} {} /", t[0], t[1], t[2], t[3])),
        df_line(&format!("fs {} {} {} {} /", t[4], t[5], t[6], t[7])),
    )
}

pub fn parse(f: &Frame) -> Option<Disk> {
    let (mut bytes, mut inodes) = f
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("o "))
        .map(output_line)
        .unwrap_or((None, None));
    bytes = bytes.or_else(|| f.lines.iter().find_map(|l| l.strip_prefix("b ")).and_then(df_line));
    inodes = inodes.or_else(|| f.lines.iter().find_map(|l| l.strip_prefix("i ")).and_then(df_line));
    if bytes.is_none() && inodes.is_none() {
        return None;
    }
    Some(Disk {
        used_pct: bytes.map(|b| super::round1(b.0)),
        inodes_used_pct: inodes.map(|i| super::round1(i.0)),
        avail_kib: bytes.map(|b| b.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_lines() {
        let (pct, avail) = df_line("/dev/vda 263174212 11234567 251939645 5% /").unwrap();
        assert!((pct - 4.27).abs() < 0.01, "{pct}");
        assert_eq!(avail, 251939645);
        assert!(df_line("my fs 100 90 10 90% /mnt/my data").is_some());
        assert!(df_line("overlay - - - - /").is_none());
    }

    #[test]
    fn gnu_output_lines() {
        let (b, i) = output_line("263174212 11234567 251939645 5% 16777216 393216 16384000 3%");
        assert_eq!(b.unwrap().1, 251939645);
        assert!((i.unwrap().0 - 2.34).abs() < 0.01);
        // a filesystem without inode counts (btrfs, some overlays)
        let (b, i) = output_line("100 90 10 90% - - - -");
        assert!(b.is_some() && i.is_none());
        assert_eq!(output_line("garbage"), (None, None));
    }
}
