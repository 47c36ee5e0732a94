//! Building blocks every architecture shares: a linear layer and an embedding that keep
//! f16/bf16 checkpoint weights as stored and compute in f32 (see [`crate::kernels`]).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::kernels;
use crate::weights::{Mapped, RAW};

/// `x·Wᵀ + b`. W stays in the mapped file when the checkpoint stores it as f16/bf16 and
/// the compute dtype is f32.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Wraps a `(out, in)` weight and an optional `(out,)` bias.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The `(out, in)` weight, as held.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(w) = Mapped::from_handle(&self.weight)? {
            return mapped_matmul(x, &w, self.bias.as_ref());
        }
        let y = candle_nn::Linear::new(self.weight.clone(), None).forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
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
/// on, memory goes to activations (a 2048-token phi-1_5 attention holds 0.5 GiB of scores).
const LONG_ROWS: usize = 512;

/// `x · Wᵀ + b` with W read from the mapped file; the bias is added in place.
fn mapped_matmul(x: &Tensor, w: &Mapped, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = match w.shape() {
        [n, k] => (*n, *k),
        other => candle_core::bail!("weight of shape {other:?} is not a matrix"),
    };
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let mut dims = x.dims().to_vec();
    if dims.last() != Some(&k) {
        candle_core::bail!("input {dims:?} does not fit weight ({n}, {k})");
    }
    let m = x.elem_count() / k.max(1);
    if m >= LONG_ROWS {
        w.release_prefaulted();
    }
    let flat = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = kernels::matmul_bits(&flat, &w.halves(), w.bits(), m, k, n);
    if m >= RELEASE_ROWS {
        w.release();
    }
    if let Some(b) = bias {
        let b = b.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        for row in out.chunks_mut(n) {
            row.iter_mut().zip(&b).for_each(|(o, b)| *o += b);
        }
    }
    *dims.last_mut().expect("checked above") = n;
    Tensor::from_vec(out, dims, x.device())
}

/// The `(out, in)` weight of a linear layer: a handle to the mapped f16/bf16 weight when
/// the checkpoint stores it so and the compute dtype is f32, else a tensor.
pub fn weight(in_dim: usize, out_dim: usize, vb: &VarBuilder) -> Result<Tensor> {
    vb.get((out_dim, in_dim), &format!("weight{RAW}"))
}

/// A linear layer with an optional bias.
pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let w = weight(in_dim, out_dim, &vb)?;
    let b = match bias {
        true => Some(vb.get(out_dim, "bias")?),
        false => None,
    };
    Ok(Linear::new(w, b))
}

/// A linear layer with a bias.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, true, vb)
}

/// A linear layer without a bias.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, false, vb)
}

/// A token embedding whose table stays as stored; only the looked-up rows become f32.
#[derive(Debug, Clone)]
pub struct Embedding {
    table: Tensor,
    dims: (usize, usize),
    dtype: DType,
}

impl Embedding {
    /// Loads `weight` of shape `(vocab, hidden)`; looked-up rows come out in `vb`'s dtype.
    pub fn new(vocab: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            table: weight(hidden, vocab, &vb)?,
            dims: (vocab, hidden),
            dtype: vb.dtype(),
        })
    }

    /// `(vocab, hidden)`.
    pub fn dims(&self) -> (usize, usize) {
        self.dims
    }

    /// The table, as held (a tied head reuses it).
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// Rows for `ids` of shape `(B, T)` → `(B, T, hidden)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if let Some(table) = Mapped::from_handle(&self.table)? {
            return mapped_rows(&table, &ids.flatten_all()?.to_vec1::<u32>()?, self.dims.1)?
                .to_dtype(self.dtype)?
                .reshape((b, t, ()));
        }
        let rows = self.table.index_select(&ids.flatten_all()?, 0)?;
        rows.to_dtype(self.dtype)?.reshape((b, t, ()))
    }
}

/// Rows `ids` of a mapped `(vocab, hidden)` table, widened to f32.
fn mapped_rows(table: &Mapped, ids: &[u32], hidden: usize) -> Result<Tensor> {
    let all = table.halves();
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for &id in ids {
        let start = id as usize * hidden;
        let row = all.get(start..start + hidden).ok_or_else(|| {
            candle_core::Error::Msg(format!("token id {id} is outside the embedding table"))
        })?;
        out.extend(kernels::widen_row(row, table.bits()));
    }
    Tensor::from_vec(out, (ids.len(), hidden), &candle_core::Device::Cpu)
}
