//! GPT-NeoX and Pythia, as transformers' `GPTNeoXForCausalLM`.
//!
//! Attention and the MLP read the residual through their own LayerNorms and are both added
//! to it (`use_parallel_residual`, the default), or run one after the other when it is off.
//! One fused `query_key_value` projection whose rows are laid out per head, partial rotary
//! embeddings (`rotary_pct`, or transformers 5's `partial_rotary_factor`), biases, and an
//! untied `embed_out` head.

use anyhow::{bail, Result};
use candle_nn::Activation;
use serde::Deserialize;

use super::components::attention::AttentionNames;
use super::components::block::BlockNames;
use super::components::mlp::MlpNames;
use super::components::rotary::{partial_dim, Rope};
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, QkNorm, RotarySpec, Vars,
    WeightLayout,
};
use super::decoder::{DecoderSpec, Head, Names, Sizes};
use super::parse_config;

/// The config.json fields GPT-NeoX uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub sizes: Sizes,
    #[serde(flatten)]
    pub rope: Rope,
    #[serde(default)]
    pub hidden_act: Activation,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "yes")]
    pub use_parallel_residual: bool,
    #[serde(default = "yes")]
    pub attention_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The rotating fraction as GPT-NeoX checkpoints spell it.
    #[serde(default)]
    pub rotary_pct: Option<f64>,
    /// The same, spelt as other architectures do.
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    /// The rotary base as GPT-NeoX checkpoints spell it.
    #[serde(default)]
    pub rotary_emb_base: Option<f64>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

fn default_max_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

impl Config {
    /// As `GPTNeoXConfig`: the parameters object wins, then `rotary_pct`, then 0.25.
    fn rotary_fraction(&self) -> f64 {
        let f = self.rope.partial_factor().or(self.rotary_pct);
        f.or(self.partial_rotary_factor).unwrap_or(0.25)
    }
}

/// Translates GPT-NeoX's config.json into the decoder's spec.
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let mut c: Config = parse_config(json)?;
    let (kv_heads, head_dim) = c.sizes.heads()?;
    let Sizes {
        vocab_size,
        hidden_size,
        intermediate_size,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        ..
    } = c.sizes;
    if kv_heads != heads || head_dim * heads != hidden_size {
        bail!("config.json: gpt_neox needs num_key_value_heads = num_attention_heads ({heads}) and head_dim = hidden_size / num_attention_heads");
    }
    let dim = partial_dim(c.rotary_fraction(), head_dim)?;
    c.rope.rope_theta = c.rotary_emb_base.or(c.rope.rope_theta);
    let norm = NormSpec {
        kind: NormKind::LayerNorm,
        eps: c.layer_norm_eps,
    };
    Ok(DecoderSpec {
        model_type: "gpt_neox".into(),
        vocab_size,
        hidden_size,
        num_layers: layers,
        max_positions: c.max_position_embeddings,
        bos_token_id: c.bos_token_id,
        norm,
        layout: match c.use_parallel_residual {
            true => Layout::ParallelTwoNorms,
            false => Layout::Sequential,
        },
        attention: AttentionSpec {
            hidden: hidden_size,
            heads,
            kv_heads,
            head_dim,
            fused_qkv: true,
            fused_per_head: true,
            qkv_bias: c.attention_bias,
            o_bias: c.attention_bias,
            qk_norm: QkNorm::None,
            softcap: None,
        },
        scales: vec![1.0 / (head_dim as f64).sqrt(); layers],
        windows: vec![None; layers],
        rotary: Some(RotarySpec::uniform(
            dim,
            c.rope.inv_freq(dim, c.max_position_embeddings)?,
            layers,
        )),
        mlp: MlpSpec {
            kind: MlpKind::Plain,
            act: c.hidden_act,
            hidden: hidden_size,
            intermediate: intermediate_size,
            bias: true,
        },
        learned_positions: None,
        embed_scale: None,
        final_softcap: None,
        head: match c.tie_word_embeddings {
            true => Head::Tied,
            false => Head::Own {
                bias: false,
                optional: false,
            },
        },
        weight_layout: WeightLayout::OutIn,
    })
}

/// GPT-NeoX's tensor names.
pub fn names(_: &Vars) -> Names {
    Names {
        root: "gpt_neox",
        embed: "embed_in",
        positions: "",
        layers: "layers",
        final_norm: "final_layer_norm",
        head: "embed_out",
        block: BlockNames {
            attn_norm: "input_layernorm",
            attn_post_norm: "",
            mlp_norm: "post_attention_layernorm",
            mlp_post_norm: "",
            attn: "attention",
            attn_names: AttentionNames {
                qkv: "query_key_value",
                o: "dense",
                ..super::decoder::LLAMA_ATTENTION
            },
            mlp: "mlp",
            mlp_names: MlpNames {
                up: "dense_h_to_4h",
                gate: "",
                gate_up: "",
                down: "dense_4h_to_h",
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(extra: serde_json::Value) -> Result<DecoderSpec> {
        spec(crate::models::test_config(extra))
    }

    /// Pythia's `rotary_pct`/`rotary_emb_base` and transformers 5's `rope_parameters` give
    /// the same rotary settings; the parameters object wins, as in `GPTNeoXConfig`.
    #[test]
    fn both_rotary_spellings_are_read() {
        let old = spec_of(serde_json::json!({"rotary_pct": 0.5, "rotary_emb_base": 100.0}));
        let new = spec_of(serde_json::json!({"rope_parameters":
            {"rope_type": "default", "rope_theta": 100.0, "partial_rotary_factor": 0.5},
            "rotary_pct": 0.25}));
        let (old, new) = (old.unwrap().rotary.unwrap(), new.unwrap().rotary.unwrap());
        assert_eq!(old.dim, 4);
        assert_eq!(old, new);
        assert_eq!(old.tables[0], [1.0, 0.1]);
        assert_eq!(
            spec_of(serde_json::json!({})).unwrap().rotary.unwrap().dim,
            2
        );
    }

    #[test]
    fn residual_layout_follows_use_parallel_residual() {
        let layout = |v: bool| {
            let s = spec_of(serde_json::json!({"use_parallel_residual": v})).unwrap();
            s.layout
        };
        assert_eq!(layout(true), Layout::ParallelTwoNorms);
        assert_eq!(layout(false), Layout::Sequential);
    }

    #[test]
    fn grouped_kv_heads_are_refused() {
        let e = spec_of(serde_json::json!({"num_key_value_heads": 1})).unwrap_err();
        assert!(e.to_string().contains("num_key_value_heads"), "{e}");
    }
}
