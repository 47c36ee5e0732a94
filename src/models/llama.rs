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
pub struct Config {
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
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
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
pub fn names(_: &Vars) -> Names {
    Names::default()
}
