//! Gemma 3, as transformers' `Gemma3ForCausalLM` (`gemma3_text`) and the text model of
//! `Gemma3ForConditionalGeneration` (`gemma3`, its vision tower unread): Gemma 2's decoder
//! (gemma2.rs) with q and k normalised per head, five sliding layers to each global one by
//! default, a RoPE base of the sliding layers' own, and soft-caps only when set.

use anyhow::{bail, Result};
use candle_nn::Activation;
use serde_json::{json, Value};

use super::components::rotary::Rope;
use super::components::{QkNorm, RotarySpec, Vars};
use super::decoder::{DecoderSpec, Names};
use super::gemma::Config;
use super::{gemma2, parse_config, with_defaults};

/// Translates a Gemma 3 config.json (for `gemma3`, its `text_config`).
pub(crate) fn spec(json: Value) -> Result<DecoderSpec> {
    let model_type = json["model_type"].as_str().unwrap_or_default().to_string();
    let text = match model_type.as_str() {
        "gemma3" => match json.get("text_config") {
            Some(text @ Value::Object(_)) => text.clone(),
            _ => bail!("config.json: a gemma3 config needs a \"text_config\" object"),
        },
        _ => json,
    };
    // Gemma3TextConfig's defaults (a nested `text_config` is written as a diff against them).
    let defaults = json!({"vocab_size": 262208, "hidden_size": 2304,
        "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
        "num_key_value_heads": 4, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "bos_token_id": 2,
        "tie_word_embeddings": true, "query_pre_attn_scalar": 256, "sliding_window": 4096});
    let c: Config = parse_config(with_defaults(text, defaults))?;
    let act = c.hidden_activation.unwrap_or(Activation::GeluPytorchTanh);
    let base = c.decoder(&model_type, act)?;
    let dim = base.even_head_dim()?;
    let windows = gemma2::windows(&c, c.sliding_window_pattern.unwrap_or(6))?;
    let ropes = ropes(&c)?.map(|r| r.inv_freq(dim, base.max_positions));
    let rotary = RotarySpec {
        dim,
        tables: ropes.into_iter().collect::<Result<_>>()?,
        layer_table: windows.iter().map(|w| usize::from(w.is_some())).collect(),
        longrope: None,
    };
    let mut spec = gemma2::sandwich(&c, base, windows, rotary)?;
    spec.attention.qk_norm = QkNorm::PerHead(spec.norm);
    Ok(spec)
}

/// The RoPE settings of global layers, then of sliding ones: transformers 5's
/// `rope_parameters` object for the layer type, else the global `rope_theta` (default 1e6)
/// with `rope_scaling`, and the local `rope_local_base_freq` (default 1e4).
fn ropes(c: &Config) -> Result<[Rope; 2]> {
    let rope = |key: &str, theta: f64, rope_scaling| -> Result<Rope> {
        let nested = c.rope_parameters.as_ref().and_then(|p| p.get(key));
        Ok(match nested.filter(|p| !p.is_null()) {
            Some(p) => Rope {
                rope_parameters: Some(parse_config(p.clone())?),
                ..Rope::default()
            },
            None => Rope {
                rope_theta: Some(theta),
                rope_scaling,
                rope_parameters: None,
            },
        })
    };
    let global = c.rope_theta.unwrap_or(1e6);
    let global = rope("full_attention", global, c.rope_scaling.clone())?;
    let local = c.rope_local_base_freq.unwrap_or(1e4);
    Ok([global, rope("sliding_attention", local, None)?])
}

/// Where a multimodal checkpoint keeps its language model: the Hub checkpoints, and
/// transformers 5.24's `save_pretrained`, write `language_model.model.*` (head, when
/// untied, `language_model.lm_head`); transformers' in-memory module names, which some
/// re-saved checkpoints carry, are `model.language_model.*` with `lm_head`.
const LANGUAGE_MODEL_ROOTS: [(&str, &str); 2] = [
    ("language_model.model", "language_model.lm_head"),
    ("model.language_model", "lm_head"),
];

/// Gemma 2's tensor names, under the language model's root in a multimodal checkpoint.
pub(crate) fn names(vb: &Vars) -> Names {
    // A multimodal checkpoint without either (its projector gives it away) is read at the
    // Hub's spelling, so that the error names the language model it lacks.
    let multimodal = vb.contains("multi_modal_projector.mm_input_projection_weight");
    let (root, head) = LANGUAGE_MODEL_ROOTS
        .into_iter()
        .find(|(root, _)| vb.pp(root).contains("embed_tokens.weight"))
        .unwrap_or(match multimodal {
            true => LANGUAGE_MODEL_ROOTS[0],
            false => ("model", "lm_head"),
        });
    Names {
        root,
        head,
        ..gemma2::names(vb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gemma::tests::tiny;

    /// Older Gemma 3 configs: `sliding_window_pattern` and the local/global RoPE bases at
    /// the top level, `rope_scaling` applying to the global layers only.
    #[test]
    fn gemma3_legacy_pattern_and_rope_bases() {
        let legacy = json!({"sliding_window_pattern": 3, "rope_theta": 10000.0,
            "rope_local_base_freq": 100.0, "rope_scaling": {"rope_type": "linear", "factor": 2.0}});
        let s = spec(tiny("gemma3_text", legacy)).unwrap();
        let w = Some(3);
        assert_eq!(s.windows, [w, w, None, w, w, None, w]);
        let r = s.rotary.unwrap();
        assert_eq!(r.layer_table, [1, 1, 0, 1, 1, 0, 1]);
        assert_eq!(r.tables[0], [0.5, 0.005], "global: 10000, linear factor 2");
        assert_eq!(r.tables[1], [1.0, 0.1], "local: 100");
        assert!(matches!(s.attention.qk_norm, QkNorm::PerHead(_)));
        assert_eq!(s.final_softcap, None);
    }

    /// google/gemma-3-4b-it's text_config is a diff against Gemma3TextConfig's defaults.
    #[test]
    fn gemma3_4b_text_config_takes_the_missing_fields_from_the_defaults() {
        let text = json!({"hidden_size": 2560, "intermediate_size": 10240,
            "model_type": "gemma3_text", "num_hidden_layers": 34,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024});
        let s = spec(json!({"model_type": "gemma3", "text_config": text})).unwrap();
        assert_eq!(
            (s.vocab_size, s.attention.heads, s.attention.kv_heads),
            (262208, 8, 4)
        );
        assert_eq!((s.attention.head_dim, s.max_positions), (256, 131072));
        assert_eq!(
            s.windows.iter().filter(|w| w.is_none()).count(),
            5,
            "every 6th global"
        );
        assert_eq!(s.windows[5], None);
        assert_eq!(s.windows[0], Some(1024));
        let r = s.rotary.unwrap();
        assert_eq!(r.tables[0][0], 1.0 / 8.0, "global: linear factor 8");
        assert_eq!(r.tables[1][0], 1.0, "local: unscaled");
        assert!((r.tables[1][1] - 10_000f32.powf(-2.0 / 256.0)).abs() < 1e-9);
        assert!((r.tables[0][1] - 1e6f32.powf(-2.0 / 256.0) / 8.0).abs() < 1e-9);
    }

    #[test]
    fn gemma3_multimodal_reads_its_text_config() {
        let text = tiny("gemma3_text", json!({}));
        let s = spec(json!({"model_type": "gemma3", "text_config": text})).unwrap();
        assert_eq!((s.model_type.as_str(), s.num_layers), ("gemma3", 7));
        let err = spec(json!({"model_type": "gemma3"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("text_config"), "{err}");
    }
}
