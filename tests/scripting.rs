//! Trustworthy scripting (issue 15): interrupts, prompt formats, exact token text,
//! provenance, settling layers and the papercuts, end to end through the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn logitlens(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logitlens"));
    cmd.args(args)
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("RUST_BACKTRACE")
        .env("HF_HUB_OFFLINE", "1");
    cmd
}

fn phi() -> String {
    fixture("phi-tiny").display().to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn is_temporary(name: &str) -> bool {
    name.starts_with(".logitlens-") && name.ends_with(".tmp")
}

/// Starts a 40-prompt `--out-dir` batch whose temporaries live 300 ms each, waits until one
/// exists, sends `signal`, and returns the exit code and what is left in the directory.
fn interrupt_batch(signal: i32) -> (Option<i32>, String, Vec<String>, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("figures");
    std::fs::create_dir(&images).unwrap();
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(&prompts, "The quick brown fox jumps\n".repeat(40)).unwrap();
    let mut child = logitlens(&[
        "--model",
        &phi(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--out-dir",
        images.to_str().unwrap(),
        "-f",
        "jsonl",
    ])
    .env("LOGITLENS_HOLD_TEMP_MS", "300")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let start = Instant::now();
    loop {
        if names(&images).iter().any(|n| is_temporary(n)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file appeared in {}",
            images.display()
        );
        assert!(child.try_wait().unwrap().is_none(), "the batch ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The temporary exists now, and for ~300 ms more: interrupt inside that window.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let left = names(&images);
    (out.status.code(), err, left, images, dir)
}

#[test]
fn an_interrupt_mid_write_leaves_no_temporary_and_exits_130_or_143() {
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let (status, err, left, images, _dir) = interrupt_batch(signal);
        assert_eq!(status, Some(code), "{name}: stderr {err}");
        assert!(
            !left.iter().any(|n| is_temporary(n)),
            "{name} left a temporary: {left:?}"
        );
        assert!(
            left.len() < 40,
            "{name} came after the batch finished: {left:?}"
        );
        // What was written is whole: every image decodes.
        for png in &left {
            let file = std::fs::File::open(images.join(png)).unwrap();
            png::Decoder::new(file).read_info().unwrap();
        }
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("interrupted by {name}")), "{err}");
    }
}
