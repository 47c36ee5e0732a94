//! GGUF support of a registry row: llama.cpp's name map, and its metadata translated into
//! the config.json the architecture's translator already reads.

use anyhow::{bail, Result};
use candle_core::quantized::gguf_file::Value;
use candle_core::Device;
use serde_json::{json, Map};

use super::components::{NormKind, QkNorm};
use super::decoder::DecoderSpec;
use crate::loading::gguf::GgufFile;
use crate::loading::gguf_weights::{GgufName, Rows};

/// What a registry row needs to run GGUF files.
pub(crate) struct GgufSupport {
    /// `general.architecture`.
    pub architecture: &'static str,
    /// Hugging Face names onto llama.cpp's.
    pub names: &'static [GgufName],
    /// The file's metadata as config.json.
    pub config: fn(&mut GgufFile) -> Result<GgufConfig>,
    /// What llama.cpp's converter stored differently from the Hugging Face checkpoint, applied
    /// to the spec the row's translator made of that config.json.
    pub stored: fn(&mut DecoderSpec),
}

/// The file holds the tensors as the checkpoint does (q/k row permutation aside, which the
/// name map undoes).
pub(crate) fn as_checkpoint(_: &mut DecoderSpec) {}

/// Gemma: the converter adds one to every norm weight (`GemmaModel.modify_tensors`, and
/// `norm_shift` for Gemma 3), which the checkpoint's `1 + w` norms must not add again.
pub(crate) fn gemma_norms_hold_the_one(spec: &mut DecoderSpec) {
    let added = |kind: NormKind| match kind {
        NormKind::RmsPlusOne => NormKind::RmsPlusOneAdded,
        other => other,
    };
    spec.norm.kind = added(spec.norm.kind);
    if let QkNorm::PerHead(n) | QkNorm::Whole(n) = &mut spec.attention.qk_norm {
        n.kind = added(n.kind);
    }
}

/// GPT-NeoX: the converter reorders the fused `query_key_value` rows from per head
/// (`[h][q, k, v][d]`) into whole blocks `[Q; K; V]` (`GPTNeoXModel.modify_tensors`), the
/// layout llama.cpp's `attn_qkv` has everywhere.
pub(crate) fn gptneox_qkv_in_blocks(spec: &mut DecoderSpec) {
    spec.attention.fused_per_head = false;
}

/// Refuses a file whose `{arch}.block_count` disagrees with the blocks its tensors hold
/// (`blk.0.*` to `blk.{n-1}.*`, each present), as llama.cpp would fail on a missing
/// tensor; a count of 0 describes no model.
pub(crate) fn check_block_count(file: &GgufFile) -> Result<()> {
    let key = format!("{}.block_count", file.architecture()?);
    let count = file.usize(&key)?;
    let blocks: std::collections::BTreeSet<usize> = file
        .tensor_names()
        .iter()
        .filter_map(|n| n.strip_prefix("blk.")?.split('.').next()?.parse().ok())
        .collect();
    let path = file.path().display();
    let held = match (blocks.first(), blocks.last()) {
        (Some(first), Some(last)) => format!("blocks blk.{first} to blk.{last}"),
        _ => "no block".to_string(),
    };
    if count == 0 || blocks.len() != count || blocks.last() != Some(&(count - 1)) {
        bail!("{path}: {key} is {count}, but the file holds tensors of {held} ({} distinct); the file is damaged or inconsistent", blocks.len());
    }
    Ok(())
}

/// A GGUF file's metadata, translated.
pub(crate) struct GgufConfig {
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
pub(crate) const LLAMA_NAMES: &[GgufName] = &[
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
pub(crate) const QWEN_NAMES: &[GgufName] = &[
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

/// llama.cpp's names for Gemma 2 and Gemma 3: Qwen's (Gemma 3's per-head q/k norms as
/// Qwen3's), but for the sandwich norms, `attn_norm`, `post_attention_norm`, `ffn_norm` and
/// `post_ffw_norm` (Gemma 1 has Qwen's names as they are: its MLP norm is
/// `post_attention_layernorm`). The first entry for a name wins.
pub(crate) const GEMMA2_NAMES: &[GgufName] =
    &concat::<{ GEMMA2_NORMS.len() + QWEN_NAMES.len() }>(GEMMA2_NORMS, QWEN_NAMES);

const GEMMA2_NORMS: &[GgufName] = &[
    name(
        "model.layers.{}.post_attention_layernorm",
        "blk.{}.post_attention_norm",
    ),
    name(
        "model.layers.{}.pre_feedforward_layernorm",
        "blk.{}.ffn_norm",
    ),
    name(
        "model.layers.{}.post_feedforward_layernorm",
        "blk.{}.post_ffw_norm",
    ),
];

/// `a` then `b`, as one name map of `N` = both lengths.
const fn concat<const N: usize>(a: &[GgufName], b: &[GgufName]) -> [GgufName; N] {
    let mut out = [name("", ""); N];
    let mut i = 0;
    while i < N {
        out[i] = match i < a.len() {
            true => a[i],
            false => b[i - a.len()],
        };
        i += 1;
    }
    out
}

/// llama.cpp's names for Phi-3: the fused `qkv_proj` is `attn_qkv` (`[Q; K; V]` rows, as
/// stored), and the fused `gate_up_proj` is `ffn_up`, `2·n_ff` rows with the gate first, as
/// llama.cpp's SwiGLU over one tensor splits it.
pub(crate) const PHI3_NAMES: &[GgufName] = &[
    name("model.embed_tokens", "token_embd"),
    name("model.norm", "output_norm"),
    name("lm_head", "output"),
    name("model.layers.{}.self_attn.qkv_proj", "blk.{}.attn_qkv"),
    name("model.layers.{}.self_attn.o_proj", "blk.{}.attn_output"),
    name("model.layers.{}.mlp.gate_up_proj", "blk.{}.ffn_up"),
    name("model.layers.{}.mlp.down_proj", "blk.{}.ffn_down"),
    name("model.layers.{}.input_layernorm", "blk.{}.attn_norm"),
    name(
        "model.layers.{}.post_attention_layernorm",
        "blk.{}.ffn_norm",
    ),
];

/// llama.cpp's names for GPT-NeoX (Pythia); see [`gptneox_qkv_in_blocks`] for `attn_qkv`.
pub(crate) const GPTNEOX_NAMES: &[GgufName] = &[
    name("gpt_neox.embed_in", "token_embd"),
    name("gpt_neox.final_layer_norm", "output_norm"),
    name("embed_out", "output"),
    name("gpt_neox.layers.{}.input_layernorm", "blk.{}.attn_norm"),
    name(
        "gpt_neox.layers.{}.post_attention_layernorm",
        "blk.{}.ffn_norm",
    ),
    name(
        "gpt_neox.layers.{}.attention.query_key_value",
        "blk.{}.attn_qkv",
    ),
    name("gpt_neox.layers.{}.attention.dense", "blk.{}.attn_output"),
    name("gpt_neox.layers.{}.mlp.dense_h_to_4h", "blk.{}.ffn_up"),
    name("gpt_neox.layers.{}.mlp.dense_4h_to_h", "blk.{}.ffn_down"),
];

/// The `qwen2.*`/`qwen3.*` metadata as a Qwen2/Qwen3 config.json: the Llama keys (Qwen3's
/// head size is `qwen3.attention.key_length`), plus `attention_bias` when the file has q
/// biases (Qwen3 has none unless its config says so; Qwen2 always has them). llama.cpp
/// writes no sliding window for either, and runs every layer with full attention.
pub(crate) fn qwen_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let mut config = llama_config(file)?;
    let bias = file.shape("blk.0.attn_q.bias").is_some();
    if let Some(json) = config.json.as_object_mut() {
        json.insert("attention_bias".into(), bias.into());
    }
    Ok(config)
}

/// The `llama.*` metadata (or another architecture's, under its own prefix) as a Llama
/// config.json, checked as llama.cpp's loader would.
pub(crate) fn llama_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let mut m = Meta::read(file)?;
    let (rope_dim, head_dim) = (m.rope_dim, m.head_dim);
    if rope_dim != head_dim || !head_dim.is_multiple_of(2) {
        bail!("{}: rotary dimension {rope_dim} with head size {head_dim} is not supported (llama rotates whole, even-sized heads)", file.path().display());
    }
    m.rms_norm(file)?;
    m.json.extend([
        ("rope_theta".into(), rope_base(file)?.into()),
        ("rope_scaling".into(), rope_scaling(file)?),
    ]);
    let mut config = m.config();
    if file.shape("rope_freqs.weight").is_some() {
        config.rope_divisors = Some(vector(file, "rope_freqs.weight", head_dim / 2)?);
    }
    Ok(config)
}

/// The `gemma.*`, `gemma2.*` and `gemma3.*` metadata as the Gemma config.json, as
/// llama.cpp's loaders read it where the file is silent:
/// - the query scale is 1/√head_dim, or 1/√(hidden/heads) for the 27B models (known by
///   their layer counts, 46 and 62), as llama.cpp hard-codes it: the converter writes no
///   `query_pre_attn_scalar`;
/// - Gemma 2 slides every other layer from the first, over 4096 tokens, and caps attention
///   scores at 50 and logits at 30 unless the file says otherwise;
/// - Gemma 3 slides five layers in six (or `attention.sliding_window_pattern`) when the file
///   has a sliding window; sliding layers rotate with `rope.freq_base_swa` (default 1e4)
///   unscaled, global ones with `rope.freq_base` and `rope.scaling`.
///
/// The norm weights hold the one the converter added; see [`gemma_norms_hold_the_one`].
pub(crate) fn gemma_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let mut m = Meta::read(file)?;
    let layers = file.usize(&m.key("block_count"))?;
    let hidden = file.usize(&m.key("embedding_length"))?;
    let heads = file.usize(&m.key("attention.head_count"))?;
    let big = match m.arch.as_str() {
        "gemma2" => 46,
        "gemma3" => 62,
        _ => 0,
    };
    let scalar = match layers == big {
        true => hidden / heads,
        false => m.head_dim,
    };
    let theta = rope_base(file)?;
    let swa_theta = opt_f64(file, &m.key("rope.freq_base_swa"))?;
    let window = file.opt_usize(&m.key("attention.sliding_window"))?;
    // A cap of 0 turns capping off, as llama.cpp reads it; a negative one is damage.
    let cap = |k: &str, default: Option<f64>| -> Result<serde_json::Value> {
        let v = opt_f64(file, &m.key(k))?.or(default);
        if let Some(c) = v.filter(|&c| c < 0.0) {
            bail!(
                "{}: {} is {c}; a soft-cap must be positive",
                file.path().display(),
                m.key(k)
            );
        }
        Ok(v.filter(|&c| c > 0.0).into())
    };
    let (attn_cap, final_cap) = match m.arch.as_str() {
        "gemma2" => (Some(50.0), Some(30.0)),
        _ => (None, None),
    };
    let (attn_cap, final_cap) = (
        cap("attn_logit_softcapping", attn_cap)?,
        cap("final_logit_softcapping", final_cap)?,
    );
    let types = |sliding: Vec<bool>| -> serde_json::Value {
        let name = |s: bool| match s {
            true => "sliding_attention",
            false => "full_attention",
        };
        sliding.into_iter().map(name).collect::<Vec<_>>().into()
    };
    m.rms_norm(file)?;
    m.json.insert("query_pre_attn_scalar".into(), scalar.into());
    let rope = [
        ("rope_theta".into(), theta.into()),
        ("rope_scaling".into(), rope_scaling(file)?),
    ];
    match m.arch.as_str() {
        "gemma2" => {
            if swa_theta.is_some_and(|s| s != theta) {
                bail!(
                    "{}: a Gemma 2 with its own sliding-layer RoPE base is not supported",
                    file.path().display()
                );
            }
            let sliding = sliding_layers(file, layers, 2)?;
            m.json.extend(rope);
            m.json.extend([
                ("sliding_window".into(), window.unwrap_or(4096).into()),
                ("layer_types".into(), types(sliding)),
                ("attn_logit_softcapping".into(), attn_cap),
                ("final_logit_softcapping".into(), final_cap),
            ]);
        }
        "gemma3" => {
            let sliding = match window {
                Some(w) if w > 0 => sliding_layers(file, layers, 6)?,
                _ => vec![false; layers],
            };
            let [_, (_, scaling)] = rope;
            let mut global = match scaling {
                serde_json::Value::Null => json!({"rope_type": "default"}),
                scaling => scaling,
            };
            global["rope_theta"] = theta.into();
            let local_theta = swa_theta.unwrap_or(10_000.0);
            let local = json!({"rope_type": "default", "rope_theta": local_theta});
            let ropes = json!({"full_attention": global, "sliding_attention": local});
            m.json.extend([
                ("model_type".into(), "gemma3_text".into()),
                ("rope_parameters".into(), ropes),
                ("sliding_window".into(), window.into()),
                ("layer_types".into(), types(sliding)),
                // llama.cpp's Gemma 3 graph caps no attention scores.
                ("attn_logit_softcapping".into(), serde_json::Value::Null),
                ("final_logit_softcapping".into(), final_cap),
            ]);
        }
        _ => m.json.extend(rope),
    }
    Ok(m.config())
}

/// The `phi3.*` metadata as a Phi-3 config.json: the rotating fraction from
/// `rope.dimension_count`, and LongRoPE when the file has the `rope_factors_long`/`_short`
/// tensors the converter writes for the 128k models (with `rope.scaling.attn_factor` and
/// `rope.scaling.original_context_length`; it writes no `rope.scaling.type` for Phi-3).
/// The sliding window is applied as the checkpoint's config has it, although llama.cpp's
/// Phi-3 graph currently ignores it; 0 (Phi-4) means none.
pub(crate) fn phi3_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let mut m = Meta::read(file)?;
    let original = file.opt_usize(&m.key("rope.scaling.original_context_length"))?;
    let window = file.opt_usize(&m.key("attention.sliding_window"))?;
    let rope_scaling = match file.shape("rope_factors_long.weight") {
        None => serde_json::Value::Null,
        Some(_) => json!({
            "rope_type": "longrope",
            "long_factor": vector(file, "rope_factors_long.weight", m.rope_dim / 2)?,
            "short_factor": vector(file, "rope_factors_short.weight", m.rope_dim / 2)?,
            "original_max_position_embeddings": original,
            "attention_factor": opt_f64(file, &m.key("rope.scaling.attn_factor"))?,
        }),
    };
    m.rms_norm(file)?;
    m.json.extend([
        ("rope_theta".into(), rope_base(file)?.into()),
        ("rope_scaling".into(), rope_scaling),
        ("partial_rotary_factor".into(), m.rotary_fraction().into()),
        ("original_max_position_embeddings".into(), original.into()),
        ("sliding_window".into(), window.filter(|&w| w > 0).into()),
    ]);
    Ok(m.config())
}

/// The `gptneox.*` metadata as a GPT-NeoX config.json: the rotating fraction from
/// `rope.dimension_count`, LayerNorm epsilon, `use_parallel_residual` (default on, as
/// transformers'), biases when the file has them. The activation is transformers' exact
/// GELU, as the checkpoint's `hidden_act` says for Pythia (llama.cpp computes its tanh
/// approximation).
pub(crate) fn gptneox_config(file: &mut GgufFile) -> Result<GgufConfig> {
    let mut m = Meta::read(file)?;
    let eps = file.f64(&m.key("attention.layer_norm_epsilon"))?;
    let parallel = file.opt_bool(&m.key("use_parallel_residual"))?;
    let bias = file.shape("blk.0.attn_qkv.bias").is_some();
    m.json.extend([
        ("model_type".into(), "gpt_neox".into()),
        ("layer_norm_eps".into(), eps.into()),
        ("rope_theta".into(), rope_base(file)?.into()),
        ("rotary_pct".into(), m.rotary_fraction().into()),
        (
            "use_parallel_residual".into(),
            parallel.unwrap_or(true).into(),
        ),
        ("attention_bias".into(), bias.into()),
        ("hidden_act".into(), "gelu".into()),
    ]);
    Ok(m.config())
}

/// The keys every architecture writes under its own prefix, read once: sizes, heads,
/// context, a tied head (no `output.weight`) and BOS as config.json; the head size
/// (`attention.key_length`, else hidden / heads) and the rotating channels per head
/// (`rope.dimension_count`, else the head size).
struct Meta {
    arch: String,
    json: Map<String, serde_json::Value>,
    head_dim: usize,
    rope_dim: usize,
}

impl Meta {
    fn read(file: &GgufFile) -> Result<Self> {
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
            None => {
                bail!("{path}: embedding_length {hidden} is not divisible by head_count {heads}")
            }
        };
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            bail!("{path}: head_count ({heads}) must be a positive multiple of head_count_kv ({kv_heads})");
        }
        let vocab = match file.shape("token_embd.weight") {
            Some(&[rows, _]) => rows,
            _ => file.usize(&key("vocab_size"))?,
        };
        let rope_dim = file
            .opt_usize(&key("rope.dimension_count"))?
            .unwrap_or(head_dim);
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
            "tie_word_embeddings": file.shape("output.weight").is_none(),
            "bos_token_id": file.opt_usize("tokenizer.ggml.bos_token_id")?,
        });
        let serde_json::Value::Object(json) = json else {
            unreachable!("json! of an object literal")
        };
        Ok(Self {
            arch,
            json,
            head_dim,
            rope_dim,
        })
    }

    /// `k` under the architecture's prefix.
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    /// The fraction of each head that rotates.
    fn rotary_fraction(&self) -> f64 {
        self.rope_dim as f64 / self.head_dim as f64
    }

    /// `rms_norm_eps` from `attention.layer_norm_rms_epsilon`.
    fn rms_norm(&mut self, file: &GgufFile) -> Result<()> {
        let eps = file.f64(&self.key("attention.layer_norm_rms_epsilon"))?;
        self.json.insert("rms_norm_eps".into(), eps.into());
        Ok(())
    }

    /// The config.json, with no rotary divisors.
    fn config(self) -> GgufConfig {
        GgufConfig {
            json: self.json.into(),
            rope_divisors: None,
        }
    }
}

/// An optional float.
fn opt_f64(file: &GgufFile, key: &str) -> Result<Option<f64>> {
    match file.get(key) {
        None => Ok(None),
        Some(_) => file.f64(key).map(Some),
    }
}

/// `rope.freq_base`, default 10000 as llama.cpp's.
fn rope_base(file: &GgufFile) -> Result<f64> {
    let key = format!("{}.rope.freq_base", file.architecture()?);
    Ok(opt_f64(file, &key)?.unwrap_or(10_000.0))
}

/// `rope.scaling.type` (none or linear, with `rope.scaling.factor`) as a `rope_scaling` object.
fn rope_scaling(file: &GgufFile) -> Result<serde_json::Value> {
    let arch = file.architecture()?;
    let key = |k: &str| format!("{arch}.{k}");
    Ok(
        match file.opt_string(&key("rope.scaling.type"))?.as_deref() {
            None | Some("none") => serde_json::Value::Null,
            Some("linear") => {
                let factor = opt_f64(file, &key("rope.scaling.factor"))?.unwrap_or(1.0);
                json!({"rope_type": "linear", "factor": factor})
            }
            Some(other) => bail!(
                "{}: rope scaling \"{other}\" is not supported (only none and linear)",
                file.path().display()
            ),
        },
    )
}

/// Which layers slide, as llama.cpp's `load_swa_pattern`: the file's
/// `attention.sliding_window_pattern`, an array of booleans or a period `n` (every `n`th
/// layer is global, the others slide; 0: all slide), else the period `default`.
fn sliding_layers(file: &GgufFile, layers: usize, default: usize) -> Result<Vec<bool>> {
    let key = format!("{}.attention.sliding_window_pattern", file.architecture()?);
    let period = match file.get(&key) {
        None => default,
        Some(Value::Array(items)) => {
            let flags: Option<Vec<bool>> = items
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect();
            match flags {
                Some(f) if f.len() == layers => return Ok(f),
                _ => bail!(
                    "{}: {key} must be {layers} booleans or a period",
                    file.path().display()
                ),
            }
        }
        Some(_) => file.usize(&key)?,
    };
    Ok((0..layers)
        .map(|il| period == 0 || il % period < period - 1)
        .collect())
}

/// A one-dimensional f32 tensor of `len` values.
fn vector(file: &mut GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    Ok(file
        .tensor(name, &[len], &Device::Cpu)?
        .dequantize(&Device::Cpu)?
        .to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loading::gguf::testing::{header, Meta};
    use crate::models::registry;

    /// A Gemma 2/3 header: 8 channels in 2 heads of 8 (so hidden/heads = 4 ≠ key_length),
    /// `layers` blocks, a 3-token window, and `extra`.
    fn gemma(arch: &str, layers: u32, extra: &[(&str, Meta)]) -> DecoderSpec {
        let k = |s: &str| format!("{arch}.{s}");
        let keys = [
            "block_count",
            "embedding_length",
            "attention.head_count",
            "attention.head_count_kv",
            "attention.key_length",
            "feed_forward_length",
            "context_length",
            "vocab_size",
            "attention.sliding_window",
            "attention.layer_norm_rms_epsilon",
        ]
        .map(k);
        let values = [layers, 8, 2, 1, 8, 8, 64, 8, 3];
        let mut metadata = vec![("general.architecture", Meta::Str(arch))];
        metadata.extend(
            keys.iter()
                .zip(values)
                .map(|(k, v)| (k.as_str(), Meta::U32(v))),
        );
        metadata.push((&keys[9], Meta::F32(1e-6)));
        metadata.extend(extra.iter().copied());
        let tmp = header(&metadata);
        let mut file = GgufFile::open(tmp.path()).unwrap();
        let (arch, support) = registry::for_gguf(&file).unwrap();
        let config = (support.config)(&mut file).unwrap();
        let mut spec = (arch.spec)(config.json).unwrap();
        (support.stored)(&mut spec);
        spec
    }

    /// A soft-cap of 0 in the metadata turns capping off; a negative one is refused.
    #[test]
    fn gemma2_caps_of_zero_are_off_and_negative_ones_refused() {
        let key = "gemma2.final_logit_softcapping";
        assert_eq!(
            gemma("gemma2", 2, &[(key, Meta::F32(0.0))]).final_softcap,
            None
        );
        let tmp = header(&[
            ("general.architecture", Meta::Str("gemma2")),
            ("gemma2.embedding_length", Meta::U32(8)),
            ("gemma2.attention.head_count", Meta::U32(2)),
            ("gemma2.block_count", Meta::U32(2)),
            ("gemma2.feed_forward_length", Meta::U32(8)),
            ("gemma2.context_length", Meta::U32(64)),
            ("gemma2.vocab_size", Meta::U32(8)),
            ("gemma2.attention.layer_norm_rms_epsilon", Meta::F32(1e-6)),
            (key, Meta::F32(-1.0)),
        ]);
        let mut file = GgufFile::open(tmp.path()).unwrap();
        let err = gemma_config(&mut file).err().unwrap().to_string();
        assert!(err.contains("final_logit_softcapping is -1"), "{err}");
    }

    /// Where the files are silent, llama.cpp's defaults: Gemma 3 slides five layers in six
    /// (or by `attention.sliding_window_pattern`), Gemma 2 every other one; the query scale
    /// is 1/√key_length except for the 27B layer counts (1/√(hidden/heads)); Gemma 3's
    /// global layers use `rope.freq_base` with the linear factor, its sliding ones
    /// `rope.freq_base_swa` unscaled; norms hold the one.
    #[test]
    fn gemma_files_read_as_llama_cpp_reads_them() {
        let w = Some(3);
        let s = gemma("gemma3", 7, &[]);
        assert_eq!(s.windows, [w, w, w, w, w, None, w]);
        assert!((s.scales[0] - 1.0 / 8f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.norm.kind, NormKind::RmsPlusOneAdded);
        assert!(
            matches!(s.attention.qk_norm, QkNorm::PerHead(n) if n.kind == NormKind::RmsPlusOneAdded)
        );
        let pattern = [("gemma3.attention.sliding_window_pattern", Meta::U32(3))];
        let s = gemma("gemma3", 7, &pattern);
        assert_eq!(s.windows, [w, w, None, w, w, None, w]);
        let ropes = [
            ("gemma3.rope.freq_base", Meta::F32(1e6)),
            ("gemma3.rope.freq_base_swa", Meta::F32(100.0)),
            ("gemma3.rope.scaling.type", Meta::Str("linear")),
            ("gemma3.rope.scaling.factor", Meta::F32(8.0)),
        ];
        let r = gemma("gemma3", 7, &ropes).rotary.unwrap();
        assert_eq!(r.layer_table, [1, 1, 1, 1, 1, 0, 1]);
        // Inverse frequency of pair 1 of 4: global 1e6^(-1/4)/8, local 100^(-1/4).
        assert!((r.tables[0][1] - 1e6f32.powf(-0.25) / 8.0).abs() < 1e-7);
        assert!((r.tables[1][1] - 100f32.powf(-0.25)).abs() < 1e-7);
        assert!((gemma("gemma3", 62, &[]).scales[0] - 0.5).abs() < 1e-12);
        let s = gemma("gemma2", 5, &[]);
        assert_eq!(s.windows, [w, None, w, None, w]);
        assert_eq!(
            (s.attention.softcap, s.final_softcap),
            (Some(50.0), Some(30.0))
        );
        assert!((s.scales[0] - 1.0 / 8f64.sqrt()).abs() < 1e-12);
        assert!((gemma("gemma2", 46, &[]).scales[0] - 0.5).abs() < 1e-12);
    }
}
