//! Shared helpers for the integration tests: fixtures and their golden values.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;

/// The README, which several tests hold to what the tool does.
pub fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// A fixture directory under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// golden.json as scripts/make_fixtures.py writes it.
#[derive(Debug, Deserialize)]
pub struct Golden {
    pub model_type: String,
    pub num_layers: usize,
    pub cases: Vec<Case>,
}

/// One prompt's reference values from transformers.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub prompt: String,
    pub bos: bool,
    pub ids: Vec<u32>,
    #[serde(default)]
    pub hidden_states: Vec<Vec<Vec<f32>>>,
    /// The model's logits at the last position.
    #[serde(default)]
    pub final_logits_last: Vec<f32>,
    pub lens: GoldenLens,
}

/// Lens rows `[layer][position]` with and without the final norm.
#[derive(Debug, Deserialize)]
pub struct GoldenLens {
    pub final_norm: Vec<Vec<GoldenStat>>,
    pub raw: Vec<Vec<GoldenStat>>,
}

/// The reference's argmax, its probability, the entropy and the top-2 logit margin.
#[derive(Debug, Deserialize, Clone, Copy)]
pub struct GoldenStat {
    pub id: u32,
    pub prob: f64,
    pub entropy: f64,
    pub margin: f64,
}

/// Reads a fixture's golden.json.
pub fn golden(name: &str) -> Golden {
    let path = fixture(name).join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Tolerances the parity tests hold every architecture to.
pub const HIDDEN_TOL: f32 = 1e-4;
pub const ENTROPY_TOL: f64 = 1e-4;
pub const MARGIN_CLEAR: f64 = 1e-3;

/// The built binary, offline, with no Hugging Face cache, token or backtraces from the
/// environment.
pub fn logitlens(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logitlens"));
    cmd.args(args)
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .env("HF_HUB_OFFLINE", "1");
    cmd
}

/// Runs the binary to the end.
pub fn run(args: &[&str]) -> Output {
    logitlens(args).output().unwrap()
}

/// Runs the binary with `input` on stdin.
pub fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = logitlens(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs the binary, reads the first `lines` lines of its stdout and closes it, as
/// `| head -n LINES` does; returns those lines and how the run ended.
pub fn run_closing_stdout_after(args: &[&str], lines: usize) -> (Vec<String>, Output) {
    use std::io::BufRead;
    let mut child = logitlens(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let read = (0..lines)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line
        })
        .collect();
    drop(reader);
    (read, child.wait_with_output().unwrap())
}

/// A run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The phi-tiny fixture's directory as a `--model` argument.
pub fn phi() -> String {
    fixture("phi-tiny").display().to_string()
}

/// Lays out a Hugging Face cache the way huggingface_hub does: blobs named by hash,
/// snapshot entries as symlinks to them, and refs/main holding the commit.
pub fn hub_cache(root: &Path, repo: &str, commit: &str) -> PathBuf {
    let files: Vec<(PathBuf, &str)> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|&name| (fixture("phi-tiny").join(name), name))
        .collect();
    hub_cache_files(
        root,
        &format!("models--{}", repo.replace('/', "--")),
        commit,
        &files,
    )
}

/// [`hub_cache`] for any repo folder (`models--org--name`, `spaces--org--name`) and files:
/// each `(source, path in the repo)`, the path possibly in subfolders.
pub fn hub_cache_files(
    root: &Path,
    folder: &str,
    commit: &str,
    files: &[(PathBuf, &str)],
) -> PathBuf {
    let repo_dir = root.join("hub").join(folder);
    let snapshot = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo_dir.join("blobs")).unwrap();
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    for (i, (source, name)) in files.iter().enumerate() {
        let blob = repo_dir.join("blobs").join(format!("{i:064x}"));
        std::fs::copy(source, &blob).unwrap();
        let link = snapshot.join(name);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let up = "../".repeat(name.matches('/').count() + 2);
        std::os::unix::fs::symlink(format!("{up}blobs/{i:064x}"), link).unwrap();
    }
    snapshot
}

/// `session`'s hidden states on every golden case against transformers': rows 0..L-1 raw,
/// row L after the final norm, as HF returns them; each within [`HIDDEN_TOL`]. Checks the
/// token ids too. Returns the largest |Δ|.
pub fn check_hidden_states_of(session: &logitlens::Session, name: &str, golden: &Golden) -> f32 {
    let rows = |t: &candle_core::Tensor| -> Vec<Vec<f32>> {
        t.to_dtype(candle_core::DType::F32)
            .unwrap()
            .to_vec2()
            .unwrap()
    };
    let model = session.model();
    let mut worst = 0f32;
    for case in &golden.cases {
        let ids = session.encode(&case.prompt, case.bos).unwrap();
        assert_eq!(
            ids, case.ids,
            "{name}/{}: token ids differ from the HF tokenizer",
            case.name
        );
        let hs = model.hidden_states(&ids).unwrap();
        assert_eq!(hs.len(), golden.num_layers + 1);
        assert_eq!(case.hidden_states.len(), golden.num_layers + 1);
        for (layer, (ours, theirs)) in hs.iter().zip(&case.hidden_states).enumerate() {
            let ours = match layer == golden.num_layers {
                true => model.final_norm(ours).unwrap(),
                false => ours.clone(),
            };
            for (pos, (a, b)) in rows(&ours).iter().zip(theirs).enumerate() {
                let d = max_abs_diff(a, b);
                assert!(
                    d <= HIDDEN_TOL,
                    "{name}/{} layer {layer} pos {pos}: |Δ| = {d}",
                    case.name
                );
                worst = worst.max(d);
            }
        }
    }
    worst
}

/// A failure with exit code `code` and exactly one stderr line that names every needle,
/// without a panic.
pub fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "want one stderr line, got:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}

/// Where scripts/fetch_smollm2.sh puts the real model (SmolLM2-135M-Instruct, Q4_1 GGUF).
pub fn smollm2_path() -> PathBuf {
    let cache = std::env::var_os("LOGITLENS_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/logitlens")
        });
    cache.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The real model's path, or `None` (after a loud warning) when it is absent and not
/// required; `LOGITLENS_REQUIRE_REAL_MODEL=1` (CI) makes its absence a failure.
pub fn require_smollm2() -> Option<PathBuf> {
    let path = smollm2_path();
    if path.is_file() {
        return Some(path);
    }
    let required = std::env::var("LOGITLENS_REQUIRE_REAL_MODEL").is_ok_and(|v| v == "1");
    let msg = format!(
        "SmolLM2 GGUF not found at {}; run scripts/fetch_smollm2.sh",
        path.display()
    );
    assert!(!required, "LOGITLENS_REQUIRE_REAL_MODEL=1: {msg}");
    say(format!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n"));
    None
}

/// A browser the tests need is missing: a failure under CI (`CI` set) or with
/// `LOGITLENS_REQUIRE_BROWSER=1`, else a loud SKIPPED line.
pub fn browser_missing(msg: &str) {
    let required = std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("LOGITLENS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(!required, "CI or LOGITLENS_REQUIRE_BROWSER=1: {msg}");
    say(format!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n"));
}

/// Writes a line straight to the stderr handle, which libtest does not capture (it only
/// captures `eprintln!`), so warnings and figures show in a plain `cargo test`.
pub fn say(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The names of the entries of `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).unwrap();
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The text of every `<text>` element of an SVG, trimmed.
pub fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// The two ways a model runs (src/compute.rs): the CPU's own kernels, and the generic
/// device path (what a GPU runs) forced on the CPU. Parity tests check both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Kernels,
    Generic,
}

/// Both [`Way`]s.
pub const WAYS: [Way; 2] = [Way::Kernels, Way::Generic];

impl Way {
    pub fn generic(self) -> bool {
        self == Way::Generic
    }

    /// How messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Way::Kernels => "cpu kernels",
            Way::Generic => "generic path",
        }
    }
}

/// Loads `model` (a directory or a .gguf file) in f32 the `way` asked.
pub fn load_way(model: &std::path::Path, way: Way) -> logitlens::Session {
    let opts = logitlens::LoadOptions {
        generic: way.generic(),
        ..logitlens::LoadOptions::default()
    };
    logitlens::Session::load(model.to_str().unwrap(), &opts).unwrap()
}
