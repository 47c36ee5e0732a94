//! Llama (Llama 2/3, SmolLM, TinyLlama) and Mistral, as transformers' `LlamaForCausalLM`
//! and `MistralForCausalLM`, and llama-architecture GGUF files.
//!
//! [`DecoderSpec::new`]'s choices are Llama's: a pre-norm block, `h = x + attn(rms(x))`,
//! then `h + mlp(rms(h))`, with a SwiGLU MLP, grouped k/v heads, and rotate-half rotary
//! embeddings ([`Common::spec`]), optionally Llama 3 or linear scaled.

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use super::components::{AttentionSpec, MlpSpec, Vars};
use super::decoder::{Common, DecoderSpec, Names};
use super::{parse_config, with_defaults};

/// The config.json fields Llama and Mistral add to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    pub model_type: String,
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral only.
    pub sliding_window: Option<usize>,
}

/// Translates a Llama or Mistral config.json (Mistral is Llama with a sliding window).
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    // MistralConfig's window (LlamaConfig's defaults are Common's).
    let c: Config = parse_config(with_defaults(json, json!({"sliding_window": 4096})))?;
    let mistral = c.model_type == "mistral";
    let base = match mistral {
        true => c.common.spec("mistral", 4096 * 32)?,
        false => c.common.spec("llama", 2048)?,
    };
    let bias = c.attention_bias;
    Ok(DecoderSpec {
        attention: AttentionSpec {
            qkv_bias: bias,
            o_bias: bias,
            ..base.attention
        },
        windows: vec![c.sliding_window.filter(|_| mistral); base.num_layers],
        mlp: MlpSpec {
            bias: c.mlp_bias,
            ..base.mlp
        },
        ..base
    })
}

/// The tensor names of Llama-like checkpoints (Llama, Mistral, Qwen2, Qwen3, Phi-3):
/// [`Names::default`].
pub(crate) fn names(_: &Vars) -> Names {
    Names::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::components::{Layout, MlpKind, NormKind, NormSpec, QkNorm};
    use crate::models::decoder::Head;
    use crate::models::test_config;
    use candle_nn::Activation;

    /// Llama is [`DecoderSpec::new`]'s choices with the config's values: RMSNorm at
    /// `rms_norm_eps`, separate unbiased q/k/v, SwiGLU, rotary over whole heads (base 1e4),
    /// full attention, and a head of its own that falls back to the embeddings. Mistral adds
    /// MistralConfig's 4096-token window, which llama ignores.
    #[test]
    fn llama_is_the_default_decoder_and_mistral_adds_a_window() {
        let extra = json!({"model_type": "llama", "rms_norm_eps": 1e-5,
            "num_key_value_heads": 1, "sliding_window": 3});
        let s = spec(test_config(extra)).unwrap();
        assert_eq!(s.norm, NormSpec::new(NormKind::Rms, 1e-5));
        assert_eq!(s.layout, Layout::Sequential);
        assert_eq!((s.attention.kv_heads, s.attention.head_dim), (1, 8));
        assert!(!s.attention.fused_qkv && !s.attention.qkv_bias && !s.attention.o_bias);
        assert_eq!(s.attention.qk_norm, QkNorm::None);
        assert_eq!((s.mlp.kind, s.mlp.act), (MlpKind::Gated, Activation::Silu));
        assert!(!s.mlp.bias);
        assert_eq!(s.scales, [1.0 / 8f64.sqrt(); 2]);
        assert_eq!((s.windows, s.max_positions), (vec![None, None], 2048));
        let r = s.rotary.unwrap();
        assert_eq!((r.dim, r.tables.len()), (8, 1));
        assert!((r.tables[0][1] - 0.1).abs() < 1e-7, "10000^(-2/8)");
        let own = Head::Own {
            bias: false,
            optional: true,
        };
        assert_eq!(
            (s.head, s.embed_scale, s.learned_positions),
            (own, None, None)
        );
        let extra = json!({"model_type": "mistral", "tie_word_embeddings": true});
        let m = spec(test_config(extra)).unwrap();
        assert_eq!((m.windows, m.max_positions), (vec![Some(4096); 2], 131072));
        assert_eq!((m.model_type.as_str(), m.head), ("mistral", Head::Tied));
        let m = spec(test_config(
            json!({"model_type": "mistral", "sliding_window": null}),
        ));
        assert_eq!(m.unwrap().windows, [None, None]);
    }
}
