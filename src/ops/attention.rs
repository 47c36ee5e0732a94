//! The attention operation: `softmax(scale · q·kᵀ, soft-capped, masked) · v` with grouped
//! k/v heads.
//!
//! Its inputs are the projections as they come, split into heads but not transposed:
//! q `(B, T, heads, head_dim)`, k and v `(B, S, kv_heads, head_dim)`, and the [`Mask`]
//! saying which keys each query sees. Today `S = T` (a whole forward pass); a KV cache
//! passes the cached keys and values with the new queries (docs/ARCHITECTURE.md).

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::mask::Mask;
use super::{softcap, with_f32, Backend};
use crate::kernels::attention::{attention, Scores, Shape};

/// How scores are formed before the mask: `q·kᵀ` multiplied by `scale`, then
/// `cap · tanh(scores / cap)` when a cap is given (Gemma 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scaling {
    /// The factor on `q·kᵀ`.
    pub scale: f64,
    /// The soft-cap, if any.
    pub cap: Option<f64>,
}

/// Attention over q, k, v as `(B, T, n, head_dim)`, returned as `(B, T, heads·head_dim)`:
/// scores formed as `scaling` says, masked, softmaxed and multiplied by the values. [`Backend::Kernels`] on f32 runs the
/// blocked kernel over the mask's spans ([`kernels`]); anything else the dense tensor form
/// over its additive mask ([`tensors`]).
pub(crate) fn attend(
    backend: Backend,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Mask,
    scaling: Scaling,
) -> Result<Tensor> {
    match (backend, q.dtype()) {
        (Backend::Kernels, DType::F32) => kernels(q, k, v, mask, scaling),
        _ => tensors(q, k, v, mask, scaling),
    }
}

/// The kernel ([`crate::kernels::attention`]): reads the heads by stride from the
/// projections' own layout, so no `(B, n, T, hd)` copy is made, and never holds a score
/// tensor.
fn kernels(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Mask, s: Scaling) -> Result<Tensor> {
    let (batch, seq, heads, head_dim) = q.dims4()?;
    let shape = Shape {
        batch,
        heads,
        kv_heads: k.dim(2)?,
        seq,
        head_dim,
    };
    let sc = Scores {
        scale: s.scale as f32,
        cap: s.cap.map(|c| c as f32),
    };
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let out = with_f32(&q, |q| {
        with_f32(&k, |k| {
            with_f32(&v, |v| attention(q, k, v, shape, mask.spans(), sc))
        })
    })???;
    Ok(Tensor::from_vec(
        out,
        (batch, seq, heads * head_dim),
        q.device(),
    )?)
}

/// The tensor form, one packed prompt at a time: a NaN or an infinity in one prompt's keys
/// or values would reach every query of the pack through the dense products (`NaN − ∞`,
/// `0·NaN`), where the kernel never reads another prompt's keys.
fn tensors(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Mask, s: Scaling) -> Result<Tensor> {
    let segments = mask.segments();
    if segments.len() < 2 {
        return dense(q, k, v, &mask.additive()?, s);
    }
    let additive = mask.additive()?;
    let mut start = 0;
    let mut outs = Vec::with_capacity(segments.len());
    for &len in segments {
        let part = |t: &Tensor| t.narrow(1, start, len);
        let own = additive.narrow(0, start, len)?.narrow(1, start, len)?;
        outs.push(dense(
            &part(q)?,
            &part(k)?,
            &part(v)?,
            &own.contiguous()?,
            s,
        )?);
        start += len;
    }
    Ok(Tensor::cat(&outs, 1)?)
}

/// Dense attention: k and v repeated up to `heads`, the `(B, heads, T, T)` scores, the
/// additive mask and candle's softmax.
fn dense(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, s: Scaling) -> Result<Tensor> {
    let (b, t, heads, _) = q.dims4()?;
    let (q, k, v) = (q.transpose(1, 2)?, k.transpose(1, 2)?, v.transpose(1, 2)?);
    let groups = heads / k.dim(1)?;
    let k = candle_transformers::utils::repeat_kv(k, groups)?.contiguous()?;
    let v = candle_transformers::utils::repeat_kv(v, groups)?.contiguous()?;
    let mut scores = (q.contiguous()?.matmul(&k.t()?)? * s.scale)?;
    if let Some(cap) = s.cap {
        scores = softcap::tensors(&scores, cap)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?)?;
    Ok(probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, ()))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const BACKENDS: [Backend; 2] = [Backend::Kernels, Backend::Tensors];

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Two keys with scores 10·0.5 = 5 and 0·0.5 = 0, capped at 2: weights are
    /// softmax(2·tanh(2.5), 0) over values 1 and 0.
    #[test]
    fn capped_attention_weights_follow_the_capped_scores() {
        let dev = Device::Cpu;
        let q = Tensor::new(&[[[[1f32]], [[1.0]]]], &dev).unwrap();
        let k = Tensor::new(&[[[[0f32]], [[10.0]]]], &dev).unwrap();
        let v = Tensor::new(&[[[[0f32]], [[1.0]]]], &dev).unwrap();
        let mask = Mask::causal(2, DType::F32, &dev);
        let e = (2.0 * 2.5f64.tanh()).exp();
        let want = e / (e + 1.0);
        for backend in BACKENDS {
            let scaling = Scaling {
                scale: 0.5,
                cap: Some(2.0),
            };
            let got = values(&attend(backend, &q, &k, &v, &mask, scaling).unwrap());
            assert_eq!(got[0], 0.0, "{backend:?}: the first query sees one key");
            assert!(
                (got[1] as f64 - want).abs() < 1e-6,
                "{backend:?}: {got:?} vs {want}"
            );
        }
    }

    /// The blocked kernel equals the dense tensor form on random inputs: two sequences of
    /// 70 positions (two query blocks), 4 query heads over 2 kv heads, causal, windowed
    /// and packed masks, with and without a cap. The two sum the same products in another
    /// order and the kernel's softmax is its own, so they agree to f32 rounding over 70
    /// keys, not to the bit: within 2e-6 on outputs that are weighted means of values in
    /// [-2, 2) (the worst difference measured was 7.7e-7).
    #[test]
    fn both_backends_attend_alike() {
        let dev = Device::Cpu;
        let (b, t, heads, kv_heads, hd) = (2, 70, 4, 2, 16);
        let input = |n: usize, seed| {
            let x = crate::ops::test_values(b * t * n * hd, seed);
            Tensor::from_vec(x, (b, t, n, hd), &dev).unwrap()
        };
        let (q, k, v) = (input(heads, 1), input(kv_heads, 2), input(kv_heads, 3));
        let masks = [
            Mask::causal(t, DType::F32, &dev),
            Mask::packed(&[t], Some(9), DType::F32, &dev),
            Mask::packed(&[25, 1, 44], Some(30), DType::F32, &dev),
        ];
        for (m, mask) in masks.iter().enumerate() {
            for cap in [None, Some(1.5)] {
                let s = Scaling { scale: 0.4, cap };
                let got = values(&attend(Backend::Kernels, &q, &k, &v, mask, s).unwrap());
                let want = values(&attend(Backend::Tensors, &q, &k, &v, mask, s).unwrap());
                assert_eq!(got.len(), b * t * heads * hd);
                for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (x - y).abs() <= 2e-6,
                        "mask {m} cap {cap:?} [{i}]: {x} vs {y}"
                    );
                }
            }
        }
    }

    /// A NaN in one packed prompt's keys and values stays in that prompt, on both paths.
    #[test]
    fn a_nan_stays_in_its_own_prompt() {
        let dev = Device::Cpu;
        let (t, heads, hd) = (12, 2, 8);
        let input = |seed| {
            let mut x = crate::ops::test_values(t * heads * hd, seed);
            // Position 7 (the second prompt's third token), first head.
            x[7 * heads * hd] = f32::NAN;
            Tensor::from_vec(x, (1, t, heads, hd), &dev).unwrap()
        };
        let (q, k, v) = (input(1), input(2), input(3));
        let mask = Mask::packed(&[5, 7], None, DType::F32, &dev);
        for backend in BACKENDS {
            let s = Scaling {
                scale: 0.3,
                cap: None,
            };
            let out = values(&attend(backend, &q, &k, &v, &mask, s).unwrap());
            let row = |p: usize| &out[p * heads * hd..(p + 1) * heads * hd];
            for p in 0..5 {
                assert!(row(p).iter().all(|x| x.is_finite()), "{backend:?} {p}");
            }
            assert!(row(7).iter().any(|x| x.is_nan()), "{backend:?}");
        }
    }
}
