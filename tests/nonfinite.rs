//! Non-finite values are never shown as results (issue 29, item 1): a NaN in the weights
//! fails the prompt whose positions hold it with one line naming the layer and the
//! position, and `--allow-nonfinite` writes those cells as null with `"nonfinite": true`.
//! On both backends (the CPU kernels and the generic tensor path), alone and packed with a
//! healthy prompt into one forward pass.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Untied head, f32: a NaN in one embedding row reaches only the prompts that use it.
const MODEL: &str = "mistral-tiny";
const BAD: &str = "The quick brown fox";
const GOOD: &str = "one two three";

/// A copy of `MODEL` in `dir` with `value` written over the tensor `name`: one row of it
/// (`Some(row)`) or all of it.
fn poisoned(dir: &str, name: &str, row: Option<usize>, value: f32) -> PathBuf {
    // One folder per call: the tests run in parallel, and several poison the same tensor.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!(
        "logitlens-nonfinite-{dir}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let src = fixture(MODEL);
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let t = &header[name];
    assert_eq!(t["dtype"], "F32", "{name}");
    let (a, b) = (
        t["data_offsets"][0].as_u64().unwrap() as usize,
        t["data_offsets"][1].as_u64().unwrap() as usize,
    );
    let width = t["shape"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_u64()
        .unwrap() as usize
        * 4;
    let (a, b) = match row {
        Some(r) => (a + r * width, a + (r + 1) * width),
        None => (a, b),
    };
    for at in (8 + n + a..8 + n + b).step_by(4) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    std::fs::write(out.join("model.safetensors"), bytes).unwrap();
    out
}

/// The input tokens of `prompt`, as ids and as the outputs show them (from a run on the
/// healthy model).
fn input_tokens(prompt: &str) -> Vec<(u64, String)> {
    let model = fixture(MODEL);
    let o = run(&["-m", model.to_str().unwrap(), "-p", prompt, "-f", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    report["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["display"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn input_ids(prompt: &str) -> Vec<u64> {
    input_tokens(prompt).into_iter().map(|t| t.0).collect()
}

/// The model with a NaN in the embedding row of `BAD`'s third token, which `GOOD` does not
/// use; and that token's position.
fn nan_embedding() -> (PathBuf, usize) {
    let (bad, good) = (input_ids(BAD), input_ids(GOOD));
    let position = 2;
    let id = bad[position];
    assert!(!good.contains(&id) && !bad[..position].contains(&id));
    let dir = poisoned(
        "embedding",
        "model.embed_tokens.weight",
        Some(id as usize),
        f32::NAN,
    );
    (dir, position)
}

fn run_way(way: Way, model: &Path, args: &[&str]) -> Output {
    let mut cmd = logitlens(&[&["-m", model.to_str().unwrap()], args].concat());
    if way.generic() {
        cmd.env("LOGITLENS_GENERIC_PATH", "1");
    }
    cmd.output().unwrap()
}

/// Every number anywhere in `v` (a report's JSON).
fn numbers(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        Value::Object(o) => o.values().for_each(|x| numbers(x, out)),
        _ => {}
    }
}

/// Two reports' cells: the same ids and flags, every number within 1e-5 (a pack holding a
/// NaN takes another order of the same sums on the kernels).
fn same_cells(a: &Value, b: &Value) {
    assert_eq!(a["prompt"], b["prompt"]);
    let cells = |v: &Value| -> Vec<Value> {
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["positions"].as_array().unwrap().clone())
            .collect()
    };
    let (ca, cb) = (cells(a), cells(b));
    assert_eq!(ca.len(), cb.len());
    for (x, y) in ca.iter().zip(&cb) {
        assert_eq!(
            (&x["id"], x.get("nonfinite")),
            (&y["id"], y.get("nonfinite"))
        );
        let (mut nx, mut ny) = (Vec::new(), Vec::new());
        numbers(x, &mut nx);
        numbers(y, &mut ny);
        assert_eq!(nx.len(), ny.len());
        for (u, v) in nx.iter().zip(&ny) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{x} vs {y}");
        }
    }
}

#[test]
fn a_nan_weight_fails_the_prompt_naming_the_layer_and_the_position() {
    let (model, position) = nan_embedding();
    let block = poisoned(
        "block",
        "model.layers.1.mlp.down_proj.weight",
        None,
        f32::NAN,
    );
    for way in WAYS {
        let o = run_way(way, &model, &["-p", BAD, "-f", "json"]);
        assert_eq!(o.status.code(), Some(1), "{}: {}", way.label(), stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        let token = &input_tokens(BAD)[position].1;
        assert!(
            err.contains(&format!(
                "non-finite values (NaN or inf) at layer 0 (the embeddings), position {position} ({token:?})"
            )) && err.contains("embedding weights")
                && err.contains("--allow-nonfinite"),
            "{}: {err}",
            way.label()
        );
        assert!(o.stdout.is_empty() || !String::from_utf8_lossy(&o.stdout).contains("NaN"));

        // NaN in block 2's MLP (model.layers.1): every position, from layer 2 on.
        let o = run_way(way, &block, &["-p", GOOD]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("at layer 2, position 0 (")
                && err.contains("the weights of block 2, or a config value"),
            "{}: {err}",
            way.label()
        );
    }
    // The healthy fixture runs clean (the poisoning is what fails).
    let o = run(&["-m", fixture(MODEL).to_str().unwrap(), "-p", BAD]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn allow_nonfinite_writes_null_cells_flagged_nonfinite_and_never_a_number() {
    let (model, position) = nan_embedding();
    for way in WAYS {
        let o = run_way(
            way,
            &model,
            &["-p", BAD, "-f", "json", "--allow-nonfinite", "--top-k", "3"],
        );
        assert!(o.status.success(), "{}: {}", way.label(), stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(!text.contains("NaN"), "{text}");
        let report: Value = serde_json::from_str(&text).unwrap();
        let layers = report["layers"].as_array().unwrap();
        let mut flagged = 0;
        for (l, layer) in layers.iter().enumerate() {
            for (p, cell) in layer["positions"].as_array().unwrap().iter().enumerate() {
                let nonfinite = cell.get("nonfinite") == Some(&Value::Bool(true));
                // The embeddings: the NaN's own position. From block 1 on, that position
                // and (within the sliding window) later ones that read it through
                // attention; the earlier ones never (causal) on the kernels. The tensor
                // form's dense products (0·NaN over masked keys) may flag them too, never
                // show them.
                let at = format!("{} layer {l} position {p}: {cell}", way.label());
                match (l, p.cmp(&position)) {
                    (0, _) => assert_eq!(nonfinite, p == position, "{at}"),
                    (_, std::cmp::Ordering::Equal) => assert!(nonfinite, "{at}"),
                    (_, std::cmp::Ordering::Less) if way == Way::Kernels => {
                        assert!(!nonfinite, "{at}")
                    }
                    _ => {}
                }
                if nonfinite {
                    flagged += 1;
                    for key in ["id", "token", "prob", "entropy", "kl", "topk", "targets"] {
                        assert_eq!(cell[key], Value::Null, "{key} in {cell}");
                    }
                    let mut found = Vec::new();
                    numbers(cell, &mut found);
                    assert!(found.is_empty(), "{cell}");
                } else {
                    assert!(cell["entropy"].as_f64().unwrap().is_finite(), "{cell}");
                    assert_eq!(cell["topk"].as_array().unwrap().len(), 3);
                }
            }
        }
        assert!(flagged > 0);
        // The output's last cell is non-finite here: nothing settles.
        let out = layers.last().unwrap()["positions"].as_array().unwrap();
        assert_eq!(out.last().unwrap()["nonfinite"], true);
        assert_eq!(
            (&report["first_layer"], &report["settled_layer"]),
            (&Value::Null, &Value::Null)
        );
    }
}

#[test]
fn a_nan_fails_only_its_own_prompt_of_a_pack() {
    let (model, position) = nan_embedding();
    let dir = std::env::temp_dir().join("logitlens-nonfinite-pack");
    std::fs::create_dir_all(&dir).unwrap();
    let prompts = dir.join("prompts.txt");
    std::fs::write(&prompts, format!("{GOOD}\n{BAD}\n{GOOD} four\n")).unwrap();
    let healthy = fixture(MODEL);
    for way in WAYS {
        let args = ["--prompts", prompts.to_str().unwrap(), "-f", "jsonl"];
        let o = run_way(way, &model, &args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("prompt 1")
                && err.contains(&format!("layer 0 (the embeddings), position {position}"))
                && !err.contains("prompt 0")
                && !err.contains("prompt 2"),
            "{}: {err}",
            way.label()
        );
        // The healthy prompts' reports are those of the healthy model.
        let want = run_way(way, &healthy, &args);
        let reports = |o: &Output| -> Vec<Value> {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let (got, want) = (reports(&o), reports(&want));
        assert_eq!(got.len(), 2, "{}", way.label());
        same_cells(&got[0], &want[0]);
        same_cells(&got[1], &want[2]);
        // With --allow-nonfinite, the bad prompt is written too, and the others the same.
        let o = run_way(way, &model, &[&args[..], &["--allow-nonfinite"]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let all = reports(&o);
        assert_eq!(all.len(), 3);
        same_cells(&all[0], &want[0]);
        same_cells(&all[2], &want[2]);
        assert_eq!(all[1]["prompt"], BAD);
        assert_eq!(
            all[1]["layers"][0]["positions"][position]["nonfinite"],
            true
        );
    }
}

#[test]
fn csv_and_summary_leave_nonfinite_cells_out() {
    let (model, position) = nan_embedding();
    let o = run_way(
        Way::Kernels,
        &model,
        &["-p", BAD, "-f", "csv", "--allow-nonfinite"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (flag, entropy, layer, pos) = (
        col("nonfinite"),
        col("entropy"),
        col("layer"),
        col("position"),
    );
    let mut seen = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f[layer] == "0" && f[pos] == position.to_string() {
            assert_eq!((f[flag], f[entropy]), ("true", ""), "{line}");
            seen += 1;
        } else if f[flag] == "false" {
            assert!(f[entropy].parse::<f64>().unwrap().is_finite(), "{line}");
        }
    }
    assert_eq!(seen, 1);

    let summary = std::env::temp_dir().join("logitlens-nonfinite-summary.json");
    let o = run_way(
        Way::Kernels,
        &model,
        &[
            "-p",
            BAD,
            "--allow-nonfinite",
            "--summary",
            summary.to_str().unwrap(),
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let tokens = input_ids(BAD).len() as u64;
    for row in s["rows"].as_array().unwrap() {
        let skipped = row["nonfinite_cells"].as_u64().unwrap();
        // Every row loses the positions from the NaN's on: non-finite themselves, or
        // compared with an output row that is.
        assert_eq!(skipped, tokens - position as u64, "{row}");
        assert_eq!(row["cells"].as_u64().unwrap(), tokens - skipped, "{row}");
        assert!(row["mean_entropy"].as_f64().unwrap().is_finite(), "{row}");
        assert!(row["mean_kl"].as_f64().unwrap().is_finite(), "{row}");
    }
}

#[test]
fn an_f16_overflow_says_to_try_f32() {
    // 1e6 in one embedding row: fine in f32, infinite in f16 (whose largest value is 65504).
    let id = input_ids(BAD)[1];
    let model = poisoned(
        "overflow",
        "model.embed_tokens.weight",
        Some(id as usize),
        1e6,
    );
    let o = run_way(Way::Kernels, &model, &["-p", BAD]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_way(Way::Kernels, &model, &["-p", BAD, "--dtype", "f16"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("at layer 0 (the embeddings), position 1 (")
            && err.contains("likely an overflow of f16 under --dtype f16; try --dtype f32"),
        "{err}"
    );
}

/// `--resume` reads back a finished line whose cells are non-finite: the prompt is not run
/// again, and the summary leaves those cells out as an uninterrupted run does.
#[test]
fn a_resumed_batch_keeps_nonfinite_lines_and_their_summary() {
    let (model, _) = nan_embedding();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (whole, part) = (path("whole.jsonl"), path("part.jsonl"));
    let (whole_summary, part_summary) = (path("whole.json"), path("part.json"));
    let run_to = |out: &str, summary: &str, resume: bool| {
        let mut args = vec![
            "-p",
            BAD,
            "-p",
            GOOD,
            "-f",
            "jsonl",
            "--allow-nonfinite",
            "-q",
        ];
        args.extend(["--output", out, "--summary", summary]);
        if resume {
            args.push("--resume");
        }
        let o = run_way(Way::Kernels, &model, &args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run_to(&whole, &whole_summary, false);
    let text = std::fs::read_to_string(&whole).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.contains("\"nonfinite\":true"), "{first}");
    // Interrupted after the first (non-finite) prompt's line: resumed.
    std::fs::write(&part, format!("{first}\n")).unwrap();
    run_to(&part, &part_summary, true);
    assert_eq!(std::fs::read_to_string(&part).unwrap(), text);
    let rows = |p: &str| {
        let s: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        s["rows"].clone()
    };
    let want = rows(&whole_summary);
    let skipped = |r: &Value| r["nonfinite_cells"].as_u64().unwrap_or(0);
    assert!(
        want.as_array().unwrap().iter().any(|r| skipped(r) > 0),
        "{want}"
    );
    assert_eq!(rows(&part_summary), want);
}
