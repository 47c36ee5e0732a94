//! Phi-3, as transformers' `Phi3ForCausalLM`: the Llama block with one fused `qkv_proj`
//! (`[Q, K, V]` rows), one fused `gate_up_proj` (gate first), optional partial rotary
//! embeddings, an optional sliding window over every layer, and the LongRoPE scaling of the
//! 128k variants (`longrope`, formerly `su` or `yarn`).

use anyhow::Result;
use serde::Deserialize;

use super::components::rotary::partial_dim;
use super::components::{AttentionSpec, MlpKind, MlpSpec, RotarySpec};
use super::decoder::{Common, DecoderSpec};
use super::{parse_config, with_defaults};

/// The config.json fields Phi-3 adds to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

/// Rope types transformers' Phi-3 maps to LongRoPE.
const LONGROPE: [&str; 3] = ["longrope", "su", "yarn"];

/// Translates Phi-3's config.json into the decoder's spec.
pub(crate) fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    // Phi3Config's RMSNorm eps default (Common's, LlamaConfig's, is 1e-6).
    let c: Config = parse_config(with_defaults(
        json,
        serde_json::json!({"rms_norm_eps": 1e-5}),
    ))?;
    let base = c.common.decoder("phi3", 4096)?;
    let rope = &c.common.rope;
    // As Phi3Config: the parameters object wins, then the top-level key, then 1.
    let fraction = rope.partial_factor().or(c.partial_rotary_factor);
    let dim = partial_dim(fraction.unwrap_or(1.0), base.even_head_dim()?)?;
    let (max, layers) = (base.max_positions, base.num_layers);
    let rotary = match rope.kind().is_some_and(|k| LONGROPE.contains(&k.as_str())) {
        false => RotarySpec::uniform(dim, rope.inv_freq(dim, max)?, layers),
        true => {
            let original = c.original_max_position_embeddings;
            let (short, long) = rope.longrope(dim, max, original)?;
            RotarySpec {
                longrope: Some(long),
                ..RotarySpec::uniform(dim, short, layers)
            }
        }
    };
    Ok(DecoderSpec {
        attention: AttentionSpec {
            fused_qkv: true,
            ..base.attention
        },
        windows: vec![c.sliding_window; layers],
        rotary: Some(rotary),
        mlp: MlpSpec {
            kind: MlpKind::GatedFused,
            ..base.mlp
        },
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(extra: serde_json::Value) -> Result<DecoderSpec> {
        spec(crate::models::test_config(extra))
    }

    /// transformers 5.24's `Phi3Config().rms_norm_eps` is 1e-5 (LlamaConfig's is 1e-6): a
    /// config.json without the field gets Phi-3's default, one with it its own value.
    #[test]
    fn rms_norm_eps_defaults_as_phi3config() {
        assert_eq!(spec_of(serde_json::json!({})).unwrap().norm.eps, 1e-5);
        let given = spec_of(serde_json::json!({"rms_norm_eps": 1e-6})).unwrap();
        assert_eq!(given.norm.eps, 1e-6);
    }

    /// LongRoPE in each spelling: short and long frequencies divided by their factors,
    /// cos/sin scaled by √(1 + ln(64/16) / ln 16) = √1.5; a factor list of the wrong length
    /// is one line that names it.
    #[test]
    fn longrope_in_every_spelling() {
        for kind in LONGROPE {
            let scaling = serde_json::json!({"type": kind, "short_factor": [1.0, 2.0, 1.0, 1.0],
                "long_factor": [4.0, 4.0, 4.0, 4.0]});
            let s = spec_of(
                serde_json::json!({"rope_scaling": scaling, "rope_theta": 10000.0,
                "max_position_embeddings": 64, "original_max_position_embeddings": 16}),
            )
            .unwrap();
            let r = s.rotary.unwrap();
            assert_eq!(r.tables[0][..2], [1.0, 0.05]);
            let l = r.longrope.unwrap();
            assert_eq!((l.original_max, l.long[0]), (16, 0.25));
            assert!((l.attention_factor - 1.5f32.sqrt()).abs() < 1e-6);
        }
        let scaling = serde_json::json!({"type": "longrope", "short_factor": [1.0],
            "long_factor": [4.0, 4.0, 4.0, 4.0], "original_max_position_embeddings": 16});
        let e = spec_of(serde_json::json!({"rope_scaling": scaling})).unwrap_err();
        assert!(
            e.to_string().contains("short_factor has 1 entries for 4"),
            "{e}"
        );
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
