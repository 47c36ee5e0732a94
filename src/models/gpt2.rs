//! GPT-2, as transformers' `GPT2LMHeadModel`: learned absolute positions, a pre-norm block
//! `h = x + attn(ln_1(x))`, `h + mlp(ln_2(h))`, fused q/k/v, `Conv1D` projections whose
//! weights are stored `(in, out)`, and the token embedding as the head.

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::json;

use super::components::{attention::AttentionNames, block::BlockNames, mlp::MlpNames};
use super::components::{AttentionSpec, MlpKind, MlpSpec, NormKind, NormSpec, Vars, WeightLayout};
use super::decoder::{DecoderSpec, Head, Names, Sizes};
use super::{parse_config, with_defaults};

/// The config.json fields GPT-2 uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_inner: Option<usize>,
    pub n_positions: usize,
    pub activation_function: candle_nn::Activation,
    pub layer_norm_epsilon: f64,
    pub scale_attn_weights: bool,
    pub scale_attn_by_inverse_layer_idx: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
}

/// Translates GPT-2's config.json, with GPT2Config's defaults, into the decoder's spec.
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let defaults = json!({"n_positions": 1024, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false, "tie_word_embeddings": true});
    let c: Config = parse_config(with_defaults(json, defaults))?;
    let (d, heads) = (c.n_embd, c.n_head);
    if heads == 0 || !d.is_multiple_of(heads) {
        bail!("config.json: n_embd ({d}) must be a multiple of n_head ({heads})");
    }
    let sizes = Sizes {
        vocab_size: c.vocab_size,
        hidden_size: d,
        intermediate_size: c.n_inner.unwrap_or(4 * d),
        num_hidden_layers: c.n_layer,
        num_attention_heads: heads,
        num_key_value_heads: None,
        head_dim: None,
    };
    let base = DecoderSpec::new("gpt2", &sizes, c.n_positions)?;
    // transformers' scale: 1/√head_dim unless `scale_attn_weights` is off, divided by the
    // layer's number with `scale_attn_by_inverse_layer_idx`.
    let (weights, inverse) = (c.scale_attn_weights, c.scale_attn_by_inverse_layer_idx);
    let scale = |(n, &s): (usize, &f64)| {
        let s = if weights { s } else { 1.0 };
        s / if inverse { n as f64 } else { 1.0 }
    };
    Ok(DecoderSpec {
        bos_token_id: c.bos_token_id,
        norm: NormSpec::new(NormKind::LayerNorm, c.layer_norm_epsilon),
        attention: AttentionSpec {
            fused_qkv: true,
            qkv_bias: true,
            o_bias: true,
            ..base.attention
        },
        scales: (1..).zip(&base.scales).map(scale).collect(),
        mlp: MlpSpec {
            kind: MlpKind::Plain,
            act: c.activation_function,
            bias: true,
            ..base.mlp
        },
        learned_positions: Some(c.n_positions),
        head: Head::tied(c.tie_word_embeddings),
        weight_layout: WeightLayout::InOut,
        ..base
    })
}

/// GPT-2's tensor names: `transformer.*` as save_pretrained writes them, or bare (the Hub's).
pub(crate) fn names(vb: &Vars) -> Names {
    let prefixed = vb.contains("transformer.wte.weight");
    Names {
        root: if prefixed { "transformer" } else { "" },
        embed: "wte",
        positions: "wpe",
        layers: "h",
        final_norm: "ln_f",
        head: "lm_head",
        block: BlockNames {
            attn_norm: "ln_1",
            mlp_norm: "ln_2",
            attn: "attn",
            attn_names: AttentionNames::fused("c_attn", "c_proj"),
            mlp_names: MlpNames::plain("c_fc", "c_proj"),
            ..BlockNames::default()
        },
    }
}
