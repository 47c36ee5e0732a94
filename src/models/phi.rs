//! Phi (phi-1, phi-1_5, phi-2), as transformers' `PhiForCausalLM`.
//!
//! A parallel block: one `input_layernorm` feeds both attention and the MLP, and both are
//! added to the residual. Partial rotary embeddings, biases everywhere, optional per-head
//! q/k LayerNorms, and a head with a bias.

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::json;

use super::components::rotary::{partial_dim, Rope};
use super::components::{attention::AttentionNames, block::BlockNames, mlp::MlpNames};
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, QkNorm, RotarySpec, Vars,
};
use super::decoder::{Common, DecoderSpec, Head, Names};
use super::{parse_config, with_defaults};

/// The config.json fields Phi adds to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub layer_norm_eps: f64,
    pub partial_rotary_factor: f64,
    #[serde(default)]
    pub qk_layernorm: bool,
}

/// Translates Phi's config.json into the decoder's spec.
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    // PhiConfig's defaults where Common's differ or it has none.
    let defaults = json!({"hidden_act": "gelu_new", "layer_norm_eps": 1e-5,
        "partial_rotary_factor": 0.5});
    let c: Config = parse_config(with_defaults(json, defaults))?;
    let base = c.common.decoder("phi", 2048)?;
    if c.common.rope.rope_scaling.is_some() {
        bail!("config.json: rope_scaling is not supported for phi models; remove it or use the original config");
    }
    let norm = NormSpec::new(NormKind::LayerNorm, c.layer_norm_eps);
    let dim = partial_dim(c.partial_rotary_factor, base.attention.head_dim)?;
    // The top-level base only, as PhiConfig reads it.
    let rope = Rope {
        rope_theta: c.common.rope.rope_theta,
        ..Rope::default()
    };
    let inv_freq = rope.inv_freq(dim, base.max_positions)?;
    Ok(DecoderSpec {
        norm,
        layout: Layout::Parallel,
        attention: AttentionSpec {
            qkv_bias: true,
            o_bias: true,
            qk_norm: match c.qk_layernorm {
                true => QkNorm::PerHead(norm),
                false => QkNorm::None,
            },
            ..base.attention
        },
        rotary: Some(RotarySpec::uniform(dim, inv_freq, base.num_layers)),
        mlp: MlpSpec {
            kind: MlpKind::Plain,
            bias: true,
            ..base.mlp
        },
        head: Head::Own {
            bias: true,
            optional: false,
        },
        ..base
    })
}

/// Phi's tensor names: Llama's, but `final_layernorm`, `self_attn.dense` and `mlp.fc1/fc2`.
pub(crate) fn names(_: &Vars) -> Names {
    Names {
        final_norm: "final_layernorm",
        block: BlockNames {
            attn_names: AttentionNames {
                o: "dense",
                q_norm: "q_layernorm",
                k_norm: "k_layernorm",
                ..AttentionNames::default()
            },
            mlp_names: MlpNames::plain("fc1", "fc2"),
            ..BlockNames::default()
        },
        ..Names::default()
    }
}
