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
    for name in ["phi", "llama", "mistral", "qwen2", "gpt2", "qwen3", "olmo2"] {
        assert!(SUPPORTED.contains(&name), "{name} is not registered");
    }
    for name in SUPPORTED {
        assert!(msg.contains(name), "{msg}: does not name {name}");
    }
}

/// Mixture-of-experts checkpoints are refused in one line that names them as such and lists
/// what runs.
#[test]
fn mixture_of_experts_model_types_are_refused_by_name() {
    for moe in ["mixtral", "qwen3_moe", "qwen2_moe", "olmoe", "deepseek_v3"] {
        let dir = edited_copy("llama-tiny", |c| c["model_type"] = moe.into());
        let msg = load_error(dir.path());
        assert!(!msg.contains('\n'), "{moe}: not one line: {msg}");
        for part in [
            &format!("\"{moe}\""),
            "mixture-of-experts",
            "supported: phi",
        ] {
            assert!(msg.contains(part), "{moe}: {msg}: lacks {part}");
        }
        for name in SUPPORTED {
            assert!(msg.contains(name), "{msg}: does not name {name}");
        }
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
            "qwen3-tiny",
            "head_dim",
            "model.layers.0.self_attn.q_proj.weight",
            "[64, 32]",
            "[32, 32]",
        ),
        (
            "olmo2-tiny",
            "num_key_value_heads",
            "model.layers.0.self_attn.k_proj.weight",
            "[16, 32]",
            "[32, 32]",
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
        let value = match key {
            "head_dim" => 8,
            "num_key_value_heads" => 4,
            _ => 48,
        };
        let dir = edited_copy(name, |c| c[key] = value.into());
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

/// gemma3-tiny's config.json nested as a `gemma3` multimodal checkpoint's `text_config`.
fn as_gemma3_multimodal(cfg: &mut serde_json::Value) {
    *cfg = serde_json::json!({
        "model_type": "gemma3",
        "architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": cfg.clone(),
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 4},
        "mm_tokens_per_image": 4,
    });
}

/// gemma3-mm-tiny is gemma3-tiny's text model inside a multimodal checkpoint as transformers
/// 5.24 saves it (`language_model.model.*` beside `vision_tower.*` and
/// `multi_modal_projector.*`); make_fixtures.py checks that transformers' text-only forward of
/// it reproduces gemma3-tiny's golden bit for bit. It must run as exactly that text model.
#[test]
fn gemma3_multimodal_fixture_is_its_text_model() {
    let mm = fixture("gemma3-mm-tiny");
    assert_eq!(max_hidden_diff(&mm, &fixture("gemma3-tiny")), 0.0);
    assert_eq!(load(&mm).unwrap().model().info().model_type, "gemma3");
}

/// Both spellings of the language-model prefix load: `language_model.model.*` (the Hub's and
/// transformers 5.24's `save_pretrained`) and `model.language_model.*` (transformers' module
/// names).
#[test]
fn gemma3_multimodal_checkpoint_runs_its_text_model() {
    for prefix in ["language_model.model.", "model.language_model."] {
        let dir = edited_copy("gemma3-tiny", as_gemma3_multimodal);
        rewrite_weights(dir.path(), |name, data| {
            let name = format!("{prefix}{}", name.trim_start_matches("model."));
            (name, Dtype::F32, data.to_vec())
        });
        assert_eq!(
            max_hidden_diff(dir.path(), &fixture("gemma3-tiny")),
            0.0,
            "{prefix}"
        );
    }
}

/// A multimodal checkpoint holding only vision weights is refused in one line that names the
/// language model it lacks.
#[test]
fn gemma3_multimodal_without_text_weights_is_one_clear_line() {
    let dir = edited_copy("gemma3-tiny", as_gemma3_multimodal);
    rewrite_weights(dir.path(), |name, data| {
        let name = match name {
            "model.embed_tokens.weight" => {
                "multi_modal_projector.mm_input_projection_weight".into()
            }
            other => format!("vision_tower.{other}"),
        };
        (name, Dtype::F32, data.to_vec())
    });
    let err = load_error(dir.path());
    assert!(!err.contains('\n'), "{err}");
    assert!(
        err.contains("tensor language_model.model.embed_tokens.weight is missing")
            && err.contains("no language model under \"language_model.model.\""),
        "{err}"
    );
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

/// An absurd size in config.json (found by the property test: a num_hidden_layers near 2^62
/// made the per-layer settings allocate exabytes and abort) is one line naming the field,
/// for every architecture family, before anything is allocated from it.
#[test]
fn absurd_sizes_are_one_line_not_an_abort() {
    for (name, key) in [
        ("gemma2-tiny", "num_hidden_layers"),
        ("llama-tiny", "num_hidden_layers"),
        ("gpt2-tiny", "n_layer"),
        ("qwen3-tiny", "head_dim"),
    ] {
        let dir = edited_copy(name, |c| {
            c[key] = serde_json::json!(4_707_272_269_826_993_610u64)
        });
        let msg = load_error(dir.path());
        assert!(!msg.contains('\n'), "not one line: {msg}");
        assert!(
            msg.contains(&format!(
                "{key} is 4707272269826993610, more than any model has"
            )),
            "{name}: {msg}"
        );
    }
}
