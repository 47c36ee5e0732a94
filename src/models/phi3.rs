//! Phi-3, as transformers' `Phi3ForCausalLM`: the Llama block with one fused `qkv_proj`
//! (`[Q, K, V]` rows), one fused `gate_up_proj` (gate first), optional partial rotary
//! embeddings and an optional sliding window over every layer. The LongRoPE scaling of the
//! 128k variants (`longrope`, formerly `su` or `yarn`) is refused by name.

use anyhow::{bail, Result};
use serde::Deserialize;

use super::components::rotary::partial_dim;
use super::components::{MlpKind, RotarySpec};
use super::decoder::DecoderSpec;
use super::llama::{Common, Variant};
use super::parse_config;

/// The config.json fields Phi-3 adds to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
}

/// Rope types transformers' Phi-3 maps to LongRoPE.
const LONGROPE: [&str; 3] = ["longrope", "su", "yarn"];

/// Translates Phi-3's config.json into the decoder's spec.
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let c: Config = parse_config(json)?;
    let rope = c.common.rope.clone();
    let params = rope.rope_scaling.as_ref().or(rope.rope_parameters.as_ref());
    let kind = params.and_then(|p| p.rope_type.as_deref().or(p.legacy_type.as_deref()));
    if let Some(kind) = kind.filter(|k| LONGROPE.contains(k)) {
        bail!("config.json: rope scaling \"{kind}\" (LongRoPE, the 128k-context Phi-3 variants) is not supported; use a 4k-context checkpoint such as microsoft/Phi-3-mini-4k-instruct");
    }
    // As Phi3Config: the parameters object wins, then the top-level key, then 1.
    let fraction = rope.partial_factor().or(c.partial_rotary_factor);
    let fraction = fraction.unwrap_or(1.0);
    let layers = c.common.sizes.num_hidden_layers;
    let variant = Variant {
        model_type: "phi3",
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        default_max_positions: 4096,
        windows: vec![c.sliding_window; layers],
    };
    let mut spec = c.common.into_spec(variant)?;
    spec.attention.fused_qkv = true;
    spec.mlp.kind = MlpKind::GatedFused;
    let dim = partial_dim(fraction, spec.attention.head_dim)?;
    let inv_freq = rope.inv_freq(dim, spec.max_positions)?;
    spec.rotary = Some(RotarySpec::uniform(dim, inv_freq, layers));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(extra: serde_json::Value) -> Result<DecoderSpec> {
        spec(crate::models::test_config(extra))
    }

    /// The 128k variants' LongRoPE, in each spelling, is one line that names it.
    #[test]
    fn longrope_is_refused_by_name() {
        for kind in LONGROPE {
            let scaling = serde_json::json!({"type": kind, "short_factor": [1.0, 1.0],
                "long_factor": [2.0, 2.0], "original_max_position_embeddings": 4096});
            let e = spec_of(serde_json::json!({"rope_scaling": scaling})).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("\"{kind}\"")) && !msg.contains('\n'),
                "{msg}"
            );
        }
    }

    #[test]
    fn partial_rotary_and_window() {
        let s = spec_of(serde_json::json!({"partial_rotary_factor": 0.5, "sliding_window": 3}))
            .unwrap();
        assert_eq!(s.rotary.unwrap().dim, 4);
        assert_eq!(s.windows, [Some(3), Some(3)]);
        let s = spec_of(serde_json::json!({})).unwrap();
        assert_eq!(s.rotary.unwrap().dim, 8);
        assert_eq!(s.windows, [None, None]);
    }
}
