//! Gemma, as transformers' `GemmaForCausalLM`: Llama's decoder with the embeddings scaled
//! by `sqrt(hidden_size)`, RMSNorm with `1 + w` computed in float32, a GeGLU MLP, grouped
//! k/v heads with an explicit `head_dim` and a tied head. [`Config`] serves Gemma 2
//! (gemma2.rs) and Gemma 3 (gemma3.rs) too.

use anyhow::Result;
use candle_nn::Activation;
use serde::Deserialize;
use serde_json::{json, Value};

use super::components::rotary::{Rope, RopeParams};
use super::components::{AttentionSpec, MlpSpec, NormKind, NormSpec, RotarySpec};
use super::decoder::{DecoderSpec, Head, Sizes};
use super::{parse_config, with_defaults};

/// The config.json fields the Gemma family reads; absent ones take the defaults of the
/// generation's transformers config class, which each translator states.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(flatten)]
    pub sizes: Sizes,
    pub hidden_act: Option<Activation>,
    pub hidden_activation: Option<Activation>,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub attention_bias: bool,
    pub query_pre_attn_scalar: Option<f64>,
    pub sliding_window: Option<usize>,
    pub layer_types: Option<Vec<String>>,
    pub sliding_window_pattern: Option<usize>,
    pub attn_logit_softcapping: Option<f64>,
    pub final_logit_softcapping: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_local_base_freq: Option<f64>,
    pub rope_scaling: Option<RopeParams>,
    pub rope_parameters: Option<Value>,
}

impl Config {
    /// Llama's decoder as every Gemma changes it: RMSNorm with `1 + w`, the MLP's `act`,
    /// q/k/v/o biases with `attention_bias`, embeddings scaled by `sqrt(hidden_size)`, the
    /// head tied as `tie_word_embeddings` says, and BOS. No rotary yet.
    pub(crate) fn decoder(&self, model_type: &str, act: Activation) -> Result<DecoderSpec> {
        let base = DecoderSpec::new(model_type, &self.sizes, self.max_position_embeddings)?;
        let bias = self.attention_bias;
        Ok(DecoderSpec {
            bos_token_id: self.bos_token_id,
            norm: NormSpec::new(NormKind::RmsPlusOne, self.rms_norm_eps),
            attention: AttentionSpec {
                qkv_bias: bias,
                o_bias: bias,
                ..base.attention
            },
            mlp: MlpSpec { act, ..base.mlp },
            head: Head::tied(self.tie_word_embeddings),
            embed_scale: Some((base.hidden_size as f64).sqrt()),
            ..base
        })
    }

    /// The RoPE settings at the top level.
    pub(crate) fn rope(&self) -> Result<Rope> {
        Ok(Rope {
            rope_theta: self.rope_theta,
            rope_scaling: self.rope_scaling.clone(),
            rope_parameters: self.rope_parameters.clone().map(parse_config).transpose()?,
        })
    }
}

/// Translates a Gemma config.json.
pub(crate) fn spec(json: Value) -> Result<DecoderSpec> {
    // GemmaConfig's defaults.
    let defaults = json!({"vocab_size": 256000, "hidden_size": 3072,
        "intermediate_size": 24576, "num_hidden_layers": 28, "num_attention_heads": 16,
        "num_key_value_heads": 16, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "bos_token_id": 2,
        "tie_word_embeddings": true});
    let c: Config = parse_config(with_defaults(json, defaults))?;
    // `hidden_act`, whose legacy "gelu" transformers takes to mean the tanh approximation.
    let act = match c.hidden_act.or(c.hidden_activation) {
        Some(Activation::Gelu) | None => Activation::GeluPytorchTanh,
        Some(act) => act,
    };
    let base = c.decoder("gemma", act)?;
    let dim = base.even_head_dim()?;
    let inv_freq = c.rope()?.inv_freq(dim, base.max_positions)?;
    Ok(DecoderSpec {
        rotary: Some(RotarySpec::uniform(dim, inv_freq, base.num_layers)),
        ..base
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tiny(model_type: &str, extra: Value) -> Value {
        let mut j = json!({"model_type": model_type, "vocab_size": 8, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 7, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4, "sliding_window": 3});
        j.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        j
    }

    #[test]
    fn gemma_reads_legacy_gelu_as_tanh_and_defaults_head_dim() {
        let mut j = tiny("gemma", json!({"hidden_act": "gelu"}));
        j.as_object_mut().unwrap().remove("head_dim");
        let s = spec(j).unwrap();
        assert_eq!(s.mlp.act, Activation::GeluPytorchTanh);
        assert_eq!(s.attention.head_dim, 256, "GemmaConfig's default head_dim");
        assert_eq!(s.windows, [None; 7]);
        assert_eq!(s.embed_scale, Some(8f64.sqrt()));
    }
}
