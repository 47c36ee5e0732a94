//! The soft-cap operation, `cap · tanh(x / cap)`: Gemma 2's final logits (over a whole chunk
//! of lens rows) and, inside attention's tensor form, its scores.

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::Backend;

/// `cap · tanh(x / cap)` over a whole tensor. [`Backend::Kernels`] on f32 caps the values in
/// one parallel pass over a single copy ([`kernels`]: a chunk of logits is tens of MB per
/// call); anything else takes the three tensor ops ([`tensors`]). Both compute the same bits.
pub(crate) fn softcap(backend: Backend, x: Tensor, cap: f64) -> Result<Tensor> {
    match (backend, x.dtype()) {
        (Backend::Kernels, DType::F32) => kernels(x, cap),
        _ => tensors(&x, cap),
    }
}

/// The kernel: the same f32 arithmetic as [`tensors`] (multiply by 1/cap, tanh, multiply by
/// cap), in one parallel pass instead of three single-threaded passes that each allocate.
fn kernels(x: Tensor, cap: f64) -> Result<Tensor> {
    use rayon::prelude::*;
    let (shape, device) = (x.shape().clone(), x.device().clone());
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    let (inv, cap) = ((1.0 / cap) as f32, cap as f32);
    values
        .par_chunks_mut(1 << 14)
        .for_each(|chunk| chunk.iter_mut().for_each(|x| *x = (*x * inv).tanh() * cap));
    Ok(Tensor::from_vec(values, shape, &device)?)
}

/// The tensor form, `cap · tanh(x / cap)`.
pub(crate) fn tensors(x: &Tensor, cap: f64) -> Result<Tensor> {
    Ok(((x / cap)?.tanh()? * cap)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        let t = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        t.to_vec1().unwrap()
    }

    #[test]
    fn softcap_bounds_values_by_the_cap() {
        let s = Tensor::new(&[0f32, 30.0, -100.0], &Device::Cpu).unwrap();
        let want = [0.0, 50.0 * 0.6f64.tanh(), 50.0 * (-2f64).tanh()];
        for backend in [Backend::Kernels, Backend::Tensors] {
            let got = values(&softcap(backend, s.clone(), 50.0).unwrap());
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (*g as f64 - w).abs() < 1e-4,
                    "{backend:?}: {got:?} vs {want:?}"
                );
            }
        }
    }

    /// The one-pass kernel computes exactly what the three tensor ops do, and a bf16 input
    /// on the kernels backend takes the tensor form.
    #[test]
    fn both_backends_cap_to_the_same_bits() {
        let xs: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 - 20_000.0) * 0.0173)
            .collect();
        let t = Tensor::from_vec(xs, (200, 200), &Device::Cpu).unwrap();
        for cap in [1.0, 15.0, 30.0] {
            let fast = values(&softcap(Backend::Kernels, t.clone(), cap).unwrap());
            let plain = values(&softcap(Backend::Tensors, t.clone(), cap).unwrap());
            assert_eq!(fast, plain, "cap {cap}");
            let half = t.to_dtype(DType::BF16).unwrap();
            let a = values(&softcap(Backend::Kernels, half.clone(), cap).unwrap());
            let b = values(&tensors(&half, cap).unwrap());
            assert_eq!(a, b, "bf16, cap {cap}");
        }
    }
}
