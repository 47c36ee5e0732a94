//! GGUF support of a registry row: llama.cpp's name map, and its metadata translated into
//! the config.json the architecture's translator already reads.

use anyhow::{bail, Result};
use candle_core::Device;
use serde_json::json;

use crate::loading::gguf::GgufFile;
use crate::loading::gguf_weights::{GgufName, Rows};

/// What a registry row needs to run GGUF files.
pub struct GgufSupport {
    /// `general.architecture`.
    pub architecture: &'static str,
    /// Hugging Face names onto llama.cpp's.
    pub names: &'static [GgufName],
    /// The file's metadata as config.json.
    pub config: fn(&mut GgufFile) -> Result<GgufConfig>,
}

/// A GGUF file's metadata, translated.
pub struct GgufConfig {
    /// The config.json the architecture's translator reads.
    pub json: serde_json::Value,
    /// `rope_freqs.weight`: each rotary frequency's divisor, when the file has one.
    pub rope_divisors: Option<Vec<f32>>,
}

const fn name(hf: &'static str, gguf: &'static str) -> GgufName {
    GgufName {
        hf,
        gguf,
        rows: Rows::AsStored,
    }
}

/// llama.cpp's names for Llama-like checkpoints (as mistral.rs's `gguf/` bindings and
/// llama.cpp's `tensor_mapping.py` spell them); q/k rows are un-permuted.
pub const LLAMA_NAMES: &[GgufName] = &[
    name("model.embed_tokens", "token_embd"),
    name("model.norm", "output_norm"),
    name("lm_head", "output"),
    GgufName {
        rows: Rows::Unpermute,
        ..name("model.layers.{}.self_attn.q_proj", "blk.{}.attn_q")
    },
    GgufName {
        rows: Rows::Unpermute,
        ..name("model.layers.{}.self_attn.k_proj", "blk.{}.attn_k")
    },
    name("model.layers.{}.self_attn.v_proj", "blk.{}.attn_v"),
    name("model.layers.{}.self_attn.o_proj", "blk.{}.attn_output"),
    name("model.layers.{}.mlp.gate_proj", "blk.{}.ffn_gate"),
    name("model.layers.{}.mlp.up_proj", "blk.{}.ffn_up"),
    name("model.layers.{}.mlp.down_proj", "blk.{}.ffn_down"),
    name("model.layers.{}.input_layernorm", "blk.{}.attn_norm"),
    name(
        "model.layers.{}.post_attention_layernorm",
        "blk.{}.ffn_norm",
    ),
];

/// llama.cpp's names for Qwen2 and Qwen3 checkpoints. Its converter permutes q/k rows only
/// for the llama architecture (`LlamaModel.modify_tensors`), so here every tensor is served
/// as stored; q/k/v biases (Qwen2) come under the same names with `.bias`, and Qwen3's
/// per-head q/k norms are `attn_q_norm`/`attn_k_norm`.
pub const QWEN_NAMES: &[GgufName] = &[
    name("model.embed_tokens", "token_embd"),
    name("model.norm", "output_norm"),
    name("lm_head", "output"),
    name("model.layers.{}.self_attn.q_proj", "blk.{}.attn_q"),
    name("model.layers.{}.self_attn.k_proj", "blk.{}.attn_k"),
    name("model.layers.{}.self_attn.v_proj", "blk.{}.attn_v"),
    name("model.layers.{}.self_attn.o_proj", "blk.{}.attn_output"),
    name("model.layers.{}.self_attn.q_norm", "blk.{}.attn_q_norm"),
    name("model.layers.{}.self_attn.k_norm", "blk.{}.attn_k_norm"),
    name("model.layers.{}.mlp.gate_proj", "blk.{}.ffn_gate"),
    name("model.layers.{}.mlp.up_proj", "blk.{}.ffn_up"),
    name("model.layers.{}.mlp.down_proj", "blk.{}.ffn_down"),
    name("model.layers.{}.input_layernorm", "blk.{}.attn_norm"),
    name(
        "model.layers.{}.post_attention_layernorm",
        "blk.{}.ffn_norm",
    ),
];

/// The `qwen2.*`/`qwen3.*` metadata as a Qwen2/Qwen3 config.json: the Llama keys (Qwen3's
/// head size is `qwen3.attention.key_length`), plus `attention_bias` when the file has q
/// biases (Qwen3 has none unless its config says so; Qwen2 always has them). llama.cpp
/// writes no sliding window for either, and runs every layer with full attention.
pub fn qwen_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let mut config = llama_config(file)?;
    let bias = file.shape("blk.0.attn_q.bias").is_some();
    if let Some(json) = config.json.as_object_mut() {
        json.insert("attention_bias".into(), bias.into());
    }
    Ok(config)
}

/// The `llama.*` metadata (or another architecture's, under its own prefix) as a Llama
/// config.json, checked as llama.cpp's loader would.
pub fn llama_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let arch = file.architecture()?;
    let key = |k: &str| format!("{arch}.{k}");
    let path = file.path().display().to_string();
    let hidden = file.usize(&key("embedding_length"))?;
    let heads = file.usize(&key("attention.head_count"))?;
    let kv_heads = file
        .opt_usize(&key("attention.head_count_kv"))?
        .unwrap_or(heads);
    let head_dim = match file.opt_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None if heads > 0 && hidden % heads == 0 => hidden / heads,
        None => bail!("{path}: embedding_length {hidden} is not divisible by head_count {heads}"),
    };
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        bail!("{path}: head_count ({heads}) must be a positive multiple of head_count_kv ({kv_heads})");
    }
    let rope_dim = file
        .opt_usize(&key("rope.dimension_count"))?
        .unwrap_or(head_dim);
    if rope_dim != head_dim || !head_dim.is_multiple_of(2) {
        bail!("{path}: rotary dimension {rope_dim} with head size {head_dim} is not supported (llama rotates whole, even-sized heads)");
    }
    let vocab = match file.shape("token_embd.weight") {
        Some(&[rows, _]) => rows,
        _ => file.usize(&key("vocab_size"))?,
    };
    let rope_scaling = match file.opt_string(&key("rope.scaling.type"))?.as_deref() {
        None | Some("none") => serde_json::Value::Null,
        Some("linear") => {
            let factor = file.f64(&key("rope.scaling.factor")).unwrap_or(1.0);
            json!({"rope_type": "linear", "factor": factor})
        }
        Some(other) => {
            bail!("{path}: rope scaling \"{other}\" is not supported (only none and linear)")
        }
    };
    let rope_divisors = match file.shape("rope_freqs.weight") {
        Some(_) => Some(
            file.tensor("rope_freqs.weight", &[head_dim / 2], &Device::Cpu)?
                .dequantize(&Device::Cpu)?
                .to_vec1::<f32>()?,
        ),
        None => None,
    };
    let json = json!({
        "model_type": arch,
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": file.usize(&key("feed_forward_length"))?,
        "num_hidden_layers": file.usize(&key("block_count"))?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": file.usize(&key("context_length"))?,
        "rms_norm_eps": file.f64(&key("attention.layer_norm_rms_epsilon"))?,
        "rope_theta": file.f64(&key("rope.freq_base")).unwrap_or(10_000.0),
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": file.shape("output.weight").is_none(),
        "bos_token_id": file.opt_usize("tokenizer.ggml.bos_token_id")?,
    });
    Ok(GgufConfig {
        json,
        rope_divisors,
    })
}
