//! Hostile and corrupted model files: hundreds of corruptions generated from the tiny
//! fixtures (safetensors headers, config.json values, GGUF metadata and tensor tables,
//! tokenizer.json, a tuned lens's params.pt). Each run of the binary, under a memory limit
//! (RLIMIT_AS 4 GiB) and a time limit, must exit 1 (a model or prompt failed: README's
//! exit codes) with exactly one stderr line starting "logitlens: ", no panic, no signal.
//!
//! Every mutation is designed to leave an invalid file; the few that leave a valid one on
//! purpose (a field with a default removed, a GGUF cut down consistently to fewer blocks)
//! are controls that must run with exit 0, so the suite cannot pass by refusing everything.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::fixture;
use serde_json::{json, Value};

/// How long one run may take (the debug binary on a busy 2-core machine).
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// RLIMIT_AS of each run, in KiB (4 GiB).
const MEMORY_KIB: u64 = 4 << 20;

/// What a case must do.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Exit 1, one stderr line.
    Refused,
    /// Exit 0: the mutation leaves a valid file.
    Runs,
}

/// One generated file set and the arguments that load it.
struct Case {
    name: String,
    args: Vec<String>,
    expect: Expect,
}

/// Writes the cases' files under one temporary directory, one folder each.
struct Cases {
    root: tempfile::TempDir,
    cases: Vec<Case>,
}

impl Cases {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
            cases: Vec::new(),
        }
    }

    /// A fresh folder for the next case.
    fn dir(&self) -> PathBuf {
        let d = self.root.path().join(self.cases.len().to_string());
        std::fs::create_dir(&d).unwrap();
        d
    }

    /// A model directory: `files` written, every other file of fixture `base` linked.
    fn model_dir(&mut self, base: &str, files: &[(&str, &[u8])], name: String, expect: Expect) {
        let d = self.dir();
        for entry in std::fs::read_dir(fixture(base)).unwrap() {
            let entry = entry.unwrap();
            let file = entry.file_name();
            let written = files.iter().any(|(n, _)| *n == file.to_str().unwrap());
            let wanted = ["config.json", "tokenizer.json", "model.safetensors"];
            if !written && wanted.contains(&file.to_str().unwrap()) {
                std::os::unix::fs::symlink(entry.path(), d.join(&file)).unwrap();
            }
        }
        for (n, bytes) in files {
            std::fs::write(d.join(n), bytes).unwrap();
        }
        let model = d.display().to_string();
        self.push(name, vec!["--model".into(), model], expect);
    }

    fn push(&mut self, name: String, mut args: Vec<String>, expect: Expect) {
        args.extend(["--prompt".into(), "The quick brown fox".into()]);
        self.cases.push(Case { name, args, expect });
    }
}

/// Runs `args` under the limits; `Err` says how the run broke the contract.
fn check(case: &Case, out: &Path) -> Result<(), String> {
    let stderr_path = out.join("stderr");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_logitlens"))
        .args(&case.args)
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let Some(code) = status.code() else {
        return Err(format!("killed by a signal ({status}); stderr: {err}"));
    };
    match case.expect {
        Expect::Runs if code == 0 => Ok(()),
        Expect::Runs => Err(format!("a valid file failed (exit {code}): {err}")),
        Expect::Refused if code == 0 => Err(format!("exit 0 on a corrupt file; stderr: {err}")),
        Expect::Refused if code != 1 => Err(format!("exit {code}, not 1: {err}")),
        Expect::Refused if err.lines().count() != 1 || !err.starts_with("logitlens: ") => Err(
            format!("want one line starting \"logitlens: \", got: {err}"),
        ),
        Expect::Refused if err.contains("panicked") => Err(format!("a panic: {err}")),
        Expect::Refused => Ok(()),
    }
}

/// Runs every case on a few threads; fails listing each broken one.
fn run_all(cases: Cases, what: &str) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.cases.get(i) else {
                    break;
                };
                let out = cases.root.path().join(format!("out{i}"));
                std::fs::create_dir_all(&out).unwrap();
                if let Err(why) = check(case, &out) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {why}", case.name));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let valid = cases
        .cases
        .iter()
        .filter(|c| c.expect == Expect::Runs)
        .count();
    eprintln!(
        "hostile {what}: {} cases ({} corrupt, {valid} valid controls), {} broke the contract, {:.1} s",
        cases.cases.len(),
        cases.cases.len() - valid,
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.cases.len(),
        failures.join("\n")
    );
}

/// `n` offsets spread evenly over `lo..hi`.
fn spread(lo: usize, hi: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).map(|k| lo + (hi - lo) * k / n.max(1)).collect();
    v.dedup();
    v
}

/// `original` with `bytes` written over it at `at`.
fn patched(original: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = original.to_vec();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    b
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// safetensors

/// A safetensors file as its JSON header and its data.
fn split_safetensors(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

/// A safetensors file of `header` (padded with spaces to 8 bytes, as the writer does) and
/// `data`.
fn join_safetensors(header: &Value, data: &[u8]) -> Vec<u8> {
    let mut text = serde_json::to_vec(header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    out
}

#[test]
fn corrupt_safetensors_are_refused() {
    let original = read(&fixture("llama-tiny").join("model.safetensors"));
    let (header, data) = split_safetensors(&original);
    let n = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut cases = Cases::new();
    let add = |cases: &mut Cases, name: String, bytes: Vec<u8>| {
        let files: [(&str, &[u8]); 1] = [("model.safetensors", &bytes)];
        cases.model_dir(
            "llama-tiny",
            &files,
            format!("safetensors {name}"),
            Expect::Refused,
        );
    };
    // The control: the header rewritten unchanged loads.
    let same = join_safetensors(&header, &data);
    let files: [(&str, &[u8]); 1] = [("model.safetensors", &same)];
    cases.model_dir(
        "llama-tiny",
        &files,
        "safetensors rewritten".into(),
        Expect::Runs,
    );

    // Truncations: in the length, the header, at its end, across the data.
    let cuts = [0, 1, 4, 7, 8, 9, 8 + n / 2, 8 + n - 1, 8 + n, 8 + n + 1];
    let cuts = cuts
        .into_iter()
        .chain(spread(8 + n + 2, original.len(), 14));
    for at in cuts.chain([original.len() - 1]) {
        add(&mut cases, format!("cut at {at}"), original[..at].to_vec());
    }
    // The header length lies: short, long, past the file, absurd.
    let len = original.len() as u64;
    for claim in [
        0,
        1,
        2,
        n as u64 - 1,
        n as u64 + 1,
        len - 8,
        len,
        1 << 40,
        u64::MAX,
    ] {
        let mut b = original.clone();
        b[..8].copy_from_slice(&claim.to_le_bytes());
        add(&mut cases, format!("header length {claim}"), b);
    }
    // Structural bytes of the header replaced, outside the free-form __metadata__.
    let text = &original[8..8 + n];
    let meta = String::from_utf8_lossy(text)
        .find("\"__metadata__\"")
        .map(|i| (i, i + text[i..].iter().position(|&b| b == b'}').unwrap()));
    let outside = |i: usize| meta.is_none_or(|(a, b)| i < a || i > b);
    let positions: Vec<usize> = (0..n).filter(|&i| outside(i)).collect();
    for k in spread(0, positions.len(), 40) {
        let at = positions[k];
        let mut b = original.clone();
        b[8 + at] = if b[8 + at] == b'x' { b'q' } else { b'x' };
        add(&mut cases, format!("header byte {at} replaced"), b);
    }
    // Each tensor entry edited: its dtype, shape, offsets, name.
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let picked = [0, names.len() / 2, names.len() - 1].map(|i| names[i].clone());
    for name in &picked {
        let entry = header[name].clone();
        let shape: Vec<u64> = serde_json::from_value(entry["shape"].clone()).unwrap();
        let [s, e]: [u64; 2] = serde_json::from_value(entry["data_offsets"].clone()).unwrap();
        let size = data.len() as u64;
        let mut edits: Vec<(String, Value)> = Vec::new();
        for dtype in [
            json!("F16"),
            json!("BF16"),
            json!("I32"),
            json!("F64"),
            json!("U8"),
            json!("BOGUS"),
            json!(5),
        ] {
            edits.push((format!("dtype {dtype}"), json!({"dtype": dtype})));
        }
        let mut longer = shape.clone();
        longer.push(1);
        let flat: u64 = shape.iter().product();
        let mut reversed = shape.clone();
        reversed.reverse();
        let mut shapes = vec![json!([]), json!([0]), json!(longer), json!("x")];
        if shape.len() > 1 {
            shapes.push(json!([flat]));
        }
        if reversed != shape {
            shapes.push(json!(reversed));
        }
        for shape in shapes {
            edits.push((format!("shape {shape}"), json!({"shape": shape})));
        }
        let offsets = [
            json!([s, e + 4]),
            json!([s + 4, e]),
            json!([s, s]),
            json!([e, s]),
            json!([s + size, e + size]),
            json!([s, u64::MAX]),
            json!(["a", "b"]),
            json!([s]),
        ];
        for o in offsets {
            edits.push((format!("data_offsets {o}"), json!({"data_offsets": o})));
        }
        for (what, edit) in edits {
            let mut h = header.clone();
            for (k, v) in edit.as_object().unwrap() {
                h[name][k] = v.clone();
            }
            add(
                &mut cases,
                format!("{name}: {what}"),
                join_safetensors(&h, &data),
            );
        }
        let mut h = header.clone();
        h.as_object_mut().unwrap().remove(name);
        add(
            &mut cases,
            format!("{name} removed"),
            join_safetensors(&h, &data),
        );
        let mut h = header.clone();
        let moved = h.as_object_mut().unwrap().remove(name).unwrap();
        h[format!("{name}x")] = moved;
        add(
            &mut cases,
            format!("{name} renamed"),
            join_safetensors(&h, &data),
        );
    }
    for whole in [
        json!([]),
        json!(null),
        json!({}),
        json!({"__metadata__": {"format": 1}}),
    ] {
        add(
            &mut cases,
            format!("header {whole}"),
            join_safetensors(&whole, &data),
        );
    }
    run_all(cases, "safetensors");
}

// ---------------------------------------------------------------------------------------
// config.json

/// How a config field's value may be corrupted.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A count or size (an unsigned integer).
    Size,
    /// A positive real (an epsilon, a base, a factor, a cap).
    Real,
    /// A fraction in (0, 1].
    Fraction,
    /// A name (activation, model type, rope type).
    Name,
    /// A boolean.
    Flag,
}

/// The corruptions of a field of `kind`: (label, value; `None` removes the field).
/// `"__NAN__"` and `"__INF__"` are written as the bare tokens `NaN` and `Infinity`, as
/// Python's json module writes them.
fn corruptions(kind: Kind) -> Vec<(&'static str, Option<Value>)> {
    let common = [
        ("missing", None),
        ("wrong type", Some(json!([1]))),
        ("null", Some(Value::Null)),
    ];
    let specific = match kind {
        Kind::Size => vec![
            ("0", Some(json!(0))),
            ("-1", Some(json!(-1))),
            ("1e30", Some(json!(1e30))),
            ("2^40", Some(json!(1u64 << 40))),
            ("\"NaN\"", Some(json!("NaN"))),
            ("true", Some(json!(true))),
        ],
        Kind::Real => vec![
            ("0", Some(json!(0.0))),
            ("-1", Some(json!(-1.0))),
            ("1e39", Some(json!(1e39))),
            ("\"NaN\"", Some(json!("NaN"))),
            ("NaN", Some(json!("__NAN__"))),
            ("Infinity", Some(json!("__INF__"))),
            ("true", Some(json!(true))),
        ],
        Kind::Fraction => vec![
            ("0", Some(json!(0.0))),
            ("-0.5", Some(json!(-0.5))),
            ("1.5", Some(json!(1.5))),
            ("0.01", Some(json!(0.01))),
            ("\"NaN\"", Some(json!("NaN"))),
            ("NaN", Some(json!("__NAN__"))),
        ],
        Kind::Name => vec![
            ("0", Some(json!(0))),
            ("bogus", Some(json!("bogus"))),
            ("true", Some(json!(true))),
        ],
        Kind::Flag => vec![("0", Some(json!(0))), ("\"yes\"", Some(json!("yes")))],
    };
    specific.into_iter().chain(common).collect()
}

/// `json` with the field at `path` (dots into objects) set to `value`, or removed.
fn set_field(json: &Value, path: &str, value: &Option<Value>) -> Vec<u8> {
    let mut json = json.clone();
    let (parents, last) = match path.rsplit_once('.') {
        Some((p, l)) => (p.split('.').collect::<Vec<_>>(), l),
        None => (vec![], path),
    };
    let mut at = &mut json;
    for p in parents {
        at = &mut at[p];
    }
    let obj = at.as_object_mut().unwrap();
    match value {
        Some(v) => obj.insert(last.into(), v.clone()),
        None => obj.remove(last),
    };
    serde_json::to_string(&json)
        .unwrap()
        .replace("\"__NAN__\"", "NaN")
        .replace("\"__INF__\"", "Infinity")
        .into_bytes()
}

/// A fixture's config.json with keys that the loader would read in two places removed
/// (`rope_parameters` where `rope_scaling` or top-level keys say the same).
fn base_config(name: &str, drop: &[&str]) -> Value {
    let mut json: Value =
        serde_json::from_slice(&read(&fixture(name).join("config.json"))).unwrap();
    for key in drop {
        json.as_object_mut().unwrap().remove(*key);
    }
    json
}

/// A config field: its path, kind, and the corruptions that leave a valid config (a
/// default applies, or the value is legal if odd).
type Field = (&'static str, Kind, &'static [&'static str]);

fn fields(v: &[Field]) -> Vec<Field> {
    v.to_vec()
}

#[test]
fn corrupt_config_values_are_refused() {
    use Kind::*;
    let sizes: Vec<Field> = fields(&[
        ("vocab_size", Size, &[]),
        ("hidden_size", Size, &[]),
        ("intermediate_size", Size, &[]),
        ("num_hidden_layers", Size, &[]),
        ("num_attention_heads", Size, &[]),
        ("num_key_value_heads", Size, &[]),
        ("head_dim", Size, &["missing", "null"]),
        (
            "max_position_embeddings",
            Size,
            &["missing", "null", "2^40"],
        ),
        ("bos_token_id", Size, &["0", "missing", "null"]),
        ("hidden_act", Name, &["missing"]),
        ("tie_word_embeddings", Flag, &["missing"]),
        ("model_type", Name, &[]),
    ]);
    let fixtures: Vec<(&str, &[&str], Vec<Field>)> = vec![
        (
            "llama-tiny",
            &["rope_parameters"],
            sizes
                .into_iter()
                .chain([
                    ("rms_norm_eps", Real, &["missing"]),
                    ("rope_theta", Real, &["missing", "null"]),
                    ("rope_scaling.factor", Real, &[]),
                    ("rope_scaling.low_freq_factor", Real, &[]),
                    ("rope_scaling.high_freq_factor", Real, &[]),
                    (
                        "rope_scaling.original_max_position_embeddings",
                        Size,
                        &["missing", "null", "2^40"],
                    ),
                    ("rope_scaling.rope_type", Name, &["missing", "null"]),
                ] as [Field; 7])
                .collect(),
        ),
        (
            "phi-tiny",
            &["rope_parameters"],
            fields(&[
                ("partial_rotary_factor", Fraction, &["missing"]),
                ("layer_norm_eps", Real, &["missing"]),
                ("rope_theta", Real, &["missing", "null"]),
                ("qk_layernorm", Flag, &["missing"]),
            ]),
        ),
        (
            "gemma2-tiny",
            &[],
            fields(&[
                ("attn_logit_softcapping", Real, &["missing", "null"]),
                ("final_logit_softcapping", Real, &["missing", "null"]),
                ("query_pre_attn_scalar", Real, &["missing", "null"]),
                ("sliding_window", Size, &["2^40", "missing"]),
                ("rms_norm_eps", Real, &["missing"]),
                ("rope_parameters.rope_theta", Real, &["missing", "null"]),
                ("head_dim", Size, &[]),
            ]),
        ),
        (
            "qwen3-tiny",
            &["rope_parameters"],
            fields(&[
                ("sliding_window", Size, &["2^40", "missing", "null"]),
                ("max_window_layers", Size, &["0", "2^40", "missing"]),
                ("use_sliding_window", Flag, &["missing"]),
            ]),
        ),
        (
            "gpt2-tiny",
            &[],
            fields(&[
                ("n_embd", Size, &[]),
                ("n_head", Size, &[]),
                ("n_layer", Size, &[]),
                ("n_positions", Size, &[]),
                ("n_inner", Size, &[]),
                ("layer_norm_epsilon", Real, &["missing"]),
            ]),
        ),
        (
            "gpt-neox-tiny",
            &[],
            fields(&[
                ("rotary_pct", Fraction, &["missing", "null"]),
                ("rotary_emb_base", Real, &["missing", "null"]),
                ("layer_norm_eps", Real, &["missing"]),
            ]),
        ),
        (
            "phi3-longrope-tiny",
            &["rope_parameters"],
            fields(&[
                (
                    "rope_scaling.original_max_position_embeddings",
                    Size,
                    &["2^40", "missing", "null"],
                ),
                (
                    "original_max_position_embeddings",
                    Size,
                    &["missing", "null", "2^40", "0"],
                ),
                ("rms_norm_eps", Real, &["missing"]),
            ]),
        ),
    ];
    let mut cases = Cases::new();
    for (name, drop, fields) in &fixtures {
        let base = base_config(name, drop);
        let config = serde_json::to_vec(&base).unwrap();
        let files: [(&str, &[u8]); 1] = [("config.json", &config)];
        cases.model_dir(
            name,
            &files,
            format!("{name} config rewritten"),
            Expect::Runs,
        );
        for (field, kind, valid) in fields {
            for (label, value) in corruptions(*kind) {
                let config = set_field(&base, field, &value);
                let expect = match valid.contains(&label) {
                    true => Expect::Runs,
                    false => Expect::Refused,
                };
                let files: [(&str, &[u8]); 1] = [("config.json", &config)];
                cases.model_dir(name, &files, format!("{name} {field} = {label}"), expect);
            }
        }
    }
    // Shapes that cannot hold together: heads not dividing the width, kv heads not
    // dividing heads, longrope factors of the wrong length or not positive.
    let llama = base_config("llama-tiny", &["rope_parameters"]);
    let mut no_head_dim = llama.clone();
    no_head_dim.as_object_mut().unwrap().remove("head_dim");
    let phi3 = base_config("phi3-longrope-tiny", &["rope_parameters"]);
    let shapes = [
        ("llama-tiny", &no_head_dim, "num_attention_heads", json!(3)),
        ("llama-tiny", &llama, "num_key_value_heads", json!(3)),
        ("llama-tiny", &llama, "num_attention_heads", json!(2)),
        (
            "llama-tiny",
            &llama,
            "rope_scaling.low_freq_factor",
            json!(4.0),
        ),
        (
            "phi3-longrope-tiny",
            &phi3,
            "rope_scaling.short_factor",
            json!([1.0, 0.0, 2.1, 3.7]),
        ),
        (
            "phi3-longrope-tiny",
            &phi3,
            "rope_scaling.long_factor",
            json!([1.2, -2.9, 6.5, 11.0]),
        ),
        (
            "phi3-longrope-tiny",
            &phi3,
            "rope_scaling.short_factor",
            json!([1.0, 1.3]),
        ),
        (
            "phi3-longrope-tiny",
            &phi3,
            "rope_scaling.attention_factor",
            json!(0.0),
        ),
        (
            "phi3-longrope-tiny",
            &phi3,
            "rope_scaling.factor",
            json!(-1.0),
        ),
    ];
    for (name, base, field, value) in shapes {
        let config = set_field(base, field, &Some(value.clone()));
        let files: [(&str, &[u8]); 1] = [("config.json", &config)];
        cases.model_dir(
            name,
            &files,
            format!("{name} {field} = {value}"),
            Expect::Refused,
        );
    }
    let broken: [(&str, &[u8]); 3] = [
        ("empty", b""),
        ("array", b"[]"),
        ("truncated", b"{\"model_type\": \"llama\", "),
    ];
    for (label, text) in broken {
        let files: [(&str, &[u8]); 1] = [("config.json", text)];
        cases.model_dir(
            "llama-tiny",
            &files,
            format!("config {label}"),
            Expect::Refused,
        );
    }
    run_all(cases, "config.json");
}

// ---------------------------------------------------------------------------------------
// GGUF

/// Where each part of a GGUF file lies, from the test's own reading of the format.
struct GgufMap {
    /// Byte offsets of the tensor count and the kv count.
    counts: (usize, usize),
    /// Per kv: key, offset of its key length, of its type, of its value, and its end.
    kvs: Vec<(String, usize, usize, usize, usize)>,
    /// Per tensor: name, offset of its name length, of its dimension count, of its
    /// dimensions, of its type, of its offset field, and its byte size in the data.
    tensors: Vec<Tensor>,
    /// Where the tensor table ends and the data begins.
    table_end: usize,
    data: usize,
}

#[derive(Clone)]
struct Tensor {
    name: String,
    at: usize,
    dims_at: usize,
    type_at: usize,
    offset_at: usize,
    offset: u64,
    size: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads a GGUF v3 file's layout (f32 tensors only, as the fixture holds).
fn map_gguf(b: &[u8]) -> GgufMap {
    assert_eq!(&b[..4], b"GGUF");
    assert_eq!(u32_at(b, 4), 3);
    let (n_tensors, n_kv) = (u64_at(b, 8) as usize, u64_at(b, 16) as usize);
    let mut at = 24;
    let string = |at: &mut usize| {
        let n = u64_at(b, *at) as usize;
        let s = String::from_utf8_lossy(&b[*at + 8..*at + 8 + n]).into_owned();
        *at += 8 + n;
        s
    };
    let fixed = |ty: u32| match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => 0,
    };
    let mut kvs = Vec::new();
    for _ in 0..n_kv {
        let start = at;
        let key = string(&mut at);
        let ty = u32_at(b, at);
        let value = at + 4;
        at = value;
        match ty {
            8 => {
                string(&mut at);
            }
            9 => {
                let (item, n) = (u32_at(b, at), u64_at(b, at + 4) as usize);
                at += 12;
                for _ in 0..n {
                    match item {
                        8 => {
                            string(&mut at);
                        }
                        t => at += fixed(t),
                    }
                }
            }
            t => at += fixed(t),
        }
        kvs.push((key, start, value - 4, value, at));
    }
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let start = at;
        let name = string(&mut at);
        let dims_at = at;
        let n_dims = u32_at(b, at) as usize;
        let elements: u64 = (0..n_dims).map(|d| u64_at(b, at + 4 + 8 * d)).product();
        at += 4 + 8 * n_dims;
        let type_at = at;
        assert_eq!(u32_at(b, at), 0, "the fixture holds f32 tensors");
        let offset_at = at + 4;
        let offset = u64_at(b, offset_at);
        at += 12;
        let size = elements as usize * 4;
        tensors.push(Tensor {
            name,
            at: start,
            dims_at,
            type_at,
            offset_at,
            offset,
            size,
        });
    }
    GgufMap {
        counts: (8, 16),
        kvs,
        tensors,
        table_end: at,
        data: at.div_ceil(32) * 32,
    }
}

/// The GGUF file `b` rewritten with only the tensors `keep` allows, laid out afresh.
fn gguf_with_tensors(b: &[u8], map: &GgufMap, keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let kept: Vec<&Tensor> = map.tensors.iter().filter(|t| keep(&t.name)).collect();
    let mut out = b[..map.tensors[0].at].to_vec();
    out[8..16].copy_from_slice(&(kept.len() as u64).to_le_bytes());
    let mut offset = 0u64;
    for t in &kept {
        let mut info = b[t.at..t.offset_at + 8].to_vec();
        let n = info.len();
        info[n - 8..].copy_from_slice(&offset.to_le_bytes());
        out.extend(info);
        offset += (t.size as u64).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    for t in &kept {
        let start = map.data + t.offset as usize;
        out.extend(&b[start..start + t.size]);
        out.resize(out.len().div_ceil(32) * 32, 0);
    }
    out
}

#[test]
fn corrupt_gguf_files_are_refused() {
    let path = fixture("qwen2-tiny").join("model-f32.gguf");
    let original = read(&path);
    let map = map_gguf(&original);
    let mut cases = Cases::new();
    let add = |cases: &mut Cases, name: String, bytes: Vec<u8>, expect: Expect| {
        let file = cases.dir().join("model.gguf");
        std::fs::write(&file, bytes).unwrap();
        let args = vec!["--model".into(), file.display().to_string()];
        cases.push(format!("gguf {name}"), args, expect);
    };
    let refused = Expect::Refused;
    let patch = |at: usize, bytes: &[u8]| patched(&original, at, bytes);
    // Controls: the file as it is, and rewritten by the test's own layout.
    add(
        &mut cases,
        "unchanged".into(),
        original.clone(),
        Expect::Runs,
    );
    let relaid = gguf_with_tensors(&original, &map, |_| true);
    assert_eq!(relaid, original, "the test's writer reproduces the fixture");

    // Truncations across the header, the tensor table and the data.
    let cuts = spread(0, map.table_end, 16)
        .into_iter()
        .chain(spread(map.data, original.len(), 12));
    for at in cuts.chain([original.len() - 1]) {
        add(
            &mut cases,
            format!("cut at {at}"),
            original[..at].to_vec(),
            refused,
        );
    }
    // Version and counts.
    for v in [0u32, 4, u32::MAX] {
        add(
            &mut cases,
            format!("version {v}"),
            patch(4, &v.to_le_bytes()),
            refused,
        );
    }
    let (n_t, n_kv) = (map.tensors.len() as u64, map.kvs.len() as u64);
    for (label, at, values) in [
        (
            "tensor count",
            map.counts.0,
            [0, n_t - 1, n_t + 1, u64::MAX],
        ),
        ("kv count", map.counts.1, [0, n_kv - 1, n_kv + 1, u64::MAX]),
    ] {
        for v in values {
            add(
                &mut cases,
                format!("{label} {v}"),
                patch(at, &v.to_le_bytes()),
                refused,
            );
        }
    }
    // Metadata values: counts and sizes set to 0 or absurd, reals to 0, -1, NaN, ∞; types
    // changed; key lengths broken; required keys renamed.
    for (key, start, type_at, value, end) in &map.kvs {
        let ty = u32_at(&original, *type_at);
        let arch_number = key.starts_with("qwen2.") && matches!(ty, 4 | 6);
        if arch_number {
            let values: Vec<(String, Vec<u8>)> = match ty {
                4 => {
                    let mut v = vec![("0".to_string(), 0u32.to_le_bytes().to_vec())];
                    if key != "qwen2.context_length" {
                        v.push(("u32::MAX".into(), u32::MAX.to_le_bytes().to_vec()));
                    }
                    if key == "qwen2.block_count" {
                        v.push(("2".into(), 2u32.to_le_bytes().to_vec()));
                        v.push(("4".into(), 4u32.to_le_bytes().to_vec()));
                    }
                    v
                }
                _ => [0.0f32, -1.0, f32::NAN, f32::INFINITY]
                    .iter()
                    .map(|x| (x.to_string(), x.to_le_bytes().to_vec()))
                    .collect(),
            };
            for (label, bytes) in values {
                add(
                    &mut cases,
                    format!("{key} = {label}"),
                    patch(*value, &bytes),
                    refused,
                );
            }
            let other = if ty == 4 { 6u32 } else { 4 };
            add(
                &mut cases,
                format!("{key} typed {other}"),
                patch(*type_at, &other.to_le_bytes()),
                refused,
            );
            let mut renamed = original.clone();
            renamed[*type_at - 1] ^= 0x20;
            let optional = key.ends_with("freq_base") || key.ends_with("head_count_kv");
            if !optional {
                add(&mut cases, format!("{key} renamed"), renamed, refused);
            }
        }
        if matches!(
            key.as_str(),
            "general.architecture"
                | "qwen2.block_count"
                | "tokenizer.ggml.tokens"
                | "tokenizer.ggml.merges"
                | "tokenizer.ggml.token_type"
        ) {
            for ty in [13u32, 99] {
                add(
                    &mut cases,
                    format!("{key} of type {ty}"),
                    patch(*type_at, &ty.to_le_bytes()),
                    refused,
                );
            }
            let len = u64_at(&original, *start);
            for claim in [len + 1, len + 1000, u64::MAX] {
                add(
                    &mut cases,
                    format!("{key} key length {claim}"),
                    patch(*start, &claim.to_le_bytes()),
                    refused,
                );
            }
            if ty == 9 {
                let count = u64_at(&original, value + 4);
                for claim in [count + 1, u64::MAX / 2, 0] {
                    add(
                        &mut cases,
                        format!("{key} array length {claim}"),
                        patch(value + 4, &claim.to_le_bytes()),
                        refused,
                    );
                }
                add(
                    &mut cases,
                    format!("{key} array of arrays"),
                    patch(*value, &9u32.to_le_bytes()),
                    refused,
                );
                if u32_at(&original, *value) == 8 {
                    add(
                        &mut cases,
                        format!("{key} array of u32 for strings"),
                        patch(*value, &4u32.to_le_bytes()),
                        refused,
                    );
                }
            }
        }
        // The tokenizer's own settings: an unknown model, a BOS outside the vocabulary, a
        // boolean that is neither 0 nor 1.
        let tokenizer: Vec<Vec<u8>> = match key.as_str() {
            "tokenizer.ggml.model" => vec![b"gpX2".to_vec()],
            "tokenizer.ggml.bos_token_id" => vec![
                5000u32.to_le_bytes().to_vec(),
                u32::MAX.to_le_bytes().to_vec(),
            ],
            "tokenizer.ggml.add_bos_token" => vec![vec![2]],
            _ => vec![],
        };
        for bytes in &tokenizer {
            let at = if ty == 8 { value + 8 } else { *value };
            assert!(at + bytes.len() <= *end);
            add(
                &mut cases,
                format!("{key} = {bytes:?}"),
                patch(at, bytes),
                refused,
            );
        }
    }
    // general.alignment that llama.cpp refuses (not a power of 2, 0, beyond the file), put
    // in place of a u32 key of the same length.
    if let Some((_, start, type_at, value, _)) = map.kvs.iter().find(|k| k.0 == "general.file_type")
    {
        for align in [0u32, 3, 48, 1 << 31] {
            let mut b = patch(*value, &align.to_le_bytes());
            b[start + 8..start + 8 + 17].copy_from_slice(b"general.alignment");
            add(&mut cases, format!("general.alignment {align}"), b, refused);
        }
        let mut b = patch(*type_at, &5u32.to_le_bytes());
        b[start + 8..start + 8 + 17].copy_from_slice(b"general.alignment");
        add(&mut cases, "general.alignment typed i32".into(), b, refused);
    }
    // The tensor table: offsets, dimensions, types, names of the first, a middle and the
    // last tensor.
    let n = map.tensors.len();
    for t in [&map.tensors[0], &map.tensors[n / 2], &map.tensors[n - 1]] {
        let name = &t.name;
        let mut offsets = vec![t.offset + 1, t.offset + 32, u64::MAX - 31, 1 << 40];
        if t.offset >= 32 {
            offsets.push(t.offset - 32);
        }
        for o in offsets {
            add(
                &mut cases,
                format!("{name} at offset {o}"),
                patch(t.offset_at, &o.to_le_bytes()),
                refused,
            );
        }
        for dims in [0u32, 5, u32::MAX] {
            add(
                &mut cases,
                format!("{name} with {dims} dimensions"),
                patch(t.dims_at, &dims.to_le_bytes()),
                refused,
            );
        }
        let first = u64_at(&original, t.dims_at + 4);
        for d in [0, first * 2, first + 1, 1 << 40, u64::MAX] {
            add(
                &mut cases,
                format!("{name} dimension 0 = {d}"),
                patch(t.dims_at + 4, &d.to_le_bytes()),
                refused,
            );
        }
        for ty in [99u32, 4, 16] {
            add(
                &mut cases,
                format!("{name} of ggml type {ty}"),
                patch(t.type_at, &ty.to_le_bytes()),
                refused,
            );
        }
        if t.at != map.tensors[n - 1].at {
            for ty in [1u32, 8, 30] {
                add(
                    &mut cases,
                    format!("{name} of ggml type {ty}"),
                    patch(t.type_at, &ty.to_le_bytes()),
                    refused,
                );
            }
        }
        // output.weight renamed leaves a tied model and an unused tensor, which logitlens
        // ignores: not a corruption it can see.
        if name != "output.weight" {
            let mut renamed = original.clone();
            renamed[t.dims_at - 1] ^= 0x20;
            add(&mut cases, format!("{name} renamed"), renamed, refused);
        }
        let len = u64_at(&original, t.at);
        for claim in [len + 1, u64::MAX] {
            add(
                &mut cases,
                format!("{name} name length {claim}"),
                patch(t.at, &claim.to_le_bytes()),
                refused,
            );
        }
    }
    // Two tensors of one name: blk.0's first tensor named as blk.1's.
    if let Some(t) = map.tensors.iter().find(|t| t.name.starts_with("blk.0.")) {
        let mut b = original.clone();
        b[t.at + 12] = b'1';
        add(
            &mut cases,
            format!("{} named twice", t.name.replacen("blk.0", "blk.1", 1)),
            b,
            refused,
        );
    }
    // block_count against the blocks present: blk.2 dropped (block_count 3 then disagrees;
    // block_count 2 makes a consistent 2-block model, a control), and an extra block.
    let (_, _, _, count_at, _) = map
        .kvs
        .iter()
        .find(|k| k.0 == "qwen2.block_count")
        .unwrap()
        .clone();
    let two = gguf_with_tensors(&original, &map, |n| !n.starts_with("blk.2."));
    add(
        &mut cases,
        "blk.2 dropped, block_count 3".into(),
        two.clone(),
        refused,
    );
    let mut consistent = two;
    consistent[count_at..count_at + 4].copy_from_slice(&2u32.to_le_bytes());
    add(
        &mut cases,
        "blk.2 dropped, block_count 2".into(),
        consistent,
        Expect::Runs,
    );
    let one_gone = gguf_with_tensors(&original, &map, |n| !n.starts_with("blk.1."));
    add(&mut cases, "blk.1 dropped".into(), one_gone, refused);
    let mut zero = gguf_with_tensors(&original, &map, |n| !n.starts_with("blk."));
    zero[count_at..count_at + 4].copy_from_slice(&0u32.to_le_bytes());
    add(&mut cases, "no blocks, block_count 0".into(), zero, refused);
    run_all(cases, "GGUF");
}

// ---------------------------------------------------------------------------------------
// tokenizer.json

/// Offsets of the JSON punctuation in `text` outside strings.
fn structural(text: &[u8]) -> Vec<usize> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out = Vec::new();
    for (i, &c) in text.iter().enumerate() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (false, _, b'"') => {
                in_string = true;
                out.push(i);
            }
            (false, _, b'{' | b'}' | b'[' | b']' | b':' | b',') => out.push(i),
            _ => {}
        }
    }
    out
}

#[test]
fn corrupt_tokenizers_are_refused() {
    let original = read(&fixture("llama-tiny").join("tokenizer.json"));
    let json: Value = serde_json::from_slice(&original).unwrap();
    let mut cases = Cases::new();
    let add = |cases: &mut Cases, name: String, bytes: Vec<u8>| {
        let files: [(&str, &[u8]); 1] = [("tokenizer.json", &bytes)];
        cases.model_dir(
            "llama-tiny",
            &files,
            format!("tokenizer {name}"),
            Expect::Refused,
        );
    };
    // The control: the same tokenizer written out again by serde_json.
    let rewritten = serde_json::to_vec(&json).unwrap();
    let files: [(&str, &[u8]); 1] = [("tokenizer.json", &rewritten)];
    cases.model_dir(
        "llama-tiny",
        &files,
        "tokenizer rewritten".into(),
        Expect::Runs,
    );
    for at in spread(0, original.len(), 16) {
        add(&mut cases, format!("cut at {at}"), original[..at].to_vec());
    }
    let marks = structural(&original);
    for k in spread(0, marks.len(), 24) {
        let mut b = original.clone();
        b[marks[k]] = b'x';
        add(&mut cases, format!("byte {} replaced", marks[k]), b);
    }
    let mut edits: Vec<(&str, Value)> = vec![
        ("null", Value::Null),
        ("an array", json!([])),
        ("an empty object", json!({})),
    ];
    let with = |path: &[&str], v: Option<Value>| {
        let mut j = json.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut j;
        for p in parents {
            at = &mut at[*p];
        }
        match v {
            Some(v) => at[*last] = v,
            None => {
                at.as_object_mut().unwrap().remove(*last);
            }
        }
        j
    };
    edits.push(("no model", with(&["model"], None)));
    edits.push(("model 0", with(&["model"], Some(json!(0)))));
    edits.push((
        "model type Bogus",
        with(&["model", "type"], Some(json!("Bogus"))),
    ));
    edits.push((
        "vocab a list",
        with(&["model", "vocab"], Some(json!([1, 2]))),
    ));
    edits.push((
        "vocab ids text",
        with(&["model", "vocab"], Some(json!({"a": "b"}))),
    ));
    edits.push((
        "merges a number",
        with(&["model", "merges"], Some(json!(7))),
    ));
    edits.push((
        "added_tokens an object",
        with(&["added_tokens"], Some(json!({"id": 1}))),
    ));
    edits.push((
        "pre_tokenizer of a bogus type",
        with(&["pre_tokenizer"], Some(json!({"type": "Bogus"}))),
    ));
    for (label, j) in edits {
        add(&mut cases, label.into(), serde_json::to_vec(&j).unwrap());
    }
    run_all(cases, "tokenizer.json");
}

// ---------------------------------------------------------------------------------------
// tuned lens params.pt

/// Per zip entry of `b`: name, offset of its central header, of its local header, and of
/// its data, and its size.
fn zip_entries(b: &[u8]) -> Vec<(String, usize, usize, usize, usize)> {
    let eocd = b.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let mut at = u32_at(b, eocd + 16) as usize;
    let count = u16::from_le_bytes([b[eocd + 10], b[eocd + 11]]);
    let le16 = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    (0..count)
        .map(|_| {
            let size = u32_at(b, at + 24) as usize;
            let (n, e, c) = (le16(at + 28), le16(at + 30), le16(at + 32));
            let name = String::from_utf8_lossy(&b[at + 46..at + 46 + n]).into_owned();
            let local = u32_at(b, at + 42) as usize;
            let data = local + 30 + le16(local + 26) + le16(local + 28);
            let entry = (name, at, local, data, size);
            at += 46 + n + e + c;
            entry
        })
        .collect()
}

#[test]
fn corrupt_tuned_lens_files_are_refused() {
    let lens = fixture("tuned-lens").join("llama-tiny");
    let original = read(&lens.join("params.pt"));
    let entries = zip_entries(&original);
    let eocd = original
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .unwrap();
    let mut cases = Cases::new();
    let model = fixture("llama-tiny").display().to_string();
    let add = |cases: &mut Cases, name: String, bytes: Vec<u8>, expect: Expect| {
        let d = cases.dir();
        std::os::unix::fs::symlink(lens.join("config.json"), d.join("config.json")).unwrap();
        std::fs::write(d.join("params.pt"), bytes).unwrap();
        let args = vec![
            "--model".to_string(),
            model.clone(),
            "--tuned-lens".to_string(),
            d.display().to_string(),
        ];
        cases.push(format!("params.pt {name}"), args, expect);
    };
    let refused = Expect::Refused;
    let patch = |at: usize, bytes: &[u8]| patched(&original, at, bytes);
    add(
        &mut cases,
        "unchanged".into(),
        original.clone(),
        Expect::Runs,
    );
    for at in spread(0, original.len(), 24)
        .into_iter()
        .chain([original.len() - 1])
    {
        add(
            &mut cases,
            format!("cut at {at}"),
            original[..at].to_vec(),
            refused,
        );
    }
    for (name, central, local, data, size) in &entries {
        // A flipped bit at the start, middle and end of the entry's data.
        let mut flips = vec![*data, data + size / 2, data + size - 1];
        flips.dedup();
        for at in flips {
            let mut b = original.clone();
            b[at] ^= 0x01;
            add(
                &mut cases,
                format!("{name}: bit flipped at {at}"),
                b,
                refused,
            );
        }
        let crc = u32_at(&original, central + 16);
        add(
            &mut cases,
            format!("{name}: recorded CRC changed"),
            patch(central + 16, &(crc ^ 0x8000).to_le_bytes()),
            refused,
        );
        for (field, off) in [("compressed size", 20), ("size", 24)] {
            let v = u32_at(&original, central + off);
            for claim in [v + 1, v.wrapping_sub(1), u32::MAX - 1] {
                add(
                    &mut cases,
                    format!("{name}: {field} {claim}"),
                    patch(central + off, &claim.to_le_bytes()),
                    refused,
                );
            }
        }
        let at = u32_at(&original, central + 42);
        for claim in [at + 1, at + 30, u32::MAX - 1] {
            add(
                &mut cases,
                format!("{name}: local header at {claim}"),
                patch(central + 42, &claim.to_le_bytes()),
                refused,
            );
        }
        add(
            &mut cases,
            format!("{name}: deflated"),
            patch(central + 10, &8u16.to_le_bytes()),
            refused,
        );
        let mut b = original.clone();
        b[central + 46] ^= 0x20;
        add(
            &mut cases,
            format!("{name}: renamed in the directory"),
            b,
            refused,
        );
        let mut b = original.clone();
        b[local + 30 + 2] ^= 0x20;
        add(
            &mut cases,
            format!("{name}: renamed in its local header"),
            b,
            refused,
        );
    }
    let count = u16::from_le_bytes([original[eocd + 10], original[eocd + 11]]);
    for (field, off, values) in [
        (
            "entry count",
            10usize,
            vec![0u32, count as u32 - 1, count as u32 + 1],
        ),
        (
            "directory size",
            12,
            vec![
                0,
                u32_at(&original, eocd + 12) - 1,
                u32_at(&original, eocd + 12) + 1,
            ],
        ),
        (
            "directory offset",
            16,
            vec![0, u32_at(&original, eocd + 16) + 1, u32::MAX - 1],
        ),
    ] {
        for v in values {
            let mut b = original.clone();
            match off {
                10 => {
                    b[eocd + 8..eocd + 10].copy_from_slice(&(v as u16).to_le_bytes());
                    b[eocd + 10..eocd + 12].copy_from_slice(&(v as u16).to_le_bytes());
                }
                _ => b[eocd + off..eocd + off + 4].copy_from_slice(&v.to_le_bytes()),
            }
            add(&mut cases, format!("end record: {field} {v}"), b, refused);
        }
    }
    run_all(cases, "params.pt");
}
