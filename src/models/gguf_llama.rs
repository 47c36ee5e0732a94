//! Llama-architecture GGUF checkpoints (llama.cpp's format: SmolLM2, Llama 2/3, Mistral, …).
//!
//! The block matrices stay quantized in memory, as the file stores them. How they are
//! multiplied is [`Matmul`]'s choice; the default dequantizes each block's matrices to the
//! compute dtype when the forward pass reaches the block and drops them after it, so the
//! activations meet exactly the weights transformers computes with (it dequantizes GGUF
//! files on load), while memory stays at the file's size plus one block.
//!
//! The embedding table, and the head when the file has its own `output.weight`, are
//! dequantized once at load and kept: the lens runs the head once per layer (L+1 times per
//! prompt), so dequantizing it per call would repeat the largest dequantization L+1 times,
//! and running it quantized would round every normed hidden state to 8 bits before the
//! projection the lens exists to show. For SmolLM2-135M that table is 49152×576 f32, 113 MB.
//!
//! Measured on SmolLM2-135M-Instruct Q4_1 against transformers (tests/smollm2.rs's two
//! prompts, 31 layers, 403 cells per lens):
//! - dequantized blocks and head (the default): max |Δ entropy| 3.4e-5 nats through the
//!   final norm, 6.8e-5 raw; every argmax agrees; final logits within 1.5e-5;
//! - quantized blocks ([`Matmul::Quantized`]): max |Δ entropy| 0.29 / 0.63 nats, 11 / 19
//!   argmaxes flip, at reference margins up to 1.8 logits; final logits off by up to 0.61;
//! - quantized head alone (Q8_0 `QMatMul` over dequantized blocks): max |Δ entropy| 0.088,
//!   4 argmaxes flip.
//!
//! On this model the dequantized path was also the faster one (0.9–1.6 s against 2.2–3.3 s
//! per prompt and lens mode on 2 cores), since the quantized kernels first quantize every
//! activation row.
//!
//! llama.cpp's converter permutes the rows of `attn_q`/`attn_k` so that rotary pairs are
//! adjacent (GPT-J's interleaved layout); rotating with [`candle_nn::rotary_emb::rope_i`] on
//! those rows is the same map as transformers' `rotate_half` on the un-permuted weights.
//! candle-transformers' `quantized_llama` does the same.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::RmsNorm;
use rayon::prelude::*;

use super::{causal_mask, visit_blocks, LensModel, ModelInfo};
use crate::gguf::GgufFile;

/// GGUF architectures (`general.architecture`) this build can run.
pub const GGUF_ARCHITECTURES: &[&str] = &["llama"];

/// How block matrices are multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matmul {
    /// Dequantize each block's matrices when the block runs: the same numbers as
    /// transformers' dequantized model, at the cost of a dequantization per forward pass.
    #[default]
    Dequantized,
    /// candle's quantized matmul: no dequantization, but it rounds each activation row to
    /// 8 bits per 32-value block (Q8_0/Q8_1) before the dot products, which moves the lens
    /// away from the dequantized reference (see the module docs for how far). f32 only.
    Quantized,
}

/// The hyper-parameters the forward pass needs, from the `llama.*` metadata.
#[derive(Debug, Clone)]
struct Hparams {
    layers: usize,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    vocab: usize,
    context: usize,
    eps: f64,
    rope_theta: f64,
    /// Positions are divided by this ("linear" rope scaling); 1 otherwise.
    rope_linear: f64,
}

impl Hparams {
    fn read(file: &GgufFile, arch: &str) -> Result<Self> {
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = file.usize(&key("embedding_length"))?;
        let heads = file.usize(&key("attention.head_count"))?;
        let kv_heads = file
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(heads);
        let head_dim = match file.opt_usize(&key("attention.key_length"))? {
            Some(d) => d,
            None if heads > 0 && hidden % heads == 0 => hidden / heads,
            None => bail!(
                "{}: embedding_length {hidden} is not divisible by head_count {heads}",
                file.path().display()
            ),
        };
        let vocab = match file.shape("token_embd.weight") {
            Some(&[rows, _]) => rows,
            _ => file.usize(&key("vocab_size"))?,
        };
        let hp = Self {
            layers: file.usize(&key("block_count"))?,
            hidden,
            heads,
            kv_heads,
            head_dim,
            ffn: file.usize(&key("feed_forward_length"))?,
            vocab,
            context: file.usize(&key("context_length"))?,
            eps: file.f64(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: file.f64(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope_linear: rope_linear_factor(file, arch)?,
        };
        hp.validate(file, arch)?;
        Ok(hp)
    }

    fn validate(&self, file: &GgufFile, arch: &str) -> Result<()> {
        let path = file.path().display();
        if self.heads == 0 || self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            bail!(
                "{path}: head_count ({}) must be a positive multiple of head_count_kv ({})",
                self.heads,
                self.kv_heads
            );
        }
        let rope_dim = file
            .opt_usize(&format!("{arch}.rope.dimension_count"))?
            .unwrap_or(self.head_dim);
        if rope_dim != self.head_dim || !self.head_dim.is_multiple_of(2) {
            bail!("{path}: rotary dimension {rope_dim} with head size {} is not supported (llama rotates whole, even-sized heads)", self.head_dim);
        }
        Ok(())
    }
}

/// `rope.scaling.type`: none and linear are supported; others change attention in ways
/// this implementation does not reproduce, so they are refused rather than run wrong.
fn rope_linear_factor(file: &GgufFile, arch: &str) -> Result<f64> {
    let kind = file.opt_string(&format!("{arch}.rope.scaling.type"))?;
    match kind.as_deref() {
        None | Some("none") => Ok(1.0),
        Some("linear") => Ok(file
            .f64(&format!("{arch}.rope.scaling.factor"))
            .unwrap_or(1.0)),
        Some(other) => bail!(
            "{}: rope scaling \"{other}\" is not supported (only none and linear)",
            file.path().display()
        ),
    }
}

/// One block's tensors as stored: norms in f32/dtype, matrices quantized.
struct Block {
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    /// q, k, v, o, gate, up, down.
    mats: [Arc<QTensor>; 7],
}

/// One block's matrices ready to multiply, alive only while the block runs.
struct Ready {
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    o: QMatMul,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

/// The whole model: quantized blocks plus the dequantized embedding table and head.
pub struct GgufLlama {
    info: ModelInfo,
    hp: Hparams,
    embed: Tensor,
    head: Tensor,
    norm: RmsNorm,
    blocks: Vec<Block>,
    /// `rope_freqs.weight` (Llama 3.1-style per-frequency divisors), when present.
    rope_factors: Option<Vec<f32>>,
    matmul: Matmul,
    dtype: DType,
    device: Device,
}

impl GgufLlama {
    /// Loads every tensor of a llama-architecture GGUF file, checking each shape against
    /// the metadata; `dtype` is the compute dtype of activations and dequantized weights.
    pub fn load(
        file: &mut GgufFile,
        dtype: DType,
        matmul: Matmul,
        device: &Device,
    ) -> Result<Self> {
        let arch = check_architecture(file)?;
        if matmul == Matmul::Quantized && dtype != DType::F32 {
            bail!("quantized matmul computes in f32; use --dtype f32");
        }
        let hp = Hparams::read(file, &arch)?;
        let (v, d) = (hp.vocab, hp.hidden);
        let embed_q = file.tensor("token_embd.weight", &[v, d], device)?;
        let embed = embed_q.dequantize(device)?.to_dtype(dtype)?;
        let head = match file.shape("output.weight") {
            Some(_) => file
                .tensor("output.weight", &[v, d], device)?
                .dequantize(device)?
                .to_dtype(dtype)?,
            None => embed.clone(),
        };
        let norm = rms_norm(file, "output_norm.weight", d, hp.eps, dtype, device)?;
        let blocks = (0..hp.layers)
            .map(|i| read_block(file, &hp, i, dtype, device))
            .collect::<Result<Vec<_>>>()?;
        let rope_factors = match file.shape("rope_freqs.weight") {
            Some(_) => Some(
                file.tensor("rope_freqs.weight", &[hp.head_dim / 2], device)?
                    .dequantize(device)?
                    .to_vec1::<f32>()?,
            ),
            None => None,
        };
        let info = ModelInfo {
            model_type: arch,
            num_layers: hp.layers,
            max_positions: hp.context,
            vocab_size: v,
            bos_token_id: file
                .opt_usize("tokenizer.ggml.bos_token_id")?
                .map(|id| id as u32),
        };
        Ok(Self {
            info,
            hp,
            embed,
            head,
            norm,
            blocks,
            rope_factors,
            matmul,
            dtype,
            device: device.clone(),
        })
    }

    /// Makes block `i`'s matrices multipliable, dequantizing them in parallel unless the
    /// quantized matmul is in use.
    fn ready(&self, i: usize) -> Result<Ready> {
        let mats = &self.blocks[i].mats;
        let built: Vec<QMatMul> = mats
            .par_iter()
            .map(|q| self.prepare(q))
            .collect::<Result<_>>()?;
        let [q, k, v, o, gate, up, down]: [QMatMul; 7] = built
            .try_into()
            .unwrap_or_else(|_| unreachable!("seven matrices in, seven out"));
        Ok(Ready {
            q,
            k,
            v,
            o,
            gate,
            up,
            down,
        })
    }

    fn prepare(&self, q: &Arc<QTensor>) -> Result<QMatMul> {
        Ok(match self.matmul {
            Matmul::Quantized => QMatMul::from_arc(q.clone())?,
            Matmul::Dequantized => {
                QMatMul::Tensor(q.dequantize(&self.device)?.to_dtype(self.dtype)?)
            }
        })
    }

    /// cos/sin tables `(T, head_dim/2)` for positions 0..T.
    fn rope_tables(&self, seq_len: usize) -> Result<(Tensor, Tensor)> {
        let half = self.hp.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1f32
                    / (self.hp.rope_theta as f32).powf(2.0 * i as f32 / self.hp.head_dim as f32);
                match &self.rope_factors {
                    Some(factors) => f / factors[i],
                    None => f,
                }
            })
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &self.device)?;
        let positions = (Tensor::arange(0u32, seq_len as u32, &self.device)?
            .to_dtype(DType::F32)?
            .reshape((seq_len, 1))?
            / self.hp.rope_linear)?;
        let angles = positions.matmul(&inv_freq)?;
        Ok((
            angles.cos()?.to_dtype(self.dtype)?,
            angles.sin()?.to_dtype(self.dtype)?,
        ))
    }

    /// `(T, D)` → `(1, heads, T, head_dim)`, contiguous for the rotary kernel.
    fn split_heads(&self, x: Tensor, heads: usize) -> Result<Tensor> {
        let t = x.dim(0)?;
        Ok(x.reshape((1, t, heads, self.hp.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Causal self-attention with grouped k/v heads and interleaved rotary embeddings.
    fn attention(
        &self,
        x: &Tensor,
        w: &Ready,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (hp, t) = (&self.hp, x.dim(0)?);
        let rotate = |y: Tensor| candle_nn::rotary_emb::rope_i(&y, &rope.0, &rope.1);
        let q = rotate(self.split_heads(w.q.forward(x)?, hp.heads)?)?;
        let k = rotate(self.split_heads(w.k.forward(x)?, hp.kv_heads)?)?;
        let v = self.split_heads(w.v.forward(x)?, hp.kv_heads)?;
        let groups = hp.heads / hp.kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
        let scale = 1.0 / (hp.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((t, hp.heads * hp.head_dim))?;
        Ok(w.o.forward(&out)?)
    }

    /// SwiGLU: `down(silu(gate(x)) * up(x))`.
    fn mlp(&self, x: &Tensor, w: &Ready) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&w.gate.forward(x)?)?;
        Ok(w.down.forward(&(gate * w.up.forward(x)?)?)?)
    }

    /// Pre-norm block: `h = x + attn(norm(x))`, then `h + mlp(norm(h))`.
    fn block(
        &self,
        i: usize,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
    ) -> Result<Tensor> {
        let w = self.ready(i)?;
        let b = &self.blocks[i];
        let h = (x + self.attention(&b.attn_norm.forward(x)?, &w, rope, mask)?)?;
        Ok((&h + self.mlp(&b.ffn_norm.forward(&h)?, &w)?)?)
    }
}

impl LensModel for GgufLlama {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward_layers(
        &self,
        ids: &[u32],
        visit: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let input = Tensor::new(ids, &self.device)?;
        let rope = self.rope_tables(ids.len())?;
        let mask = causal_mask(ids.len(), self.dtype, &self.device)?;
        let xs = self.embed.index_select(&input, 0)?;
        visit_blocks(xs, self.blocks.len(), visit, |i, xs| {
            self.block(i, xs, &rope, &mask)
        })
    }

    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.norm.forward(hidden)?)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.matmul(&self.head.t()?)?)
    }
}

/// The file's `general.architecture`, if this build runs it; else a one-line refusal that
/// lists what it does run.
pub fn check_architecture(file: &GgufFile) -> Result<String> {
    let arch = file.architecture()?;
    if !GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        bail!(
            "{} is a GGUF model of architecture \"{arch}\"; supported GGUF architectures: {}",
            file.path().display(),
            GGUF_ARCHITECTURES.join(", ")
        );
    }
    Ok(arch)
}

/// Reads block `i`: its two norms and its seven matrices, each shape checked.
fn read_block(
    file: &mut GgufFile,
    hp: &Hparams,
    i: usize,
    dtype: DType,
    device: &Device,
) -> Result<Block> {
    let name = |t: &str| format!("blk.{i}.{t}.weight");
    let (d, ffn) = (hp.hidden, hp.ffn);
    let (q_out, kv_out) = (hp.heads * hp.head_dim, hp.kv_heads * hp.head_dim);
    let shapes = [
        ("attn_q", [q_out, d]),
        ("attn_k", [kv_out, d]),
        ("attn_v", [kv_out, d]),
        ("attn_output", [d, q_out]),
        ("ffn_gate", [ffn, d]),
        ("ffn_up", [ffn, d]),
        ("ffn_down", [d, ffn]),
    ];
    let mut mats = Vec::with_capacity(shapes.len());
    for (t, shape) in shapes {
        mats.push(Arc::new(file.tensor(&name(t), &shape, device)?));
    }
    Ok(Block {
        attn_norm: rms_norm(file, &name("attn_norm"), d, hp.eps, dtype, device)?,
        ffn_norm: rms_norm(file, &name("ffn_norm"), d, hp.eps, dtype, device)?,
        mats: mats
            .try_into()
            .unwrap_or_else(|_| unreachable!("seven shapes, seven matrices")),
    })
}

/// An RMSNorm whose weight is stored as `name` (f32 in llama.cpp's files).
fn rms_norm(
    file: &mut GgufFile,
    name: &str,
    size: usize,
    eps: f64,
    dtype: DType,
    device: &Device,
) -> Result<RmsNorm> {
    let weight = file
        .tensor(name, &[size], device)?
        .dequantize(device)?
        .to_dtype(dtype)?;
    Ok(RmsNorm::new(weight, eps))
}
