//! Loading: dispatch on `model_type`, checkpoint validation against config.json, and tensor
//! name variants, on copies of the fixtures edited in a temp dir.

mod common;

use std::path::Path;

use candle_core::DType;
use common::{fixture, golden, HIDDEN_TOL};
use half::f16;
use logitlens::models::SUPPORTED;
use logitlens::{source, Session};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Copies fixture `name` into a temp dir and lets `edit` change its config.json.
fn edited_copy(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in FILES {
        std::fs::copy(fixture(name).join(f), dir.path().join(f)).unwrap();
    }
    let path = dir.path().join("config.json");
    let mut cfg = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
    dir
}

fn load(dir: &Path) -> anyhow::Result<Session> {
    Session::from_files("test", &source::local_dir(dir)?, DType::F32)
}

fn load_error(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn unknown_model_type_lists_every_supported_name() {
    let dir = edited_copy("llama-tiny", |c| c["model_type"] = "bert".into());
    let msg = load_error(dir.path());
    assert!(msg.contains("\"bert\""), "{msg}");
    for name in ["phi", "llama", "mistral", "qwen2", "gpt2"] {
        assert!(SUPPORTED.contains(&name), "{name} is not registered");
    }
    for name in SUPPORTED {
        assert!(msg.contains(name), "{msg}: does not name {name}");
    }
}

#[test]
fn shape_mismatch_names_the_tensor_and_both_shapes() {
    let cases = [
        (
            "llama-tiny",
            "intermediate_size",
            "model.layers.0.mlp.gate_proj.weight",
            "[64, 32]",
            "[48, 32]",
        ),
        (
            "qwen2-tiny",
            "intermediate_size",
            "model.layers.0.mlp.gate_proj.weight",
            "[64, 32]",
            "[48, 32]",
        ),
        (
            "gpt2-tiny",
            "n_inner",
            "transformer.h.0.mlp.c_fc.weight",
            "[32, 64]",
            "[32, 48]",
        ),
    ];
    for (name, key, tensor, stored, implied) in cases {
        let dir = edited_copy(name, |c| c[key] = 48.into());
        let msg = load_error(dir.path());
        assert!(!msg.contains('\n'), "{name}: not one line: {msg}");
        for part in [tensor, stored, implied, "config.json"] {
            assert!(msg.contains(part), "{name}: {msg}: lacks {part}");
        }
    }
}

#[test]
fn unsupported_rope_type_is_named_with_the_supported_ones() {
    let dir = edited_copy("llama-tiny", |c| {
        c["rope_scaling"]["rope_type"] = "yarn".into();
    });
    let msg = load_error(dir.path());
    for part in ["\"yarn\"", "default", "linear", "llama3"] {
        assert!(msg.contains(part), "{msg}: lacks {part}");
    }
}

/// Rewrites a copied fixture's weights tensor by tensor: `f(name, f32 bytes)` gives the new
/// name, dtype and bytes.
fn rewrite_weights(dir: &Path, f: impl Fn(&str, &[u8]) -> (String, Dtype, Vec<u8>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let new: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (f(&name, view.data()), view.shape().to_vec()))
        .collect();
    let views = new.iter().map(|((name, dtype, data), shape)| {
        (name, TensorView::new(*dtype, shape.clone(), data).unwrap())
    });
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
}

fn to_f16(bytes: &[u8]) -> Vec<u8> {
    f32s(bytes)
        .flat_map(|v| f16::from_f32(v).to_le_bytes())
        .collect()
}

/// f32 values rounded through f16.
fn via_f16(bytes: &[u8]) -> Vec<u8> {
    f32s(bytes)
        .flat_map(|v| f16::from_f32(v).to_f32().to_le_bytes())
        .collect()
}

/// Largest |a - b| over every layer's hidden states of the fox prompt.
fn max_hidden_diff(a: &Path, b: &Path) -> f32 {
    let ids = golden("llama-tiny").cases[0].ids.clone();
    let hidden = |dir: &Path| load(dir).unwrap().model().hidden_states(&ids).unwrap();
    let (a, b) = (hidden(a), hidden(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            let d = (x - y).unwrap().abs().unwrap().max_all().unwrap();
            d.to_scalar::<f32>().unwrap()
        })
        .fold(0.0, f32::max)
}

/// The Hub's gpt2 file has no `transformer.` prefix; both spellings give the same model.
#[test]
fn gpt2_loads_without_the_transformer_prefix() {
    let dir = edited_copy("gpt2-tiny", |_| {});
    rewrite_weights(dir.path(), |name, data| {
        let name = name.trim_start_matches("transformer.").to_string();
        (name, Dtype::F32, data.to_vec())
    });
    assert_eq!(max_hidden_diff(dir.path(), &fixture("gpt2-tiny")), 0.0);
}

/// f16 checkpoints keep their weights as stored (Conv1D transposed, tied heads included) and
/// compute like an f32 checkpoint holding the same values.
#[test]
fn half_checkpoints_compute_like_their_f32_values() {
    for name in ["llama-tiny", "qwen2-tiny", "gpt2-tiny"] {
        let half = edited_copy(name, |_| {});
        rewrite_weights(half.path(), |n, b| (n.into(), Dtype::F16, to_f16(b)));
        let wide = edited_copy(name, |_| {});
        rewrite_weights(wide.path(), |n, b| (n.into(), Dtype::F32, via_f16(b)));
        let d = max_hidden_diff(half.path(), wide.path());
        eprintln!("{name}: f16 vs f32 weights max |Δ| = {d:.3e}");
        assert!(d <= HIDDEN_TOL, "{name}: {d}");
    }
}

/// A `query_key_value` that does not hold 3·hidden_size rows is named, with both shapes,
/// in one line.
#[test]
fn gpt_neox_qkv_shape_mismatch_is_one_line() {
    let dir = edited_copy("gpt-neox-tiny", |_| {});
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<_> = st.tensors();
    let views = tensors.iter().map(|(name, view)| {
        let mut shape = view.shape().to_vec();
        let mut data = view.data();
        if name.ends_with("attention.query_key_value.weight") {
            shape[0] = 72;
            data = &data[..72 * 32 * 4];
        }
        (name, TensorView::new(Dtype::F32, shape, data).unwrap())
    });
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let msg = load_error(dir.path());
    assert!(!msg.contains('\n'), "not one line: {msg}");
    for part in [
        "gpt_neox.layers.0.attention.query_key_value.weight",
        "[72, 32]",
        "[96, 32]",
    ] {
        assert!(msg.contains(part), "{msg}: lacks {part}");
    }
}

/// A LongRoPE factor list that does not fit the rotary channels is one line naming it.
#[test]
fn phi3_longrope_factors_must_fit_the_head() {
    let dir = edited_copy("phi3-longrope-tiny", |c| {
        c["rope_scaling"]["long_factor"] = serde_json::json!([1.0, 2.0]);
    });
    let msg = load_error(dir.path());
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(msg.contains("long_factor has 2 entries for 4"), "{msg}");
}
