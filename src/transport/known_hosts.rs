//! `known_hosts` as OpenSSH reads it: markers (`@revoked`, `@cert-authority`),
//! hashed hosts (`|1|salt|hash`), `*`/`?` wildcards and `!` negation,
//! `[host]:port`, whitespace between fields. The rules are OpenSSH's:
//!
//! - a revoked key is refused, under every policy;
//! - a host with recorded keys must present one of them — another key, of the
//!   same type *or another type*, is a changed key (OpenSSH: "REMOTE HOST
//!   IDENTIFICATION HAS CHANGED");
//! - only a host with no entry at all is unknown (`accept-new` learns it);
//! - certificates are not supported: a host trusted only through a
//!   `@cert-authority` line is refused with a message saying so.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use data_encoding::BASE64_MIME;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::PublicKey;
use russh::keys::ssh_key::public::KeyData;
use sha1::Sha1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// The file and line it came from (for messages).
    pub file: std::path::PathBuf,
    pub line: usize,
    marker: Marker,
    patterns: String,
    pub key: KeyData,
    pub algorithm: String,
}

impl Entry {
    fn at(&self) -> String {
        format!("{} line {}", self.file.display(), self.line)
    }
}

/// What known_hosts says about a host and the key it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Known,
    /// No entry for this host at all.
    Unknown,
    /// The host has recorded keys and this is none of them.
    Changed {
        /// "FILE line N" and the key type recorded there.
        recorded: Vec<(String, String)>,
    },
    /// This key is marked `@revoked` ("FILE line N").
    Revoked {
        at: String,
    },
    /// Only a `@cert-authority` line covers this host ("FILE line N").
    CertificateOnly {
        at: String,
    },
}

/// Read `path` (a missing file is empty). Lines that do not parse are skipped,
/// as OpenSSH skips them; a byte that is not UTF-8 spoils its line only.
pub fn load(path: &Path) -> std::io::Result<Vec<Entry>> {
    // never open a FIFO or a socket: the read would wait for a writer, past
    // every deadline (/dev/null, a character device, reads as empty)
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_dir() {
            return Err(std::io::Error::other("not a regular file"));
        }
    }
    let bytes = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    Ok(bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, l)| {
            let mut e = parse_line(i + 1, &String::from_utf8_lossy(l))?;
            e.file = path.to_path_buf();
            Some(e)
        })
        .collect())
}

/// The user's file, then the global ones (OpenSSH's `GlobalKnownHostsFile`,
/// by default `/etc/ssh/ssh_known_hosts` and `ssh_known_hosts2`): a host
/// recorded or revoked there counts as OpenSSH counts it. An unreadable
/// global file is skipped, as OpenSSH skips it.
pub fn load_all(user: &Path, global: &[std::path::PathBuf]) -> std::io::Result<Vec<Entry>> {
    let mut all = load(user)?;
    for g in global {
        if let Ok(mut more) = load(g) {
            all.append(&mut more);
        }
    }
    Ok(all)
}

/// OpenSSH's default global known_hosts files.
pub fn default_global() -> Vec<std::path::PathBuf> {
    vec!["/etc/ssh/ssh_known_hosts".into(), "/etc/ssh/ssh_known_hosts2".into()]
}

fn parse_line(line: usize, l: &str) -> Option<Entry> {
    let l = l.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    let mut w = l.split_whitespace();
    let mut first = w.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = w.next()?;
    }
    let algorithm = w.next()?.to_string();
    let b64 = w.next()?;
    let key = russh::keys::parse_public_key_base64(b64).ok()?;
    Some(Entry {
        file: std::path::PathBuf::new(),
        line,
        marker,
        patterns: first.to_string(),
        key: key.key_data().clone(),
        algorithm,
    })
}

/// The name known_hosts files use for the host: `host`, or `[host]:port`,
/// lowercased as OpenSSH does before it matches or hashes (`LocalHost` and
/// `localhost` are one host).
pub fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 { host } else { format!("[{host}]:{port}") }
}

/// OpenSSH's pattern list match: any `!pattern` that matches excludes the
/// host; otherwise any plain pattern (wildcards, or a hashed name) includes it.
pub(crate) fn matches(name: &str, patterns: &str) -> bool {
    let mut hit = false;
    for p in patterns.split(',') {
        let (neg, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        let m = if p.starts_with("|1|") {
            hashed(name, p)
        } else {
            wildcard(&name.to_ascii_lowercase(), &p.to_ascii_lowercase())
        };
        if m && neg {
            return false;
        }
        hit |= m;
    }
    hit
}

fn hashed(name: &str, p: &str) -> bool {
    let mut parts = p.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64_MIME.decode(salt.as_bytes()), BASE64_MIME.decode(hash.as_bytes())) else {
        return false;
    };
    Hmac::<Sha1>::new_from_slice(&salt)
        .map(|m| m.chain_update(name.as_bytes()).verify_slice(&hash).is_ok())
        .unwrap_or(false)
}

/// `*` any run, `?` one character.
fn wildcard(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if j < p.len() && (p[j] == '?' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '*' {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(st) = star {
            j = st + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == '*' {
        j += 1;
    }
    j == p.len()
}

/// Check `key` presented by `host:port` against the entries.
pub fn check(entries: &[Entry], host: &str, port: u16, key: &PublicKey) -> Check {
    let name = host_name(host, port);
    let mine: Vec<&Entry> = entries.iter().filter(|e| matches(&name, &e.patterns)).collect();
    if let Some(r) = mine
        .iter()
        .find(|e| e.marker == Marker::Revoked && e.key == *key.key_data())
    {
        return Check::Revoked { at: r.at() };
    }
    let plain: Vec<&&Entry> = mine.iter().filter(|e| e.marker == Marker::None).collect();
    if plain.iter().any(|e| e.key == *key.key_data()) {
        return Check::Known;
    }
    if !plain.is_empty() {
        return Check::Changed {
            recorded: plain.iter().map(|e| (e.at(), e.algorithm.clone())).collect(),
        };
    }
    if let Some(ca) = mine.iter().find(|e| e.marker == Marker::CertAuthority) {
        return Check::CertificateOnly { at: ca.at() };
    }
    Check::Unknown
}

/// The key types recorded for the host, to ask the server for those first
/// (a host that has ed25519 and ECDSA keys, with only ECDSA recorded, must be
/// asked for ECDSA, not refused as changed).
pub fn recorded_types(entries: &[Entry], host: &str, port: u16) -> Vec<String> {
    let name = host_name(host, port);
    let mut out: Vec<String> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.marker == Marker::None && matches(&name, &e.patterns))
    {
        if !out.contains(&e.algorithm) {
            out.push(e.algorithm.clone());
        }
    }
    out
}

/// Append `key` for `host:port` (accept-new). The folder is created 0700 and
/// the file 0600, as OpenSSH does.
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsutil::private_dir(dir)?;
    }
    let line = key.to_openssh().map_err(|e| std::io::Error::other(e.to_string()))?;
    // the key without its comment: "TYPE BASE64"
    let mut w = line.split_whitespace();
    let (t, b) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    let mut f = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    // a file that lacks its last newline must not glue our line to its last
    let needs_nl = std::fs::read(path)
        .map(|d| !d.is_empty() && !d.ends_with(b"\n"))
        .unwrap_or(false);
    let text = format!(
        "{}{} {t} {b}\n",
        if needs_nl { "\n" } else { "" },
        host_name(host, port)
    );
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAICb4qKpYGN3w7gumSeeZoZuqSNUxoiQ2rpFCgUv0htJU";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIF7+mXDlij/Q8bxO9KGRJfgu8QNL6yQIrre7thxt0u72";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn entries(text: &str) -> Vec<Entry> {
        text.lines()
            .enumerate()
            .filter_map(|(i, l)| parse_line(i + 1, l))
            .map(|mut e| {
                e.file = "kh".into();
                e
            })
            .collect()
    }

    fn at(line: usize) -> String {
        format!("kh line {line}")
    }

    #[test]
    fn patterns_like_openssh() {
        assert!(matches("[10.0.0.5]:2222", "[10.0.0.5]:2222"));
        assert!(!matches("10.0.0.5", "[10.0.0.5]:2222"));
        assert!(matches("gpu7.cluster", "*.cluster,!gpu9.cluster"));
        assert!(!matches("gpu9.cluster", "*.cluster,!gpu9.cluster"));
        assert!(matches("box1", "box?"));
        assert!(matches("BOX1", "box1"));
    }

    #[test]
    fn known_changed_unknown_revoked_certificate() {
        let e = entries(&format!(
            "# comment\n[127.0.0.1]:2222\tssh-ed25519 {ED}\n@revoked * ssh-ed25519 {ED2}\n@cert-authority *.ca ssh-ed25519 {ED}\n"
        ));
        assert_eq!(
            check(&e, "127.0.0.1", 2222, &key(ED)),
            Check::Known,
            "tabs separate fields too"
        );
        assert_eq!(check(&e, "127.0.0.1", 2222, &key(ED2)), Check::Revoked { at: at(3) });
        assert_eq!(
            check(&e, "other", 22, &key(ED2)),
            Check::Revoked { at: at(3) },
            "revoked everywhere"
        );
        assert_eq!(check(&e, "other", 22, &key(ED)), Check::Unknown);
        assert_eq!(check(&e, "n1.ca", 22, &key(ED)), Check::CertificateOnly { at: at(4) });
    }

    #[test]
    fn another_key_type_for_a_known_host_is_a_changed_key() {
        let ecdsa = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMuMHK9PW43gzqQOPrJiHEitmDYsBYwI+k4Vw1adzpdILtROGHG6Ljsz0mDecVH1BS8M2UtaOCIuD6+rxp2tnPk=";
        let e = entries(&format!("box ssh-ed25519 {ED}\n"));
        match check(&e, "box", 22, &key(ecdsa)) {
            Check::Changed { recorded } => assert_eq!(recorded, vec![(at(1), "ssh-ed25519".to_string())]),
            other => panic!("{other:?}"),
        }
        assert_eq!(recorded_types(&e, "box", 22), vec!["ssh-ed25519"]);
    }

    #[test]
    fn learning_is_private_and_appends_a_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("new/.ssh/known_hosts");
        learn(&path, "127.0.0.1", 2200, &key(ED)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let e = load(&path).unwrap();
        assert_eq!(check(&e, "127.0.0.1", 2200, &key(ED)), Check::Known);
    }

    /// `|1|salt|hash` of `name`, as `ssh-keygen -H` writes it.
    fn hash_of(name: &str) -> String {
        let salt = [7u8; 20];
        let mac = Hmac::<Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        format!(
            "|1|{}|{}",
            BASE64_MIME.encode(&salt).trim(),
            BASE64_MIME.encode(&mac).trim()
        )
    }

    #[test]
    fn a_hashed_entry_matches_the_host_in_any_case() {
        // OpenSSH lowercases the name before hashing: `LocalHost` is `localhost`
        let e = entries(&format!("{} ssh-ed25519 {ED}\n", hash_of("[localhost]:2222")));
        assert_eq!(check(&e, "LocalHost", 2222, &key(ED)), Check::Known);
        assert!(
            matches!(check(&e, "LocalHost", 2222, &key(ED2)), Check::Changed { .. }),
            "a different key for a hashed, mixed-case host is a changed key, never unknown"
        );
        assert_eq!(recorded_types(&e, "LOCALHOST", 2222), vec!["ssh-ed25519"]);
    }

    #[test]
    fn a_byte_that_is_not_utf8_spoils_only_its_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("known_hosts");
        let mut text = b"# caf\xe9 \xff\xfe\n".to_vec();
        text.extend_from_slice(format!("box ssh-ed25519 {ED}\n").as_bytes());
        std::fs::write(&path, text).unwrap();
        let e = load(&path).unwrap();
        assert_eq!(check(&e, "box", 22, &key(ED)), Check::Known);
    }

    #[test]
    fn the_global_file_counts_its_revoked_and_recorded_keys_count_too() {
        let d = tempfile::tempdir().unwrap();
        let user = d.path().join("known_hosts");
        let global = d.path().join("ssh_known_hosts");
        std::fs::write(
            &global,
            format!("@revoked * ssh-ed25519 {ED2}\ncluster-7 ssh-ed25519 {ED}\n"),
        )
        .unwrap();
        let e = load_all(&user, &[global.clone(), d.path().join("missing")]).unwrap();
        match check(&e, "anyhost", 22, &key(ED2)) {
            Check::Revoked { at } => assert!(at.ends_with("ssh_known_hosts line 1"), "{at}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(check(&e, "cluster-7", 22, &key(ED)), Check::Known);
        assert!(
            matches!(check(&e, "cluster-7", 22, &key(ED2)), Check::Revoked { .. }),
            "accept-new never learns a host the global file records"
        );
    }
}
