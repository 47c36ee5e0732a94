//! Output files are written whole or not at all: a temporary file in the same directory,
//! then a rename over the target. A failure never leaves a half-written or clobbered file.
//!
//! An interrupt never leaves one either: every temporary being written is listed in a
//! registry, and [`clean_up_on_signals`] (installed by the command line) removes them on
//! SIGINT or SIGTERM before exiting with 130 or 143.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Checks, before any work, that `path` can be created: its directory exists and it is not
/// itself a directory.
pub(crate) fn check_writable(path: &Path) -> Result<()> {
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

/// [`check_writable`], then a probe: a temporary file is created in the directory and
/// removed, so that a read-only or full location is found before any work.
pub(crate) fn check_can_create(path: &Path) -> Result<()> {
    check_writable(path)?;
    probe_dir(parent_dir(path))
}

/// Checks that files can be created in `dir` by creating and removing a temporary one.
pub(crate) fn probe_dir(dir: &Path) -> Result<()> {
    LIVE.create(dir, std::fs::Permissions::from_mode(0o600))
        .map(drop)
        .map_err(|e| {
            anyhow!(
                "cannot create files in {}: {}; check its permissions and free space, or choose another directory",
                dir.display(),
                without_path(e)
            )
        })
}

/// An I/O error's message without the temporary's path that tempfile appends to it
/// (` at path ".../.logitlens-xyz.tmp"`): the message names the file meant.
fn without_path(e: std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" at path \"") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    check_writable(path)?;
    let dir = parent_dir(path);
    let fail = |e: std::io::Error| {
        anyhow!(
            "cannot write {}: {}; check the directory's permissions and free space",
            path.display(),
            without_path(e)
        )
    };
    let (mut tmp, _listed) = LIVE.create(dir, file_mode(path)).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    if let Some(hold) = hold_temporaries() {
        std::thread::sleep(hold);
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The temporaries of this process that are being written.
static LIVE: Registry = Registry::new();

/// Paths of temporary files being written, removed together on an interrupt.
pub struct Registry(Mutex<Vec<PathBuf>>);

/// A temporary's place in its [`Registry`]; dropping it unlists the path.
pub struct Listed<'a> {
    registry: &'a Registry,
    path: PathBuf,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let mut live = self.registry.lock();
        if let Some(i) = live.iter().position(|p| *p == self.path) {
            live.swap_remove(i);
        }
    }
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a `.logitlens-*.tmp` file in `dir` and lists it, under one lock: a cleanup
    /// either runs before the file exists or sees it listed.
    pub fn create(
        &self,
        dir: &Path,
        mode: std::fs::Permissions,
    ) -> std::io::Result<(tempfile::NamedTempFile, Listed<'_>)> {
        let mut live = self.lock();
        let tmp = tempfile::Builder::new()
            .prefix(".logitlens-")
            .suffix(".tmp")
            .permissions(mode)
            .tempfile_in(dir)?;
        live.push(tmp.path().to_path_buf());
        let listed = Listed {
            registry: self,
            path: tmp.path().to_path_buf(),
        };
        Ok((tmp, listed))
    }

    /// Removes every listed file; returns how many were removed and the guard, so that no
    /// new temporary can start until it is dropped (the interrupt handler exits while
    /// holding it).
    pub fn remove_all(&self) -> (usize, MutexGuard<'_, Vec<PathBuf>>) {
        let mut live = self.lock();
        // One already renamed into place or removed is not counted.
        let removed = live
            .drain(..)
            .filter(|path| std::fs::remove_file(path).is_ok())
            .count();
        (removed, live)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Installs the command line's SIGINT/SIGTERM handling: a watcher thread (signal-hook's
/// iterator; no code runs in the signal handler itself) that removes the temporaries being
/// written, says so on stderr, and exits with 128 + the signal number: 130 for SIGINT, 143
/// for SIGTERM.
pub fn clean_up_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install the interrupt handler")?;
    std::thread::Builder::new()
        .name("logitlens-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // A line being appended to a streamed file is finished first.
                let _appending = APPENDING.lock().unwrap_or_else(PoisonError::into_inner);
                let (removed, _held) = LIVE.remove_all();
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                let plural = if removed == 1 { "" } else { "s" };
                let kept = KEPT.get().map_or(", and no partial file is left", String::as_str);
                eprintln!(
                    "logitlens: interrupted by {name}; removed {removed} unfinished output file{plural}{kept}"
                );
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the interrupt handler")?;
    Ok(())
}

/// Held while a streamed file's bytes are appended ([`Appender`]): an interrupt waits
/// for the write, so that it never leaves a torn line.
static APPENDING: Mutex<()> = Mutex::new(());

/// What an interrupt says of a streamed file it leaves (set once, by the command line).
static KEPT: OnceLock<String> = OnceLock::new();

/// Says, on an interrupt, what a file written as the run goes (`--output`) holds: `note`
/// ends the interrupt's message (", out.jsonl keeps …").
pub(crate) fn on_interrupt_keep(note: String) {
    let _ = KEPT.set(note);
}

/// A file written as the run goes, never through a temporary (`--output`): what is
/// written is held until [`Write::flush`], then appended in one write that an interrupt
/// waits for. Printers flush after each report, so the file holds whole reports.
pub(crate) struct Appender {
    file: std::fs::File,
    held: Vec<u8>,
}

impl Appender {
    /// Appends to `file` (opened for writing at its end).
    pub(crate) fn new(file: std::fs::File) -> Self {
        Self {
            file,
            held: Vec::new(),
        }
    }
}

impl Write for Appender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let _appending = APPENDING.lock().unwrap_or_else(PoisonError::into_inner);
        let written = self.file.write_all(&self.held);
        self.held.clear();
        written
    }
}

/// `LOGITLENS_HOLD_TEMP_MS`: keep each temporary this long before renaming it into place.
/// A testing aid only (the interrupt test needs a moment when a temporary exists).
fn hold_temporaries() -> Option<Duration> {
    static HOLD: OnceLock<Option<Duration>> = OnceLock::new();
    *HOLD.get_or_init(|| {
        std::env::var("LOGITLENS_HOLD_TEMP_MS")
            .ok()?
            .parse()
            .ok()
            .map(Duration::from_millis)
    })
}

/// The replaced file's mode, else the usual 0666 (less the umask, applied by the kernel);
/// a temporary file would otherwise leave the result readable by its owner only.
fn file_mode(path: &Path) -> std::fs::Permissions {
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
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "readable by others as a normal new file: {mode:o}"
        );
        assert!(LIVE.lock().iter().all(|p| !p.starts_with(dir.path())));
    }

    #[test]
    fn probe_finds_unwritable_directories_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        probe_dir(dir.path()).unwrap();
        check_can_create(&dir.path().join("x.png")).unwrap();
        assert_eq!(count(dir.path()), 0);
        // /proc refuses new files even to root.
        let err = probe_dir(Path::new("/proc")).unwrap_err().to_string();
        assert!(err.starts_with("cannot create files in /proc: "), "{err}");
        assert!(!err.contains(".logitlens-"), "names no temporary: {err}");
        assert!(check_can_create(Path::new("/proc/x.png")).is_err());
    }

    #[test]
    fn refuses_missing_directory_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(&dir.path().join("nope/out.png"), b"x").is_err());
        assert!(write(dir.path(), b"x").is_err());
    }

    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn registry_lists_live_temporaries_and_removes_them_all() {
        let registry = Registry::new();
        let dir = tempfile::tempdir().unwrap();
        let mode = std::fs::Permissions::from_mode(0o644);
        let (a, listed_a) = registry.create(dir.path(), mode.clone()).unwrap();
        let (b, listed_b) = registry.create(dir.path(), mode.clone()).unwrap();
        assert_eq!(count(dir.path()), 2);
        for tmp in [&a, &b] {
            let name = tmp.path().file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with(".logitlens-") && name.ends_with(".tmp"),
                "{name}"
            );
        }
        // A finished temporary leaves the list when its guard drops.
        b.persist(dir.path().join("done.png")).unwrap();
        drop(listed_b);
        assert_eq!(registry.lock().as_slice(), [a.path().to_path_buf()]);
        // An interrupt now: the live temporary goes, the finished file stays.
        let (removed, held) = registry.remove_all();
        assert_eq!(removed, 1);
        assert!(held.is_empty());
        drop(held);
        assert!(!a.path().exists());
        assert!(dir.path().join("done.png").is_file());
        assert_eq!(count(dir.path()), 1);
        // The writer's own cleanup then finds nothing to remove, and no panic.
        drop(listed_a);
        drop(a);
        assert_eq!(count(dir.path()), 1);
    }
}
