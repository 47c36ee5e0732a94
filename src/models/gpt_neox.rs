//! GPT-NeoX and Pythia, as transformers' `GPTNeoXForCausalLM`: attention and the MLP read
//! the residual through their own LayerNorms and are both added to it
//! (`use_parallel_residual`, the default), or run one after the other when it is off. One
//! fused `query_key_value` projection whose rows are laid out per head, partial rotary
//! embeddings (`rotary_pct`, or transformers 5's `partial_rotary_factor`), biases, and an
//! untied `embed_out` head.

use anyhow::{bail, Result};
use serde::Deserialize;
use serde_json::json;

use super::components::rotary::partial_dim;
use super::components::{attention::AttentionNames, block::BlockNames, mlp::MlpNames};
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, RotarySpec, Vars,
};
use super::decoder::{Common, DecoderSpec, Head, Names};
use super::{parse_config, with_defaults};

/// The config.json fields GPT-NeoX adds to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub layer_norm_eps: f64,
    pub use_parallel_residual: bool,
    pub attention_bias: bool,
    /// The rotating fraction as GPT-NeoX checkpoints spell it.
    pub rotary_pct: Option<f64>,
    /// The same, spelt as other architectures do.
    pub partial_rotary_factor: Option<f64>,
    /// The rotary base as GPT-NeoX checkpoints spell it.
    pub rotary_emb_base: Option<f64>,
}

/// Translates GPT-NeoX's config.json into the decoder's spec.
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    // GPTNeoXConfig's defaults where Common's differ or it has none.
    let defaults = json!({"hidden_act": "gelu", "layer_norm_eps": 1e-5,
        "use_parallel_residual": true, "attention_bias": true});
    let mut c: Config = parse_config(with_defaults(json, defaults))?;
    let base = c.common.decoder("gpt_neox", 2048)?;
    let (heads, head_dim) = (base.attention.heads, base.attention.head_dim);
    if base.attention.kv_heads != heads || head_dim * heads != base.hidden_size {
        bail!("config.json: gpt_neox needs num_key_value_heads = num_attention_heads ({heads}) and head_dim = hidden_size / num_attention_heads");
    }
    // As GPTNeoXConfig: the parameters object wins, then `rotary_pct`, then 0.25.
    let fraction = c.common.rope.partial_factor().or(c.rotary_pct);
    let fraction = fraction.or(c.partial_rotary_factor).unwrap_or(0.25);
    let dim = partial_dim(fraction, head_dim)?;
    let rope = &mut c.common.rope;
    rope.rope_theta = c.rotary_emb_base.or(rope.rope_theta);
    let inv_freq = rope.inv_freq(dim, base.max_positions)?;
    Ok(DecoderSpec {
        norm: NormSpec::new(NormKind::LayerNorm, c.layer_norm_eps),
        layout: match c.use_parallel_residual {
            true => Layout::ParallelTwoNorms,
            false => Layout::Sequential,
        },
        attention: AttentionSpec {
            fused_qkv: true,
            fused_per_head: true,
            qkv_bias: c.attention_bias,
            o_bias: c.attention_bias,
            ..base.attention
        },
        rotary: Some(RotarySpec::uniform(dim, inv_freq, base.num_layers)),
        mlp: MlpSpec {
            kind: MlpKind::Plain,
            bias: true,
            ..base.mlp
        },
        head: match c.common.tie_word_embeddings {
            true => Head::Tied,
            false => Head::Own {
                bias: false,
                optional: false,
            },
        },
        ..base
    })
}

/// GPT-NeoX's tensor names.
pub(crate) fn names(_: &Vars) -> Names {
    Names {
        root: "gpt_neox",
        embed: "embed_in",
        final_norm: "final_layer_norm",
        head: "embed_out",
        block: BlockNames {
            attn: "attention",
            attn_names: AttentionNames::fused("query_key_value", "dense"),
            mlp_names: MlpNames::plain("dense_h_to_4h", "dense_4h_to_h"),
            ..BlockNames::default()
        },
        ..Names::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(extra: serde_json::Value) -> Result<DecoderSpec> {
        spec(crate::models::test_config(extra))
    }

    /// Pythia's `rotary_pct`/`rotary_emb_base` and transformers 5's `rope_parameters` give
    /// the same rotary settings; the parameters object wins, as in `GPTNeoXConfig`.
    #[test]
    fn both_rotary_spellings_are_read() {
        let old = spec_of(serde_json::json!({"rotary_pct": 0.5, "rotary_emb_base": 100.0}));
        let new = spec_of(serde_json::json!({"rope_parameters":
            {"rope_type": "default", "rope_theta": 100.0, "partial_rotary_factor": 0.5},
            "rotary_pct": 0.25}));
        let (old, new) = (old.unwrap().rotary.unwrap(), new.unwrap().rotary.unwrap());
        assert_eq!(old.dim, 4);
        assert_eq!(old, new);
        assert_eq!(old.tables[0], [1.0, 0.1]);
        assert_eq!(
            spec_of(serde_json::json!({})).unwrap().rotary.unwrap().dim,
            2
        );
    }

    #[test]
    fn residual_layout_follows_use_parallel_residual() {
        let layout = |v: bool| {
            let s = spec_of(serde_json::json!({"use_parallel_residual": v})).unwrap();
            s.layout
        };
        assert_eq!(layout(true), Layout::ParallelTwoNorms);
        assert_eq!(layout(false), Layout::Sequential);
    }

    #[test]
    fn grouped_kv_heads_are_refused() {
        let e = spec_of(serde_json::json!({"num_key_value_heads": 1})).unwrap_err();
        assert!(e.to_string().contains("num_key_value_heads"), "{e}");
    }
}
