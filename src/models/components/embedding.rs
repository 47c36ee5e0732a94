//! A token (or position) embedding whose table stays as stored; only the looked-up rows
//! become the compute dtype.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::vars::Vars;
use crate::kernels;
use crate::loading::store::Matrix;
use crate::loading::weights::Mapped;

/// A `(vocab, hidden)` lookup table.
#[derive(Clone)]
pub(crate) struct Embedding {
    table: Matrix,
    dims: (usize, usize),
    dtype: DType,
    device: Device,
}

impl Embedding {
    /// Loads `weight` of shape `(vocab, hidden)`; rows come out in `vb`'s dtype.
    pub(crate) fn new(vocab: usize, hidden: usize, vb: &Vars) -> Result<Self> {
        Ok(Self {
            table: vb.matrix(vocab, hidden, "weight")?,
            dims: (vocab, hidden),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// The table, as held (a tied head reuses it).
    pub(crate) fn table(&self) -> &Matrix {
        &self.table
    }

    /// The device the rows come out on.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// Rows for `ids` of shape `(B, T)` → `(B, T, hidden)`.
    pub(crate) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rows = match &self.table {
            Matrix::MappedHalf(table) => {
                mapped_rows(table, &ids.flatten_all()?.to_vec1::<u32>()?, self.dims.1)?
            }
            Matrix::Dense(table) => table.index_select(&ids.flatten_all()?, 0)?,
        };
        Ok(rows.to_dtype(self.dtype)?.reshape((b, t, ()))?)
    }
}

/// Rows `ids` of a mapped `(vocab, hidden)` table, widened to f32.
fn mapped_rows(table: &Mapped, ids: &[u32], hidden: usize) -> Result<Tensor> {
    let all = table.halves();
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for &id in ids {
        let start = id as usize * hidden;
        let row = all
            .get(start..start + hidden)
            .ok_or_else(|| anyhow::anyhow!("token id {id} is outside the embedding table"))?;
        out.extend(kernels::widen_row(row, table.bits()));
    }
    Ok(Tensor::from_vec(out, (ids.len(), hidden), &Device::Cpu)?)
}
