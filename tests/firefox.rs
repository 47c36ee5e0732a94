//! The HTML report in Firefox: issue 9 asks that it open from file:// in Chromium *and*
//! Firefox with no console errors. tests/report.rs drives Chromium over the DevTools
//! protocol; here headless Firefox (Debian's `firefox-esr`) loads the report and takes a
//! screenshot, with a profile that sends the page's console and `dump()` to stdout. The page
//! dumps `logitlens: painted N cells` once it has painted, so the test knows the report ran
//! to the end in Firefox and drew every cell, and that no page error was printed.
//!
//! Without Firefox these tests fail under CI (`CI` set) or with
//! `LOGITLENS_REQUIRE_BROWSER=1`, and otherwise print a loud SKIPPED line and pass.
//! `LOGITLENS_FIREFOX` names another executable.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{browser_missing, phi, run, stderr};

fn find_firefox() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os("LOGITLENS_FIREFOX").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(exe));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["firefox-esr", "firefox"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

fn firefox() -> Option<PathBuf> {
    let found = find_firefox();
    if found.is_none() {
        browser_missing(
            "Firefox not found (apt-get install -y firefox-esr, or set LOGITLENS_FIREFOX)",
        );
    }
    found
}

#[test]
fn the_report_opens_from_disk_in_firefox_without_errors() {
    let model = phi();
    let args = [
        "-m",
        &model,
        "-p",
        "The quick brown fox",
        "-p",
        "def f(x):",
        "--sublayers",
        "--target",
        " the",
    ];
    // The first prompt is shown first: its rows × positions cells.
    opens_in_firefox(&args, |docs| cells(&docs[0]));
}

#[test]
fn compared_lenses_open_side_by_side_in_firefox_without_errors() {
    let model = common::fixture("llama-tiny");
    let lens = common::fixture("tuned-lens").join("llama-tiny");
    let args = [
        "-m",
        model.to_str().unwrap(),
        "--tuned-lens",
        lens.to_str().unwrap(),
        "--compare-lenses",
        "-p",
        "The quick brown fox",
    ];
    // Both grids of the prompt: the logit lens's and the tuned lens's cells.
    opens_in_firefox(&args, |docs| cells(&docs[0]) + cells(&docs[1]));
}

/// A report's rows × positions.
fn cells(report: &serde_json::Value) -> usize {
    report["layers"].as_array().unwrap().len() * report["tokens"].as_array().unwrap().len()
}

/// Writes the report of `args`, opens it in headless Firefox, and checks that it paints
/// the number of cells `expected` counts in the `--format json` document, without a page
/// error.
fn opens_in_firefox(args: &[&str], expected: impl Fn(&serde_json::Value) -> usize) {
    let Some(exe) = firefox() else { return };
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let o = run(&[args, &["--out", html.to_str().unwrap(), "-f", "json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let docs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cells = expected(&docs);
    let profile = dir.path().join("profile");
    std::fs::create_dir(&profile).unwrap();
    std::fs::write(
        profile.join("user.js"),
        "user_pref(\"devtools.console.stdout.content\", true);\n\
         user_pref(\"browser.dom.window.dump.enabled\", true);\n",
    )
    .unwrap();
    let shot = dir.path().join("shot.png");
    let url = format!("file://{}", html.display());
    let out = Command::new(&exe)
        .args(["--headless", "--no-remote", "--profile"])
        .arg(&profile)
        .args(["--window-size=1200,900", "--screenshot"])
        .arg(&shot)
        .arg(&url)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("logitlens: painted {cells} cells")),
        "the report did not paint its {cells} cells in Firefox:\n{text}"
    );
    // Page errors: uncaught ones name the page's URL; console.error/warn calls print their
    // message in quotes. (Firefox's own services, offline here, log as `console.error:
    // services.settings: …`, which is not the page's.)
    for line in text.lines() {
        assert!(
            !(line.contains("error") && line.contains(&url)),
            "page error in Firefox: {line}"
        );
        assert!(
            !line.starts_with("console.error: \"") && !line.starts_with("console.warn: \""),
            "page console message in Firefox: {line}"
        );
    }
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "no screenshot"
    );
}
