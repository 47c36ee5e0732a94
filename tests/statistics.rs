//! Issue 8 from the command line: the new fields in every format, the batch summary
//! against the same run's JSONL, and each bad input (one stderr line, the documented exit
//! code, nothing written).

mod common;

use common::*;
use serde_json::Value;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("logitlens-stats-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn one_error_line(o: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("logitlens: error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

const PROMPTS: &str = r#"{"prompt": "The quick brown fox", "id": "fox", "target": " the"}
{"prompt": "def f(x):\n    return x", "id": "code", "target": ["x", " return"]}
{"prompt": "one two three four five", "id": "count"}
"#;

/// The summary's per-row aggregates equal those recomputed from the same run's JSONL, in
/// JSON and CSV alike, with sublayers and targets.
#[test]
fn summary_equals_the_aggregate_of_the_runs_jsonl() {
    let dir = tmp("summary");
    let prompts = dir.join("p.jsonl");
    std::fs::write(&prompts, PROMPTS).unwrap();
    let (json, csv) = (dir.join("s.json"), dir.join("s.csv"));
    let model = phi();
    let mut outputs = Vec::new();
    for summary in [&json, &csv] {
        let o = run(&[
            "-m",
            &model,
            "--prompts",
            prompts.to_str().unwrap(),
            "-f",
            "jsonl",
            "--sublayers",
            "--target-id",
            "7",
            "-q",
            "--summary",
            summary.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push(o.stdout);
    }
    assert_eq!(outputs[0], outputs[1]);
    let reports: Vec<Value> = String::from_utf8(outputs.remove(0))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 3);
    let summary: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["prompts"], 3);
    let rows = summary["rows"].as_array().unwrap();
    // embed, then 3 × (mid, post) for phi-tiny's 3 blocks.
    assert_eq!(rows.len(), 7);
    let f = |v: &Value| v.as_f64().unwrap();
    for (r, row) in rows.iter().enumerate() {
        let (mut cells, mut ent, mut kl, mut next, mut ce, mut hits, mut agree) =
            (0u64, 0f64, 0f64, 0u64, 0f64, 0u64, 0u64);
        let (mut tcells, mut tprob, mut trank) = (0u64, 0f64, 0f64);
        for rep in &reports {
            let layer = &rep["layers"][r];
            assert_eq!(layer["site"], row["site"]);
            assert_eq!(layer["layer"], row["layer"]);
            let out = rep["layers"].as_array().unwrap().last().unwrap();
            let tokens = rep["tokens"].as_array().unwrap();
            let positions = layer["positions"].as_array().unwrap();
            for (t, cell) in positions.iter().enumerate() {
                cells += 1;
                ent += f(&cell["entropy"]);
                kl += f(&cell["kl"]);
                agree += u64::from(cell["id"] == out["positions"][t]["id"]);
                if let Some(lp) = cell["next_logprob"].as_f64() {
                    next += 1;
                    ce -= lp;
                    hits += u64::from(cell["id"] == tokens[t + 1]["id"]);
                }
            }
            for target in positions.last().unwrap()["targets"].as_array().unwrap() {
                tcells += 1;
                tprob += f(&target["prob"]);
                trank += f(&target["rank"]);
            }
        }
        let near = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
        assert_eq!(row["cells"], cells);
        assert_eq!(row["next_cells"], next);
        assert_eq!(row["target_cells"], tcells);
        assert!(near(f(&row["mean_entropy"]), ent / cells as f64), "{row}");
        assert!(near(f(&row["mean_kl"]), kl / cells as f64), "{row}");
        assert!(near(f(&row["mean_next_ce"]), ce / next as f64), "{row}");
        assert!(
            near(f(&row["next_top1"]), hits as f64 / next as f64),
            "{row}"
        );
        assert!(
            near(f(&row["output_agreement"]), agree as f64 / cells as f64),
            "{row}"
        );
        assert!(
            near(f(&row["mean_target_prob"]), tprob / tcells as f64),
            "{row}"
        );
        assert!(
            near(f(&row["mean_target_rank"]), trank / tcells as f64),
            "{row}"
        );
    }
    // The output row agrees with itself everywhere and has KL 0.
    let last = rows.last().unwrap();
    assert_eq!(
        (f(&last["output_agreement"]), f(&last["mean_kl"])),
        (1.0, 0.0)
    );
    // Targets: --target-id 7 for all, " the" for fox (2 ids), "x" and " return" for code (3).
    assert_eq!(last["target_cells"], 1 + 2 + 3);
    // The CSV holds the same records.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("site,layer,cells,mean_entropy,mean_kl,"));
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(first[..3], ["embed", "0", &rows[0]["cells"].to_string()]);
    assert_eq!(
        first[3].parse::<f64>().unwrap(),
        f(&rows[0]["mean_entropy"])
    );
    assert_eq!(lines.count(), 6);
}

/// The new fields as the formats show them: JSON's targets, top-k, sites and nulls at the
/// last position; CSV's columns; the table's mid-row labels and last-position lines.
#[test]
fn fields_in_every_format() {
    let model = phi();
    let args = [
        "-m",
        &model,
        "-p",
        "The quick brown fox",
        "--sublayers",
        "--target",
        " the",
    ];
    let o = run(&[&args[..], &["-f", "json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["lens"], "logit");
    assert_eq!(doc["top_k"], 5);
    assert_eq!(doc["targets"][0]["token"], " the");
    let layers = doc["layers"].as_array().unwrap();
    let sites: Vec<&str> = layers.iter().map(|l| l["site"].as_str().unwrap()).collect();
    assert_eq!(
        sites,
        [
            "embed",
            "resid_mid",
            "resid_post",
            "resid_mid",
            "resid_post",
            "resid_mid",
            "resid_post"
        ]
    );
    let numbers: Vec<u64> = layers
        .iter()
        .map(|l| l["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 1, 2, 2, 3, 3]);
    let n = doc["tokens"].as_array().unwrap().len();
    for layer in layers {
        let cells = layer["positions"].as_array().unwrap();
        let last = &cells[n - 1];
        assert!(last["next_logprob"].is_null() && last["next_rank"].is_null());
        let first = &cells[0];
        assert!(first["next_rank"].as_u64().unwrap() >= 1);
        let topk = first["topk"].as_array().unwrap();
        assert_eq!(topk.len(), 5);
        assert_eq!(topk[0]["id"], first["id"]);
        let probs: Vec<f64> = topk.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert_eq!(first["targets"].as_array().unwrap().len(), 1);
    }
    // Without --sublayers the rows are the block outputs, as before.
    let plain = run(&[
        "-m",
        &model,
        "-p",
        "The quick brown fox",
        "-f",
        "json",
        "--top-k",
        "0",
    ]);
    let plain: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(plain["layers"].as_array().unwrap().len(), 4);
    assert!(plain["layers"][0]["positions"][0].get("topk").is_none());
    assert_eq!(plain["top_k"], 0);

    let o = run(&[&args[..], &["-f", "csv", "--top-k", "2"]].concat());
    let text = String::from_utf8(o.stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.ends_with(",entropy,kl,next_logprob,next_rank,site,top1_id,top1_token,top1_prob,top2_id,top2_token,top2_prob,target1_id,target1_token,target1_prob,target1_logprob,target1_rank"),
        "{header}"
    );
    assert_eq!(text.lines().count(), 1 + 7 * n);

    let o = run(&[&args[..], &["--top-k", "3"]].concat());
    let table = String::from_utf8(o.stdout).unwrap();
    for label in ["0 emb", "1 attn", "2 attn", "3 attn", "3 out"] {
        assert!(
            table.lines().any(|l| l.starts_with(label)),
            "{label}: {table}"
        );
    }
    assert!(table.contains("at the last position (\"ox\"):"), "{table}");
    assert!(table.contains("top-3"), "{table}");
}

#[test]
fn a_target_of_several_tokens_tracks_the_first_and_says_so() {
    let model = phi();
    let o = run(&[
        "-m",
        &model,
        "-p",
        "The fox",
        "--target",
        " quick brown",
        "-f",
        "json",
    ]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("note: target \" quick brown\" is"), "{err}");
    assert!(err.contains("tracking the first"), "{err}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["targets"][0]["token"], " qu");
}

#[test]
fn bad_top_k() {
    let model = phi();
    let o = run(&["-m", &model, "-p", "x", "--top-k", "0"]);
    one_error_line(&o, 2, "--top-k 0 lists no tokens");
    let o = run(&["-m", &model, "-p", "x", "--top-k", "0", "-f", "csv"]);
    one_error_line(&o, 2, "--format csv");
    let o = run(&["-m", &model, "-p", "x", "--top-k", "1281", "-f", "json"]);
    one_error_line(&o, 2, "--top-k 1281 is more than the model's 1280 tokens");
    assert!(o.stdout.is_empty());
    // K = the whole vocabulary is fine.
    let o = run(&["-m", &model, "-p", "x", "--top-k", "1280", "-f", "jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_targets() {
    let model = phi();
    let o = run(&["-m", &model, "-p", "x", "--target", ""]);
    one_error_line(&o, 2, "encodes to no tokens");
    let o = run(&["-m", &model, "-p", "x", "--target-id", "1280"]);
    one_error_line(
        &o,
        2,
        "--target-id 1280 is outside the model's vocabulary of 1280 tokens",
    );
    let dir = tmp("badtarget");
    let prompts = dir.join("p.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"a\", \"target\": 5}\n").unwrap();
    let o = run(&["-m", &model, "--prompts", prompts.to_str().unwrap()]);
    one_error_line(
        &o,
        1,
        "line 1: \"target\" must be a string or a list of strings, not 5",
    );
}

#[test]
fn bad_summary_paths_write_nothing() {
    let model = phi();
    let dir = tmp("badsummary");
    let missing = dir.join("no/such/dir/s.json");
    let o = run(&[
        "-m",
        &model,
        "-p",
        "x",
        "--summary",
        missing.to_str().unwrap(),
    ]);
    one_error_line(&o, 2, "--summary");
    assert!(o.stdout.is_empty());
    let txt = dir.join("s.txt");
    let o = run(&["-m", &model, "-p", "x", "--summary", txt.to_str().unwrap()]);
    one_error_line(&o, 2, "written as .json or .csv");
    assert!(!txt.exists());
    // A failed prompt leaves an existing summary alone.
    let kept = dir.join("kept.json");
    std::fs::write(&kept, "old").unwrap();
    let o = run(&["-m", &model, "-p", "", "--summary", kept.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old");
}
