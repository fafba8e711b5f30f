//! One file per subcommand. Each returns the process exit code.

pub mod chain;
pub mod check;
pub mod completions;
pub mod cron;
pub mod demo;
pub mod doctor;
pub mod handbook;
pub mod history;
pub mod init;
pub mod man;
pub mod mcp;
pub mod patrol;
pub mod status;
pub mod tick;
pub mod triage;
pub mod wait;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::profile::{self, Profile};
use crate::state::{self, Store};

/// Open the state store from `--state-dir` or the default location.
pub fn store(dir: Option<&Path>) -> Result<Store> {
    Store::open(dir.map(Path::to_path_buf).unwrap_or_else(state::default_dir))
}

/// Load every profile; errors are printed (file, line, key) and counted.
/// A directory means its `*.yaml`/`*.yml`; a shell glob (quoted, as cron
/// and systemd pass it) its matches.
pub fn load_profiles(paths: &[PathBuf]) -> (Vec<Profile>, usize) {
    let mut ok = Vec::new();
    let (paths, mut bad) = expand_profiles(paths);
    for p in &paths {
        match profile::load(p) {
            Ok(prof) => ok.push(prof),
            Err(e) => {
                eprintln!("gpupatrol: {}", e.render());
                bad += 1;
            }
        }
    }
    (ok, bad)
}

/// `-p` arguments as files: a directory gives its `*.yaml`/`*.yml` (sorted,
/// not recursive), a glob its matches (sorted); each file once. An argument
/// that gives nothing is printed and counted.
pub fn expand_profiles(args: &[PathBuf]) -> (Vec<PathBuf>, usize) {
    let mut out: Vec<PathBuf> = Vec::new();
    // the same file however it is spelled (./a.yaml, its absolute path, a symlink)
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut bad = 0;
    for a in args {
        match expand_one(a) {
            Ok(v) => {
                for p in v {
                    let id = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
                    if !seen.contains(&id) {
                        seen.push(id);
                        out.push(p);
                    }
                }
            }
            Err(e) => {
                eprintln!("gpupatrol: {e}");
                bad += 1;
            }
        }
    }
    (out, bad)
}

/// One `-p` argument for a command that watches one profile: a file, or a
/// directory or glob that gives exactly one.
pub fn one_profile(arg: &Path) -> Result<PathBuf> {
    let v = expand_one(arg).map_err(crate::error::Error::Usage)?;
    match v.as_slice() {
        [one] => Ok(one.clone()),
        many => Err(crate::error::Error::Usage(format!(
            "{} gives {} profiles ({}); this command takes one",
            arg.display(),
            many.len(),
            many.iter()
                .take(4)
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn is_profile_file(p: &Path) -> bool {
    p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

fn expand_one(a: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    if a.is_dir() {
        let rd = std::fs::read_dir(a).map_err(|e| format!("{}: {e}", a.display()))?;
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_profile_file(p) && !hidden(p))
            .collect();
        v.sort();
        if v.is_empty() {
            return Err(format!("{}: no *.yaml or *.yml profile in this directory", a.display()));
        }
        return Ok(v);
    }
    let s = a.to_string_lossy();
    if a.exists() || !s.contains(['*', '?', '[']) {
        // a plain file (or one that is missing: the loader says so, with its name)
        return Ok(vec![a.to_path_buf()]);
    }
    let mut v = glob(a);
    v.retain(|p| p.is_file());
    v.sort();
    if v.is_empty() {
        return Err(format!("{}: no profile matches this pattern", a.display()));
    }
    Ok(v)
}

fn hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// A shell glob, component by component (`*`, `?`, `[...]`; no `**`).
/// Like the shell, a wildcard does not match a leading dot.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    let mut found: Vec<PathBuf> = vec![PathBuf::new()];
    for c in pattern.components() {
        let part = match c {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for f in &mut found {
                    f.push(other.as_os_str());
                }
                continue;
            }
        };
        if !has_wildcard(&part) {
            let lit = unescape(&part);
            for f in &mut found {
                f.push(&lit);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let d = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(rd) = std::fs::read_dir(d) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if wildcard(part.as_bytes(), name.as_bytes()) {
                    next.push(dir.join(&name));
                }
            }
        }
        found = next;
    }
    found
}

/// `*`, `?` and `[...]` (with `!`/`^` and ranges) against one name; a
/// backslash makes the next character literal, as in the shell.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        let step = match p.get(pi) {
            Some(b'\\') => match p.get(pi + 1) {
                Some(&c) if c == s[si] => Some(pi + 2),
                Some(_) => None,
                None => (s[si] == b'\\').then_some(pi + 1),
            },
            Some(b'*') => {
                star = Some(pi);
                mark = si;
                pi += 1;
                continue;
            }
            Some(b'?') => Some(pi + 1),
            Some(b'[') => class(p, pi, s[si]),
            Some(&c) if c == s[si] => Some(pi + 1),
            _ => None,
        };
        match step {
            Some(n) => {
                pi = n;
                si += 1;
            }
            None => match star {
                Some(st) => {
                    pi = st + 1;
                    mark += 1;
                    si = mark;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The glob without its escapes: what a literal component names.
fn unescape(part: &str) -> String {
    let mut out = String::new();
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// A component with an unescaped `*`, `?` or `[`.
fn has_wildcard(part: &str) -> bool {
    let mut escaped = false;
    for c in part.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Match `c` against the class starting at `p[i] == b'['`: the index after
/// it, or `None`. An unclosed `[` is a literal.
fn class(p: &[u8], i: usize, c: u8) -> Option<usize> {
    let mut j = i + 1;
    let negate = matches!(p.get(j), Some(b'!' | b'^'));
    if negate {
        j += 1;
    }
    let start = j;
    let mut hit = false;
    while j < p.len() && (p[j] != b']' || j == start) {
        if j + 2 < p.len() && p[j + 1] == b'-' && p[j + 2] != b']' {
            hit |= (p[j]..=p[j + 2]).contains(&c);
            j += 3;
        } else {
            hit |= p[j] == c;
            j += 1;
        }
    }
    if j >= p.len() {
        return (c == b'[').then_some(i + 1);
    }
    (hit != negate).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_the_shell() {
        assert!(wildcard(b"*.yaml", b"a100.yaml"));
        assert!(!wildcard(b"*.yaml", b"a100.yml"));
        assert!(wildcard(b"box-?.y*ml", b"box-7.yaml"));
        assert!(wildcard(b"box-[0-9].yaml", b"box-3.yaml"));
        assert!(!wildcard(b"box-[!0-9].yaml", b"box-3.yaml"));
        assert!(wildcard(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard(b"a*b*c", b"aXXbYY"));
        assert!(wildcard(b"[ab", b"[ab"));
        assert!(wildcard(br"x\[1\]*", b"x[1].yaml"));
        assert!(!wildcard(br"x\*", b"xy"));
        assert!(has_wildcard(r"x\[1\]*") && !has_wildcard(r"x\[1\]"));
        assert_eq!(unescape(r"x\[1\].yaml"), "x[1].yaml");
    }

    #[test]
    fn directories_and_globs_give_their_profiles_once() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.yaml", "a.yml", "c.txt", ".hidden.yaml"] {
            std::fs::write(d.path().join(n), "x").unwrap();
        }
        let sub = d.path().join("fleet");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("z.yaml"), "x").unwrap();
        let (v, bad) = expand_profiles(&[d.path().to_path_buf(), d.path().join("*.yaml")]);
        assert_eq!(bad, 0);
        let names: Vec<String> = v
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into())
            .collect();
        assert_eq!(
            names,
            ["a.yml", "b.yaml"],
            "sorted, each once, no hidden or other files"
        );
        let (v, _) = expand_profiles(&[d.path().join("*/*.yaml")]);
        assert_eq!(v, vec![sub.join("z.yaml")]);
        let (v, _) = expand_profiles(&[d.path().join("a.yml"), d.path().join("fleet/../a.yml")]);
        assert_eq!(v.len(), 1, "one file however it is spelled");
        std::fs::write(d.path().join("x[1].yaml"), "x").unwrap();
        let (v, bad) = expand_profiles(&[d.path().join(r"x\[1\]*")]);
        assert_eq!(
            (v, bad),
            (vec![d.path().join("x[1].yaml")], 0),
            "escaped like the shell"
        );
        let (v, bad) = expand_profiles(&[d.path().join("nothing-*.yaml"), d.path().join("fleet/../c.txt")]);
        assert_eq!(
            (v.len(), bad),
            (1, 1),
            "a plain file is kept; a glob that matches nothing is an error"
        );
        assert!(one_profile(d.path()).is_err(), "two profiles where one is wanted");
        assert_eq!(one_profile(&sub).unwrap(), sub.join("z.yaml"));
    }
}
