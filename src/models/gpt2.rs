//! GPT-2, as transformers' `GPT2LMHeadModel`.
//!
//! Learned absolute positions, a pre-norm block `h = x + attn(ln_1(x))`, `h + mlp(ln_2(h))`,
//! fused q/k/v, and `Conv1D` projections whose weights are stored `(in, out)`. The head is
//! the token embedding.

use anyhow::{bail, Result};
use candle_nn::Activation;
use serde::Deserialize;

use super::components::attention::AttentionNames;
use super::components::block::BlockNames;
use super::components::mlp::MlpNames;
use super::components::{
    AttentionSpec, Layout, MlpKind, MlpSpec, NormKind, NormSpec, QkNorm, Vars, WeightLayout,
};
use super::decoder::{DecoderSpec, Head, Names};
use super::parse_config;

/// The config.json fields GPT-2 uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; transformers uses 4 × n_embd when absent or null.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_positions")]
    pub n_positions: usize,
    #[serde(default = "default_act")]
    pub activation_function: Activation,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

fn default_positions() -> usize {
    1024
}
fn default_act() -> Activation {
    Activation::NewGelu
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

impl Config {
    /// transformers' attention scale for block `layer`.
    fn scale(&self, layer: usize) -> f64 {
        let base = match self.scale_attn_weights {
            true => 1.0 / ((self.n_embd / self.n_head) as f64).sqrt(),
            false => 1.0,
        };
        match self.scale_attn_by_inverse_layer_idx {
            true => base / (layer + 1) as f64,
            false => base,
        }
    }
}

/// Translates GPT-2's config.json into the decoder's spec.
pub fn spec(json: serde_json::Value) -> Result<DecoderSpec> {
    let c: Config = parse_config(json)?;
    let (d, heads) = (c.n_embd, c.n_head);
    if heads == 0 || !d.is_multiple_of(heads) {
        bail!("config.json: n_embd ({d}) must be a multiple of n_head ({heads})");
    }
    Ok(DecoderSpec {
        model_type: "gpt2".into(),
        vocab_size: c.vocab_size,
        hidden_size: d,
        num_layers: c.n_layer,
        max_positions: c.n_positions,
        bos_token_id: c.bos_token_id,
        norm: NormSpec {
            kind: NormKind::LayerNorm,
            eps: c.layer_norm_epsilon,
        },
        layout: Layout::Sequential,
        attention: AttentionSpec {
            hidden: d,
            heads,
            kv_heads: heads,
            head_dim: d / heads,
            fused_qkv: true,
            fused_per_head: false,
            qkv_bias: true,
            o_bias: true,
            qk_norm: QkNorm::None,
            softcap: None,
        },
        scales: (0..c.n_layer).map(|i| c.scale(i)).collect(),
        windows: vec![None; c.n_layer],
        rotary: None,
        mlp: MlpSpec {
            kind: MlpKind::Plain,
            act: c.activation_function,
            hidden: d,
            intermediate: c.n_inner.unwrap_or(4 * d),
            bias: true,
        },
        learned_positions: Some(c.n_positions),
        head: match c.tie_word_embeddings {
            true => Head::Tied,
            false => Head::Own {
                bias: false,
                optional: true,
            },
        },
        embed_scale: None,
        final_softcap: None,
        weight_layout: WeightLayout::InOut,
    })
}

/// GPT-2's tensor names; save_pretrained writes `transformer.`-prefixed names, the Hub's
/// gpt2 file has none.
pub fn names(vb: &Vars) -> Names {
    Names {
        root: match vb.contains("transformer.wte.weight") {
            true => "transformer",
            false => "",
        },
        embed: "wte",
        positions: "wpe",
        layers: "h",
        final_norm: "ln_f",
        head: "lm_head",
        block: BlockNames {
            attn_norm: "ln_1",
            attn_post_norm: "",
            mlp_norm: "ln_2",
            mlp_post_norm: "",
            attn: "attn",
            attn_names: AttentionNames {
                q: "",
                k: "",
                v: "",
                qkv: "c_attn",
                o: "c_proj",
                q_norm: "",
                k_norm: "",
            },
            mlp: "mlp",
            mlp_names: MlpNames {
                up: "c_fc",
                gate: "",
                gate_up: "",
                down: "c_proj",
            },
        },
    }
}
