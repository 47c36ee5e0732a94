//! Llama (Llama 2/3, SmolLM, TinyLlama) and Mistral, as transformers' `LlamaForCausalLM`
//! and `MistralForCausalLM`, and llama-architecture GGUF files.
//!
//! A pre-norm block, `h = x + attn(rms(x))`, then `h + mlp(rms(h))`, with a SwiGLU MLP,
//! grouped k/v heads and rotate-half rotary embeddings, optionally Llama 3 or linear scaled.
//! [`Common`] and [`Variant`] also serve Qwen2 and Qwen3 (qwen2.rs) and OLMo 2 (olmo2.rs).

use anyhow::{bail, Result};
use candle_nn::Activation;
use serde::Deserialize;

use super::components::block::BlockNames;
use super::components::mlp::MlpNames;
use super::components::rotary::Rope;
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, QkNorm, RotarySpec, Vars,
    WeightLayout,
};
use super::decoder::{DecoderSpec, Head, Names, Sizes, LLAMA_ATTENTION};
use super::parse_config;

/// The config.json fields Llama and Mistral add to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral only; transformers' MistralConfig defaults it to 4096 when absent.
    #[serde(default = "default_window")]
    pub sliding_window: Option<usize>,
}

fn default_window() -> Option<usize> {
    Some(4096)
}

/// The config.json fields every Llama-like architecture spells the same way.
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    #[serde(flatten)]
    pub sizes: Sizes,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(flatten)]
    pub rope: Rope,
}

fn default_act() -> Activation {
    Activation::Silu
}
fn default_rms_eps() -> f64 {
    1e-6
}

/// What sets one Llama-like architecture apart from another.
#[derive(Debug, Clone)]
pub struct Variant {
    pub model_type: &'static str,
    /// Biases on q/k/v, on o_proj, and on the MLP's three projections.
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// transformers' default when config.json has no `max_position_embeddings`.
    pub default_max_positions: usize,
    /// Per layer, the sliding window (keys this many positions back or more are hidden),
    /// or `None` for full causal attention.
    pub windows: Vec<Option<usize>>,
}

impl Common {
    /// The decoder spec of a Llama-like model: RMSNorm, sequential blocks, SwiGLU, rotary
    /// over whole heads.
    pub fn into_spec(self, v: Variant) -> Result<DecoderSpec> {
        let (kv_heads, head_dim) = self.sizes.heads()?;
        let Sizes {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            ..
        } = self.sizes;
        if head_dim % 2 != 0 {
            bail!("config.json: head_dim ({head_dim}) must be even for rotary embeddings");
        }
        let max_positions = self
            .max_position_embeddings
            .unwrap_or(v.default_max_positions);
        let inv_freq = self.rope.inv_freq(head_dim, max_positions)?;
        Ok(DecoderSpec {
            model_type: v.model_type.into(),
            vocab_size,
            hidden_size,
            num_layers: layers,
            max_positions,
            bos_token_id: self.bos_token_id,
            norm: NormSpec {
                kind: NormKind::Rms,
                eps: self.rms_norm_eps,
            },
            layout: Layout::Sequential,
            attention: AttentionSpec {
                hidden: hidden_size,
                heads,
                kv_heads,
                head_dim,
                fused_qkv: false,
                fused_per_head: false,
                qkv_bias: v.qkv_bias,
                o_bias: v.o_bias,
                qk_norm: QkNorm::None,
                softcap: None,
            },
            scales: vec![1.0 / (head_dim as f64).sqrt(); layers],
            windows: v.windows,
            rotary: Some(RotarySpec::uniform(head_dim, inv_freq, layers)),
            mlp: MlpSpec {
                kind: MlpKind::Gated,
                act: self.hidden_act,
                hidden: hidden_size,
                intermediate: intermediate_size,
                bias: v.mlp_bias,
            },
            learned_positions: None,
            head: match self.tie_word_embeddings {
                true => Head::Tied,
                false => Head::Own {
                    bias: false,
                    optional: true,
                },
            },
            embed_scale: None,
            final_softcap: None,
            weight_layout: WeightLayout::OutIn,
        })
    }
}

/// Translates a Llama or Mistral config.json (Mistral is Llama with a sliding window).
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let c: Config = parse_config(json)?;
    let mistral = c.model_type == "mistral";
    let window = c.sliding_window.filter(|_| mistral);
    let variant = Variant {
        model_type: if mistral { "mistral" } else { "llama" },
        qkv_bias: c.attention_bias,
        o_bias: c.attention_bias,
        mlp_bias: c.mlp_bias,
        default_max_positions: if mistral { 4096 * 32 } else { 2048 },
        windows: vec![window; c.common.sizes.num_hidden_layers],
    };
    c.common.into_spec(variant)
}

/// The tensor names of Llama-like checkpoints (Llama, Mistral, Qwen2).
pub fn names(_: &Vars) -> Names {
    Names {
        root: "model",
        embed: "embed_tokens",
        positions: "",
        layers: "layers",
        final_norm: "norm",
        head: "lm_head",
        block: BlockNames {
            attn_norm: "input_layernorm",
            attn_post_norm: "",
            mlp_norm: "post_attention_layernorm",
            mlp_post_norm: "",
            attn: "self_attn",
            attn_names: LLAMA_ATTENTION,
            mlp: "mlp",
            mlp_names: MlpNames {
                up: "up_proj",
                gate: "gate_proj",
                gate_up: "gate_up_proj",
                down: "down_proj",
            },
        },
    }
}
