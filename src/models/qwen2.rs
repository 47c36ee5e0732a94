//! Qwen2 and Qwen2.5, as transformers' `Qwen2ForCausalLM`: Llama's decoder with
//! biases on q/k/v only, never on o_proj or the MLP, and Qwen2's own way of switching on
//! the sliding window per layer.
//!
//! Qwen3 (`Qwen3ForCausalLM`) is the same decoder and the same sliding-window rules with an
//! RMSNorm over each head's q and k (before rotary), biases on q/k/v/o only with
//! `attention_bias` (default off), and its config class's own `head_dim` default (128).

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use super::components::{AttentionSpec, QkNorm};
use super::decoder::{Common, DecoderSpec};
use super::{parse_config, with_defaults};

/// The config.json fields Qwen2 and Qwen3 add to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(flatten)]
    pub common: Common,
    /// Qwen3 only (Qwen2 always has q/k/v biases).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    pub sliding_window: Option<usize>,
    pub max_window_layers: usize,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

impl Config {
    /// As `Qwen2Config`: the window counts only with `use_sliding_window`, and then in the
    /// layers `layer_types` marks `sliding_attention`, or by default from
    /// `max_window_layers` on.
    fn windows(&self) -> Vec<Option<usize>> {
        let window = self.sliding_window.filter(|_| self.use_sliding_window);
        let sliding = |i: usize| match &self.layer_types {
            Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
            None => i >= self.max_window_layers,
        };
        (0..self.common.sizes.num_hidden_layers)
            .map(|i| window.filter(|_| sliding(i)))
            .collect()
    }
}

/// Translates a Qwen2 or Qwen3 config.json into the decoder's spec.
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let qwen3 = json.get("model_type").and_then(|t| t.as_str()) == Some("qwen3");
    // Qwen2Config's defaults; Qwen3Config's also where `Common`'s differ: head_dim 128, not
    // hidden / heads, and 32 key/value heads.
    let defaults = match qwen3 {
        false => json!({"sliding_window": 4096, "max_window_layers": 28}),
        true => json!({"sliding_window": 4096, "max_window_layers": 28, "head_dim": 128,
            "num_key_value_heads": 32}),
    };
    let c: Config = parse_config(with_defaults(json, defaults))?;
    let base = c
        .common
        .spec(if qwen3 { "qwen3" } else { "qwen2" }, 32768)?;
    Ok(DecoderSpec {
        attention: AttentionSpec {
            qkv_bias: !qwen3 || c.attention_bias,
            o_bias: qwen3 && c.attention_bias,
            qk_norm: match qwen3 {
                true => QkNorm::PerHead(base.norm),
                false => QkNorm::None,
            },
            ..base.attention
        },
        windows: c.windows(),
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(extra: serde_json::Value) -> Vec<Option<usize>> {
        let mut json = serde_json::json!({"model_type": "qwen2", "vocab_size": 8, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2,
            "sliding_window": 5, "max_window_layers": 1});
        json.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<Config>(json).unwrap().windows()
    }

    #[test]
    fn sliding_window_only_when_switched_on() {
        assert_eq!(windows(serde_json::json!({})), [None, None, None]);
        let on = serde_json::json!({"use_sliding_window": true});
        assert_eq!(windows(on), [None, Some(5), Some(5)]);
        let typed = serde_json::json!({"use_sliding_window": true, "layer_types":
            ["sliding_attention", "full_attention", "full_attention"]});
        assert_eq!(windows(typed), [Some(5), None, None]);
    }

    fn qwen3(extra: serde_json::Value) -> DecoderSpec {
        let mut json = json!({"model_type": "qwen3", "vocab_size": 8, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1});
        json.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec(json).unwrap()
    }

    /// Qwen3: per-head q/k RMSNorm with the model's eps, head_dim 128 unless given, no
    /// biases unless `attention_bias`, and then on o_proj too.
    #[test]
    fn qwen3_is_qwen2_with_per_head_qk_norm_and_its_own_defaults() {
        let s = qwen3(json!({"rms_norm_eps": 1e-5}));
        assert_eq!(s.model_type, "qwen3");
        assert_eq!(s.attention.qk_norm, QkNorm::PerHead(s.norm));
        assert_eq!(s.norm.eps, 1e-5);
        assert_eq!(s.attention.head_dim, 128);
        assert!(!s.attention.qkv_bias && !s.attention.o_bias && !s.mlp.bias);
        assert_eq!(s.scales[0], 1.0 / 128f64.sqrt());
        let s = qwen3(json!({"head_dim": 6, "attention_bias": true}));
        assert_eq!(s.attention.head_dim, 6);
        assert!(s.attention.qkv_bias && s.attention.o_bias && !s.mlp.bias);
        let q2 = spec(
            json!({"model_type": "qwen2", "vocab_size": 8, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2}),
        )
        .unwrap();
        assert_eq!(q2.attention.qk_norm, QkNorm::None);
        assert_eq!(q2.attention.head_dim, 4);
        assert!(q2.attention.qkv_bias && !q2.attention.o_bias);
        let windowed = qwen3(json!({"use_sliding_window": true, "sliding_window": 3,
            "max_window_layers": 1}));
        assert_eq!(windowed.windows, [None, Some(3)]);
    }
}
