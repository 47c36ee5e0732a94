//! LOGITLENS_TIMING (src/timing.rs): the JSON line bench/harness.py reads, the text lines,
//! and silence when unset.

mod common;

use common::{fixture, logitlens, phi, stderr};
use serde_json::Value;

const PROMPTS: [&str; 3] = [
    "The quick brown fox",
    "jumps over",
    "the lazy dog and the cat",
];

/// A run of phi-tiny on the three prompts (JSONL) with LOGITLENS_TIMING=`mode`: the
/// reports on stdout and stderr's text.
fn run(mode: &str, extra: &[&str]) -> (Vec<Value>, String) {
    let model = phi();
    let mut args = vec!["--model", model.as_str(), "--bos", "--format", "jsonl"];
    for p in PROMPTS {
        args.extend(["--prompt", p]);
    }
    args.extend_from_slice(extra);
    let o = logitlens(&args)
        .env("LOGITLENS_TIMING", mode)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let reports = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (reports, err)
}

/// The one JSON line of a run's stderr.
fn timing_line(err: &str) -> Value {
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with(r#"{"timing":"#))
        .collect();
    assert_eq!(lines.len(), 1, "one JSON timing line: {err}");
    assert!(err.ends_with(&format!("{}\n", lines[0])), "last: {err}");
    serde_json::from_str(lines[0]).unwrap()
}

fn seconds(v: &Value, key: &str) -> f64 {
    let s = v[key].as_f64().unwrap_or_else(|| panic!("{key}: {v}"));
    assert!(s >= 0.0, "{key}: {v}");
    s
}

#[test]
fn json_mode_prints_one_line_with_every_field() {
    let (reports, err) = run("json", &[]);
    assert!(!err.contains("timing: "), "no text lines: {err}");
    let t = timing_line(&err);
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = [
        "timing",
        "device",
        "fast",
        "load_s",
        "tuned_lens_s",
        "prompts",
        "tokens",
        "forward_s",
        "lens_s",
        "total_s",
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "{t}");
    assert_eq!(t["timing"], 1);
    assert_eq!(t["device"], "cpu");
    assert!(t["fast"].is_null() && t["tuned_lens_s"].is_null(), "{t}");

    // One entry per prompt, in order, with the positions its report has.
    let prompts = t["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), PROMPTS.len(), "{t}");
    assert_eq!(reports.len(), PROMPTS.len());
    let (mut tokens, mut forward, mut lens) = (0, 0.0, 0.0);
    for (i, (p, report)) in prompts.iter().zip(&reports).enumerate() {
        assert_eq!(p.as_object().unwrap().len(), 4, "{p}");
        assert_eq!(p["index"], i, "{p}");
        let n = report["tokens"].as_array().unwrap().len();
        assert_eq!(p["tokens"], n, "{p}");
        tokens += n;
        forward += seconds(p, "forward_s");
        lens += seconds(p, "lens_s");
    }
    // The totals are the sums (each value to the microsecond), inside the whole run.
    assert_eq!(t["tokens"], tokens);
    let tol = 1e-6 * (PROMPTS.len() + 1) as f64;
    assert!((seconds(&t, "forward_s") - forward).abs() <= tol, "{t}");
    assert!((seconds(&t, "lens_s") - lens).abs() <= tol, "{t}");
    assert!(forward + lens > 0.0, "{t}");
    let parts = seconds(&t, "load_s") + forward + lens;
    assert!(seconds(&t, "total_s") + tol >= parts, "{t}");
}

#[test]
fn json_mode_times_the_tuned_lens_and_fast() {
    let model = fixture("llama-tiny").display().to_string();
    let lens = fixture("tuned-lens")
        .join("llama-tiny")
        .display()
        .to_string();
    let o = logitlens(&[
        "-m",
        &model,
        "--tuned-lens",
        &lens,
        "-p",
        "The quick brown fox",
        "-f",
        "json",
        "-q",
    ])
    .env("LOGITLENS_TIMING", "json")
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let t = timing_line(&stderr(&o));
    seconds(&t, "tuned_lens_s");
    assert_eq!(t["prompts"].as_array().unwrap().len(), 1, "{t}");

    let (_, err) = run("json", &["--fast", "-q"]);
    let t = timing_line(&err);
    let fast = t["fast"].as_str().unwrap_or_else(|| panic!("{t}"));
    // The bf16 head where the CPU has AMX-BF16, else the exact head (issue 29).
    assert!(
        fast.starts_with("bf16 head, ") || fast == "exact f32 head",
        "{t}"
    );
}

#[test]
fn any_other_value_prints_the_text_lines() {
    let (_, err) = run("1", &[]);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("timing: ")).collect();
    assert_eq!(lines.len(), 1 + PROMPTS.len(), "{err}");
    let load = lines[0].strip_prefix("timing: load ").unwrap();
    let (secs, device) = load.split_once("s on ").unwrap();
    assert_eq!(device, "cpu");
    assert_eq!(secs.split_once('.').unwrap().1.len(), 3, "{load}");
    for line in &lines[1..] {
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words.len(), 7, "{line}");
        assert_eq!(
            (words[1], words[3], words[5]),
            ("tokens", "forward", "lens")
        );
        words[2].parse::<usize>().unwrap();
        for w in [words[4], words[6]] {
            let n = w.strip_suffix('s').unwrap();
            assert_eq!(n.split_once('.').unwrap().1.len(), 3, "{line}");
            n.parse::<f64>().unwrap();
        }
    }
    assert!(!err.contains(r#"{"timing":"#), "{err}");
}

#[test]
fn unset_or_empty_prints_no_timing() {
    let (_, err) = run("", &[]);
    assert!(!err.contains("timing"), "{err}");
    let model = phi();
    let o = logitlens(&["-m", &model, "-p", "The quick brown fox"])
        .env_remove("LOGITLENS_TIMING")
        .output()
        .unwrap();
    assert!(o.status.success() && !stderr(&o).contains("timing"));
}
