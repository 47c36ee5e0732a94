//! `x·Wᵀ + b`, with W either a tensor or a half-precision matrix read in place from the
//! mapped checkpoint (see [`crate::kernels`]).

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Module, Tensor};
use candle_nn::Activation;
use rayon::prelude::*;

use super::vars::Vars;
use crate::kernels;
use crate::kernels::dot_bf16::Packed;
use crate::kernels::elementwise::{self, Act};
use crate::loading::store::Matrix;
use crate::loading::weights::Mapped;

/// A linear layer, of one of its real kinds.
#[derive(Clone)]
pub(crate) enum Linear {
    /// W is a `(out, in)` tensor in the compute dtype.
    Dense {
        /// `(out, in)`.
        weight: Tensor,
        /// `(out,)`.
        bias: Option<Tensor>,
    },
    /// W stays in the mapped file in f16/bf16 and is multiplied there in f32.
    MappedHalf {
        /// The stored `(out, in)` matrix.
        mapped: Mapped,
        /// `(out,)`.
        bias: Option<Tensor>,
    },
    /// W rounded to bf16 once and packed for the bf16 kernels (`--fast`): products of bf16
    /// inputs accumulated in f32 ([`kernels::dot_bf16`]).
    PackedBf16 {
        /// W, `(out, in)`, packed.
        packed: Arc<Packed>,
        /// `(out,)`.
        bias: Option<Tensor>,
    },
}

impl Linear {
    /// A layer over a matrix as its source served it.
    pub(crate) fn new(weight: Matrix, bias: Option<Tensor>) -> Self {
        match weight {
            Matrix::Dense(weight) => Self::Dense { weight, bias },
            Matrix::MappedHalf(mapped) => Self::MappedHalf { mapped, bias },
        }
    }

    /// Loads `weight` and, when `bias`, `bias` `(out,)` under `vb`.
    ///
    /// [`WeightLayout::InOut`] is transformers' `Conv1D`: the weight is stored `(in, out)`
    /// and applied as `x @ W + b`, a linear layer over its transpose. That layout cannot be
    /// read in place by the half-weight kernel, so it is converted to the compute dtype.
    pub(crate) fn load(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        layout: WeightLayout,
        vb: &Vars,
    ) -> Result<Self> {
        let weight = match layout {
            WeightLayout::OutIn => vb.matrix(out_dim, in_dim, "weight")?,
            WeightLayout::InOut => Matrix::Dense(vb.get(&[in_dim, out_dim], "weight")?.t()?),
        };
        Ok(Self::new(weight, load_bias(out_dim, bias, vb)?))
    }

    /// The same layer with W rounded to bf16 and packed for the bf16 kernels (`--fast`).
    /// Mapped half weights are read once and let go; the bias stays as it is.
    pub(crate) fn to_bf16(&self) -> Result<Self> {
        let (packed, bias) = match self {
            Self::Dense { weight, bias } => {
                let (n, k) = weight.dims2()?;
                let w = weight
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                (Packed::from_f32(&w, n, k), bias)
            }
            Self::MappedHalf { mapped, bias } => {
                let (n, k) = match mapped.shape() {
                    [n, k] => (*n, *k),
                    other => anyhow::bail!("weight of shape {other:?} is not a matrix"),
                };
                let packed = Packed::from_bits(&mapped.halves(), mapped.bits(), n, k);
                mapped.release();
                (packed, bias)
            }
            Self::PackedBf16 { .. } => return Ok(self.clone()),
        };
        Ok(Self::PackedBf16 {
            packed: Arc::new(packed),
            bias: bias.clone(),
        })
    }
}

/// How a checkpoint stores a linear layer's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightLayout {
    /// `(out, in)`, as `nn.Linear`.
    OutIn,
    /// `(in, out)`, as GPT-2's `Conv1D`.
    InOut,
}

fn load_bias(out_dim: usize, bias: bool, vb: &Vars) -> Result<Option<Tensor>> {
    match bias {
        true => Ok(Some(vb.get(&[out_dim], "bias")?)),
        false => Ok(None),
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(x, None)
    }
}

impl Linear {
    /// `act(x·Wᵀ + b)`. Over mapped half weights the bias and the activation are applied in
    /// one parallel pass over the output ([`elementwise::bias_act`]) where the activation
    /// is one it implements; otherwise by candle's ops.
    pub(crate) fn forward_act(
        &self,
        x: &Tensor,
        act: Option<Activation>,
    ) -> candle_core::Result<Tensor> {
        let fused = match act {
            None => Some(None),
            Some(Activation::NewGelu | Activation::GeluPytorchTanh) => Some(Some(Act::GeluTanh)),
            Some(Activation::Silu) => Some(Some(Act::Silu)),
            Some(_) => None,
        };
        let y = match (self, fused) {
            (Self::MappedHalf { mapped, bias }, Some(fused)) => {
                return mapped_matmul(x, mapped, bias.as_ref(), fused)
            }
            (Self::MappedHalf { mapped, bias }, None) => {
                mapped_matmul(x, mapped, bias.as_ref(), None)?
            }
            (Self::PackedBf16 { packed, bias }, Some(fused)) => {
                return packed_matmul(x, packed, bias.as_ref(), fused)
            }
            (Self::PackedBf16 { packed, bias }, None) => {
                packed_matmul(x, packed, bias.as_ref(), None)?
            }
            (Self::Dense { weight, bias }, _) => {
                let y = candle_nn::Linear::new(weight.clone(), None).forward(x)?;
                match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
        };
        match act {
            Some(act) => y.apply(&act),
            None => Ok(y),
        }
    }
}

/// Inputs with at least this many rows let a weight's mapped pages go after the matmul.
///
/// Few rows: the matmul is bound by reading W, and keeping its pages mapped spares the next
/// prompt the page faults (the pages are the page cache's anyway). Many rows: the matmul is
/// bound by arithmetic, re-mapping is cheap beside it, and long inputs need the memory for
/// activations.
const RELEASE_ROWS: usize = 64;

/// Inputs with at least this many rows also drop the pages prefaulted at load: from here
/// on, memory goes to activations (a 2048-token phi-1_5 forward holds tens of MiB of activations per layer).
const LONG_ROWS: usize = 512;

/// `act(x · Wᵀ + b)` with W read from the mapped file; bias and activation in place.
fn mapped_matmul(
    x: &Tensor,
    w: &Mapped,
    bias: Option<&Tensor>,
    act: Option<Act>,
) -> candle_core::Result<Tensor> {
    let (n, k) = match w.shape() {
        [n, k] => (*n, *k),
        other => candle_core::bail!("weight of shape {other:?} is not a matrix"),
    };
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let dims = x.dims().to_vec();
    if dims.last() != Some(&k) {
        candle_core::bail!("input {dims:?} does not fit weight ({n}, {k})");
    }
    let m = x.elem_count() / k.max(1);
    if m >= LONG_ROWS {
        w.release_prefaulted();
    }
    let flat = x.flatten_all()?.to_vec1::<f32>()?;
    let out = kernels::matmul_bits(&flat, &w.halves(), w.bits(), m, k, n);
    if m >= RELEASE_ROWS {
        w.release();
    }
    finish(out, dims, n, bias, act, x.device())
}

/// `act(x · Wᵀ + b)` with W packed in bf16 (`--fast`); bias and activation in place.
fn packed_matmul(
    x: &Tensor,
    w: &Packed,
    bias: Option<&Tensor>,
    act: Option<Act>,
) -> candle_core::Result<Tensor> {
    let (n, k) = (w.rows(), w.cols());
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let dims = x.dims().to_vec();
    if dims.last() != Some(&k) {
        candle_core::bail!("input {dims:?} does not fit weight ({n}, {k})");
    }
    let m = x.elem_count() / k.max(1);
    let out = w.matmul(&x.flatten_all()?.to_vec1::<f32>()?, m);
    finish(out, dims, n, bias, act, x.device())
}

/// The `(…, n)` tensor of `act(out + bias)`, `out` being `x·Wᵀ` for an input of `dims`.
fn finish(
    mut out: Vec<f32>,
    mut dims: Vec<usize>,
    n: usize,
    bias: Option<&Tensor>,
    act: Option<Act>,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let b = match bias {
        Some(b) => b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
        None => Vec::new(),
    };
    if !b.is_empty() || act.is_some() {
        // Whole rows per task, about 64 KiB each.
        let rows = (16_384 / n.max(1)).max(1);
        out.par_chunks_mut(rows * n)
            .for_each(|chunk| elementwise::bias_act(chunk, &b, act));
    }
    *dims.last_mut().expect("an input has a last dimension") = n;
    Tensor::from_vec(out, dims, device)
}
