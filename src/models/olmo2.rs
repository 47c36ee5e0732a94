//! OLMo 2, as transformers' `Olmo2ForCausalLM`: Llama's decoder (SwiGLU, rotary,
//! grouped k/v heads) with post-norm blocks, `h = x + rms(attn(x))` then
//! `h + rms(mlp(h))` with no norm before either branch, and RMSNorms over the whole q and k
//! projections (`num_heads · head_dim` and `kv_heads · head_dim` channels) before the split
//! into heads and rotary. Biases on q/k/v/o only with `attention_bias`.

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use super::components::block::BlockNames;
use super::components::{AttentionSpec, Layout, QkNorm, Vars};
use super::decoder::{Common, DecoderSpec, Names};
use super::{parse_config, with_defaults};

/// The config.json fields OLMo 2 adds to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub attention_bias: bool,
}

/// Translates OLMo 2's config.json into the decoder's spec.
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    // Olmo2Config's RMSNorm eps default (Common's is 1e-6).
    let c: Config = parse_config(with_defaults(json, json!({"rms_norm_eps": 1e-5})))?;
    let base = c.common.spec("olmo2", 2048)?;
    Ok(DecoderSpec {
        layout: Layout::PostNorm,
        attention: AttentionSpec {
            qkv_bias: c.attention_bias,
            o_bias: c.attention_bias,
            qk_norm: QkNorm::Whole(base.norm),
            ..base.attention
        },
        ..base
    })
}

/// Llama's tensor names, with the block's two norms on the branch outputs.
pub(crate) fn names(_: &Vars) -> Names {
    Names {
        block: BlockNames::post_norms(),
        ..Names::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::components::{NormKind, NormSpec};

    #[test]
    fn post_norm_blocks_whole_projection_qk_norm_and_olmo2_defaults() {
        let s = spec(
            json!({"model_type": "olmo2", "vocab_size": 8, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2}),
        )
        .unwrap();
        let norm = NormSpec {
            kind: NormKind::Rms,
            eps: 1e-5,
        };
        assert_eq!(s.norm, norm);
        assert_eq!(s.layout, Layout::PostNorm);
        assert_eq!(s.attention.qk_norm, QkNorm::Whole(norm));
        assert_eq!((s.attention.kv_heads, s.attention.head_dim), (2, 4));
        assert!(!s.attention.qkv_bias && !s.attention.o_bias && !s.mlp.bias);
        assert_eq!(s.max_positions, 2048);
        assert_eq!(s.windows, [None, None]);
        let s = spec(
            json!({"vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
            "num_hidden_layers": 2, "num_attention_heads": 2, "rms_norm_eps": 1e-6,
            "attention_bias": true}),
        )
        .unwrap();
        assert_eq!(s.norm.eps, 1e-6);
        assert!(s.attention.qkv_bias && s.attention.o_bias);
    }
}
