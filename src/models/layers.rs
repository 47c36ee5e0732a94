//! Building blocks every architecture shares: a linear layer and an embedding that keep
//! f16/bf16 checkpoint weights as stored and compute in f32 (see [`crate::kernels`]).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::kernels::HalfWeightMatmul;
use crate::weights::RAW;

/// `x·Wᵀ + b`. W stays f16/bf16 when the checkpoint stores it so and activations are f32.
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
        let half = matches!(self.weight.dtype(), DType::F16 | DType::BF16);
        let y = if half && x.dtype() == DType::F32 {
            x.contiguous()?
                .apply_op2_no_bwd(&self.weight, &HalfWeightMatmul)?
        } else {
            candle_nn::Linear::new(self.weight.clone(), None).forward(x)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// The `(out, in)` weight of a linear layer, as stored when that saves a conversion.
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
    dtype: DType,
}

impl Embedding {
    /// Loads `weight` of shape `(vocab, hidden)`; looked-up rows come out in `vb`'s dtype.
    pub fn new(vocab: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            table: weight(hidden, vocab, &vb)?,
            dtype: vb.dtype(),
        })
    }

    /// The table, as held (a tied head reuses it).
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// Rows for `ids` of shape `(B, T)` → `(B, T, hidden)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rows = self.table.index_select(&ids.flatten_all()?, 0)?;
        rows.to_dtype(self.dtype)?.reshape((b, t, ()))
    }
}
