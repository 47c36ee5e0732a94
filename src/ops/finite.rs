//! The finiteness check of a hidden state: which rows (positions) of a `(T, D)` state hold
//! a NaN or an infinity. The lens runs it on every row it reads, after each block, so that a
//! non-finite value fails only the prompt whose positions hold it.
//!
//! [`Backend::Kernels`] on f32 scans the values where they lie, in parallel over the rows;
//! anything else forms `h − h` (0 where finite, NaN otherwise) and sums each row on the
//! device, so one number per row comes back.

use anyhow::Result;
use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

use super::{with_f32, Backend};
use crate::kernels::elementwise::all_finite;

/// For each row of the `(T, D)` state `h`: whether it holds a value that is not finite.
pub(crate) fn nonfinite_rows(backend: Backend, h: &Tensor) -> Result<Vec<bool>> {
    match (backend, h.dtype()) {
        (Backend::Kernels, DType::F32) => kernels(h),
        _ => tensors(h),
    }
}

fn kernels(h: &Tensor) -> Result<Vec<bool>> {
    let width = h.dim(D::Minus1)?.max(1);
    with_f32(&h.contiguous()?, |values| {
        values
            .par_chunks(width)
            .map(|row| !all_finite(row))
            .collect()
    })
}

#[allow(clippy::eq_op)] // `h − h`: 0 or NaN, the test itself
fn tensors(h: &Tensor) -> Result<Vec<bool>> {
    let zero_or_nan = (h - h)?.to_dtype(DType::F32)?.sum(D::Minus1)?;
    Ok(zero_or_nan
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(|x| x != 0.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn both_backends_find_the_same_rows() {
        let mut values = super::super::test_values(7 * 33, 5);
        values[33 + 4] = f32::NAN;
        values[3 * 33 + 32] = f32::INFINITY;
        values[5 * 33] = f32::NEG_INFINITY;
        values[6 * 33 + 1] = f32::MAX;
        let h = Tensor::from_vec(values, (7, 33), &Device::Cpu).unwrap();
        let want = [false, true, false, true, false, true, false];
        for backend in [Backend::Kernels, Backend::Tensors] {
            assert_eq!(nonfinite_rows(backend, &h).unwrap(), want, "{backend:?}");
        }
        // Half precision takes the tensor form; f16's overflow to infinity is found.
        let half = (h.to_dtype(DType::F16).unwrap() * 1.0).unwrap();
        let mut want_half = want;
        want_half[6] = true;
        assert_eq!(nonfinite_rows(Backend::Kernels, &half).unwrap(), want_half);
    }
}
