//! Phi (phi-1, phi-1_5, phi-2), as transformers' `PhiForCausalLM`.
//!
//! A parallel block: one `input_layernorm` feeds both attention and the MLP, and both are
//! added to the residual. Partial rotary embeddings, biases everywhere, optional per-head
//! q/k LayerNorms, and a head with a bias.

use anyhow::{bail, Result};
use candle_nn::Activation;
use serde::Deserialize;

use super::components::attention::AttentionNames;
use super::components::block::BlockNames;
use super::components::mlp::MlpNames;
use super::components::rotary::{partial_dim, Rope};
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, QkNorm, RotarySpec, Vars,
    WeightLayout,
};
use super::decoder::{DecoderSpec, Head, Names, Sizes};
use super::parse_config;

/// The config.json fields Phi uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub sizes: Sizes,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_partial")]
    pub partial_rotary_factor: f64,
    #[serde(default)]
    pub qk_layernorm: bool,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

fn default_act() -> Activation {
    Activation::NewGelu
}
fn default_max_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_partial() -> f64 {
    0.5
}

/// Translates Phi's config.json into the decoder's spec.
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let c: Config = parse_config(json)?;
    let (kv_heads, head_dim) = c.sizes.heads()?;
    let Sizes {
        vocab_size,
        hidden_size,
        intermediate_size,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        ..
    } = c.sizes;
    if c.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        bail!("config.json: rope_scaling is not supported for phi models; remove it or use the original config");
    }
    let norm = NormSpec {
        kind: NormKind::LayerNorm,
        eps: c.layer_norm_eps,
    };
    let dim = partial_dim(c.partial_rotary_factor, head_dim)?;
    let rope = Rope {
        rope_theta: Some(c.rope_theta),
        ..Rope::default()
    };
    Ok(DecoderSpec {
        model_type: "phi".into(),
        vocab_size,
        hidden_size,
        num_layers: layers,
        max_positions: c.max_position_embeddings,
        bos_token_id: c.bos_token_id,
        norm,
        layout: Layout::Parallel,
        attention: AttentionSpec {
            hidden: hidden_size,
            heads,
            kv_heads,
            head_dim,
            fused_qkv: false,
            fused_per_head: false,
            qkv_bias: true,
            o_bias: true,
            qk_norm: match c.qk_layernorm {
                true => QkNorm::PerHead(norm),
                false => QkNorm::None,
            },
            softcap: None,
        },
        scales: vec![1.0 / (head_dim as f64).sqrt(); layers],
        windows: vec![None; layers],
        rotary: Some(RotarySpec::uniform(
            dim,
            rope.inv_freq(dim, c.max_position_embeddings)?,
            layers,
        )),
        mlp: MlpSpec {
            kind: MlpKind::Plain,
            act: c.hidden_act,
            hidden: hidden_size,
            intermediate: intermediate_size,
            bias: true,
        },
        learned_positions: None,
        head: Head::Own {
            bias: true,
            optional: false,
        },
        embed_scale: None,
        final_softcap: None,
        weight_layout: WeightLayout::OutIn,
    })
}

/// Phi's tensor names.
pub fn names(_: &Vars) -> Names {
    Names {
        root: "model",
        embed: "embed_tokens",
        positions: "",
        layers: "layers",
        final_norm: "final_layernorm",
        head: "lm_head",
        block: BlockNames {
            attn_norm: "input_layernorm",
            attn_post_norm: "",
            mlp_norm: "",
            mlp_post_norm: "",
            attn: "self_attn",
            attn_names: AttentionNames {
                o: "dense",
                q_norm: "q_layernorm",
                k_norm: "k_layernorm",
                ..super::decoder::LLAMA_ATTENTION
            },
            mlp: "mlp",
            mlp_names: MlpNames {
                up: "fc1",
                gate: "",
                gate_up: "",
                down: "fc2",
            },
        },
    }
}
