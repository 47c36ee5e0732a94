//! Qwen2 and Qwen2.5, as transformers' `Qwen2ForCausalLM`: the Llama-like decoder with
//! biases on q/k/v only, never on o_proj or the MLP, and Qwen2's own way of switching on
//! the sliding window per layer.

use anyhow::Result;
use serde::Deserialize;

use super::decoder::DecoderSpec;
use super::llama::{Common, Variant};
use super::parse_config;

/// The config.json fields Qwen2 adds to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default = "default_window")]
    pub sliding_window: Option<usize>,
    #[serde(default = "default_max_window_layers")]
    pub max_window_layers: usize,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

fn default_window() -> Option<usize> {
    Some(4096)
}
fn default_max_window_layers() -> usize {
    28
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

/// Translates Qwen2's config.json into the decoder's spec.
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let c: Config = parse_config(json)?;
    let variant = Variant {
        model_type: "qwen2",
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        default_max_positions: 32768,
        windows: c.windows(),
    };
    c.common.into_spec(variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(extra: serde_json::Value) -> Vec<Option<usize>> {
        let mut json = serde_json::json!({"vocab_size": 8, "hidden_size": 8,
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
}
