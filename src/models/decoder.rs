//! The one decoder: a [`DecoderSpec`] (what an architecture's config.json resolves to) and
//! its tensor [`Names`] are all it needs to run any architecture, and [`Decoder`] is the
//! single [`LensModel`] shell: embeddings, lazily built blocks, final norm and head.

use anyhow::{bail, Result};
use candle_core::{Module, Tensor};
use candle_nn::Activation;
use serde::Deserialize;

use super::components::block::BlockNames;
use super::components::rotary::Rope;
use super::components::{
    Attention, AttentionSpec, Block, Embedding, Layout, Linear, Mlp, MlpSpec, Norm, NormSpec,
    RotarySpec, Vars, WeightLayout,
};
use super::components::{MlpKind, NormKind, QkNorm};
use super::{LensModel, ModelInfo, Site};
use crate::ops::mask::layer_masks;
use crate::ops::{softcap::softcap, Backend};

/// Where the head comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// The token embedding table (tied).
    Tied,
    /// Its own matrix; `optional` falls back to the embedding table when the checkpoint has
    /// none (Llama 3.2, SmolLM and GPT-2 ship none).
    Own {
        /// A bias on the head.
        bias: bool,
        /// Fall back to the embedding table when absent.
        optional: bool,
    },
}

/// Everything a decoder is, resolved from a config: sizes, norms, layout, attention,
/// rotary, MLP and embedding settings. Per-layer settings have one entry per layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecoderSpec {
    /// The `model_type` reported.
    pub model_type: String,
    /// Rows of the embedding and the head.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_layers: usize,
    /// Longest input.
    pub max_positions: usize,
    /// BOS token id, when the config names one.
    pub bos_token_id: Option<u32>,
    /// Every norm of the model (blocks and final).
    pub norm: NormSpec,
    /// How blocks join their branches.
    pub layout: Layout,
    /// Attention settings.
    pub attention: AttentionSpec,
    /// Per layer, the factor attention scores are multiplied by.
    pub scales: Vec<f64>,
    /// Per layer, the sliding window (`None`: full causal attention).
    pub windows: Vec<Option<usize>>,
    /// Rotary settings, if the model rotates q and k.
    pub rotary: Option<RotarySpec>,
    /// MLP settings.
    pub mlp: MlpSpec,
    /// Rows of a learned absolute position table (GPT-2), if any.
    pub learned_positions: Option<usize>,
    /// Where the head comes from.
    pub head: Head,
    /// A factor the token embeddings are multiplied by, rounded to the compute dtype first
    /// as transformers does (Gemma's `sqrt(hidden_size)`).
    pub embed_scale: Option<f64>,
    /// `cap · tanh(logits / cap)` after the head (Gemma 2): part of the head, so every lens
    /// row gets it and the last row is the model's output.
    pub final_softcap: Option<f64>,
    /// How linear weights are stored.
    pub weight_layout: WeightLayout,
}

/// Tensor names: the prefixes of the model's parts and the names inside one block. Only the
/// names the spec reads are looked up (no gate in a plain MLP, no norm where the layout has
/// none), so a translator states the names that differ from Llama's ([`Names::default`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Names {
    /// Prefix of everything but the head ("model", "transformer", or "").
    pub root: &'static str,
    /// The token embedding, under `root`.
    pub embed: &'static str,
    /// The learned positions, under `root`.
    pub positions: &'static str,
    /// The blocks, under `root`, followed by the block index.
    pub layers: &'static str,
    /// The final norm, under `root`.
    pub final_norm: &'static str,
    /// The head, at the top level.
    pub head: &'static str,
    /// Names inside one block.
    pub block: BlockNames,
}

impl Head {
    /// transformers' `tie_word_embeddings`: the token embedding table, else a head of its
    /// own without bias, which falls back to the table when the checkpoint ships none.
    pub(crate) fn tied(tie: bool) -> Self {
        match tie {
            true => Self::Tied,
            false => Self::Own {
                bias: false,
                optional: true,
            },
        }
    }
}

impl DecoderSpec {
    /// A decoder of `sizes` making the choices most architectures share, Llama's, for a
    /// translator to override where its model differs (`DecoderSpec { layout, ..base }`):
    /// RMSNorm (eps 1e-6), sequential pre-norm blocks, separate q/k/v projections without
    /// biases or norms, scores scaled by 1/√head_dim with full causal attention in every
    /// layer, a SwiGLU MLP without biases, weights stored `(out, in)`, and a head of its own
    /// that falls back to the embeddings; no rotary, learned positions, embedding scale,
    /// soft-caps or BOS.
    pub(crate) fn new(model_type: &str, sizes: &Sizes, max_positions: usize) -> Result<Self> {
        let (kv_heads, head_dim) = sizes.heads()?;
        let (hidden, layers) = (sizes.hidden_size, sizes.num_hidden_layers);
        Ok(Self {
            model_type: model_type.into(),
            vocab_size: sizes.vocab_size,
            hidden_size: hidden,
            num_layers: layers,
            max_positions,
            bos_token_id: None,
            norm: NormSpec::new(NormKind::Rms, 1e-6),
            layout: Layout::Sequential,
            attention: AttentionSpec {
                hidden,
                heads: sizes.num_attention_heads,
                kv_heads,
                head_dim,
                fused_qkv: false,
                fused_per_head: false,
                qkv_bias: false,
                o_bias: false,
                qk_norm: QkNorm::None,
                softcap: None,
            },
            scales: vec![1.0 / (head_dim as f64).sqrt(); layers],
            windows: vec![None; layers],
            rotary: None,
            mlp: MlpSpec {
                kind: MlpKind::Gated,
                act: Activation::Silu,
                hidden,
                intermediate: sizes.intermediate_size,
                bias: false,
            },
            learned_positions: None,
            head: Head::tied(false),
            embed_scale: None,
            final_softcap: None,
            weight_layout: WeightLayout::OutIn,
        })
    }

    /// Refuses a spec that describes no model the forward pass could run meaningfully: a
    /// size of 0, heads that kv heads do not divide, a norm epsilon, score scale or
    /// soft-cap that is not a positive finite number, a sliding window of 0, rotary
    /// frequencies that are not positive and finite (`rope_theta` ≤ 0, a scaling factor
    /// ≤ 0), a BOS id outside the vocabulary. Run once, on every spec a config.json or
    /// GGUF metadata resolves to, before any weight is read.
    pub(crate) fn check(&self) -> Result<()> {
        let a = &self.attention;
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_layers),
            ("max_position_embeddings", self.max_positions),
            ("num_attention_heads", a.heads),
            ("num_key_value_heads", a.kv_heads),
            ("head_dim", a.head_dim),
            ("intermediate_size", self.mlp.intermediate),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, n)| *n == 0) {
            bail!("config.json: {name} is 0; a model needs at least one");
        }
        if !a.heads.is_multiple_of(a.kv_heads) {
            bail!("config.json: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", a.heads, a.kv_heads);
        }
        let layers = self.num_layers;
        if self.scales.len() != layers || self.windows.len() != layers {
            bail!(
                "config.json: {layers} layers but per-layer settings for {} and {}",
                self.scales.len(),
                self.windows.len()
            );
        }
        let mut eps = vec![self.norm.eps];
        if let QkNorm::PerHead(n) | QkNorm::Whole(n) = a.qk_norm {
            eps.push(n.eps);
        }
        if let Some(e) = eps
            .into_iter()
            .find(|e| !(e.is_finite() && *e > 0.0 && *e < 1.0))
        {
            bail!("config.json: the norm epsilon (rms_norm_eps or layer_norm_eps) is {e}; it must be a positive number below 1");
        }
        // The forward pass computes in f32 at best: a value finite only in f64 is not.
        let positive = |v: f64| (v as f32).is_finite() && v > 0.0;
        if let Some(s) = self.scales.iter().find(|s| !positive(**s)) {
            bail!("config.json: the attention score scale is {s} (from query_pre_attn_scalar or head_dim); it must be positive and finite");
        }
        for (name, cap) in [
            ("attn_logit_softcapping", a.softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if let Some(cap) = cap.filter(|c| !positive(*c)) {
                bail!("config.json: {name} is {cap}; a soft-cap must be positive and finite");
            }
        }
        if self.windows.contains(&Some(0)) {
            bail!("config.json: sliding_window is 0; a window holds at least the token itself");
        }
        if self.learned_positions == Some(0) {
            bail!("config.json: the position table has 0 rows (n_positions)");
        }
        if let Some(scale) = self.embed_scale.filter(|s| !positive(*s)) {
            bail!("config.json: the embedding scale is {scale}; it must be positive and finite");
        }
        if let Some(bos) = self.bos_token_id.filter(|b| *b as usize >= self.vocab_size) {
            bail!(
                "config.json: bos_token_id {bos} lies outside the vocabulary of {} tokens",
                self.vocab_size
            );
        }
        if let Some(r) = &self.rotary {
            r.check(a.head_dim, layers)?;
        }
        Ok(())
    }

    /// The head size, for rotary embeddings over whole heads, which must be even.
    pub(crate) fn even_head_dim(&self) -> Result<usize> {
        let head_dim = self.attention.head_dim;
        if !head_dim.is_multiple_of(2) {
            bail!("config.json: head_dim ({head_dim}) must be even for rotary embeddings");
        }
        Ok(head_dim)
    }
}

impl Default for Names {
    /// Llama's names (`model.embed_tokens`, `model.layers.N`, `model.norm`, `lm_head`),
    /// which most checkpoints share.
    fn default() -> Self {
        Self {
            root: "model",
            embed: "embed_tokens",
            positions: "",
            layers: "layers",
            final_norm: "norm",
            head: "lm_head",
            block: BlockNames::default(),
        }
    }
}

/// The size fields Hugging Face configs of rotary decoders spell the same way.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sizes {
    /// Embedding rows.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads; as many as query heads when absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Channels per head; `hidden_size / num_attention_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
}

impl Sizes {
    /// The head/kv-head/head-size checks every architecture shares; returns
    /// `(kv_heads, head_dim)`.
    pub(crate) fn heads(&self) -> Result<(usize, usize)> {
        let (hidden, heads) = (self.hidden_size, self.num_attention_heads);
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            bail!("config.json: num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv_heads})");
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if hidden.is_multiple_of(heads) => hidden / heads,
            None => bail!(
                "config.json: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads})"
            ),
        };
        Ok((kv_heads, head_dim))
    }
}

/// The config.json fields Llama-like architectures spell the same way, with `LlamaConfig`'s
/// defaults; a translator whose config class has other defaults states them with
/// [`with_defaults`](super::with_defaults).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Common {
    #[serde(flatten)]
    pub sizes: Sizes,
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

impl Common {
    /// [`DecoderSpec::new`] with what these fields state: the RMSNorm's eps, the MLP's
    /// activation, the head, BOS and the longest input (`default_max_positions`, the config
    /// class's default, when absent). No rotary: see [`Common::spec`].
    pub(crate) fn decoder(
        &self,
        model_type: &str,
        default_max_positions: usize,
    ) -> Result<DecoderSpec> {
        let max_positions = self
            .max_position_embeddings
            .unwrap_or(default_max_positions);
        let base = DecoderSpec::new(model_type, &self.sizes, max_positions)?;
        Ok(DecoderSpec {
            bos_token_id: self.bos_token_id,
            norm: NormSpec::new(NormKind::Rms, self.rms_norm_eps),
            mlp: MlpSpec {
                act: self.hidden_act,
                ..base.mlp
            },
            head: Head::tied(self.tie_word_embeddings),
            ..base
        })
    }

    /// The Llama decoder: [`Common::decoder`] rotating whole heads by `rope`.
    pub(crate) fn spec(
        &self,
        model_type: &str,
        default_max_positions: usize,
    ) -> Result<DecoderSpec> {
        let base = self.decoder(model_type, default_max_positions)?;
        let dim = base.even_head_dim()?;
        let inv_freq = self.rope.inv_freq(dim, base.max_positions)?;
        Ok(DecoderSpec {
            rotary: Some(RotarySpec::uniform(dim, inv_freq, base.num_layers)),
            ..base
        })
    }
}

/// A causal LM run from a [`DecoderSpec`]. Blocks are built from `layers` when the forward
/// pass reaches them and dropped after use, so the converted checkpoint is never held whole.
pub(crate) struct Decoder {
    info: ModelInfo,
    spec: DecoderSpec,
    names: Names,
    layers: Vars,
    embed: Embedding,
    positions: Option<Embedding>,
    norm: Norm,
    head: Linear,
    /// With resident weights ([`Backend::resident_weights`]), every block, built once at
    /// load and kept on the device.
    resident: Vec<Block>,
}

impl Decoder {
    /// Builds what every row needs (embeddings, final norm, head) and keeps `vb` for the
    /// blocks.
    pub(crate) fn new(spec: DecoderSpec, names: Names, vb: &Vars) -> Result<Self> {
        let (d, vocab) = (spec.hidden_size, spec.vocab_size);
        let root = vb.pp(names.root);
        let embed_vb = root.pp(names.embed);
        if !names.root.is_empty() && !embed_vb.contains("weight") {
            bail!(
                "tensor {} is missing from the weights: they hold no language model under \"{}.\"",
                embed_vb.path("weight"),
                names.root
            );
        }
        let embed = Embedding::new(vocab, d, &embed_vb)?;
        let positions = match spec.learned_positions {
            Some(rows) => Some(Embedding::new(rows, d, &root.pp(names.positions))?),
            None => None,
        };
        let head_vb = vb.pp(names.head);
        let head = match spec.head {
            Head::Own { optional, .. } if optional && !head_vb.contains("weight") => {
                Linear::new(embed.table().clone(), None)
            }
            Head::Own { bias, .. } => Linear::load(d, vocab, bias, WeightLayout::OutIn, &head_vb)?,
            Head::Tied => Linear::new(embed.table().clone(), None),
        };
        // --fast: the head rounded to bf16 and packed once, for every lens row.
        let head = match vb.compute().fast() && !vb.is_dry() {
            true => head.to_bf16()?,
            false => head,
        };
        let mut decoder = Self {
            info: ModelInfo {
                model_type: spec.model_type.clone(),
                num_layers: spec.num_layers,
                hidden_size: d,
                max_positions: spec.max_positions,
                vocab_size: vocab,
                bos_token_id: spec.bos_token_id,
            },
            norm: Norm::new(spec.norm, d, &root.pp(names.final_norm))?,
            layers: root.pp(names.layers),
            embed,
            positions,
            head,
            names,
            spec,
            resident: Vec::new(),
        };
        // The tensor backend uploads (and converts) every weight once; the CPU kernels read
        // each block from the mapped file when the pass reaches it, and drop it after.
        if vb.backend().resident_weights() && !vb.is_dry() {
            decoder.resident = (0..decoder.spec.num_layers)
                .map(|i| decoder.block(i))
                .collect::<Result<_>>()?;
        }
        Ok(decoder)
    }

    /// Builds block `i`, letting the source ready its tensors together first.
    fn block(&self, i: usize) -> Result<Block> {
        let (s, n) = (&self.spec, &self.names.block);
        let vb = self.layers.pp(i);
        vb.prepare()?;
        let attn_vb = vb.pp(n.attn);
        let attn = Attention::new(
            &s.attention,
            &n.attn_names,
            s.weight_layout,
            s.scales[i],
            &attn_vb,
        )?;
        let mlp = Mlp::new(&s.mlp, &n.mlp_names, s.weight_layout, &vb.pp(n.mlp))?;
        Block::new(s.layout, s.norm, s.hidden_size, n, attn, mlp, &vb)
    }

    /// Builds every block once; over a dry [`Vars`] this validates the checkpoint against
    /// the config without reading weights.
    pub(crate) fn check_blocks(&self) -> Result<()> {
        (0..self.spec.num_layers).try_for_each(|i| self.block(i).map(drop))
    }

    /// The embeddings of `ids`, learned positions (`positions`, else `0..T`) added.
    fn embed(&self, ids: &[u32], positions: Option<&Tensor>) -> Result<Tensor> {
        let device = self.embed.device();
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let mut xs = self.embed.forward(&input)?;
        if let Some(scale) = self.spec.embed_scale {
            let scale = Tensor::new(scale, device)?.to_dtype(xs.dtype())?;
            xs = xs.broadcast_mul(&scale)?;
        }
        match &self.positions {
            None => Ok(xs),
            Some(wpe) => {
                let positions = match positions {
                    Some(p) => p.unsqueeze(0)?,
                    None => Tensor::arange(0u32, ids.len() as u32, device)?.unsqueeze(0)?,
                };
                Ok((xs + wpe.forward(&positions)?)?)
            }
        }
    }
}

impl LensModel for Decoder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn forward_sites(
        &self,
        ids: &[u32],
        sublayers: bool,
        visit: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
    ) -> Result<()> {
        self.forward_packed(&[ids], sublayers, visit)
    }

    fn forward_packed(
        &self,
        prompts: &[&[u32]],
        sublayers: bool,
        visit: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let (dtype, device) = (self.layers.dtype(), self.embed.device());
        let segments: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        let longest = segments.iter().copied().max().unwrap_or(0);
        if let Some(r) = &self.spec.rotary {
            if segments.iter().any(|&n| !r.same_tables(n, longest)) {
                return super::forward_one_by_one(self, prompts, sublayers, visit);
            }
        }
        let ids = prompts.concat();
        // Each prompt's own positions; `None` for a single prompt (0..T).
        let positions = match prompts.len() {
            1 => None,
            _ => {
                let pos: Vec<u32> = segments.iter().flat_map(|&n| 0..n as u32).collect();
                Some(Tensor::new(pos.as_slice(), device)?)
            }
        };
        let masks = layer_masks(&self.spec.windows, &segments, dtype, device);
        let rotary = match &self.spec.rotary {
            Some(r) => {
                let mut tables = r.tables(longest, dtype, device)?;
                if let Some(pos) = &positions {
                    tables = tables.iter().map(|t| t.at(pos)).collect::<Result<_>>()?;
                }
                Some((tables, &r.layer_table))
            }
            None => None,
        };
        let mut xs = self.embed(&ids, positions.as_ref())?;
        visit(0, Site::Embed, &xs.squeeze(0)?)?;
        for (i, mask) in masks.iter().enumerate() {
            let tables = rotary.as_ref().map(|(t, which)| &t[which[i]]);
            let built;
            let block = match self.resident.get(i) {
                Some(block) => block,
                None => {
                    built = self.block(i)?;
                    &built
                }
            };
            let (out, mid) = block.forward(&xs, tables, mask, sublayers)?;
            if let Some(mid) = mid {
                visit(i + 1, Site::ResidMid, &mid.squeeze(0)?)?;
            }
            xs = out;
            visit(i + 1, Site::ResidPost, &xs.squeeze(0)?)?;
        }
        Ok(())
    }

    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor> {
        self.norm.forward(hidden)
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = self.head.forward(hidden)?;
        match self.spec.final_softcap {
            Some(cap) => softcap(self.backend(), logits, cap),
            None => Ok(logits),
        }
    }

    fn backend(&self) -> Backend {
        self.layers.backend()
    }

    fn synchronize(&self) -> Result<()> {
        Ok(self.embed.device().synchronize()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::components::testing::vars_in;
    use candle_core::{DType, Device};

    /// A Gemma 2 with no blocks, hidden 3, vocab 2, embedding rows 1 and −1, final-logit cap 1.
    fn blockless(dtype: DType) -> Decoder {
        let json = serde_json::json!({"model_type": "gemma2", "vocab_size": 2, "hidden_size": 3,
            "intermediate_size": 1, "num_hidden_layers": 0, "num_attention_heads": 1, "num_key_value_heads": 1,
            "head_dim": 2, "final_logit_softcapping": 1.0});
        let spec = crate::models::gemma2::spec(json).unwrap();
        let vb = vars_in(
            dtype,
            &[
                (
                    "model.embed_tokens.weight",
                    vec![1.0, 1.0, 1.0, -1.0, -1.0, -1.0],
                    vec![2, 3],
                ),
                ("model.norm.weight", vec![0.0; 3], vec![3]),
            ],
        );
        Decoder::new(spec, crate::models::gemma2::names(&vb), &vb).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        let t = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        t.to_vec1().unwrap()
    }

    /// Every field that makes the forward pass meaningless is refused by `check`, naming
    /// it; the spec it started from passes.
    #[test]
    fn check_refuses_specs_that_describe_no_model() {
        let json = serde_json::json!({"model_type": "llama", "bos_token_id": 1});
        let json = crate::models::test_config(json);
        let good = crate::models::llama::spec(json).unwrap();
        good.check().unwrap();
        type Edit = fn(&mut DecoderSpec);
        let edits: [(Edit, &str); 13] = [
            (|s| s.vocab_size = 0, "vocab_size is 0"),
            (|s| s.num_layers = 0, "num_hidden_layers is 0"),
            (|s| s.mlp.intermediate = 0, "intermediate_size is 0"),
            (|s| s.attention.head_dim = 0, "head_dim is 0"),
            (
                |s| s.attention.kv_heads = 3,
                "multiple of num_key_value_heads",
            ),
            (|s| s.norm.eps = 0.0, "norm epsilon"),
            (|s| s.norm.eps = f64::NAN, "norm epsilon"),
            (|s| s.scales[1] = f64::INFINITY, "score scale"),
            (
                |s| s.attention.softcap = Some(0.0),
                "attn_logit_softcapping is 0",
            ),
            (
                |s| s.final_softcap = Some(1e39),
                "final_logit_softcapping is",
            ),
            (|s| s.windows[0] = Some(0), "sliding_window is 0"),
            (|s| s.bos_token_id = Some(8), "bos_token_id 8"),
            (
                |s| s.rotary.as_mut().unwrap().tables[0][1] = f32::NAN,
                "rotary frequency",
            ),
        ];
        for (edit, want) in edits {
            let mut spec = good.clone();
            edit(&mut spec);
            let err = spec.check().unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want:?}");
        }
    }

    /// The embedding scale √3 is rounded to the compute dtype before it multiplies, as
    /// transformers' `torch.tensor(hidden_size**0.5, dtype=hidden.dtype)`: bf16's 1.734375.
    #[test]
    fn embedding_scale_is_rounded_to_the_compute_dtype() {
        for (dtype, want) in [(DType::F32, 3f32.sqrt()), (DType::BF16, 1.734_375)] {
            let hs = blockless(dtype).hidden_states(&[0]).unwrap();
            assert_eq!(values(&hs[0]), [want; 3], "{dtype:?}");
        }
    }

    /// The final-logit cap is part of the head: any row, not only the last, comes out as
    /// `cap · tanh(logits / cap)`.
    #[test]
    fn final_softcap_applies_to_every_head_row() {
        let model = blockless(DType::F32);
        let rows = Tensor::new(&[[0.1f32, 0.2, 0.3], [1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
        let got = values(&model.lm_head(&rows).unwrap());
        let want = [0.6f32.tanh(), (-0.6f32).tanh(), 3f32.tanh(), (-3f32).tanh()];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
