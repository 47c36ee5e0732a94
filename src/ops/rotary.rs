//! The rotary operation: rotate-half of the first `dim` channels of each head by the cos/sin
//! tables of each position (the tables come from
//! [`RotarySpec::tables`](crate::models::components::rotary::RotarySpec::tables)).

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};

use super::Backend;

/// cos/sin for positions `0..T` over the first `dim` channels.
#[derive(Debug, Clone)]
pub(crate) struct RotaryTables {
    dim: usize,
    cos: Tensor,
    sin: Tensor,
}

impl RotaryTables {
    /// The tables' rows at `positions` (u32), for prompts packed into one sequence.
    pub(crate) fn at(&self, positions: &Tensor) -> Result<Self> {
        Ok(Self {
            dim: self.dim,
            cos: self.cos.index_select(positions, 0)?,
            sin: self.sin.index_select(positions, 0)?,
        })
    }

    /// Tables for positions `0..seq_len` of the frequencies `inv_freq`, cos and sin
    /// multiplied by `scale`, in `dtype` on `dev`.
    pub(crate) fn new(
        dim: usize,
        inv_freq: &[f32],
        scale: f32,
        seq_len: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let inv_freq = Tensor::from_vec(inv_freq.to_vec(), (1, inv_freq.len()), dev)?;
        let pos = Tensor::arange(0u32, seq_len as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((seq_len, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq)?;
        let (mut cos, mut sin) = (freqs.cos()?, freqs.sin()?);
        if scale != 1.0 {
            (cos, sin) = ((cos * scale as f64)?, (sin * scale as f64)?);
        }
        Ok(Self {
            dim,
            cos: cos.to_dtype(dtype)?,
            sin: sin.to_dtype(dtype)?,
        })
    }

    /// Rotates (rotate-half) the first `dim` channels of each head of `x`, laid out
    /// `(B, T, heads, head_dim)` as a projection's output is, passing the rest of each head
    /// through; the result has the same layout. [`Backend::Kernels`] on f32 rotates a copy
    /// of the values in place ([`Self::kernels`]); anything else runs candle's `rope` on
    /// the `(B, heads, T, head_dim)` view ([`Self::tensors`]). Both compute the same bits.
    pub(crate) fn rotate(&self, backend: Backend, x: &Tensor) -> Result<Tensor> {
        match (backend, x.dtype()) {
            (Backend::Kernels, DType::F32) => {
                let (b, t, heads, head_dim) = x.dims4()?;
                let mut values = x.flatten_all()?.to_vec1::<f32>()?;
                self.kernels(&mut values, heads, head_dim)?;
                Ok(Tensor::from_vec(
                    values,
                    (b, t, heads, head_dim),
                    x.device(),
                )?)
            }
            _ => Ok(self.tensors(&x.transpose(1, 2)?)?.transpose(1, 2)?),
        }
    }

    /// The kernel: in place on f32 values laid out `(B, T, heads, head_dim)`, with the same
    /// arithmetic as candle's `rope`, so the result is [`Self::tensors`]'s to the bit; the
    /// rest of each head passes through untouched.
    fn kernels(&self, x: &mut [f32], heads: usize, head_dim: usize) -> Result<()> {
        use rayon::prelude::*;
        let half = self.dim / 2;
        if half == 0 || x.is_empty() {
            return Ok(());
        }
        let table = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
        };
        let (cos, sin) = (table(&self.cos)?, table(&self.sin)?);
        let t = cos.len() / half;
        let width = heads * head_dim;
        if t == 0 || !x.len().is_multiple_of(width * t) || self.dim > head_dim {
            bail!(
                "rotary tables for {t} positions do not fit {} values of {heads} heads × {head_dim}",
                x.len()
            );
        }
        x.par_chunks_mut(width).enumerate().for_each(|(row, xs)| {
            let at = (row % t) * half;
            let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
            for head in xs.chunks_mut(head_dim) {
                let (a, b) = head[..2 * half].split_at_mut(half);
                for i in 0..half {
                    let (x1, x2) = (a[i], b[i]);
                    a[i] = x1 * c[i] - x2 * s[i];
                    b[i] = x1 * s[i] + x2 * c[i];
                }
            }
        });
        Ok(())
    }

    /// The tensor form: rotates the first `dim` channels of `(B, H, T, hd)` with candle's
    /// `rope`, passing the rest through.
    fn tensors(&self, xs: &Tensor) -> Result<Tensor> {
        let head_dim = xs.dim(D::Minus1)?;
        if self.dim == 0 {
            return Ok(xs.clone());
        }
        if self.dim == head_dim {
            return Ok(candle_nn::rotary_emb::rope(
                &xs.contiguous()?,
                &self.cos,
                &self.sin,
            )?);
        }
        let rot = xs.narrow(D::Minus1, 0, self.dim)?.contiguous()?;
        let rot = candle_nn::rotary_emb::rope(&rot, &self.cos, &self.sin)?;
        let pass = xs.narrow(D::Minus1, self.dim, head_dim - self.dim)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Partial rotary: at position 1 with frequency 1, the rotated pair (x0, x1) = (1, 0)
    /// becomes (cos 1, sin 1); the third channel passes through. On both backends.
    #[test]
    fn partial_rotation_passes_the_rest_through() {
        let t = RotaryTables::new(2, &[1.0], 1.0, 2, DType::F32, &Device::Cpu).unwrap();
        // (B, T, H, hd) = (1, 2, 1, 3).
        let xs = Tensor::new(&[[[[1f32, 0.0, 7.0]], [[1.0, 0.0, 7.0]]]], &Device::Cpu).unwrap();
        let (c, s) = (1f32.cos(), 1f32.sin());
        for backend in [Backend::Kernels, Backend::Tensors] {
            let got = values(&t.rotate(backend, &xs).unwrap());
            assert_eq!(got, [1.0, 0.0, 7.0, c, s, 7.0], "{backend:?}");
        }
    }

    /// The kernel equals the tensor form to the bit, for whole and partial rotary, two
    /// sequences, several heads and packed positions (tables taken `at` positions).
    #[test]
    fn both_backends_rotate_to_the_same_bits() {
        let (b, t, h, hd) = (2, 70, 3, 8);
        let x = Tensor::from_vec(
            super::super::test_values(b * t * h * hd, 1),
            (b, t, h, hd),
            &Device::Cpu,
        )
        .unwrap();
        let packed: Vec<u32> = (0..t as u32).map(|i| i % 23).collect();
        let packed = Tensor::new(packed.as_slice(), &Device::Cpu).unwrap();
        for dim in [8, 4] {
            let freqs = [1.0, 0.3, 0.01, 0.002];
            let table = RotaryTables::new(dim, &freqs[..dim / 2], 1.0, t, DType::F32, &Device::Cpu)
                .unwrap();
            for table in [table.clone(), table.at(&packed).unwrap()] {
                let got = values(&table.rotate(Backend::Kernels, &x).unwrap());
                let want = values(&table.rotate(Backend::Tensors, &x).unwrap());
                assert_eq!(got, want, "rotary dim {dim}");
                assert_ne!(got, values(&x), "rotary dim {dim} rotated nothing");
            }
        }
    }
}
