//! Scripting: many prompts per model load, every stdout format with the same numbers,
//! per-prompt images, exit codes, broken pipes, and one clear line for each bad input.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::Output;

use common::*;

/// A failure: the exit code, exactly one stderr line containing `needle`, no panic.
fn assert_bad(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "want one stderr line, got:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

const PROMPTS: [&str; 3] = ["The quick brown fox", "say \"hi\", then\tleave", "one\ntwo"];

fn jsonl_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("prompts.jsonl");
    let mut text = String::new();
    for (i, p) in PROMPTS.iter().enumerate() {
        text += &serde_json::json!({"prompt": p, "id": format!("p{i}")}).to_string();
        text += "\n\n";
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// One record per (prompt, layer, position), from any format.
#[derive(Debug, PartialEq)]
struct Row {
    prompt: usize,
    id: String,
    layer: usize,
    position: usize,
    input_token: String,
    predicted_id: u64,
    predicted_token: String,
    prob: String,
    entropy: String,
}

fn rows_from_json(docs: &[serde_json::Value]) -> Vec<Row> {
    let mut rows = Vec::new();
    for d in docs {
        for layer in d["layers"].as_array().unwrap() {
            for (pos, p) in layer["positions"].as_array().unwrap().iter().enumerate() {
                rows.push(Row {
                    prompt: d["prompt_index"].as_u64().unwrap() as usize,
                    id: d["prompt_id"].as_str().unwrap_or("").to_string(),
                    layer: layer["layer"].as_u64().unwrap() as usize,
                    position: pos,
                    input_token: d["tokens"][pos]["display"].as_str().unwrap().to_string(),
                    predicted_id: p["id"].as_u64().unwrap(),
                    predicted_token: p["token"].as_str().unwrap().to_string(),
                    prob: (p["prob"].as_f64().unwrap() as f32).to_string(),
                    entropy: (p["entropy"].as_f64().unwrap() as f32).to_string(),
                });
            }
        }
    }
    rows
}

fn rows_from_delimited(bytes: &[u8], delimiter: u8) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .comment(Some(b'#'))
        .from_reader(bytes);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        &header[..4],
        ["prompt_index", "prompt_id", "layer", "position"]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            Row {
                prompt: r[col("prompt_index")].parse().unwrap(),
                id: r[col("prompt_id")].to_string(),
                layer: r[col("layer")].parse().unwrap(),
                position: r[col("position")].parse().unwrap(),
                input_token: r[col("input_token")].to_string(),
                predicted_id: r[col("predicted_id")].parse().unwrap(),
                predicted_token: r[col("predicted_token")].to_string(),
                prob: r[col("prob")].parse::<f32>().unwrap().to_string(),
                entropy: r[col("entropy")].parse::<f32>().unwrap().to_string(),
            }
        })
        .collect()
}

#[test]
fn every_format_carries_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let file = jsonl_file(dir.path());
    let f = file.to_str().unwrap();
    let out = |format: &str| {
        let o = run(&["--model", &phi(), "--prompts", f, "--format", format]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        o.stdout
    };
    let json: Vec<serde_json::Value> = serde_json::from_slice(&out("json")).unwrap();
    assert_eq!(json.len(), 3, "a prompts file gives a JSON array");
    let jsonl: Vec<serde_json::Value> = String::from_utf8(out("jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reference = rows_from_json(&json);
    assert_eq!(
        reference.len(),
        json.iter()
            .map(|d| d["tokens"].as_array().unwrap().len() * 4)
            .sum::<usize>()
    );
    assert_eq!(rows_from_json(&jsonl), reference);
    assert_eq!(rows_from_delimited(&out("csv"), b','), reference);
    assert_eq!(rows_from_delimited(&out("tsv"), b'\t'), reference);

    assert_eq!(json[1]["prompt"], PROMPTS[1]);
    assert_eq!(
        json[2]["prompt"], "one\ntwo",
        "JSONL prompts keep their newlines"
    );
    assert_eq!(json[1]["prompt_id"], "p1");
    assert!(
        reference.iter().any(|r| r.input_token.contains('"')),
        "a quoted token survives csv"
    );
    assert!(
        reference.iter().any(|r| r.input_token.contains(',')),
        "a comma token survives csv"
    );
    assert!(
        reference.iter().any(|r| r.input_token.contains('⇥')),
        "tabs are shown as ⇥"
    );
}

#[test]
fn json_for_one_prompt_is_an_object_and_for_several_an_array() {
    let one = run(&["--model", &phi(), "--prompt", "a b", "--format", "json"]);
    assert!(serde_json::from_slice::<serde_json::Value>(&one.stdout)
        .unwrap()
        .is_object());
    let two = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a b",
        "--prompt",
        "c d",
        "--format",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&two.stdout).unwrap();
    assert_eq!(doc.as_array().unwrap().len(), 2);
    assert_eq!(doc[1]["prompt_index"], 1);
}

#[test]
fn prompts_file_and_stdin_skip_empty_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.txt");
    std::fs::write(&path, "first prompt\n\n   \nsecond prompt\r\n").unwrap();
    let o = run(&[
        "--model",
        &phi(),
        "--prompts",
        path.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["prompt"], "second prompt");

    let o = run_with_stdin(
        &["--model", &phi(), "--prompts", "-", "--format", "jsonl"],
        b"from stdin\nand more\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout.lines().count(), 2);
}

#[test]
fn out_dir_names_images_by_id_or_index() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("img");
    std::fs::create_dir(&images).unwrap();
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a b",
        "--prompt",
        "c d",
        "--out-dir",
        images.to_str().unwrap(),
        "-f",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["000.png", "001.png"]);

    let file = jsonl_file(dir.path());
    let o = run(&[
        "--model",
        &phi(),
        "--prompts",
        file.to_str().unwrap(),
        "--out-dir",
        images.to_str().unwrap(),
        "--image-format",
        "svg",
        "-f",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for id in ["p0", "p1", "p2"] {
        let svg = std::fs::read_to_string(images.join(format!("{id}.svg"))).unwrap();
        assert!(svg.contains("<svg"));
    }
}

#[test]
fn out_with_several_prompts_points_to_out_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a",
        "--prompt",
        "b",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_bad(&o, 2, "--out-dir");
    assert!(!out.exists());
}

#[test]
fn a_failing_prompt_is_reported_and_the_rest_still_run() {
    let long = "word ".repeat(200);
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a b",
        "--prompt",
        &long,
        "--prompt",
        "c d",
        "-f",
        "jsonl",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["prompt_index"], 2);
    let err = stderr(&o);
    assert!(err.contains("prompt 1"), "{err}");
    assert!(!err.contains("panicked"));

    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a b",
        "--prompt",
        &long,
        "--prompt",
        "c d",
        "-f",
        "jsonl",
        "--fail-fast",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        o.stdout.lines().count(),
        1,
        "--fail-fast stops at the failure"
    );
}

#[test]
fn quiet_run_prints_nothing_on_stderr() {
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a b",
        "--prompt",
        "c d",
        "-q",
    ]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty());
}

#[test]
fn closed_stdout_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.txt");
    let prompt = "The quick brown fox jumps over the lazy dog and keeps on running far away";
    std::fs::write(&path, format!("{prompt}\n").repeat(40)).unwrap();
    let (lines, o) = run_closing_stdout_after(
        &[
            "--model",
            &phi(),
            "--prompts",
            path.to_str().unwrap(),
            "-f",
            "csv",
        ],
        2,
    );
    assert!(lines[0].starts_with("prompt_index"));
    assert!(lines[1].starts_with("0,"));
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "stderr: {}", stderr(&o));
}

/// Copies the phi fixture into a temporary directory for breaking.
fn broken_copy(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture("phi-tiny").join(f), dir.path().join(f)).unwrap();
    }
    edit(dir.path());
    dir
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
}

fn model_fails(dir: &tempfile::TempDir, needle: &str) {
    let out = tempfile::tempdir().unwrap();
    let png = out.path().join("x.png");
    let o = run(&[
        "--model",
        dir.path().to_str().unwrap(),
        "--prompt",
        "a b",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_bad(&o, 1, needle);
    assert!(!png.exists());
}

#[test]
fn broken_checkpoints_fail_with_one_clear_line() {
    let truncated = broken_copy(|d| {
        let w = std::fs::read(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("model.safetensors"), &w[..w.len() / 2]).unwrap();
    });
    model_fails(&truncated, "truncated");
    let garbage = broken_copy(|d| {
        std::fs::write(
            d.join("model.safetensors"),
            b"\xff\xff\xff\xffnot a safetensors file",
        )
        .unwrap()
    });
    model_fails(&garbage, "not safetensors");
    let not_json =
        broken_copy(|d| std::fs::write(d.join("config.json"), "{ model_type: phi").unwrap());
    model_fails(&not_json, "not valid JSON");
    let no_field = broken_copy(|d| {
        edit_config(d, |c| {
            drop(c.as_object_mut().unwrap().remove("hidden_size"))
        })
    });
    model_fails(&no_field, "hidden_size");
    let shapes = broken_copy(|d| edit_config(d, |c| c["intermediate_size"] = 96.into()));
    model_fails(&shapes, "fc1.weight");
    let no_tokenizer = broken_copy(|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    model_fails(&no_tokenizer, "tokenizer.json");
    let bad_tokenizer =
        broken_copy(|d| std::fs::write(d.join("tokenizer.json"), "{\"model\": 3}").unwrap());
    model_fails(&bad_tokenizer, "tokenizer");
}

#[test]
fn bad_prompt_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("p.txt");
    std::fs::write(&txt, b"fine\nbad \xff byte\n").unwrap();
    let o = run(&["--model", &phi(), "--prompts", txt.to_str().unwrap()]);
    assert_bad(&o, 1, "line 2");
    let jsonl = dir.path().join("p.jsonl");
    std::fs::write(&jsonl, "{\"prompt\": \"ok\"}\n{\"prompt\": oops}\n").unwrap();
    let o = run(&["--model", &phi(), "--prompts", jsonl.to_str().unwrap()]);
    assert_bad(&o, 1, "line 2");
    let o = run(&[
        "--model",
        &phi(),
        "--prompts",
        dir.path().join("absent.txt").to_str().unwrap(),
    ]);
    assert_bad(&o, 1, "absent.txt");
}

#[test]
fn bad_output_paths_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_bad(&o, 2, "is a directory");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a",
        "--out",
        dir.path().join("no/x.png").to_str().unwrap(),
    ]);
    assert_bad(&o, 2, "does not exist");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a",
        "--out",
        "/proc/logitlens-test.png",
    ]);
    assert_bad(&o, 2, "cannot create files in /proc");
    let o = run(&[
        "--model",
        &phi(),
        "--prompt",
        "a",
        "--out",
        dir.path().join("x.bmp").to_str().unwrap(),
    ]);
    assert_bad(&o, 2, ".bmp");
    let o = run(&["--model", &phi(), "--prompt", "a", "--layer-step", "0"]);
    assert_bad(&o, 2, "--layer-step");
    let o = run(&["--model", &phi(), "--prompt", "a", "--dtype", "f64"]);
    assert_bad(&o, 2, "f64");
    let o = run(&["--model", &phi()]);
    assert_bad(&o, 2, "--prompt");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
