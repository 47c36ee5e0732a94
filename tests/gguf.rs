//! Qwen2 and Qwen3 GGUF files: the tiny fixtures converted to f32 GGUF by llama.cpp's own
//! converter (scripts/make_gguf_fixtures.sh) run the same lens as the Hugging Face
//! checkpoints they came from. llama.cpp permutes q/k rows only for the llama architecture,
//! so these files' q/k rows are served as stored; a wrong un-permutation would move the
//! hidden states far outside the bounds below.

mod common;

use std::path::{Path, PathBuf};

use candle_core::DType;
use common::*;
use logitlens::lens::{LensOptions, LogitLens, TokenStat};
use logitlens::session::LoadOptions;
use logitlens::{source, Session};

fn gguf(name: &str) -> PathBuf {
    fixture(name).join("model-f32.gguf")
}

/// The GGUF fixture, with the HF fixture's tokenizer.json instead of the tokenizer rebuilt
/// from its metadata (`rebuilt_tokenizer_gives_the_tokenizer_json_ids` checks that the two
/// agree on every golden prompt).
fn gguf_session(name: &str) -> Session {
    let opts = LoadOptions {
        tokenizer: Some(fixture(name).join("tokenizer.json")),
        ..LoadOptions::default()
    };
    Session::load(gguf(name).to_str().unwrap(), &opts).unwrap()
}

fn lens(s: &Session, ids: &[u32], final_norm: bool) -> Vec<Vec<TokenStat>> {
    s.lens_ids(ids, LensOptions::new(LogitLens { final_norm }))
        .unwrap()
}

/// Hidden states and the lens in both modes against transformers' golden values for the
/// checkpoint the GGUF file was converted from.
#[test]
fn qwen2_gguf_matches_the_hf_golden() {
    let name = "qwen2-tiny";
    let s = gguf_session(name);
    let golden = golden(name);
    let (mut worst_hidden, mut worst_h, mut clear) = (0f32, 0f64, 0usize);
    for case in &golden.cases {
        let ids = s.encode(&case.prompt, case.bos).unwrap();
        assert_eq!(ids, case.ids, "{}: token ids", case.name);
        let hs = s.model().hidden_states(&ids).unwrap();
        assert_eq!(hs.len(), golden.num_layers + 1);
        for (layer, (ours, theirs)) in hs.iter().zip(&case.hidden_states).enumerate() {
            let ours = match layer == golden.num_layers {
                true => s.model().final_norm(ours).unwrap(),
                false => ours.clone(),
            };
            let ours: Vec<Vec<f32>> = ours.to_dtype(DType::F32).unwrap().to_vec2().unwrap();
            for (pos, (a, b)) in ours.iter().zip(theirs).enumerate() {
                let d = max_abs_diff(a, b);
                assert!(
                    d <= HIDDEN_TOL,
                    "{} layer {layer} pos {pos}: |Δ| = {d}",
                    case.name
                );
                worst_hidden = worst_hidden.max(d);
            }
        }
        for (final_norm, reference) in [(true, &case.lens.final_norm), (false, &case.lens.raw)] {
            let ours = lens(&s, &ids, final_norm);
            assert_eq!(ours.len(), reference.len());
            for (layer, (row, want)) in ours.iter().zip(reference).enumerate() {
                for (pos, (o, w)) in row.iter().zip(want).enumerate() {
                    let at = format!(
                        "{} final_norm={final_norm} layer {layer} pos {pos}",
                        case.name
                    );
                    let dh = (o.entropy as f64 - w.entropy).abs();
                    assert!(
                        dh <= ENTROPY_TOL,
                        "{at}: entropy {} vs {}",
                        o.entropy,
                        w.entropy
                    );
                    let dp = (o.prob as f64 - w.prob).abs();
                    assert!(dp <= ENTROPY_TOL, "{at}: prob {} vs {}", o.prob, w.prob);
                    worst_h = worst_h.max(dh);
                    if w.margin > MARGIN_CLEAR {
                        assert_eq!(o.id, w.id, "{at}: argmax (margin {})", w.margin);
                        clear += 1;
                    }
                }
            }
        }
    }
    assert!(clear > 0);
    eprintln!("qwen2 gguf: hidden max |Δ| = {worst_hidden:.3e}, entropy max |Δ| = {worst_h:.3e}, {clear} clear argmaxes equal");
}

/// The HF fixture qwen3-tiny slides a 4-token window in layers 1 and 2; llama.cpp's qwen3
/// has no sliding window and its converter writes none, so the GGUF file is the checkpoint
/// with full attention everywhere. It is compared with the same checkpoint loaded from its
/// safetensors with `use_sliding_window` off (whose own parity with transformers, window
/// and all, tests/parity.rs checks): same bounds as the golden comparisons.
#[test]
fn qwen3_gguf_matches_its_checkpoint_without_the_window() {
    let name = "qwen3-tiny";
    let dir = tempfile::tempdir().unwrap();
    let hf = fixture(name);
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(hf.join(f), dir.path().join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
    config["use_sliding_window"] = false.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let files = source::local_dir(Path::new(dir.path())).unwrap();
    let reference = Session::from_files(name, &files, DType::F32).unwrap();
    let s = gguf_session(name);
    let (mut worst_hidden, mut clear) = (0f32, 0usize);
    for case in &golden(name).cases {
        let ids = s.encode(&case.prompt, case.bos).unwrap();
        assert_eq!(ids, case.ids, "{}: token ids", case.name);
        let ours = s.model().hidden_states(&ids).unwrap();
        let theirs = reference.model().hidden_states(&ids).unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (layer, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
            let d = max_abs_diff(&a, &b);
            assert!(d <= HIDDEN_TOL, "{} layer {layer}: |Δ| = {d}", case.name);
            worst_hidden = worst_hidden.max(d);
        }
        for final_norm in [true, false] {
            let (ours, theirs) = (
                lens(&s, &ids, final_norm),
                lens(&reference, &ids, final_norm),
            );
            for (o, w) in ours.iter().flatten().zip(theirs.iter().flatten()) {
                let dh = (o.entropy - w.entropy).abs() as f64;
                assert!(
                    dh <= ENTROPY_TOL,
                    "{}: entropy {} vs {}",
                    case.name,
                    o.entropy,
                    w.entropy
                );
                let dp = (o.prob - w.prob).abs() as f64;
                assert!(
                    dp <= ENTROPY_TOL,
                    "{}: prob {} vs {}",
                    case.name,
                    o.prob,
                    w.prob
                );
                assert_eq!(o.id, w.id, "{}: argmax", case.name);
                clear += 1;
            }
        }
    }
    eprintln!("qwen3 gguf: hidden max |Δ| = {worst_hidden:.3e}, {clear} lens cells equal");
}

/// The files' metadata names the `qwen2` pre-tokenizer (the converter was told to write it
/// for the tiny GPT-2-style vocabulary, which llama.cpp does not know by its hash). The
/// tokenizer rebuilt from it gives the fixture tokenizer.json's ids on every golden prompt:
/// none has digits, the one place where Qwen2's split (every digit alone) and the
/// fixture's GPT-2 split could part with this vocabulary. The pieces do differ elsewhere
/// ("(x" and "):\n" are one piece each for Qwen2), but the vocabulary has no merge across
/// those boundaries.
#[test]
fn rebuilt_tokenizer_gives_the_tokenizer_json_ids() {
    for name in ["qwen2-tiny", "qwen3-tiny"] {
        let s = Session::load(gguf(name).to_str().unwrap(), &LoadOptions::default()).unwrap();
        let cases = golden(name).cases;
        assert!(!cases.is_empty());
        for case in &cases {
            assert!(
                !case.prompt.chars().any(|c| c.is_ascii_digit()),
                "{name} {}: digits",
                case.name
            );
            let ids = s.encode(&case.prompt, case.bos).unwrap();
            assert_eq!(ids, case.ids, "{name} {}: token ids", case.name);
        }
    }
}

/// The CLI runs both files, with the tokenizer rebuilt from their metadata and with
/// `--tokenizer`.
#[test]
fn cli_runs_qwen_gguf_files() {
    for name in ["qwen2-tiny", "qwen3-tiny"] {
        let model = gguf(name);
        let tokenizer = fixture(name).join("tokenizer.json");
        let base = [
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "The quick brown fox",
        ];
        let o = run(&base);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let with = [&base[..], &["--tokenizer", tokenizer.to_str().unwrap()]].concat();
        let o = run(&with);
        assert!(o.status.success(), "{name} --tokenizer: {}", stderr(&o));
    }
}
