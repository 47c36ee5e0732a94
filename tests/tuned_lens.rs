//! The tuned lens (issue 11) against the tuned-lens package itself: lenses the package made
//! and saved (scripts/make_tuned_lens_fixtures.py), their golden rows computed by the
//! package's `TunedLens.forward` on transformers' hidden states. Also the CLI flags, the
//! Hub path over a fake cache, `--compare-lenses` and every bad input.
//!
//! The SmolLM2 test needs the real model (scripts/fetch_smollm2.sh): without it, it prints a
//! loud SKIPPED line and passes, unless `LOGITLENS_REQUIRE_REAL_MODEL=1`.

mod common;

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;
use logitlens::lens::{lens_rows, lens_rows_multi, Lens, LensOptions, LogitLens, Row, Site};
use logitlens::loading::tuned_lens;
use logitlens::models::{LensModel, ModelInfo};
use logitlens::session::TunedLensSource;
use logitlens::{LoadOptions, Session};
use serde::Deserialize;
use serde_json::Value;

use common::{fixture, load_way, run, stderr, Way, ENTROPY_TOL, MARGIN_CLEAR, WAYS};

/// KL tolerance, nats (the issue's bound).
const KL_TOL: f64 = 1e-4;

/// On SmolLM2, a KL tolerance relative to the KL as well: |ΔKL| ≤ 1e-4 + 1e-5·KL. Its
/// intermediate rows sit 5 to 170 nats from the output (the logit lens's rows too, 3.5 to
/// 184 nats on the fox prompt: that is what a tuned lens is for), with logits in the hundreds, where float32 logits alone (ours
/// and transformers') differ by ~1e-4. Measured: every KL under 5 nats within 7.9e-5; at
/// most 1.9e-4 at KL 164; the worst cell uses 53% of this bound. Entropies stay within the
/// plain 1e-4 (max 4.4e-5).
const SMOLLM2_KL_REL: f64 = 1e-5;

#[derive(Debug, Deserialize)]
struct TinyGolden {
    lenses: std::collections::BTreeMap<String, GoldenLens>,
}

#[derive(Debug, Deserialize)]
struct GoldenLens {
    model: String,
    cases: Vec<GoldenCase>,
}

#[derive(Debug, Deserialize)]
struct GoldenCase {
    name: String,
    ids: Vec<u32>,
    /// `[row][position]`: rows 0..L-1 through the lens, row L the model's output.
    rows: Vec<Vec<GoldenCell>>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
struct GoldenCell {
    id: u32,
    entropy: f64,
    margin: f64,
    kl: f64,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn lens_dir(name: &str) -> PathBuf {
    fixture("tuned-lens").join(name)
}

fn session(model: &Path) -> Session {
    Session::load(model.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

/// The lens in `dir`, loaded by the session as the CLI loads it (on the generic path its
/// translators are placed on the model's device in f32).
fn load_lens(session: &Session, dir: &Path) -> Result<logitlens::lens::TunedLens> {
    let source = TunedLensSource::Files(tuned_lens::local(dir)?);
    session.tuned_lens(&source, &logitlens::HubSettings::from_env())
}

/// Largest deviations from a golden lens: (entropy, KL, argmaxes compared).
#[derive(Debug, Default, Clone, Copy)]
struct Deviation {
    entropy: f64,
    kl: f64,
    argmaxes: usize,
}

/// Compares `rows` with `golden` cell by cell at the issue's tolerances.
/// KL may deviate by `KL_TOL + kl_rel·KL`.
fn compare(what: &str, rows: &[Row], golden: &[Vec<GoldenCell>], kl_rel: f64, dev: &mut Deviation) {
    assert_eq!(rows.len(), golden.len(), "{what}: rows");
    for (l, (row, gold)) in rows.iter().zip(golden).enumerate() {
        assert_eq!(row.cells.len(), gold.len(), "{what}: positions of row {l}");
        for (t, (cell, g)) in row.cells.iter().zip(gold).enumerate() {
            let s = cell.stat;
            let de = (f64::from(s.entropy) - g.entropy).abs();
            let dk = (f64::from(s.kl) - g.kl).abs();
            assert!(
                de <= ENTROPY_TOL,
                "{what} row {l} pos {t}: entropy {} vs {}",
                s.entropy,
                g.entropy
            );
            assert!(
                dk <= KL_TOL + kl_rel * g.kl,
                "{what} row {l} pos {t}: kl {} vs {}",
                s.kl,
                g.kl
            );
            if g.margin > MARGIN_CLEAR {
                assert_eq!(s.id, g.id, "{what} row {l} pos {t}: argmax");
                dev.argmaxes += 1;
            }
            dev.entropy = dev.entropy.max(de);
            dev.kl = dev.kl.max(dk);
        }
    }
}

/// Writes past libtest's capture, so the figures show in a plain `cargo test`.
fn say(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn tiny_lenses_match_the_tuned_lens_package() {
    let golden: TinyGolden = read_json(&lens_dir("golden.json"));
    assert_eq!(golden.lenses.len(), 4);
    for ((name, gold), way) in golden.lenses.iter().flat_map(|l| WAYS.map(|way| (l, way))) {
        let session = load_way(&fixture(&gold.model), way);
        let lens = load_lens(&session, &lens_dir(name)).unwrap();
        let opts = LensOptions::new(lens);
        let logit = LensOptions::new(LogitLens::default());
        let mut dev = Deviation::default();
        let mut moved = 0.0f64;
        for case in &gold.cases {
            let what = format!("{name}/{}", case.name);
            let rows = lens_rows(session.model(), &case.ids, &opts).unwrap().0;
            compare(&what, &rows, &case.rows, 0.0, &mut dev);
            // The translators do something: the logit lens's rows differ.
            let plain = lens_rows(session.model(), &case.ids, &logit).unwrap().0;
            for (a, b) in rows.iter().zip(&plain) {
                for (x, y) in a.cells.iter().zip(&b.cells) {
                    moved = moved.max((x.stat.entropy - y.stat.entropy).abs().into());
                }
            }
            assert_eq!(
                rows.last(),
                plain.last(),
                "{what}: the output row is the model's"
            );
        }
        assert!(moved > 0.1, "{name}: the tuned rows equal the logit lens's");
        say(format!(
            "tuned lens {name} ({}): max |ΔH| {:.2e}, max |ΔKL| {:.2e}, {} argmaxes equal",
            way.label(),
            dev.entropy,
            dev.kl,
            dev.argmaxes
        ));
    }
}

#[test]
fn the_f16_and_cuda_lenses_load_on_the_cpu_as_stored() {
    let session = session(&fixture("llama-tiny"));
    let f16 = load_lens(&session, &lens_dir("llama-tiny-f16")).unwrap();
    assert_eq!(f16.size_in_bytes(), 3 * (32 * 32 + 32) * 2, "f16 stays f16");
    let pkl = std::fs::read(lens_dir("gpt-neox-tiny-cuda").join("params.pt")).unwrap();
    assert!(
        pkl.windows(6).any(|w| w == b"cuda:0"),
        "the fixture names cuda:0"
    );
    let neox = self::session(&fixture("gpt-neox-tiny"));
    let cuda = load_lens(&neox, &lens_dir("gpt-neox-tiny-cuda")).unwrap();
    assert_eq!(cuda.size_in_bytes(), 3 * (32 * 32 + 32) * 4);
}

/// A model that counts its forward passes.
struct Counting<'a> {
    inner: &'a dyn LensModel,
    passes: Cell<usize>,
}

impl LensModel for Counting<'_> {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }
    fn forward_sites(
        &self,
        ids: &[u32],
        sublayers: bool,
        visit: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
    ) -> Result<()> {
        self.passes.set(self.passes.get() + 1);
        self.inner.forward_sites(ids, sublayers, visit)
    }
    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        self.inner.final_norm(hidden)
    }
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.inner.lm_head(hidden)
    }
}

#[test]
fn several_lenses_share_one_forward_pass_and_equal_each_alone() {
    let session = session(&fixture("llama-tiny"));
    let tuned: Arc<dyn Lens> = Arc::new(load_lens(&session, &lens_dir("llama-tiny")).unwrap());
    let logit: Arc<dyn Lens> = Arc::new(LogitLens::default());
    let model = Counting {
        inner: session.model(),
        passes: Cell::new(0),
    };
    let mut opts = LensOptions::new(LogitLens::default());
    opts.top_k = 3;
    opts.targets = vec![11, 262];
    opts.logits_budget = 4 * 1280 * 5; // several chunks
    let ids = [464, 268, 758, 21, 100, 9, 1000, 12];
    let (both, _) = lens_rows_multi(&model, &ids, &[logit.clone(), tuned.clone()], &opts).unwrap();
    assert_eq!(model.passes.get(), 1);
    for (rows, lens) in both.iter().zip([logit, tuned]) {
        let alone = lens_rows(
            session.model(),
            &ids,
            &LensOptions {
                lens,
                ..opts.clone()
            },
        )
        .unwrap()
        .0;
        assert_eq!(rows, &alone);
    }
    assert_ne!(both[0], both[1]);
}

/// The binary's JSON stdout.
fn json_out(args: &[&str]) -> Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn jsonl_out<S: AsRef<str>>(args: &[S]) -> Vec<Value> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let o = run(&args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The fixture model `name` and its lens, as arguments.
fn model_and_lens(name: &str) -> (String, String) {
    (path_str(&fixture(name)), path_str(&lens_dir(name)))
}

#[test]
fn issue_8_statistics_work_on_tuned_rows() {
    let (model, lens) = model_and_lens("llama-tiny");
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let tuned = ["-m", &model, "--tuned-lens", &lens];
    let prompts = [
        "-p",
        "The quick brown fox",
        "-p",
        "jumps over",
        "-f",
        "jsonl",
    ];
    let stats = ["--top-k", "3", "--target-id", "11", "--summary"];
    let args = [&tuned[..], &prompts, &stats, &[summary.to_str().unwrap()]].concat();
    let reports = jsonl_out(&args);
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r["lens"], "tuned");
        assert_eq!(r["final_norm"], true);
        let layers = r["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 4);
        assert!(r["provenance"]["lens"]
            .as_str()
            .unwrap()
            .starts_with("tuned lens "));
        for (l, layer) in layers.iter().enumerate() {
            for (t, p) in layer["positions"].as_array().unwrap().iter().enumerate() {
                assert_eq!(p["topk"].as_array().unwrap().len(), 3);
                assert_eq!(p["topk"][0]["id"], p["id"]);
                assert_eq!(p["targets"].as_array().unwrap().len(), 1);
                let last = t + 1 == r["tokens"].as_array().unwrap().len();
                assert_eq!(p["next_rank"].is_null(), last);
                if l == 3 {
                    assert_eq!(p["kl"], 0.0);
                }
            }
        }
    }
    let s: Value = read_json(&summary);
    assert_eq!(
        (s["prompts"].as_u64(), s["lens"].as_str()),
        (Some(2), Some("tuned"))
    );
    let rows = s["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| r["lens"] == "tuned" && r["mean_target_prob"].is_number()));
    // Table and CSV too.
    for format in ["csv", "table"] {
        let o = run(&[&tuned[..], &["-p", "The quick", "-f", format]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[test]
fn compare_lenses_reports_both_and_summarises_both() {
    let (model, lens) = model_and_lens("gpt-neox-tiny");
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let logit = ["-m", model.as_str()];
    let tuned = [&logit[..], &["--tuned-lens", &lens]].concat();
    let compare = [&tuned[..], &["--compare-lenses"]].concat();
    let prompts = [
        "-p",
        "The quick brown fox",
        "-p",
        "over the lazy",
        "-f",
        "jsonl",
    ];
    let summary_args = ["--summary", summary.to_str().unwrap()];
    let both = jsonl_out(&[&compare[..], &prompts, &summary_args].concat());
    let kinds: Vec<&str> = both.iter().map(|r| r["lens"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["logit", "tuned", "logit", "tuned"]);
    let (logit, tuned) = (
        jsonl_out(&[&logit[..], &prompts].concat()),
        jsonl_out(&[&tuned[..], &prompts].concat()),
    );
    for (i, r) in both.iter().enumerate() {
        let alone = match i % 2 {
            0 => &logit[i / 2],
            _ => &tuned[i / 2],
        };
        assert_eq!(r["layers"], alone["layers"], "report {i}");
        assert_eq!(r["prompt_index"], alone["prompt_index"]);
        assert_eq!(r["provenance"]["lens"], alone["provenance"]["lens"]);
    }
    let s: Value = read_json(&summary);
    assert_eq!(
        (s["prompts"].as_u64(), s["lens"].as_str()),
        (Some(2), Some("logit+tuned"))
    );
    let rows = s["rows"].as_array().unwrap();
    let per: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["lens"].as_str().unwrap(), r["layer"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        per,
        [
            ("logit", 0),
            ("logit", 1),
            ("logit", 2),
            ("logit", 3),
            ("tuned", 0),
            ("tuned", 1),
            ("tuned", 2),
            ("tuned", 3)
        ]
    );
    // The output rows agree; the others differ.
    assert_eq!(rows[3]["mean_entropy"], rows[7]["mean_entropy"]);
    assert_ne!(rows[1]["mean_entropy"], rows[5]["mean_entropy"]);
    // The table names each lens; CSV gets a lens column.
    let o = run(&[&compare[..], &["-p", "The quick"]].concat());
    let text = String::from_utf8(o.stdout).unwrap();
    for kind in ["logit", "tuned"] {
        let head = format!("# prompt 0 ({kind} lens): The quick");
        assert!(text.contains(&head), "{text}");
    }
    let o = run(&[&compare[..], &["-p", "The quick", "-f", "csv"]].concat());
    let text = String::from_utf8(o.stdout).unwrap();
    let mut lines = text.lines().skip_while(|l| l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|&c| c == "lens")
        .expect("a lens column");
    assert_eq!(header[at - 1], "site");
    let lenses: std::collections::BTreeSet<String> = lines
        .map(|l| l.split(',').nth(at).unwrap().to_string())
        .collect();
    assert_eq!(lenses.into_iter().collect::<Vec<_>>(), ["logit", "tuned"]);
}

const SPACE_COMMIT: &str = "1111111111111111111111111111111111111111";

/// A fake HF cache holding the llama-tiny model as `test-org/llama-tiny` and, in the Space
/// `space` (AlignmentResearch/tuned-lens by default), its lens at lens/test-org/llama-tiny/.
fn fake_hub(root: &Path, space: &str) {
    let model: Vec<(PathBuf, &str)> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|&n| (fixture("llama-tiny").join(n), n))
        .collect();
    fake_space(root, space);
    common::hub_cache_files(
        root,
        "models--test-org--llama-tiny",
        "2222222222222222222222222222222222222222",
        &model,
    );
}

/// The Space `space` in the cache, holding llama-tiny's lens as test-org/llama-tiny's.
fn fake_space(root: &Path, space: &str) {
    let lens = [
        (
            lens_dir("llama-tiny").join("config.json"),
            "lens/test-org/llama-tiny/config.json",
        ),
        (
            lens_dir("llama-tiny").join("params.pt"),
            "lens/test-org/llama-tiny/params.pt",
        ),
    ];
    let folder = format!("spaces--{}", space.replace('/', "--"));
    common::hub_cache_files(root, &folder, SPACE_COMMIT, &lens);
}

#[test]
fn hub_lenses_come_from_the_space_in_the_cache_offline() {
    let root = tempfile::tempdir().unwrap();
    fake_hub(root.path(), "AlignmentResearch/tuned-lens");
    let hf = |args: &[&str]| {
        common::logitlens(args)
            .env("HF_HOME", root.path())
            .output()
            .unwrap()
    };
    let base = [
        "-m",
        "test-org/llama-tiny",
        "-p",
        "The quick brown fox",
        "-f",
        "json",
    ];
    let o = hf(&[&base[..], &["--tuned-lens", "hub"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let from_hub: Value = serde_json::from_slice(&o.stdout).unwrap();
    let dir = path_str(&lens_dir("llama-tiny"));
    let local = json_out(&[
        "-m",
        &path_str(&fixture("llama-tiny")),
        "-p",
        "The quick brown fox",
        "-f",
        "json",
        "--tuned-lens",
        &dir,
    ]);
    assert_eq!(from_hub["lens"], "tuned");
    assert_eq!(from_hub["layers"], local["layers"]);
    assert_eq!(
        from_hub["provenance"]["lens"],
        "tuned lens AlignmentResearch/tuned-lens/lens/test-org/llama-tiny"
    );
    // Another Space: not in the cache.
    let o = hf(&[
        &base[..],
        &["--tuned-lens", "hub", "--tuned-lens-repo", "me/lenses"],
    ]
    .concat());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no tuned lens for test-org/llama-tiny in the Hugging Face cache")
            && err.contains("Space me/lenses")
            && err.contains("HF_HUB_OFFLINE is set"),
        "{err}"
    );
    // The same Space laid out under the other name works.
    fake_space(root.path(), "me/lenses");
    let o = hf(&[
        &base[..],
        &["--tuned-lens", "hub", "--tuned-lens-repo", "me/lenses"],
    ]
    .concat());
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Runs the binary, expecting `code` and one stderr line containing each of `needles`.
fn fails<S: AsRef<str>>(args: &[S], code: i32, needles: &[&str]) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let o = run(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
}

/// A copy of lens `name` in a temporary directory, for breaking.
fn lens_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "params.pt"] {
        std::fs::copy(lens_dir(name).join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn bad_lenses_are_one_clear_line_each() {
    let model = path_str(&fixture("llama-tiny"));
    let run_with = |lens: &Path, code: i32, needles: &[&str]| {
        fails(
            &[
                "-m",
                &model,
                "-p",
                "The quick",
                "--tuned-lens",
                lens.to_str().unwrap(),
            ],
            code,
            needles,
        );
    };
    // A directory without one of its files.
    for gone in ["params.pt", "config.json"] {
        let dir = lens_copy("llama-tiny");
        std::fs::remove_file(dir.path().join(gone)).unwrap();
        run_with(
            dir.path(),
            1,
            &[&format!("has no {gone}"), "config.json and params.pt"],
        );
    }
    run_with(Path::new("/nonexistent/lens"), 1, &["is not a directory"]);
    // params.pt not a torch checkpoint, or truncated.
    let dir = lens_copy("llama-tiny");
    let params = dir.path().join("params.pt");
    std::fs::write(&params, b"not a checkpoint at all").unwrap();
    run_with(dir.path(), 1, &["is not a readable PyTorch checkpoint"]);
    let full = std::fs::read(lens_dir("llama-tiny").join("params.pt")).unwrap();
    std::fs::write(&params, &full[..full.len() / 2]).unwrap();
    run_with(dir.path(), 1, &["is not a readable PyTorch checkpoint"]);
    // A missing layer key (saved by torch without 2.weight).
    run_with(
        &lens_dir("bad-missing-key"),
        1,
        &["has no tensor \"2.weight\"", "0.weight to 2.weight"],
    );
    // The wrong d_model, or layers.
    let dir = lens_copy("llama-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"d_model\": 32", "\"d_model\": 64")).unwrap();
    run_with(dir.path(), 1, &["the tuned lens has d_model 64 and 3 layers, but the model has hidden size 32 and 3 layers"]);
    std::fs::write(
        &config,
        text.replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4"),
    )
    .unwrap();
    run_with(
        dir.path(),
        1,
        &["d_model 32 and 4 layers, but the model has hidden size 32 and 3 layers"],
    );
    // Another lens type.
    std::fs::write(
        dir.path().join("config.json"),
        text.replace("linear_tuned_lens", "logit_lens"),
    )
    .unwrap();
    run_with(
        dir.path(),
        1,
        &[
            "lens_type is \"logit_lens\"",
            "linear_tuned_lens lenses only",
        ],
    );
}

#[test]
fn hub_without_a_lens_offline_is_one_line() {
    let root = tempfile::tempdir().unwrap();
    common::hub_cache(
        root.path(),
        "test-org/phi",
        "3333333333333333333333333333333333333333",
    );
    let o = common::logitlens(&["-m", "test-org/phi", "-p", "Hi", "--tuned-lens", "hub"])
        .env("HF_HOME", root.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no tuned lens for test-org/phi")
            && err.contains("lens/test-org/phi/config.json"),
        "{err}"
    );
}

#[test]
fn flags_that_do_not_fit_a_tuned_lens_are_usage_errors() {
    let (model, lens) = model_and_lens("llama-tiny");
    let m = ["-m", model.as_str(), "-p", "The quick"];
    let with =
        |more: &[&str]| -> Vec<String> { m.iter().chain(more).map(|s| s.to_string()).collect() };
    fails(
        &with(&["--tuned-lens", &lens, "--sublayers"]),
        2,
        &["--sublayers needs a translator for resid_mid, and a tuned lens has none"],
    );
    fails(&with(&["--compare-lenses"]), 2, &["add --tuned-lens"]);
    fails(
        &with(&["--tuned-lens-repo", "a/b"]),
        2,
        &["add --tuned-lens hub"],
    );
    fails(
        &with(&["--tuned-lens", &lens, "--tuned-lens-repo", "a/b"]),
        2,
        &["drop --tuned-lens-repo"],
    );
    fails(
        &with(&["--tuned-lens", "hub"]),
        2,
        &["is a local path; pass --tuned-lens DIR"],
    );
    fails(
        &with(&["--tuned-lens", &lens, "--no-final-norm"]),
        2,
        &["--no-final-norm applies to the logit lens"],
    );
    // With the logit lens alongside, --no-final-norm applies to it.
    let both = jsonl_out(&with(&[
        "--tuned-lens",
        &lens,
        "--compare-lenses",
        "--no-final-norm",
        "-f",
        "jsonl",
    ]));
    assert_eq!(
        (
            both[0]["final_norm"].as_bool(),
            both[1]["final_norm"].as_bool()
        ),
        (Some(false), Some(true))
    );
}

// ---- SmolLM2: real weights ----

#[derive(Debug, Deserialize)]
struct SmolGolden {
    cases: Vec<SmolCase>,
}

#[derive(Debug, Deserialize)]
struct SmolCase {
    name: String,
    ids: Vec<u32>,
    rows: Vec<Vec<GoldenCell>>,
}

fn smollm2_path() -> Option<PathBuf> {
    let cache = std::env::var_os("LOGITLENS_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/logitlens")
        });
    let path = cache.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.is_file() {
        return Some(path);
    }
    let msg = format!(
        "SmolLM2 GGUF not found at {}; run scripts/fetch_smollm2.sh",
        path.display()
    );
    let required = std::env::var("LOGITLENS_REQUIRE_REAL_MODEL").is_ok_and(|v| v == "1");
    assert!(!required, "LOGITLENS_REQUIRE_REAL_MODEL=1: {msg}");
    say(format!(
        "\n!!!!!!!! SKIPPED (tuned lens on SmolLM2): {msg} !!!!!!!!\n"
    ));
    None
}

#[test]
fn smollm2_tuned_lens_matches_the_package() {
    let Some(model) = smollm2_path() else { return };
    // The lens (sparse random translators, 30 × 576²) is committed gzipped.
    let src = fixture("tuned-lens-smollm2");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut gz =
        flate2::read::GzDecoder::new(std::fs::File::open(src.join("params.pt.gz")).unwrap());
    let mut out = std::fs::File::create(dir.path().join("params.pt")).unwrap();
    std::io::copy(&mut gz, &mut out).unwrap();
    drop(out);
    for way in WAYS {
        smollm2_tuned_way(&model, dir.path(), &src, way);
    }
}

fn smollm2_tuned_way(model: &Path, dir: &Path, src: &Path, way: Way) {
    let session = load_way(model, way);
    let lens = load_lens(&session, dir).unwrap();
    assert_eq!((lens.d_model(), lens.num_layers()), (576, 30));
    let golden: SmolGolden = read_json(&src.join("golden.json"));
    let opts = LensOptions::new(lens);
    let logit = LensOptions::new(LogitLens::default());
    let mut dev = Deviation::default();
    for case in &golden.cases {
        let rows = lens_rows(session.model(), &case.ids, &opts).unwrap().0;
        let what = format!("smollm2/{}", case.name);
        compare(&what, &rows, &case.rows, SMOLLM2_KL_REL, &mut dev);
        let plain = lens_rows(session.model(), &case.ids, &logit).unwrap().0;
        let differ = rows.iter().zip(&plain).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ, 30,
            "{what}: every row but the output's differs from the logit lens"
        );
    }
    say(format!(
        "tuned lens on SmolLM2 ({}): max |ΔH| {:.2e}, max |ΔKL| {:.2e}, {} argmaxes equal",
        way.label(),
        dev.entropy,
        dev.kl,
        dev.argmaxes
    ));
}

// ---- --compare-lenses: images ----

/// One prompt's logit and tuned reports on llama-tiny, from one forward pass.
fn compared_reports(prompt: &str) -> Vec<logitlens::Report> {
    let (model, lens) = model_and_lens("llama-tiny");
    let session = session(Path::new(&model));
    let tuned = load_lens(&session, Path::new(&lens)).unwrap();
    let opts = logitlens::RunOptions {
        also: vec![Arc::new(tuned)],
        ..Default::default()
    };
    session.run_all(prompt, &opts).unwrap().0
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(bytes).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// The colour of the pixel just inside a cell's top-left corner (clear of its label).
fn cell_colour(
    image: &(u32, u32, Vec<u8>),
    (x0, y0, _, _): (i32, i32, i32, i32),
    dx: i32,
) -> [u8; 3] {
    let (w, _, rgb) = image;
    let at = ((y0 + 3) as usize * *w as usize + (x0 + dx + 3) as usize) * 3;
    [rgb[at], rgb[at + 1], rgb[at + 2]]
}

#[test]
fn compare_lenses_draws_both_heatmaps_side_by_side_on_one_colour_scale() {
    use logitlens::output::heatmap::{self, HeatmapOptions, ImageFormat};
    let reports = compared_reports("The quick brown fox");
    let (logit, tuned) = (&reports[0], &reports[1]);
    assert_eq!((logit.lens_kind, tuned.lens_kind), ("logit", "tuned"));
    let opts = HeatmapOptions::default();
    let both = heatmap::draw_side_by_side(&[logit, tuned], &opts, ImageFormat::Png).unwrap();
    let image = decode_png(&both.bytes);
    let (left, right) = (
        heatmap::image_size(logit, &opts),
        heatmap::image_size(tuned, &opts),
    );
    assert_eq!((image.0, image.1), (left.0 + right.0, left.1.max(right.1)));
    // The tuned panel's cells sit where its own heatmap has them, shifted right by the
    // logit panel; the output row is the same under both lenses, so with one colour scale
    // it is drawn in the same colours on both sides.
    let out = logit.layers.len() - 1;
    let shift = left.0 as i32;
    for (p, _) in logit.tokens.iter().enumerate() {
        let l = heatmap::cell_box(logit, &opts, out, p).unwrap().unwrap();
        let t = heatmap::cell_box(tuned, &opts, out, p).unwrap().unwrap();
        assert_eq!(
            cell_colour(&image, l, 0),
            cell_colour(&image, t, shift),
            "position {p}"
        );
    }
    // Some tuned row below the output differs from the logit lens's.
    let differs = (0..out).any(|l| {
        (0..logit.tokens.len()).any(|p| {
            let a = heatmap::cell_box(logit, &opts, l, p).unwrap().unwrap();
            cell_colour(&image, a, 0) != cell_colour(&image, a, shift)
        })
    });
    assert!(differs, "the tuned panel repeats the logit panel");

    // The SVG titles each panel with its lens.
    let svg = heatmap::draw_side_by_side(&[logit, tuned], &opts, ImageFormat::Svg).unwrap();
    let texts = common::svg_texts(&String::from_utf8(svg.bytes).unwrap());
    for lens in ["logit lens · ", "tuned lens · "] {
        assert_eq!(
            texts.iter().filter(|t| t.starts_with(lens)).count(),
            1,
            "{lens:?} in {texts:?}"
        );
    }
}

/// `-m` llama-tiny with its lens under `--compare-lenses`, quiet; and the model's path.
fn llama_compare() -> (Vec<String>, String) {
    let (model, lens) = model_and_lens("llama-tiny");
    let args = [
        "-m",
        &model,
        "--tuned-lens",
        &lens,
        "--compare-lenses",
        "-q",
    ];
    (args.map(String::from).to_vec(), model)
}

#[test]
fn compare_lenses_writes_one_side_by_side_image_per_prompt() {
    let (compare, model) = llama_compare();
    let compare: Vec<&str> = compare.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let logit_alone = dir.path().join("logit.png");
    let one = dir.path().join("one.png");
    let ok = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    ok(&[
        &compare[..],
        &["-p", "The quick brown fox", "-o", one.to_str().unwrap()],
    ]
    .concat());
    ok(&[
        "-m",
        &model,
        "-q",
        "-p",
        "The quick brown fox",
        "-o",
        logit_alone.to_str().unwrap(),
    ]);
    let (w1, h1, _) = decode_png(&std::fs::read(&logit_alone).unwrap());
    let (w2, h2, _) = decode_png(&std::fs::read(&one).unwrap());
    assert_eq!(h2, h1);
    assert!(
        w2 >= 2 * w1 - 2 * 180,
        "{w2} is not two panels of about {w1}"
    );
    // --out-dir: one file per prompt (not one per lens), SVG titles name both lenses.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let args = [
        &compare[..],
        &["-p", "The quick", "-p", "over the lazy dog"],
        &["--out-dir", out.to_str().unwrap(), "--image-format", "svg"],
    ]
    .concat();
    ok(&args);
    assert_eq!(common::file_names(&out), ["000.svg", "001.svg"]);
    let svg = std::fs::read_to_string(out.join("001.svg")).unwrap();
    let texts = common::svg_texts(&svg);
    for title in ["logit lens · llama-tiny", "tuned lens · llama-tiny"] {
        assert_has_text(&texts, title);
    }
    assert!(
        texts.iter().any(|t| t.contains("over the lazy dog")),
        "{texts:?}"
    );
}

/// Asserts that one of an SVG's `texts` starts with `start`.
fn assert_has_text(texts: &[String], start: &str) {
    assert!(
        texts.iter().any(|t| t.starts_with(start)),
        "{start:?} not in {texts:?}"
    );
}

#[test]
fn compare_lenses_summary_plot_has_both_lenses_curves() {
    let (compare, _) = llama_compare();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("curves.svg");
    let mut args: Vec<&str> = compare.iter().map(String::as_str).collect();
    args.extend([
        "-p",
        "The quick brown fox",
        "-p",
        "over the lazy dog",
        "--summary-plot",
        svg.to_str().unwrap(),
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&svg).unwrap();
    let texts = common::svg_texts(&text);
    for needle in ["logit lens", "tuned lens", "mean entropy (nats)"] {
        assert!(
            texts.iter().any(|t| t == needle),
            "{needle:?} not in {texts:?}"
        );
    }
    assert_has_text(&texts, "solid: logit lens, dashed: tuned lens");
}
