//! Parity with Hugging Face transformers on tiny random checkpoints: hidden states, and the
//! lens with and without the final norm, against golden values from scripts/make_fixtures.py.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use logitlens::lens::{LensOptions, LogitLens};
use logitlens::{source, Session};

fn session(name: &str, way: Way) -> Session {
    load_way(&fixture(name), way)
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_dtype(DType::F32).unwrap().to_vec2().unwrap()
}

/// Hidden states: rows 0..L-1 raw, row L after the final norm, as HF returns them; both
/// ways.
fn check_hidden_states(name: &str) {
    for way in WAYS {
        let worst = check_hidden_states_of(&session(name, way), name, &golden(name));
        eprintln!(
            "{name} ({}): hidden states max |Δ| = {worst:.3e}",
            way.label()
        );
    }
}

/// Lens stats in both modes, both ways: entropy and prob within tolerance, argmax equal
/// where clear.
fn check_lens(name: &str) {
    for way in WAYS {
        check_lens_way(name, way);
    }
}

fn check_lens_way(name: &str, way: Way) {
    let s = session(name, way);
    let golden = golden(name);
    for (final_norm, label) in [(true, "final_norm"), (false, "raw")] {
        let label = format!("{label} ({})", way.label());
        let (mut worst_h, mut worst_p, mut agree, mut clear) = (0f64, 0f64, 0usize, 0usize);
        for case in &golden.cases {
            let reference = match final_norm {
                true => &case.lens.final_norm,
                false => &case.lens.raw,
            };
            let ours = s
                .lens_ids(&case.ids, LensOptions::new(LogitLens { final_norm }))
                .unwrap();
            assert_eq!(ours.len(), reference.len());
            for (layer, (row, want)) in ours.iter().zip(reference).enumerate() {
                for (pos, (o, w)) in row.iter().zip(want).enumerate() {
                    let where_ = format!("{name}/{} {label} layer {layer} pos {pos}", case.name);
                    let dh = (o.entropy as f64 - w.entropy).abs();
                    let dp = (o.prob as f64 - w.prob).abs();
                    assert!(
                        dh <= ENTROPY_TOL,
                        "{where_}: entropy {} vs {}",
                        o.entropy,
                        w.entropy
                    );
                    assert!(dp <= ENTROPY_TOL, "{where_}: prob {} vs {}", o.prob, w.prob);
                    worst_h = worst_h.max(dh);
                    worst_p = worst_p.max(dp);
                    if w.margin > MARGIN_CLEAR {
                        clear += 1;
                        assert_eq!(o.id, w.id, "{where_}: argmax differs (margin {})", w.margin);
                        agree += 1;
                    }
                }
            }
        }
        assert!(clear > 0);
        eprintln!("{name} {label}: entropy max |Δ| = {worst_h:.3e}, prob max |Δ| = {worst_p:.3e}, argmax {agree}/{clear} where margin > 1e-3");
    }
}

/// The lens's output row is the model's own logits (HF's `model(...).logits`), both ways.
fn check_output_row(name: &str) {
    for way in WAYS {
        check_output_row_way(name, way);
    }
}

fn check_output_row_way(name: &str, way: Way) {
    let s = session(name, way);
    let golden = golden(name);
    let mut worst = 0f32;
    for case in &golden.cases {
        assert!(
            !case.final_logits_last.is_empty(),
            "{name}/{}: no final_logits_last",
            case.name
        );
        let hs = s.model().hidden_states(&case.ids).unwrap();
        let last = hs.last().unwrap();
        let last = last.narrow(0, last.dim(0).unwrap() - 1, 1).unwrap();
        let logits = rows(
            &s.model()
                .lm_head(&s.model().final_norm(&last).unwrap())
                .unwrap(),
        );
        let d = max_abs_diff(&logits[0], &case.final_logits_last);
        assert!(d <= HIDDEN_TOL, "{name}/{}: logits |Δ| = {d}", case.name);
        worst = worst.max(d);
    }
    eprintln!(
        "{name} ({}): output logits max |Δ| = {worst:.3e}",
        way.label()
    );
}

#[test]
fn phi_hidden_states_match_transformers() {
    check_hidden_states("phi-tiny");
}

#[test]
fn phi_lens_matches_transformers() {
    check_lens("phi-tiny");
}

#[test]
fn phi_output_row_is_model_output() {
    check_output_row("phi-tiny");
}

/// Stored in float16 like Hub checkpoints: exercises the f16-weight matmul kernel.
#[test]
fn phi_float16_checkpoint_matches_transformers_in_f32() {
    let files = source::local_dir(&fixture("phi-tiny-f16")).unwrap();
    let stored = logitlens::weights::Weights::open(&files.weights).unwrap();
    assert_eq!(stored.stored_dtype(), Some(safetensors::Dtype::F16));
    check_hidden_states("phi-tiny-f16");
    check_lens("phi-tiny-f16");
    check_output_row("phi-tiny-f16");
}

#[test]
fn phi_qk_layernorm_partial_rotary_hidden_states_match() {
    check_hidden_states("phi-tiny-qk");
}

#[test]
fn phi_qk_layernorm_partial_rotary_lens_matches() {
    check_lens("phi-tiny-qk");
    check_output_row("phi-tiny-qk");
}

/// The three parity checks for one fixture, as separate tests in a module named after it.
macro_rules! parity_tests {
    ($arch:ident, $fixture:literal) => {
        mod $arch {
            #[test]
            fn hidden_states_match_transformers() {
                super::check_hidden_states($fixture);
            }

            #[test]
            fn lens_matches_transformers() {
                super::check_lens($fixture);
            }

            #[test]
            fn output_row_is_model_output() {
                super::check_output_row($fixture);
            }
        }
    };
}

// GQA, tied embeddings (no lm_head tensor) and llama3 rope scaling.
parity_tests!(llama, "llama-tiny");
// q/k/v biases, untied head, RoPE only in transformers 5's `rope_parameters`.
parity_tests!(qwen2, "qwen2-tiny");
// Conv1D weights, learned positions, `transformer.` prefix, n_inner ≠ 4·n_embd.
parity_tests!(gpt2, "gpt2-tiny");
// Per-head q/k RMSNorm, head_dim 16 ≠ hidden/heads, GQA, tied head, and a 4-token sliding
// window in layers 1 and 2 (use_sliding_window, max_window_layers 1), shorter than every prompt.
parity_tests!(qwen3, "qwen3-tiny");
// Post-norm blocks (norms on the attention and MLP outputs), q/k RMSNorm over the whole
// projections, GQA, untied head.
parity_tests!(olmo2, "olmo2-tiny");
// A 4-token sliding window in every layer, shorter than every prompt; GQA, untied head.
parity_tests!(mistral, "mistral-tiny");
// sqrt(hidden) embedding scale, RMSNorm(1 + w), GeGLU (tanh), head_dim ≠ hidden/heads, GQA.
parity_tests!(gemma, "gemma-tiny");
// Sandwich norms, sliding window 4 on alternate layers, attention and final-logit soft-caps
// (the output row is the capped logits), query_pre_attn_scalar.
parity_tests!(gemma2, "gemma2-tiny");
// Per-head q/k norms, local/global RoPE bases (linear-scaled global), sliding pattern 2.
parity_tests!(gemma3, "gemma3-tiny");
// Fused per-head-interleaved query_key_value, parallel residual with two LayerNorms,
// rotary_pct 0.25 spelt as Pythia does, untied embed_out head.
parity_tests!(gpt_neox, "gpt-neox-tiny");
// use_parallel_residual false, rotary in transformers 5's rope_parameters (fraction 0.5).
parity_tests!(gpt_neox_seq, "gpt-neox-seq-tiny");
// Fused qkv_proj and gate_up_proj, GQA, sliding window 8 (shorter than the long prompt),
// partial rotary 0.5.
parity_tests!(phi3, "phi3-tiny");
// LongRoPE (128k Phi-3): short factors for the 16-token fox prompt, long factors beyond the
// original context of 16, cos/sin scaled by √1.5.
parity_tests!(phi3_longrope, "phi3-longrope-tiny");
