//! A real model with real weights: SmolLM2-135M-Instruct as a Q4_1 GGUF file, against the
//! golden lens transformers computes on the same file (tests/fixtures/smollm2-golden.json,
//! written by scripts/make_smollm2_golden.py).
//!
//! The file (93 MB) is not committed: `bash scripts/fetch_smollm2.sh` puts it at
//! `${LOGITLENS_CACHE:-$HOME/.cache/logitlens}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`.
//! Without it these tests print a loud SKIPPED line on stderr and pass, unless
//! `LOGITLENS_REQUIRE_REAL_MODEL=1` (CI sets it), which makes them fail.

mod common;

use std::process::Command;

use candle_core::quantized::gguf_file::{self, Value};
use common::{load_way, require_smollm2 as require_model, say, Way};
use logitlens::lens::{first_appearance, LensOptions, LogitLens, TokenStat};
use logitlens::{LoadOptions, RunOptions, Session};
use serde::Deserialize;

/// Entropy tolerance in nats. Measured with the default (dequantized) matmul: max |ΔH| is
/// 4.2e-5 through the final norm and 1.1e-4 without it, over both prompts and all 31 layers
/// (f32 summation order). 1e-3 leaves 9× headroom, yet it is far below what quantized
/// arithmetic costs: candle's quantized matmul (activations rounded to Q8_1) moves entropies
/// by up to 0.29 (final norm) and 0.63 nats (raw), and a quantized Q8_0 head alone by 0.088.
/// So this test also fails if the model silently starts multiplying quantized.
const ENTROPY_TOL: f64 = 1e-3;

/// Argmaxes are compared where transformers' top-2 logit margin exceeds this. Measured:
/// our final logits differ from transformers' by at most 1.5e-5, and every argmax agrees,
/// down to the smallest margin in the golden file (9.2e-4, raw lens). 1e-3 is 60× the logit
/// error, so a flip above it is a bug; below it, f32 rounding may legitimately decide. (With
/// quantized matmul, argmaxes flip at margins up to 1.8.)
const MARGIN_CLEAR: f64 = common::MARGIN_CLEAR;

/// The golden file's shape.
#[derive(Debug, Deserialize)]
struct Golden {
    num_layers: usize,
    vocab_size: usize,
    cases: Vec<GoldenCase>,
}

#[derive(Debug, Deserialize)]
struct GoldenCase {
    name: String,
    prompt: String,
    ids: Vec<u32>,
    expected_next: String,
    first_layer_expected_is_argmax_final_norm: Option<usize>,
    /// Per layer, the expected token's rank at the last position as bounds [lo, hi]
    /// (logits within 1e-3 of it may fall either way).
    expected_next_rank_final_norm: Vec<(u32, u32)>,
    lens: common::GoldenLens,
}

fn golden() -> Golden {
    let path = common::fixture("smollm2-golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn load(path: &std::path::Path) -> Session {
    Session::load(path.to_str().unwrap(), &LoadOptions::default()).unwrap()
}

fn lens(session: &Session, ids: &[u32], final_norm: bool) -> Vec<Vec<TokenStat>> {
    let opts = LensOptions::new(LogitLens { final_norm });
    session.lens_ids(ids, opts).unwrap()
}

#[test]
fn predicts_dog_and_paris_and_reports_where_they_appear() {
    let Some(path) = require_model() else { return };
    let session = load(&path);
    let gold = golden();
    assert_eq!(session.model().info().num_layers, gold.num_layers);
    assert_eq!(session.model().info().vocab_size, gold.vocab_size);
    for case in &gold.cases {
        let report = session.run(&case.prompt, &RunOptions::default()).unwrap();
        let last = report.layers.last().unwrap().positions.last().unwrap();
        assert_eq!(last.token, case.expected_next, "{}: next token", case.name);
        let rows = session.lens_ids(&case.ids, LensOptions::default()).unwrap();
        let first = first_appearance(&rows, case.ids.len() - 1);
        say(format!(
            "{}: {:?} (p = {:.4}) is the argmax at the last position from layer {first:?} of {} (transformers: {:?})",
            case.name, last.token, last.stat.prob, gold.num_layers, case.first_layer_expected_is_argmax_final_norm
        ));
        // Every last-position margin in the golden file is above MARGIN_CLEAR, so this
        // layer is determined by clear argmaxes.
        assert_eq!(
            first, case.first_layer_expected_is_argmax_final_norm,
            "{}",
            case.name
        );
    }
}

/// Issue 8's target tracking on real weights: " Paris" after "The capital of France is"
/// (tracked with --target, through the same path as the command line) is the argmax only
/// at the output row, and its rank matches transformers' on the dequantized weights at
/// every row, the last four included.
#[test]
fn paris_reaches_rank_one_only_at_the_output() {
    let Some(path) = require_model() else { return };
    let session = load(&path);
    let case = golden()
        .cases
        .into_iter()
        .find(|c| c.name == "france")
        .unwrap();
    let (id, count) = session.target_id(" Paris").unwrap();
    assert_eq!(count, 1);
    let (the, _) = session.target_id(" the").unwrap();
    let mut opts = RunOptions::default();
    opts.lens.targets = vec![id, the];
    let report = session.run(&case.prompt, &opts).unwrap();
    assert_eq!(report.targets[0].token, " Paris");
    // Per-target settling: " Paris" is first the argmax at the output, where it stays;
    // " the" is the argmax at layers 25, 27 and 28 (transformers' golden argmaxes agree)
    // but not at the output, so it never settles.
    let settle = |t: &logitlens::report::Target| (t.first_layer, t.settled_layer);
    assert_eq!(settle(&report.targets[0]), (Some(30), Some(30)));
    assert_eq!(settle(&report.targets[1]), (Some(25), None));
    let ranks: Vec<u32> = report
        .layers
        .iter()
        .map(|l| l.positions.last().unwrap().targets[0].rank)
        .collect();
    say(format!("france: rank of \" Paris\" per layer: {ranks:?}"));
    let (output, earlier) = ranks.split_last().unwrap();
    assert_eq!(*output, 1);
    assert!(earlier.iter().all(|&r| r > 1), "{ranks:?}");
    let bounds = &case.expected_next_rank_final_norm;
    assert_eq!(bounds.len(), ranks.len());
    for (layer, (&rank, &(lo, hi))) in ranks.iter().zip(bounds).enumerate() {
        assert!(
            (lo..=hi).contains(&rank),
            "layer {layer}: rank {rank}, transformers {lo}..={hi}"
        );
    }
    // The last four rows are unambiguous in transformers (no logit within 1e-3 of
    // " Paris"'s), so the ranks must be equal: 34, 7, 3, 1.
    for layer in ranks.len() - 4..ranks.len() {
        let (lo, hi) = bounds[layer];
        assert_eq!((lo, ranks[layer]), (hi, lo), "layer {layer}");
    }
    assert_eq!(&ranks[ranks.len() - 4..], [34, 7, 3, 1]);
}

#[test]
fn token_ids_match_transformers() {
    let Some(path) = require_model() else { return };
    let session = load(&path);
    for case in &golden().cases {
        assert_eq!(
            session.encode(&case.prompt, false).unwrap(),
            case.ids,
            "{}",
            case.name
        );
    }
}

#[test]
fn lens_matches_transformers() {
    let Some(path) = require_model() else { return };
    lens_matches_transformers_way(&path, Way::Kernels);
}

/// The generic device path (what a GPU runs), forced on the CPU, against the same golden.
#[test]
fn lens_matches_transformers_on_the_generic_path() {
    let Some(path) = require_model() else { return };
    lens_matches_transformers_way(&path, Way::Generic);
}

fn lens_matches_transformers_way(path: &std::path::Path, way: Way) {
    let session = load_way(path, way);
    let mode_way = way.label();
    for case in &golden().cases {
        for (mode, final_norm, reference) in [
            ("final_norm", true, &case.lens.final_norm),
            ("raw", false, &case.lens.raw),
        ] {
            let ours = lens(&session, &case.ids, final_norm);
            assert_eq!(
                ours.len(),
                reference.len(),
                "{} {mode}: layer count",
                case.name
            );
            let (mut max_dh, mut clear, mut agree, mut total) = (0f64, 0, 0, 0);
            for (layer, (row, gold_row)) in ours.iter().zip(reference).enumerate() {
                for (pos, (s, g)) in row.iter().zip(gold_row).enumerate() {
                    total += 1;
                    agree += usize::from(s.id == g.id);
                    let dh = (s.entropy as f64 - g.entropy).abs();
                    max_dh = max_dh.max(dh);
                    assert!(
                        dh <= ENTROPY_TOL,
                        "{} {mode} layer {layer} pos {pos}: entropy {} vs {}",
                        case.name,
                        s.entropy,
                        g.entropy
                    );
                    if g.margin > MARGIN_CLEAR {
                        clear += 1;
                        assert_eq!(
                            s.id, g.id,
                            "{} {mode} layer {layer} pos {pos}: argmax (reference margin {})",
                            case.name, g.margin
                        );
                    }
                }
            }
            say(format!(
                "{} {mode} ({mode_way}): max |Δ entropy| {max_dh:.2e} nats; argmax agrees {agree}/{total} overall, {clear} cells with margin > {MARGIN_CLEAR} all agree",
                case.name
            ));
        }
    }
}

#[test]
fn gguf_tokenizer_splits_digits_and_keeps_control_tokens_whole() {
    let Some(path) = require_model() else { return };
    let session = load(&path);
    let vocab = session.vocab();
    let ids = vocab.encode("In 2024, 365 days").unwrap();
    let pieces: Vec<String> = ids.iter().map(|&id| vocab.display(id)).collect();
    for p in pieces
        .iter()
        .filter(|p| p.chars().any(|c| c.is_ascii_digit()))
    {
        assert_eq!(
            p.chars().count(),
            1,
            "digits are split one by one: {pieces:?}"
        );
    }
    // Where the digit split shows: a whitespace run before a digit. SmolLM2's tokenizer.json
    // (Digits, then ByteLevel) ends the run at the digit, so it is one "ĠĠ" token; without
    // the split, GPT-2's regex leaves one space to the digit, and transformers' GGUF loader
    // gives [Total, :, Ġ, Ġ, 4, 2] (17647, 42, 216, 216, 36, 34).
    let ids = vocab.encode("Total:  42").unwrap();
    let pieces: Vec<String> = ids.iter().map(|&id| vocab.display(id)).collect();
    assert_eq!(pieces, ["Total", ":", "␣␣", "4", "2"], "{ids:?}");
    let chat = vocab.encode("<|im_start|>user").unwrap();
    assert_eq!(chat[0], 1, "<|im_start|> is one control token: {chat:?}");
    assert_eq!(vocab.display(1), "<|im_start|>");
}

fn logitlens(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_logitlens"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

/// stderr of a failed run: exit code 1 and one line naming the problem.
fn one_line_error(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn tokenizer_flag_overrides_the_gguf_tokenizer() {
    let Some(path) = require_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tokenizer.json");
    let file = logitlens::gguf::GgufFile::open(&path).unwrap();
    let built = logitlens::gguf_tokenizer::from_gguf(&file).unwrap();
    built.save(&json, false).unwrap();
    let model = path.to_str().unwrap();
    let prompt = "The capital of France is";
    let plain = logitlens(&["-m", model, "-p", prompt, "-f", "jsonl"]);
    let flagged = logitlens(&[
        "-m",
        model,
        "--tokenizer",
        json.to_str().unwrap(),
        "-p",
        prompt,
        "-f",
        "jsonl",
    ]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    // The same lens; only the provenance says where the tokenizer came from.
    let parse = |o: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (mut plain, mut flagged) = (parse(&plain), parse(&flagged));
    let (p, f) = (
        plain.as_object_mut().unwrap().remove("provenance").unwrap(),
        flagged
            .as_object_mut()
            .unwrap()
            .remove("provenance")
            .unwrap(),
    );
    assert_eq!(
        plain, flagged,
        "the saved tokenizer.json gives the same lens"
    );
    assert_eq!(p["tokenizer"]["kind"], "gguf");
    assert_eq!(f["tokenizer"]["kind"], "file");
    assert_eq!(f["tokenizer"]["path"], json.to_str().unwrap());
    let missing = dir.path().join("nope.json");
    let o = logitlens(&[
        "-m",
        model,
        "--tokenizer",
        missing.to_str().unwrap(),
        "-p",
        prompt,
    ]);
    assert!(one_line_error(&o).contains("cannot read tokenizer"));
}

#[test]
fn bad_gguf_paths_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.gguf");
    let o = logitlens(&["-m", missing.to_str().unwrap(), "-p", "x"]);
    assert!(one_line_error(&o).contains("does not exist"));

    let not_gguf = dir.path().join("fake.gguf");
    std::fs::write(&not_gguf, b"{\"not\": \"gguf\"}").unwrap();
    let o = logitlens(&["-m", not_gguf.to_str().unwrap(), "-p", "x"]);
    assert!(one_line_error(&o).contains("is not a GGUF file"));

    let qwen = dir.path().join("qwen.gguf");
    let arch = Value::String("qwen2moe".into());
    let mut f = std::fs::File::create(&qwen).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[]).unwrap();
    drop(f);
    let o = logitlens(&["-m", qwen.to_str().unwrap(), "-p", "x"]);
    let err = one_line_error(&o);
    assert!(
        err.contains("architecture \"qwen2moe\"")
            && err.contains(
                "supported GGUF architectures: llama, qwen2, qwen3, gemma, gemma2, gemma3, gptneox, phi3"
            ),
        "{err}"
    );
}
