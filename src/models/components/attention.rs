//! Causal self-attention: grouped k/v heads, fused or separate q/k/v projections, optional
//! q/k norms (per head or over the whole projection), rotary q/k, a configurable scale and
//! an optional logit soft-cap.

use anyhow::Result;
use candle_core::{Module, Tensor};

use super::linear::{Linear, WeightLayout};
use super::norm::{Norm, NormSpec};
use super::vars::Vars;
use crate::ops::attention::{attend, Scaling};
use crate::ops::mask::Mask;
use crate::ops::rotary::RotaryTables;
use crate::ops::Backend;

/// Where q/k norms apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum QkNorm {
    /// No q/k norms.
    None,
    /// Over each head's `head_dim` channels (Phi's `qk_layernorm`, Qwen3).
    PerHead(NormSpec),
    /// Over the whole q and k projections before the split into heads (OLMo 2).
    Whole(NormSpec),
}

/// Attention settings shared by every layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttentionSpec {
    /// Residual width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (a divisor of `heads`).
    pub kv_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// One `qkv` projection instead of three.
    pub fused_qkv: bool,
    /// The fused projection's rows are laid out per head, `[q_h, k_h, v_h]` for each head
    /// in turn (GPT-NeoX's `query_key_value`), not as `[Q, K, V]`; needs `kv_heads == heads`.
    pub fused_per_head: bool,
    /// Biases on q/k/v.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// q/k norms.
    pub qk_norm: QkNorm,
    /// `cap · tanh(scores / cap)` before the mask (Gemma 2).
    pub softcap: Option<f64>,
}

/// Tensor names of one attention module, relative to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionNames {
    /// Separate projections.
    pub q: &'static str,
    /// Separate projections.
    pub k: &'static str,
    /// Separate projections.
    pub v: &'static str,
    /// The fused projection.
    pub qkv: &'static str,
    /// Output projection.
    pub o: &'static str,
    /// q norm.
    pub q_norm: &'static str,
    /// k norm.
    pub k_norm: &'static str,
}

impl AttentionNames {
    /// One fused `qkv` projection and the output projection `o`; the rest keep Llama's.
    pub(crate) fn fused(qkv: &'static str, o: &'static str) -> Self {
        Self {
            qkv,
            o,
            ..Self::default()
        }
    }
}

impl Default for AttentionNames {
    /// Llama's: `{q,k,v,o}_proj`, fused `qkv_proj`, `q_norm` and `k_norm`.
    fn default() -> Self {
        Self {
            q: "q_proj",
            k: "k_proj",
            v: "v_proj",
            qkv: "qkv_proj",
            o: "o_proj",
            q_norm: "q_norm",
            k_norm: "k_norm",
        }
    }
}

enum Projections {
    Separate { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

/// One layer's attention.
pub(crate) struct Attention {
    qkv: Projections,
    o: Linear,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    spec: AttentionSpec,
    scale: f64,
    /// How the rotary and attention operations run.
    backend: Backend,
}

impl Attention {
    /// Loads the projections (and norms) under `vb`; `scale` multiplies the scores.
    pub(crate) fn new(
        spec: &AttentionSpec,
        names: &AttentionNames,
        layout: WeightLayout,
        scale: f64,
        vb: &Vars,
    ) -> Result<Self> {
        let (d, hd) = (spec.hidden, spec.head_dim);
        let (q_out, kv_out) = (spec.heads * hd, spec.kv_heads * hd);
        let proj =
            |out: usize, name: &str| Linear::load(d, out, spec.qkv_bias, layout, &vb.pp(name));
        let qkv = match spec.fused_qkv {
            true => Projections::Fused(proj(q_out + 2 * kv_out, names.qkv)?),
            false => Projections::Separate {
                q: proj(q_out, names.q)?,
                k: proj(kv_out, names.k)?,
                v: proj(kv_out, names.v)?,
            },
        };
        let (q_norm, k_norm) = match spec.qk_norm {
            QkNorm::None => (None, None),
            QkNorm::PerHead(n) => (
                Some(Norm::new(n, hd, &vb.pp(names.q_norm))?),
                Some(Norm::new(n, hd, &vb.pp(names.k_norm))?),
            ),
            QkNorm::Whole(n) => (
                Some(Norm::new(n, q_out, &vb.pp(names.q_norm))?),
                Some(Norm::new(n, kv_out, &vb.pp(names.k_norm))?),
            ),
        };
        Ok(Self {
            qkv,
            o: Linear::load(q_out, d, spec.o_bias, layout, &vb.pp(names.o))?,
            q_norm,
            k_norm,
            spec: spec.clone(),
            scale,
            backend: vb.backend(),
        })
    }

    /// `(B, T, D)` → q, k, v as `(B, T, n·hd)`.
    fn project(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        Ok(match &self.qkv {
            Projections::Separate { q, k, v } => (q.forward(xs)?, k.forward(xs)?, v.forward(xs)?),
            Projections::Fused(qkv) => {
                let all = qkv.forward(xs)?;
                let hd = self.spec.head_dim;
                if self.spec.fused_per_head {
                    // (B, T, H, 3, hd): per head q, k, v in turn.
                    let (b, t, _) = all.dims3()?;
                    let all = all.reshape((b, t, self.spec.heads, 3, hd))?;
                    let part = |i| all.narrow(3, i, 1)?.reshape((b, t, ()));
                    return Ok((part(0)?, part(1)?, part(2)?));
                }
                let (q_out, kv_out) = (self.spec.heads * hd, self.spec.kv_heads * hd);
                (
                    all.narrow(2, 0, q_out)?,
                    all.narrow(2, q_out, kv_out)?,
                    all.narrow(2, q_out + kv_out, kv_out)?,
                )
            }
        })
    }

    /// The q or k norm, if any, on `(B, T, n·hd)`: over the whole projection, or over each
    /// head's channels (the last dimension, so no split into heads is needed).
    fn qk_norm(&self, x: Tensor, n: usize, norm: Option<&Norm>) -> Result<Tensor> {
        let Some(norm) = norm else { return Ok(x) };
        match self.spec.qk_norm {
            QkNorm::None => Ok(x),
            QkNorm::Whole(_) => norm.forward(&x),
            QkNorm::PerHead(_) => {
                let (b, t, _) = x.dims3()?;
                let heads = x.reshape((b, t, n, self.spec.head_dim))?;
                Ok(norm.forward(&heads)?.reshape((b, t, ()))?)
            }
        }
    }

    /// `(B, T, n·hd)` → `(B, T, n, hd)`.
    fn heads(&self, x: Tensor, n: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, n, self.spec.head_dim))?)
    }

    /// Attention over `(B, T, D)` with rotary tables (if the model rotates) and a mask.
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        rotary: Option<&RotaryTables>,
        mask: &Mask,
    ) -> Result<Tensor> {
        let (q, k, v) = self.project(xs)?;
        let q = self.qk_norm(q, self.spec.heads, self.q_norm.as_ref())?;
        let k = self.qk_norm(k, self.spec.kv_heads, self.k_norm.as_ref())?;
        let mut q = self.heads(q, self.spec.heads)?;
        let mut k = self.heads(k, self.spec.kv_heads)?;
        let v = self.heads(v, self.spec.kv_heads)?;
        if let Some(r) = rotary {
            q = r.rotate(self.backend, &q)?;
            k = r.rotate(self.backend, &k)?;
        }
        let scaling = Scaling {
            scale: self.scale,
            cap: self.spec.softcap,
        };
        let out = attend(self.backend, &q, &k, &v, mask, scaling)?;
        Ok(self.o.forward(&out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// q = k = v = x with RMS norms over the whole projections (weights 1, eps 0): at
    /// x₁ = (0, 3) the normed q₁ = k₁ = (0, √2), so the scores are (0, 2) rather than (0, 9).
    #[test]
    fn whole_projection_qk_norm_normalises_before_the_scores() {
        use crate::models::components::norm::{NormKind, NormSpec};
        use crate::models::components::testing::vars;
        let eye = || vec![1.0, 0.0, 0.0, 1.0];
        let vb = vars(&[
            ("a.q.weight", eye(), vec![2, 2]),
            ("a.k.weight", eye(), vec![2, 2]),
            ("a.v.weight", eye(), vec![2, 2]),
            ("a.o.weight", eye(), vec![2, 2]),
            ("a.qn.weight", vec![1.0, 1.0], vec![2]),
            ("a.kn.weight", vec![1.0, 1.0], vec![2]),
        ]);
        let norm = NormSpec {
            kind: NormKind::Rms,
            eps: 0.0,
        };
        let spec = AttentionSpec {
            hidden: 2,
            heads: 1,
            kv_heads: 1,
            head_dim: 2,
            fused_qkv: false,
            fused_per_head: false,
            qkv_bias: false,
            o_bias: false,
            qk_norm: QkNorm::Whole(norm),
            softcap: None,
        };
        let names = AttentionNames {
            q: "q",
            k: "k",
            v: "v",
            qkv: "",
            o: "o",
            q_norm: "qn",
            k_norm: "kn",
        };
        let attn = Attention::new(&spec, &names, WeightLayout::OutIn, 1.0, &vb.pp("a")).unwrap();
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[1f32, 0.0], [0.0, 3.0]]], &dev).unwrap();
        let mask = Mask::causal(2, candle_core::DType::F32, &dev);
        let out: Vec<f32> = attn
            .forward(&x, None, &mask)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let e = 2f32.exp();
        let want = [1.0, 0.0, 1.0 / (1.0 + e), 3.0 * e / (1.0 + e)];
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{out:?} vs {want:?}");
        }
    }
}
