//! Files gpupatrol writes on this machine: private (0600 files, 0700
//! folders, like OpenSSH), replaced atomically, and never written through
//! whatever a predictable name happens to point at. A temp file gets a fresh
//! random name in the target's own folder and is created exclusively
//! (`O_EXCL`: a symlink or a FIFO planted there fails the create), then
//! renamed over the target.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A fresh, unguessable suffix.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Create `dir` (and its parents) private to this user when it is new. One
/// that was already there must be ours (another user could have made it
/// first on a shared /tmp) and is made 0700 if it was looser; one that is
/// another user's is refused, never written into.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let m = fs::metadata(dir)?;
    if !m.is_dir() {
        return Err(std::io::Error::other(format!("{} is not a folder", dir.display())));
    }
    // our effective uid: the owner of our own /proc entry (Linux)
    if let Ok(me) = fs::metadata("/proc/self").map(|p| p.uid())
        && m.uid() != me
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to you (uid {me}): refusing to keep private files there",
                dir.display(),
                m.uid()
            ),
        ));
    }
    if m.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A new folder `PREFIX-RANDOM` in `parent`, made by us (never one that was
/// already there: on a shared /tmp another user could have planted it), 0700.
pub fn fresh_private_dir(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    for _ in 0..16 {
        let d = parent.join(format!("{prefix}-{}", random_suffix()));
        match fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("no fresh folder name under {}", parent.display()),
    ))
}

/// Replace `path` with `data`, atomically, as a 0600 file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, data, 0o600)
}

/// [`write_atomic`] with the file's mode (a `.prom` file node_exporter's
/// user must read is 0644).
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", random_suffix()));
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // the umask may have taken bits the caller asked for
        f.set_permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(
            mode,
        ))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn fresh_dirs_are_new_and_private() {
        let d = tempfile::tempdir().unwrap();
        let a = fresh_private_dir(d.path(), "x").unwrap();
        let b = fresh_private_dir(d.path(), "x").unwrap();
        assert_ne!(a, b);
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn atomic_private_and_never_through_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("flag");
        write_atomic(&target, b"one\n").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one\n");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        // the old predictable temp name, planted as a link to a victim, is not used
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("flag.tmp")).unwrap();
        write_atomic(&target, b"two\n").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(&target).unwrap(), b"two\n");
        let left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "no temp file left: {left:?}");
    }

    #[test]
    fn an_existing_loose_folder_of_ours_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o700);
        let f = d.path().join("file");
        fs::write(&f, "").unwrap();
        assert!(private_dir(&f).is_err(), "a file is not a folder");
    }
}
