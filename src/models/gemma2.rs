//! Gemma 2, as transformers' `Gemma2ForCausalLM`: Gemma's decoder (gemma.rs) with sandwich
//! norms (before and after attention and the MLP), a sliding window in every other layer
//! from the first, scores scaled by `query_pre_attn_scalar^-½`, and attention scores and
//! final logits soft-capped. [`windows`], [`sandwich`] and [`names`] serve Gemma 3 too.

use anyhow::{anyhow, bail, Result};
use candle_nn::Activation;
use serde_json::{json, Value};

use super::components::block::BlockNames;
use super::components::{AttentionSpec, Layout, RotarySpec, Vars};
use super::decoder::{DecoderSpec, Names};
use super::gemma::Config;
use super::{parse_config, with_defaults};

/// Translates a Gemma 2 config.json.
pub(crate) fn spec(json: Value) -> Result<DecoderSpec> {
    // Gemma2Config's defaults.
    let defaults = json!({"vocab_size": 256000, "hidden_size": 2304,
        "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
        "num_key_value_heads": 4, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "bos_token_id": 2,
        "tie_word_embeddings": true, "query_pre_attn_scalar": 256, "sliding_window": 4096,
        "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0});
    let c: Config = parse_config(with_defaults(json, defaults))?;
    let act = c.hidden_activation.unwrap_or(Activation::GeluPytorchTanh);
    let base = c.decoder("gemma2", act)?;
    let dim = base.even_head_dim()?;
    let windows = windows(&c, 2)?;
    let inv_freq = c.rope()?.inv_freq(dim, base.max_positions)?;
    let rotary = RotarySpec::uniform(dim, inv_freq, base.num_layers);
    sandwich(&c, base, windows, rotary)
}

/// Per layer, the sliding window, or `None` for full attention: in the layers `layer_types`
/// marks `sliding_attention`, else in all but every `pattern`th.
pub(crate) fn windows(c: &Config, pattern: usize) -> Result<Vec<Option<usize>>> {
    let layers = c.sizes.num_hidden_layers;
    let sliding: Vec<bool> = match &c.layer_types {
        Some(types) if types.len() != layers => bail!(
            "config.json: layer_types has {} entries for {layers} layers",
            types.len()
        ),
        Some(types) => types.iter().map(|t| t == "sliding_attention").collect(),
        None if pattern == 0 => bail!("config.json: sliding_window_pattern must be positive"),
        None => (0..layers).map(|i| (i + 1) % pattern != 0).collect(),
    };
    match (sliding.contains(&true), c.sliding_window) {
        (true, None) => bail!("config.json: sliding layers need a \"sliding_window\""),
        (_, w) => Ok(sliding.iter().map(|&s| w.filter(|_| s)).collect()),
    }
}

/// What Gemma 2 and 3 change in Gemma's decoder: sandwich blocks, `windows`, `rotary`, the
/// query scale `query_pre_attn_scalar^-½` (1/√head_dim without one), and the soft-caps set.
pub(crate) fn sandwich(
    c: &Config,
    base: DecoderSpec,
    windows: Vec<Option<usize>>,
    rotary: RotarySpec,
) -> Result<DecoderSpec> {
    let scale = match c.query_pre_attn_scalar {
        None => 1.0 / (base.attention.head_dim as f64).sqrt(),
        Some(s) if s > 0.0 && (s as f32).is_finite() => s.powf(-0.5),
        Some(s) => {
            bail!("config.json: query_pre_attn_scalar ({s}) must be a positive finite number")
        }
    };
    let positive = |v: Option<f64>, name: &str| match v {
        Some(cap) if cap <= 0.0 => Err(anyhow!("config.json: {name} ({cap}) must be positive")),
        v => Ok(v),
    };
    let softcap = positive(c.attn_logit_softcapping, "attn_logit_softcapping")?;
    Ok(DecoderSpec {
        layout: Layout::Sandwich,
        attention: AttentionSpec {
            softcap,
            ..base.attention
        },
        scales: vec![scale; base.num_layers],
        windows,
        rotary: Some(rotary),
        final_softcap: positive(c.final_logit_softcapping, "final_logit_softcapping")?,
        ..base
    })
}

/// Gemma 2's tensor names: Llama's, with norms before and after attention and the MLP.
pub(crate) fn names(_: &Vars) -> Names {
    Names {
        block: BlockNames {
            mlp_norm: "pre_feedforward_layernorm",
            ..BlockNames::post_norms()
        },
        ..Names::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gemma::tests::tiny;

    #[test]
    fn gemma2_alternates_and_caps_by_default() {
        let s = spec(tiny("gemma2", json!({}))).unwrap();
        let w = Some(3);
        assert_eq!(s.windows, [w, None, w, None, w, None, w]);
        assert_eq!(s.attention.softcap, Some(50.0));
        assert_eq!(s.final_softcap, Some(30.0));
        assert_eq!(
            s.scales[0],
            1.0 / 16.0,
            "query_pre_attn_scalar defaults to 256"
        );
        assert_eq!(s.layout, Layout::Sandwich);
        let off = json!({"final_logit_softcapping": null, "attn_logit_softcapping": null});
        let s = spec(tiny("gemma2", off)).unwrap();
        assert_eq!((s.attention.softcap, s.final_softcap), (None, None));
    }
}
