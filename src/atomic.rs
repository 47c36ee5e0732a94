//! Output files are written whole or not at all: a temporary file in the same directory,
//! then a rename over the target. A failure never leaves a half-written or clobbered file.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

/// Checks, before any work, that `path` can be created: its directory exists and it is not
/// itself a directory.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!(
            "output path {} is a directory; give a file name such as {}/heatmap.png",
            path.display(),
            path.display()
        );
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        bail!(
            "output directory {} does not exist; create it first (mkdir -p {})",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    check_writable(path)?;
    let dir = parent_dir(path);
    let fail = |e: std::io::Error| {
        anyhow!(
            "cannot write {}: {e}; check the directory's permissions and free space",
            path.display()
        )
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".logitlens-")
        .suffix(".tmp")
        .permissions(file_mode(path))
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The replaced file's mode, else the usual 0666 (less the umask, applied by the kernel);
/// a temporary file would otherwise leave the result readable by its owner only.
fn file_mode(path: &Path) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) => m.permissions(),
        Err(_) => std::fs::Permissions::from_mode(0o666),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "readable by others as a normal new file: {mode:o}"
        );
    }

    #[test]
    fn refuses_missing_directory_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(&dir.path().join("nope/out.png"), b"x").is_err());
        assert!(write(dir.path(), b"x").is_err());
    }
}
