//! Llama (Llama 2/3, SmolLM, TinyLlama) and Mistral, as transformers' `LlamaForCausalLM`
//! and `MistralForCausalLM`. The decoder here also serves Qwen2 (qwen2.rs), which differs
//! only in its config.json and its biases.
//!
//! A pre-norm block, `h = x + attn(rms(x))`, then `h + mlp(rms(h))`, with a SwiGLU MLP,
//! grouped k/v heads and rotate-half rotary embeddings, optionally Llama 3 or linear scaled.

use std::marker::PhantomData;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{rms_norm, Activation, RmsNorm, VarBuilder};
use serde::{de::DeserializeOwned, Deserialize};

use super::layers::{linear_b, linear_no_bias, Embedding, Linear};
use super::{causal_mask, visit_blocks, Architecture, LensModel, ModelInfo};

/// Llama and Mistral: no biases unless config.json asks for them.
pub type Llama = Decoder<Config>;

/// The config.json fields Llama and Mistral add to [`Common`].
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// Mistral only; transformers' MistralConfig defaults it to 4096 when absent.
    #[serde(default = "default_window")]
    pub sliding_window: Option<usize>,
}

fn default_window() -> Option<usize> {
    Some(4096)
}

impl DecoderConfig for Config {
    fn common(&self) -> &Common {
        &self.common
    }

    fn variant(&self) -> Variant {
        let mistral = self.model_type == "mistral";
        let window = self.sliding_window.filter(|_| mistral);
        Variant {
            model_type: if mistral { "mistral" } else { "llama" },
            qkv_bias: self.attention_bias,
            o_bias: self.attention_bias,
            mlp_bias: self.mlp_bias,
            default_max_positions: if mistral { 4096 * 32 } else { 2048 },
            windows: vec![window; self.common.num_hidden_layers],
        }
    }
}

/// The config.json fields every Llama-like architecture spells the same way.
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
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
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(flatten)]
    pub rope: Rope,
}

fn default_act() -> Activation {
    Activation::Silu
}
fn default_rms_eps() -> f64 {
    1e-6
}

/// What sets one architecture apart from another on the shared decoder.
#[derive(Debug, Clone)]
pub struct Variant {
    pub model_type: &'static str,
    /// Biases on q/k/v, on o_proj, and on the MLP's three projections.
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// transformers' default when config.json has no `max_position_embeddings`.
    pub default_max_positions: usize,
    /// Per layer, the sliding window (keys this many positions back or more are hidden),
    /// or `None` for full causal attention. One window value per model.
    pub windows: Vec<Option<usize>>,
}

/// A config.json that maps onto the shared decoder.
pub trait DecoderConfig: DeserializeOwned + 'static {
    fn common(&self) -> &Common;
    fn variant(&self) -> Variant;
}

/// RoPE settings as transformers 4 (`rope_theta`, `rope_scaling`) or 5 (`rope_parameters`)
/// writes them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rope {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParams>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParams>,
}

/// One `rope_scaling` / `rope_parameters` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParams {
    #[serde(default)]
    pub rope_type: Option<String>,
    /// The key older configs use instead of `rope_type`.
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

/// The rope types [`Rope::inv_freq`] implements.
const ROPE_TYPES: &str = "default, linear, llama3";

impl Rope {
    /// The inverse frequencies transformers computes (`ROPE_INIT_FUNCTIONS` in
    /// modeling_rope_utils.py), in f32 and in the same order of operations. As there,
    /// `rope_scaling` wins over `rope_parameters`, and a theta inside them over the top-level
    /// `rope_theta`.
    pub fn inv_freq(&self, head_dim: usize, max_positions: usize) -> Result<Vec<f32>> {
        let p = self.rope_scaling.as_ref().or(self.rope_parameters.as_ref());
        let p = p.cloned().unwrap_or_default();
        let theta = p.rope_theta.or(self.rope_theta).unwrap_or(10_000.0) as f32;
        let plain = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / head_dim as f32));
        let kind = p.rope_type.as_deref().or(p.legacy_type.as_deref());
        match kind.unwrap_or("default") {
            "default" => Ok(plain.collect()),
            "linear" => {
                let factor = p.need(p.factor, "factor")? as f32;
                Ok(plain.map(|f| f / factor).collect())
            }
            "llama3" => p.llama3(plain, max_positions),
            other => bail!(
                "config.json: rope_type \"{other}\" is not supported; supported: {ROPE_TYPES}"
            ),
        }
    }
}

impl RopeParams {
    fn need(&self, v: Option<f64>, name: &str) -> Result<f64> {
        v.ok_or_else(|| anyhow!("config.json: rope scaling needs \"{name}\""))
    }

    /// `_compute_llama3_parameters`: long wavelengths divided by `factor`, short ones kept,
    /// and a smooth blend between.
    fn llama3(&self, plain: impl Iterator<Item = f32>, max_pos: usize) -> Result<Vec<f32>> {
        let factor = self.need(self.factor, "factor")? as f32;
        let low = self.need(self.low_freq_factor, "low_freq_factor")? as f32;
        let high = self.need(self.high_freq_factor, "high_freq_factor")? as f32;
        let old = self.original_max_position_embeddings.unwrap_or(max_pos) as f32;
        let (low_wavelen, high_wavelen) = (old / low, old / high);
        let scale = |f: f32| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            if wavelen > low_wavelen {
                f / factor
            } else if wavelen < high_wavelen {
                f
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        };
        Ok(plain.map(scale).collect())
    }
}

/// Everything the components read: the common fields, the variant and derived sizes.
#[derive(Debug, Clone)]
struct Spec {
    cfg: Common,
    variant: Variant,
    kv_heads: usize,
    head_dim: usize,
    max_positions: usize,
}

impl Spec {
    fn new<C: DecoderConfig>(c: &C) -> Result<Self> {
        let cfg = c.common().clone();
        let heads = cfg.num_attention_heads;
        let kv_heads = cfg.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            bail!("config.json: num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv_heads})");
        }
        let head_dim = match cfg.head_dim {
            Some(d) => d,
            None if cfg.hidden_size.is_multiple_of(heads) => cfg.hidden_size / heads,
            None => bail!(
                "config.json: hidden_size ({}) is not divisible by num_attention_heads ({heads})",
                cfg.hidden_size
            ),
        };
        if head_dim % 2 != 0 {
            bail!("config.json: head_dim ({head_dim}) must be even for rotary embeddings");
        }
        let variant = c.variant();
        let max_positions = cfg
            .max_position_embeddings
            .unwrap_or(variant.default_max_positions);
        Ok(Self {
            cfg,
            variant,
            kv_heads,
            head_dim,
            max_positions,
        })
    }
}

/// cos/sin for positions `0..T`, computed per pass rather than held for every position.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// `inv_freq` is `(1, head_dim/2)` in f32, as transformers keeps it.
    fn new(inv_freq: &Tensor, seq_len: usize, dtype: DType) -> Result<Self> {
        let pos = Tensor::arange(0u32, seq_len as u32, inv_freq.device())?
            .to_dtype(DType::F32)?
            .reshape((seq_len, 1))?;
        let freqs = pos.broadcast_mul(inv_freq)?;
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::rotary_emb::rope(xs, &self.cos, &self.sin)?)
    }
}

/// `causal_mask` plus transformers' `sliding_window_overlay`: query i sees keys j with
/// `i - window < j <= i`.
fn sliding_mask(seq_len: usize, window: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let band: Vec<f32> = (0..seq_len)
        .flat_map(|i| {
            (0..seq_len).map(move |j| {
                if i >= j + window {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    let band = Tensor::from_vec(band, (seq_len, seq_len), dev)?.to_dtype(dtype)?;
    Ok(causal_mask(seq_len, dtype, dev)?.broadcast_add(&band)?)
}

/// Scaled dot-product attention: `(B, H, T, hd)` queries against `(B, H_kv, T, hd)` keys and
/// values (repeated up to H heads), returned as `(B, T, H·hd)`. Shared with gpt2.rs.
pub(super) fn attend(
    q: &Tensor,
    k: Tensor,
    v: Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let (b, heads, t, _) = q.dims4()?;
    let groups = heads / k.dim(1)?;
    let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
    let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
    let scores = (q.contiguous()?.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, ()))?)
}

/// The head: `lm_head.weight`, or the embedding matrix when config.json ties them (as
/// transformers does, even if the file has a head) or when the checkpoint has no head
/// (Llama 3.2, SmolLM and GPT-2 ship none). Shared with gpt2.rs.
pub(super) fn head(embed: &Embedding, tied: bool, vb: &VarBuilder) -> Result<Linear> {
    if tied || !vb.contains_tensor("lm_head.weight") {
        return Ok(Linear::new(embed.table().clone(), None));
    }
    let (vocab, hidden) = embed.dims();
    Ok(linear_no_bias(hidden, vocab, vb.pp("lm_head"))?)
}

/// down(act(gate(x)) · up(x)).
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn new(s: &Spec, vb: VarBuilder) -> Result<Self> {
        let (d, i, bias) = (
            s.cfg.hidden_size,
            s.cfg.intermediate_size,
            s.variant.mlp_bias,
        );
        Ok(Self {
            gate_proj: linear_b(d, i, bias, vb.pp("gate_proj"))?,
            up_proj: linear_b(d, i, bias, vb.pp("up_proj"))?,
            down_proj: linear_b(i, d, bias, vb.pp("down_proj"))?,
            act: s.cfg.hidden_act,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = xs.apply(&self.gate_proj)?.apply(&self.act)?;
        Ok((gate * xs.apply(&self.up_proj)?)?.apply(&self.down_proj)?)
    }
}

/// Grouped-query attention with rotary q and k.
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(s: &Spec, vb: VarBuilder) -> Result<Self> {
        let (d, hd, heads) = (s.cfg.hidden_size, s.head_dim, s.cfg.num_attention_heads);
        let qkv = |out: usize, name: &str| linear_b(d, out, s.variant.qkv_bias, vb.pp(name));
        Ok(Self {
            q_proj: qkv(heads * hd, "q_proj")?,
            k_proj: qkv(s.kv_heads * hd, "k_proj")?,
            v_proj: qkv(s.kv_heads * hd, "v_proj")?,
            o_proj: linear_b(heads * hd, d, s.variant.o_bias, vb.pp("o_proj"))?,
            num_heads: heads,
            num_kv_heads: s.kv_heads,
            head_dim: hd,
        })
    }

    /// `(B, T, n·hd)` → contiguous `(B, n, T, hd)`.
    fn heads(&self, x: Tensor, n: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let x = x.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?;
        Ok(x.contiguous()?)
    }

    fn forward(&self, xs: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        let q = rotary.apply(&self.heads(xs.apply(&self.q_proj)?, self.num_heads)?)?;
        let k = rotary.apply(&self.heads(xs.apply(&self.k_proj)?, self.num_kv_heads)?)?;
        let v = self.heads(xs.apply(&self.v_proj)?, self.num_kv_heads)?;
        let out = attend(&q, k, v, mask, 1.0 / (self.head_dim as f64).sqrt())?;
        Ok(out.apply(&self.o_proj)?)
    }
}

/// `h = x + attn(rms(x))`, then `h + mlp(rms(h))`.
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(s: &Spec, vb: VarBuilder) -> Result<Self> {
        let norm = |name: &str| rms_norm(s.cfg.hidden_size, s.cfg.rms_norm_eps, vb.pp(name));
        Ok(Self {
            input_layernorm: norm("input_layernorm")?,
            self_attn: Attention::new(s, vb.pp("self_attn"))?,
            post_attention_layernorm: norm("post_attention_layernorm")?,
            mlp: Mlp::new(s, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&xs.apply(&self.input_layernorm)?, rotary, mask)?;
        let h = (xs + attn)?;
        let ff = self
            .mlp
            .forward(&h.apply(&self.post_attention_layernorm)?)?;
        Ok((h + ff)?)
    }
}

/// A Llama-like causal LM; `C` is the config.json it reads. Blocks are built from `layers`
/// when the forward pass reaches them.
pub struct Decoder<C> {
    info: ModelInfo,
    spec: Spec,
    layers: VarBuilder<'static>,
    embed_tokens: Embedding,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Tensor,
    dtype: DType,
    config: PhantomData<fn() -> C>,
}

impl<C> Decoder<C> {
    fn block(&self, i: usize) -> Result<DecoderLayer> {
        DecoderLayer::new(&self.spec, self.layers.pp(i))
    }

    /// The mask for each layer, built once per distinct window.
    fn masks(&self, seq_len: usize, dev: &Device) -> Result<Vec<Tensor>> {
        let full = causal_mask(seq_len, self.dtype, dev)?;
        let window = self.spec.variant.windows.iter().flatten().next();
        let sliding = match window {
            Some(&w) if w < seq_len => sliding_mask(seq_len, w, self.dtype, dev)?,
            _ => full.clone(),
        };
        let pick = |w: &Option<usize>| match w {
            Some(_) => sliding.clone(),
            None => full.clone(),
        };
        Ok(self.spec.variant.windows.iter().map(pick).collect())
    }
}

impl<C: DecoderConfig> Architecture for Decoder<C> {
    type Config = C;

    fn new(cfg: &C, vb: VarBuilder<'static>) -> Result<Self> {
        let spec = Spec::new(cfg)?;
        let c = &spec.cfg;
        let inv_freq = c.rope.inv_freq(spec.head_dim, spec.max_positions)?;
        let n = inv_freq.len();
        let m = vb.pp("model");
        let embed_tokens = Embedding::new(c.vocab_size, c.hidden_size, m.pp("embed_tokens"))?;
        Ok(Self {
            info: ModelInfo {
                model_type: spec.variant.model_type.into(),
                num_layers: c.num_hidden_layers,
                max_positions: spec.max_positions,
                vocab_size: c.vocab_size,
                bos_token_id: c.bos_token_id,
            },
            layers: m.pp("layers"),
            lm_head: head(&embed_tokens, c.tie_word_embeddings, &vb)?,
            embed_tokens,
            norm: rms_norm(c.hidden_size, c.rms_norm_eps, m.pp("norm"))?,
            inv_freq: Tensor::from_vec(inv_freq, (1, n), vb.device())?,
            dtype: vb.dtype(),
            spec,
            config: PhantomData,
        })
    }

    fn check_blocks(&self) -> Result<()> {
        (0..self.spec.cfg.num_hidden_layers).try_for_each(|i| self.block(i).map(drop))
    }
}

impl<C> LensModel for Decoder<C> {
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
        let rotary = Rotary::new(&self.inv_freq, ids.len(), self.dtype)?;
        let masks = self.masks(ids.len(), device)?;
        let xs = self.embed_tokens.forward(&input)?;
        visit_blocks(xs, masks.len(), visit, |i, xs| {
            self.block(i)?.forward(xs, &rotary, &masks[i])
        })
    }

    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.apply(&self.norm)?)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.apply(&self.lm_head)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(json: serde_json::Value) -> Rope {
        serde_json::from_value(json).unwrap()
    }

    /// llama-tiny's settings; the expected values are transformers' `inv_freq` (f32).
    #[test]
    fn llama3_inv_freq_matches_transformers() {
        let r = rope(serde_json::json!({"rope_theta": 10000.0, "rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}));
        let want = [0.576_056_36f32, 0.0125, 0.00125, 0.000125];
        assert_eq!(r.inv_freq(8, 64).unwrap(), want);
    }

    /// Older configs spell the type `type`; a theta inside the parameters wins.
    #[test]
    fn linear_scaling_and_theta_precedence() {
        let r = rope(serde_json::json!({"rope_theta": 1.0,
            "rope_parameters": {"type": "linear", "factor": 2.0, "rope_theta": 10000.0}}));
        assert_eq!(r.inv_freq(4, 64).unwrap(), [0.5, 0.005]);
    }

    #[test]
    fn sliding_mask_keeps_the_last_window_keys() {
        let m: Vec<Vec<f32>> = sliding_mask(4, 2, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        let seen: Vec<Vec<u8>> = m
            .iter()
            .map(|r| r.iter().map(|&v| (v == 0.0) as u8).collect())
            .collect();
        assert_eq!(
            seen,
            [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
        );
    }
}
