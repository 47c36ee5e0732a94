//! Issue 29, items 3 and 4: CSV and TSV that any reader takes as they are (the header
//! first, the provenance in a `--provenance` file), and batches written as they go to an
//! `--output` file that an interrupted run can `--resume`, with the same lines and the same
//! `--summary` as a run never interrupted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Parses `text` as RFC 4180 records, strictly: fields separated by `delimiter`, records
/// by CRLF or LF; a quoted field holds anything, `""` being a quote; a quote anywhere
/// else, or text after a closing quote, is an error.
fn records(text: &str, delimiter: char) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == delimiter || c == '\n' || c == '\r' {
                    break;
                }
                if c == '"' {
                    return Err(format!("a quote inside an unquoted field: {field}\""));
                }
                field.push(c);
                chars.next();
            }
        }
        record.push(field);
        match chars.next() {
            Some(c) if c == delimiter => {}
            Some('\r') if chars.next() == Some('\n') => out.push(std::mem::take(&mut record)),
            Some('\n') => out.push(std::mem::take(&mut record)),
            None if record == [""] => return Ok(out),
            None => {
                out.push(record);
                return Ok(out);
            }
            Some(c) => return Err(format!("{c:?} after a field")),
        }
    }
}

#[test]
fn the_strict_parser_reads_rfc_4180() {
    let text = "a,b\r\n\"x, \"\"y\"\"\",\"two\nlines\"\n1,\n";
    assert_eq!(
        records(text, ',').unwrap(),
        [
            vec!["a", "b"],
            vec!["x, \"y\"", "two\nlines"],
            vec!["1", ""]
        ]
    );
    assert!(records("# c: {\"a\": 1}\n", ',').is_err());
    assert!(records("\"a\"b\n", ',').is_err());
}

const PROMPTS: [&str; 3] = ["The quick brown fox", "say \"hi\", then\tleave", "one\ntwo"];

fn prompts_file(dir: &Path, texts: &[String]) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let mut text = String::new();
    for (i, p) in texts.iter().enumerate() {
        text += &serde_json::json!({"prompt": p, "id": format!("p{i}")}).to_string();
        text += "\n";
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn csv_and_tsv_start_with_their_header_row() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    let prompts = prompts_file(dir.path(), &texts);
    let prompts = prompts.to_str().unwrap();
    let json = run(&["-m", &phi(), "--prompts", prompts, "-f", "json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    let cells: usize = docs
        .iter()
        .map(|d| d["layers"].as_array().unwrap().len() * d["tokens"].as_array().unwrap().len())
        .sum();
    for (format, delimiter) in [("csv", ','), ("tsv", '\t')] {
        let sidecar = dir.path().join(format!("{format}.provenance.json"));
        let summary = dir.path().join(format!("{format}.summary.csv"));
        let o = run(&[
            "-m",
            &phi(),
            "--prompts",
            prompts,
            "-f",
            format,
            "--top-k",
            "2",
            "--target",
            " the",
            "--provenance",
            sidecar.to_str().unwrap(),
            "--summary",
            summary.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        let rows = records(&text, delimiter).unwrap();
        assert_eq!(
            rows[0][..4],
            ["prompt_index", "prompt_id", "layer", "position"]
        );
        assert!(rows[0].contains(&"top2_prob".to_string()), "{:?}", rows[0]);
        assert!(rows.iter().all(|r| r.len() == rows[0].len()));
        assert_eq!(rows.len(), 1 + cells, "{format}");
        // The inputs' tabs, quotes and newlines survive.
        assert!(rows.iter().any(|r| r[6] == "\t"), "{format}");
        // The provenance is the one JSON carries inline.
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
        assert_eq!(sidecar, docs[0]["provenance"]);
        // The summary's CSV starts with its header too.
        let summary = records(&std::fs::read_to_string(&summary).unwrap(), ',').unwrap();
        assert_eq!(summary[0][..3], ["site", "layer", "cells"]);
        assert_eq!(
            summary.len(),
            1 + docs[0]["layers"].as_array().unwrap().len()
        );
        // Where Python is there, its csv module reads the same first row.
        let path = dir.path().join(format!("out.{format}"));
        std::fs::write(&path, &text).unwrap();
        let python = std::process::Command::new("python3")
            .args([
                "-c",
                "import csv, sys; f = open(sys.argv[1], newline=''); \
                 r = list(csv.reader(f, delimiter=sys.argv[2])); print(len(r), r[0][0], r[0][3])",
                path.to_str().unwrap(),
                &delimiter.to_string(),
            ])
            .output();
        if let Some(p) = python.ok().filter(|p| p.status.success()) {
            let said = String::from_utf8(p.stdout).unwrap();
            assert_eq!(said.trim(), format!("{} prompt_index position", 1 + cells));
        }
    }
}

#[test]
fn csv_reals_take_their_shortest_round_trip_form() {
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "The quick brown fox",
        "-f",
        "csv",
        "--top-k",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let rows = records(&text, ',').unwrap();
    let reals: Vec<usize> = rows[0]
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            ["prob", "entropy", "kl", "next_logprob"]
                .iter()
                .any(|s| c.ends_with(s))
        })
        .map(|(i, _)| i)
        .collect();
    assert!(reals.len() >= 9, "{:?}", rows[0]);
    for row in &rows[1..] {
        for &i in &reals {
            let Ok(x) = row[i].parse::<f32>() else {
                assert!(row[i].is_empty(), "{}", row[i]);
                continue;
            };
            let plain = x.to_string();
            assert!(
                row[i].len() <= plain.len(),
                "{} longer than {plain}",
                row[i]
            );
            assert!(row[i].len() <= format!("{x:e}").len(), "{}", row[i]);
        }
    }
}

#[test]
fn an_empty_prompt_in_a_file_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.jsonl");
    std::fs::write(
        &path,
        "{\"prompt\": \"a\"}\n{\"prompt\": \"\", \"id\": \"x\"}\n",
    )
    .unwrap();
    let o = run(&["-m", &phi(), "--prompts", path.to_str().unwrap()]);
    let line = format!("{} line 2: the prompt is empty", path.display());
    assert_fails(&o, 1, &[&line]);
    assert!(!stderr(&o).contains("--prompt"), "{}", stderr(&o));
}

/// 120 prompts of a few tokens, by id or (`ids` false) by index.
fn batch(dir: &Path, ids: bool) -> PathBuf {
    let subjects = [
        "fox", "cat", "river", "city", "model", "layer", "token", "window",
    ];
    let texts: Vec<String> = (0..120)
        .map(|i| {
            format!(
                "Sentence {i}: the {} jumps over the lazy dog",
                subjects[i % 8]
            )
        })
        .collect();
    match ids {
        true => prompts_file(dir, &texts),
        false => {
            let path = dir.join("prompts.txt");
            std::fs::write(&path, texts.join("\n")).unwrap();
            path
        }
    }
}

fn start(args: &[&str]) -> Child {
    logitlens(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn lines_in(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// Starts a run, waits until `path` holds `lines` lines (or the run ends), sends `signal`;
/// returns whether the run was still going when signalled, and its exit code.
fn interrupt(args: &[&str], path: &Path, lines: usize, signal: i32) -> (bool, Option<i32>) {
    let mut child = start(args);
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines_in(path) < lines && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let running = child.try_wait().unwrap().is_none();
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    (running, out.status.code())
}

#[test]
fn an_interrupted_batch_resumes_to_the_same_file_and_summary() {
    for ids in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let prompts = batch(dir.path(), ids);
        let p = prompts.to_str().unwrap();
        let whole = dir.path().join("whole.jsonl");
        let whole_summary = dir.path().join("whole-summary.json");
        let o = run(&[
            "-m",
            &phi(),
            "--prompts",
            p,
            "-f",
            "jsonl",
            "--output",
            whole.to_str().unwrap(),
            "--summary",
            whole_summary.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert_eq!(lines_in(&whole), 120);

        let out = dir.path().join("out.jsonl");
        let summary = dir.path().join("summary.json");
        let args = [
            "-m",
            &phi(),
            "--prompts",
            p,
            "-f",
            "jsonl",
            "--output",
            out.to_str().unwrap(),
            "--resume",
            "--summary",
            summary.to_str().unwrap(),
        ];
        // Interrupts at several moments: at the start (SIGKILL: a SIGINT then comes
        // before the handler is there, and kills as SIGKILL does), as soon as the next
        // line is there (while the rest of its window is being written), later; SIGKILL
        // and SIGINT in turn.
        let mut stopped = 0;
        for (more, signal) in [
            (0, libc::SIGKILL),
            (1, libc::SIGINT),
            (1, libc::SIGKILL),
            (2, libc::SIGINT),
            (20, libc::SIGKILL),
            (1, libc::SIGINT),
        ] {
            let at = lines_in(&out) + more;
            let (running, code) = interrupt(&args, &out, at, signal);
            if running && code != Some(0) {
                stopped += 1;
                let want = if signal == libc::SIGINT {
                    Some(130)
                } else {
                    None
                };
                assert_eq!(code, want, "at {at} lines");
            }
            // Never a prompt twice, whatever the moment.
            let text =
                String::from_utf8_lossy(&std::fs::read(&out).unwrap_or_default()).into_owned();
            let mut keys: Vec<String> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| format!("{}{}", v["prompt_index"], v["prompt_id"]))
                .collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), n, "a prompt twice after an interrupt at {at}");
        }
        assert!(
            stopped >= 3,
            "only {stopped} interrupts landed while running"
        );
        // A torn last line, as a SIGKILL in the middle of a write leaves it.
        let mut bytes = std::fs::read(&out).unwrap();
        let done = lines_in(&out);
        if done < 120 {
            let next = std::fs::read(&whole).unwrap();
            let line = next.split(|&b| b == b'\n').nth(done).unwrap();
            bytes.extend_from_slice(&line[..line.len() / 2]);
            std::fs::write(&out, bytes).unwrap();
        }
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&whole).unwrap(),
            "ids {ids}"
        );
        // The summary covers every prompt: the finished lines and the new ones.
        assert_eq!(
            std::fs::read(&summary).unwrap(),
            std::fs::read(&whole_summary).unwrap()
        );
        // Resuming a finished file computes nothing and changes nothing.
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&whole).unwrap());
    }
}

#[test]
fn output_refuses_to_clobber_and_resume_needs_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let f = file.to_str().unwrap();
    let o = run(&["-m", &phi(), "-p", "a b", "-f", "csv", "--output", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = run(&["-m", &phi(), "-p", "a b", "-f", "csv"]);
    assert_eq!(std::fs::read(&file).unwrap(), stdout.stdout);
    let o = run(&["-m", &phi(), "-p", "a b", "-f", "csv", "--output", f]);
    assert_fails(&o, 2, &["exists; add --resume"]);
    assert_eq!(std::fs::read(&file).unwrap(), stdout.stdout);
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "a b",
        "-f",
        "csv",
        "--output",
        f,
        "--resume",
    ]);
    assert_fails(&o, 2, &["add -f jsonl"]);
    let o = run(&["-m", &phi(), "-p", "a b", "-f", "jsonl", "--resume"]);
    assert_fails(&o, 2, &["add --output FILE"]);
    // A file that is not this run's output is refused, and left as it is.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "{\"a\": 1}\n").unwrap();
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "a b",
        "-f",
        "jsonl",
        "--output",
        other.to_str().unwrap(),
        "--resume",
    ]);
    assert_fails(&o, 1, &["line 1: not a report"]);
    assert_eq!(std::fs::read(&other).unwrap(), b"{\"a\": 1}\n");
}
