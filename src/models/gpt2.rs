//! GPT-2, as transformers' `GPT2LMHeadModel`.
//!
//! Learned absolute positions, a pre-norm block `h = x + attn(ln_1(x))`, `h + mlp(ln_2(h))`,
//! fused q/k/v, and `Conv1D` projections whose weights are stored `(in, out)`. The head is
//! the token embedding.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::{layer_norm, Activation, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::layers::{Embedding, Linear};
use super::llama::{attend, head};
use super::{causal_mask, visit_blocks, Architecture, LensModel, ModelInfo};

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
    fn validate(&self) -> Result<()> {
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            bail!(
                "config.json: n_embd ({}) must be a multiple of n_head ({})",
                self.n_embd,
                self.n_head
            );
        }
        Ok(())
    }

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

/// transformers' `Conv1D`: the weight is stored `(in, out)` and applied as `x @ W + b`,
/// which is a [`Linear`] over its transpose. The transposed layout cannot be read in place
/// by the half-weight kernel, so it is converted to the compute dtype.
fn conv1d(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get((d_in, d_out), "weight")?.t()?;
    Ok(Linear::new(w, Some(vb.get(d_out, "bias")?)))
}

/// Fused q/k/v projection, causal attention, output projection.
struct Attention {
    c_attn: Linear,
    c_proj: Linear,
    num_heads: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &Config, layer: usize, vb: VarBuilder) -> Result<Self> {
        let d = cfg.n_embd;
        Ok(Self {
            c_attn: conv1d(d, 3 * d, vb.pp("c_attn"))?,
            c_proj: conv1d(d, d, vb.pp("c_proj"))?,
            num_heads: cfg.n_head,
            scale: cfg.scale(layer),
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        let qkv = xs.apply(&self.c_attn)?;
        let part = |i: usize| -> Result<Tensor> {
            let x = qkv.narrow(D::Minus1, i * d, d)?;
            let x = x.reshape((b, t, self.num_heads, d / self.num_heads))?;
            Ok(x.transpose(1, 2)?.contiguous()?)
        };
        let out = attend(&part(0)?, part(1)?, part(2)?, mask, self.scale)?;
        Ok(out.apply(&self.c_proj)?)
    }
}

/// c_fc → activation → c_proj.
struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.n_inner.unwrap_or(4 * cfg.n_embd);
        Ok(Self {
            c_fc: conv1d(cfg.n_embd, inner, vb.pp("c_fc"))?,
            c_proj: conv1d(inner, cfg.n_embd, vb.pp("c_proj"))?,
            act: cfg.activation_function,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs
            .apply(&self.c_fc)?
            .apply(&self.act)?
            .apply(&self.c_proj)?)
    }
}

/// `h = x + attn(ln_1(x))`, then `h + mlp(ln_2(h))`.
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(cfg: &Config, layer: usize, vb: VarBuilder) -> Result<Self> {
        let norm = |name: &str| layer_norm(cfg.n_embd, cfg.layer_norm_epsilon, vb.pp(name));
        Ok(Self {
            ln_1: norm("ln_1")?,
            attn: Attention::new(cfg, layer, vb.pp("attn"))?,
            ln_2: norm("ln_2")?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = (xs + self.attn.forward(&xs.apply(&self.ln_1)?, mask)?)?;
        let ff = self.mlp.forward(&h.apply(&self.ln_2)?)?;
        Ok((h + ff)?)
    }
}

/// The whole `GPT2LMHeadModel`; blocks are built from `layers` when the forward pass
/// reaches them.
pub struct Gpt2 {
    info: ModelInfo,
    cfg: Config,
    layers: VarBuilder<'static>,
    wte: Embedding,
    wpe: Embedding,
    ln_f: LayerNorm,
    lm_head: Linear,
    dtype: DType,
}

impl Gpt2 {
    fn block(&self, i: usize) -> Result<Block> {
        Block::new(&self.cfg, i, self.layers.pp(i))
    }
}

impl Architecture for Gpt2 {
    type Config = Config;

    fn new(cfg: &Config, vb: VarBuilder<'static>) -> Result<Self> {
        cfg.validate()?;
        // save_pretrained writes `transformer.`-prefixed names; the Hub's gpt2 file has none.
        let t = match vb.contains_tensor("transformer.wte.weight") {
            true => vb.pp("transformer"),
            false => vb.clone(),
        };
        let wte = Embedding::new(cfg.vocab_size, cfg.n_embd, t.pp("wte"))?;
        Ok(Self {
            info: ModelInfo {
                model_type: "gpt2".into(),
                num_layers: cfg.n_layer,
                max_positions: cfg.n_positions,
                vocab_size: cfg.vocab_size,
                bos_token_id: cfg.bos_token_id,
            },
            cfg: cfg.clone(),
            layers: t.pp("h"),
            wpe: Embedding::new(cfg.n_positions, cfg.n_embd, t.pp("wpe"))?,
            ln_f: layer_norm(cfg.n_embd, cfg.layer_norm_epsilon, t.pp("ln_f"))?,
            lm_head: head(&wte, cfg.tie_word_embeddings, &vb)?,
            wte,
            dtype: vb.dtype(),
        })
    }

    fn check_blocks(&self) -> Result<()> {
        (0..self.cfg.n_layer).try_for_each(|i| self.block(i).map(drop))
    }
}

impl LensModel for Gpt2 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward_layers(
        &self,
        ids: &[u32],
        visit: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let device = self.wte.table().device();
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let positions = Tensor::arange(0u32, ids.len() as u32, device)?.unsqueeze(0)?;
        let mask = causal_mask(ids.len(), self.dtype, device)?;
        let xs = (self.wte.forward(&input)? + self.wpe.forward(&positions)?)?;
        visit_blocks(xs, self.cfg.n_layer, visit, |i, xs| {
            self.block(i)?.forward(xs, &mask)
        })
    }

    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.apply(&self.ln_f)?)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.apply(&self.lm_head)?)
    }
}
