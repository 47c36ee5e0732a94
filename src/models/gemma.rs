//! Gemma, Gemma 2 and Gemma 3, as transformers' `GemmaForCausalLM`, `Gemma2ForCausalLM`,
//! `Gemma3ForCausalLM` (`gemma3_text`) and the text model of `Gemma3ForConditionalGeneration`
//! (`gemma3`, its vision tower left unread).
//!
//! All three scale the embeddings by `sqrt(hidden_size)`, use RMSNorm with `1 + w` computed in
//! float32, a GeGLU MLP, grouped k/v heads with an explicit `head_dim` and a tied head.
//! Gemma 2 and 3 add sandwich norms (before and after attention and the MLP), sliding-window
//! layers and `query_pre_attn_scalar`; Gemma 2 soft-caps attention scores and the final
//! logits; Gemma 3 normalises q and k per head and gives sliding layers their own RoPE base.

use anyhow::{anyhow, bail, Result};
use candle_nn::Activation;
use serde::Deserialize;
use serde_json::{json, Value};

use super::components::block::BlockNames;
use super::components::mlp::MlpNames;
use super::components::rotary::{Rope, RopeParams};
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, QkNorm, RotarySpec, Vars,
    WeightLayout,
};
use super::decoder::{DecoderSpec, Head, Names, Sizes, LLAMA_ATTENTION};
use super::parse_config;

/// The config.json fields the Gemma family reads (absent ones take the defaults of the
/// model_type's transformers config, see [`defaults`]).
#[derive(Debug, Clone, Deserialize)]
struct Config {
    #[serde(flatten)]
    sizes: Sizes,
    #[serde(default)]
    hidden_act: Option<Activation>,
    #[serde(default)]
    hidden_activation: Option<Activation>,
    max_position_embeddings: usize,
    rms_norm_eps: f64,
    tie_word_embeddings: bool,
    #[serde(default)]
    bos_token_id: Option<u32>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    query_pre_attn_scalar: Option<f64>,
    #[serde(default)]
    sliding_window: Option<usize>,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    sliding_window_pattern: Option<usize>,
    #[serde(default)]
    attn_logit_softcapping: Option<f64>,
    #[serde(default)]
    final_logit_softcapping: Option<f64>,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rope_local_base_freq: Option<f64>,
    #[serde(default)]
    rope_scaling: Option<RopeParams>,
    #[serde(default)]
    rope_parameters: Option<Value>,
}

/// The generation, which decides defaults and the block layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generation {
    One,
    Two,
    Three,
}

/// transformers' config defaults for the fields Gemma checkpoints may leave out (a nested
/// `text_config` is written as a diff against them).
fn defaults(g: Generation) -> Value {
    match g {
        Generation::One => json!({"vocab_size": 256000, "hidden_size": 3072,
            "intermediate_size": 24576, "num_hidden_layers": 28, "num_attention_heads": 16,
            "num_key_value_heads": 16, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "bos_token_id": 2,
            "tie_word_embeddings": true}),
        Generation::Two => json!({"vocab_size": 256000, "hidden_size": 2304,
            "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
            "num_key_value_heads": 4, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "bos_token_id": 2,
            "tie_word_embeddings": true, "query_pre_attn_scalar": 256, "sliding_window": 4096,
            "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0}),
        Generation::Three => json!({"vocab_size": 262208, "hidden_size": 2304,
            "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
            "num_key_value_heads": 4, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "bos_token_id": 2,
            "tie_word_embeddings": true, "query_pre_attn_scalar": 256, "sliding_window": 4096}),
    }
}

/// Fills the fields `json` lacks from `defaults` (an explicit `null` stays `null`).
fn with_defaults(json: Value, defaults: Value) -> Result<Value> {
    let (Value::Object(mut out), Value::Object(given)) = (defaults, json) else {
        bail!("config.json: the Gemma text config must be a JSON object");
    };
    out.extend(given);
    Ok(Value::Object(out))
}

impl Config {
    /// The MLP activation: Gemma 2/3 read `hidden_activation`; Gemma reads `hidden_act`,
    /// whose legacy "gelu" transformers takes to mean the tanh approximation.
    fn activation(&self, g: Generation) -> Activation {
        match g {
            Generation::One => match self.hidden_act.or(self.hidden_activation) {
                Some(Activation::Gelu) | None => Activation::GeluPytorchTanh,
                Some(act) => act,
            },
            _ => self
                .hidden_activation
                .unwrap_or(Activation::GeluPytorchTanh),
        }
    }

    /// Per layer, whether it attends through the sliding window: `layer_types` when given,
    /// else Gemma 2's every other layer from the first, or Gemma 3's
    /// `sliding_window_pattern` (default 6: five sliding layers, then a global one).
    fn sliding(&self, g: Generation) -> Result<Vec<bool>> {
        let layers = self.sizes.num_hidden_layers;
        if let Some(types) = &self.layer_types {
            if types.len() != layers {
                bail!(
                    "config.json: layer_types has {} entries for {layers} layers",
                    types.len()
                );
            }
            return Ok(types.iter().map(|t| t == "sliding_attention").collect());
        }
        let pattern = match g {
            Generation::One => return Ok(vec![false; layers]),
            Generation::Two => 2,
            Generation::Three => self.sliding_window_pattern.unwrap_or(6),
        };
        if pattern == 0 {
            bail!("config.json: sliding_window_pattern must be positive");
        }
        Ok((0..layers).map(|i| (i + 1) % pattern != 0).collect())
    }

    /// `(global, local)` RoPE settings. Gemma 3's transformers-5 `rope_parameters` holds one
    /// object per layer type; older configs give the global `rope_theta` (default 1e6) with
    /// `rope_scaling`, and the local `rope_local_base_freq` (default 1e4).
    fn ropes(&self, g: Generation) -> Result<(Rope, Rope)> {
        let nested = |key: &str| -> Result<Option<Rope>> {
            match self.rope_parameters.as_ref().and_then(|p| p.get(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => Ok(Some(Rope {
                    rope_parameters: Some(parse_config(v.clone())?),
                    ..Rope::default()
                })),
            }
        };
        let flat = |theta: Option<f64>, default: f64| Rope {
            rope_theta: Some(theta.unwrap_or(default)),
            ..Rope::default()
        };
        if g != Generation::Three {
            let params = match &self.rope_parameters {
                Some(v) if !v.is_null() => Some(parse_config(v.clone())?),
                _ => None,
            };
            let rope = Rope {
                rope_theta: self.rope_theta,
                rope_scaling: self.rope_scaling.clone(),
                rope_parameters: params,
            };
            return Ok((rope.clone(), rope));
        }
        let global = match nested("full_attention")? {
            Some(r) => r,
            None => Rope {
                rope_scaling: self.rope_scaling.clone(),
                ..flat(self.rope_theta, 1_000_000.0)
            },
        };
        let local = match nested("sliding_attention")? {
            Some(r) => r,
            None => flat(self.rope_local_base_freq, 10_000.0),
        };
        Ok((global, local))
    }
}

/// Translates a Gemma, Gemma 2 or Gemma 3 config.json (for `gemma3`, its `text_config`).
pub fn spec(json: Value) -> Result<DecoderSpec> {
    let model_type = json["model_type"].as_str().unwrap_or_default().to_string();
    let (g, text) = match model_type.as_str() {
        "gemma" => (Generation::One, json),
        "gemma2" => (Generation::Two, json),
        "gemma3_text" => (Generation::Three, json),
        "gemma3" => match json.get("text_config") {
            Some(text @ Value::Object(_)) => (Generation::Three, text.clone()),
            _ => bail!("config.json: a gemma3 config needs a \"text_config\" object"),
        },
        other => bail!("config.json: model_type \"{other}\" is not a Gemma"),
    };
    let c: Config = parse_config(with_defaults(text, defaults(g))?)?;
    let (kv_heads, head_dim) = c.sizes.rotary_heads()?;
    let (hidden_size, layers) = (c.sizes.hidden_size, c.sizes.num_hidden_layers);
    let norm = NormSpec {
        kind: NormKind::RmsPlusOne,
        eps: c.rms_norm_eps,
    };
    let sliding = c.sliding(g)?;
    let window = match (sliding.iter().any(|&s| s), c.sliding_window) {
        (true, None) => bail!("config.json: sliding layers need a \"sliding_window\""),
        (_, w) => w,
    };
    let (global, local) = c.ropes(g)?;
    let max_positions = c.max_position_embeddings;
    let tables = vec![
        global.inv_freq(head_dim, max_positions)?,
        local.inv_freq(head_dim, max_positions)?,
    ];
    let scale = match (g, c.query_pre_attn_scalar) {
        (Generation::One, _) | (_, None) => 1.0 / (head_dim as f64).sqrt(),
        (_, Some(s)) if s > 0.0 => s.powf(-0.5),
        (_, Some(s)) => bail!("config.json: query_pre_attn_scalar ({s}) must be positive"),
    };
    let positive = |v: Option<f64>, name: &str| match v {
        Some(cap) if cap <= 0.0 => Err(anyhow!("config.json: {name} ({cap}) must be positive")),
        v => Ok(v),
    };
    let (attn_cap, final_cap) = match g {
        Generation::One => (None, None),
        // Gemma 3 keeps the fields too, applied when set (default unset).
        _ => (
            positive(c.attn_logit_softcapping, "attn_logit_softcapping")?,
            positive(c.final_logit_softcapping, "final_logit_softcapping")?,
        ),
    };
    Ok(DecoderSpec {
        model_type,
        vocab_size: c.sizes.vocab_size,
        hidden_size,
        num_layers: layers,
        max_positions,
        bos_token_id: c.bos_token_id,
        norm,
        layout: match g {
            Generation::One => Layout::Sequential,
            _ => Layout::Sandwich,
        },
        attention: AttentionSpec {
            hidden: hidden_size,
            heads: c.sizes.num_attention_heads,
            kv_heads,
            head_dim,
            fused_qkv: false,
            fused_per_head: false,
            qkv_bias: c.attention_bias,
            o_bias: c.attention_bias,
            qk_norm: match g {
                Generation::Three => QkNorm::PerHead(norm),
                _ => QkNorm::None,
            },
            softcap: attn_cap,
        },
        scales: vec![scale; layers],
        windows: sliding.iter().map(|&s| window.filter(|_| s)).collect(),
        rotary: Some(RotarySpec {
            dim: head_dim,
            tables,
            layer_table: sliding.iter().map(|&s| usize::from(s)).collect(),
            longrope: None,
        }),
        mlp: MlpSpec {
            kind: MlpKind::Gated,
            act: c.activation(g),
            hidden: hidden_size,
            intermediate: c.sizes.intermediate_size,
            bias: false,
        },
        learned_positions: None,
        head: match c.tie_word_embeddings {
            true => Head::Tied,
            false => Head::Own {
                bias: false,
                optional: true,
            },
        },
        embed_scale: Some((hidden_size as f64).sqrt()),
        final_softcap: final_cap,
        weight_layout: WeightLayout::OutIn,
    })
}

const MLP: MlpNames = MlpNames {
    up: "up_proj",
    gate: "gate_proj",
    gate_up: "gate_up_proj",
    down: "down_proj",
};

/// Where a Gemma 3 multimodal checkpoint keeps its language model: the Hub checkpoints,
/// and transformers 5.24's `save_pretrained`, write `language_model.model.*` (head, when
/// untied, `language_model.lm_head`); transformers' in-memory module names, which some
/// re-saved checkpoints carry, are `model.language_model.*` with `lm_head`.
const LANGUAGE_MODEL_ROOTS: [(&str, &str); 2] = [
    ("language_model.model", "language_model.lm_head"),
    ("model.language_model", "lm_head"),
];

/// Gemma's tensor names: Llama's, with the MLP norm called `post_attention_layernorm`.
pub fn names(vb: &Vars) -> Names {
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
        embed: "embed_tokens",
        positions: "",
        layers: "layers",
        final_norm: "norm",
        head,
        block: BlockNames {
            attn_norm: "input_layernorm",
            attn_post_norm: "post_attention_layernorm",
            mlp_norm: "pre_feedforward_layernorm",
            mlp_post_norm: "post_feedforward_layernorm",
            attn: "self_attn",
            attn_names: LLAMA_ATTENTION,
            mlp: "mlp",
            mlp_names: MLP,
        },
    }
}

/// Gemma 1's names: the norm before the MLP is `post_attention_layernorm`.
pub fn names_v1(vb: &Vars) -> Names {
    let mut n = names(vb);
    n.block.mlp_norm = "post_attention_layernorm";
    n.block.attn_post_norm = "";
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(model_type: &str, extra: Value) -> Value {
        let mut j = json!({"model_type": model_type, "vocab_size": 8, "hidden_size": 8,
            "intermediate_size": 8, "num_hidden_layers": 7, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4, "sliding_window": 3});
        j.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        j
    }

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
