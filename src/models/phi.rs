//! Phi (phi-1, phi-1_5, phi-2), as transformers' `PhiForCausalLM`.
//!
//! A parallel block: one `input_layernorm` feeds both attention and the MLP, and both are
//! added to the residual. Partial rotary embeddings, biases everywhere, optional per-head
//! q/k LayerNorms, and a head with a bias.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{layer_norm, Activation, LayerNorm, VarBuilder};
use serde::Deserialize;

use super::layers::{linear, Embedding, Linear};
use super::{causal_mask, visit_blocks, Architecture, LensModel, ModelInfo};

/// The config.json fields Phi uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_partial")]
    pub partial_rotary_factor: f64,
    #[serde(default)]
    pub qk_layernorm: bool,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
}

fn default_act() -> Activation {
    Activation::NewGelu
}
fn default_max_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_partial() -> f64 {
    0.5
}

impl Config {
    fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn validate(&self) -> Result<()> {
        let heads = self.num_attention_heads;
        if heads == 0 || self.num_kv_heads() == 0 || !heads.is_multiple_of(self.num_kv_heads()) {
            bail!("config.json: num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({})", self.num_kv_heads());
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(heads) {
            bail!(
                "config.json: hidden_size ({}) is not divisible by num_attention_heads ({heads})",
                self.hidden_size
            );
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            bail!("config.json: rope_scaling is not supported for phi models; remove it or use the original config");
        }
        if !(0.0..=1.0).contains(&self.partial_rotary_factor) {
            bail!("config.json: partial_rotary_factor must lie in [0, 1]");
        }
        Ok(())
    }
}

/// Rotary tables for the first `dim` channels of each head.
#[derive(Debug, Clone)]
struct RotaryEmbedding {
    dim: usize,
    sin: Tensor,
    cos: Tensor,
}

impl RotaryEmbedding {
    /// Tables for positions `0..seq_len` (built per forward pass, so a huge
    /// max_position_embeddings costs nothing).
    fn new(cfg: &Config, seq_len: usize, dtype: DType, dev: &Device) -> Result<Self> {
        let dim = (cfg.partial_rotary_factor * cfg.head_dim() as f64) as usize;
        let inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1f32 / (cfg.rope_theta as f32).powf(i as f32 / dim as f32))
            .collect();
        let n = inv_freq.len();
        let inv_freq = Tensor::from_vec(inv_freq, (1, n), dev)?;
        let t = Tensor::arange(0u32, seq_len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((seq_len, 1))?;
        let freqs = t.matmul(&inv_freq)?;
        Ok(Self {
            dim,
            sin: freqs.sin()?.to_dtype(dtype)?,
            cos: freqs.cos()?.to_dtype(dtype)?,
        })
    }

    /// Rotates the first `dim` channels of `(B, H, T, hd)`, passing the rest through.
    fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        if self.dim == 0 {
            return Ok(xs.clone());
        }
        let (_, _, seq_len, head_dim) = xs.dims4()?;
        let rot = xs.narrow(D::Minus1, 0, self.dim)?.contiguous()?;
        let cos = self.cos.narrow(0, 0, seq_len)?;
        let sin = self.sin.narrow(0, 0, seq_len)?;
        let rot = candle_nn::rotary_emb::rope(&rot, &cos, &sin)?;
        if self.dim == head_dim {
            return Ok(rot);
        }
        let pass = xs.narrow(D::Minus1, self.dim, head_dim - self.dim)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }
}

/// fc1 → activation → fc2.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(cfg.hidden_size, cfg.intermediate_size, vb.pp("fc1"))?,
            fc2: linear(cfg.intermediate_size, cfg.hidden_size, vb.pp("fc2"))?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(xs.apply(&self.fc1)?.apply(&self.act)?.apply(&self.fc2)?)
    }
}

/// Multi-head attention with partial rotary embeddings and grouped k/v heads.
#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    dense: Linear,
    q_layernorm: Option<LayerNorm>,
    k_layernorm: Option<LayerNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (heads, kv_heads, hd) = (cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_dim());
        let qk_norm = |name: &str| -> Result<Option<LayerNorm>> {
            match cfg.qk_layernorm {
                true => Ok(Some(layer_norm(hd, cfg.layer_norm_eps, vb.pp(name))?)),
                false => Ok(None),
            }
        };
        Ok(Self {
            q_proj: linear(cfg.hidden_size, heads * hd, vb.pp("q_proj"))?,
            k_proj: linear(cfg.hidden_size, kv_heads * hd, vb.pp("k_proj"))?,
            v_proj: linear(cfg.hidden_size, kv_heads * hd, vb.pp("v_proj"))?,
            dense: linear(heads * hd, cfg.hidden_size, vb.pp("dense"))?,
            q_layernorm: qk_norm("q_layernorm")?,
            k_layernorm: qk_norm("k_layernorm")?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim: hd,
        })
    }

    /// `(B, T, D)` → `(B, heads, T, hd)`, with the optional per-head LayerNorm.
    fn heads(&self, x: Tensor, n: usize, norm: &Option<LayerNorm>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let x = x.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?;
        Ok(match norm {
            Some(ln) => x.contiguous()?.apply(ln)?,
            None => x,
        })
    }

    fn forward(&self, xs: &Tensor, rotary: &RotaryEmbedding, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let q = self.heads(self.q_proj.forward(xs)?, self.num_heads, &self.q_layernorm)?;
        let k = self.heads(
            self.k_proj.forward(xs)?,
            self.num_kv_heads,
            &self.k_layernorm,
        )?;
        let v = self.heads(self.v_proj.forward(xs)?, self.num_kv_heads, &None)?;
        let q = rotary.apply(&q)?;
        let k = rotary.apply(&k)?;
        let groups = self.num_heads / self.num_kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.contiguous()?.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, ()))?;
        Ok(self.dense.forward(&out)?)
    }
}

/// `x + attn(ln(x)) + mlp(ln(x))`.
#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: LayerNorm,
    self_attn: Attention,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            input_layernorm: layer_norm(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, rotary: &RotaryEmbedding, mask: &Tensor) -> Result<Tensor> {
        let h = xs.apply(&self.input_layernorm)?;
        let attn = self.self_attn.forward(&h, rotary, mask)?;
        let ff = self.mlp.forward(&h)?;
        Ok(((attn + ff)? + xs)?)
    }
}

/// The whole `PhiForCausalLM`; blocks are built from `layers` when the forward pass
/// reaches them.
#[derive(Clone)]
pub struct Phi {
    info: ModelInfo,
    cfg: Config,
    layers: VarBuilder<'static>,
    embed_tokens: Embedding,
    final_layernorm: LayerNorm,
    lm_head: Linear,
    dtype: DType,
}

impl Phi {
    fn block(&self, i: usize) -> Result<DecoderLayer> {
        DecoderLayer::new(&self.cfg, self.layers.pp(i))
    }
}

impl Architecture for Phi {
    type Config = Config;

    fn new(cfg: &Config, vb: VarBuilder<'static>) -> Result<Self> {
        cfg.validate()?;
        let m = vb.pp("model");
        Ok(Self {
            info: ModelInfo {
                model_type: "phi".into(),
                num_layers: cfg.num_hidden_layers,
                max_positions: cfg.max_position_embeddings,
                vocab_size: cfg.vocab_size,
                bos_token_id: cfg.bos_token_id,
            },
            cfg: cfg.clone(),
            layers: m.pp("layers"),
            embed_tokens: Embedding::new(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?,
            final_layernorm: layer_norm(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                m.pp("final_layernorm"),
            )?,
            lm_head: linear(cfg.hidden_size, cfg.vocab_size, vb.pp("lm_head"))?,
            dtype: vb.dtype(),
        })
    }

    fn check_blocks(&self) -> Result<()> {
        (0..self.cfg.num_hidden_layers).try_for_each(|i| self.block(i).map(drop))
    }
}

impl LensModel for Phi {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward_layers(
        &self,
        ids: &[u32],
        visit: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let device = self.embed_tokens.table().device();
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let mask = causal_mask(ids.len(), self.dtype, device)?;
        let rotary = RotaryEmbedding::new(&self.cfg, ids.len(), self.dtype, device)?;
        let xs = self.embed_tokens.forward(&input)?;
        visit_blocks(xs, self.cfg.num_hidden_layers, visit, |i, xs| {
            self.block(i)?.forward(xs, &rotary, &mask)
        })
    }

    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.apply(&self.final_layernorm)?)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.apply(&self.lm_head)?)
    }
}
