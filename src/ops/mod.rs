//! The compute seam: every operation whose CPU kernel and candle tensor form differ is one
//! function here that matches on the [`Backend`], with both implementations side by side
//! and the test that holds them equal. Components ([`crate::models::components`]) and the
//! decoder call these functions; they never choose a path themselves. The lens's per-row
//! reduction is the same kind of operation; it lives in `lens::reduce`, beside the lens's
//! statistics types it produces.
//!
//! | operation | [`Backend::Kernels`] (f32 on the host) | [`Backend::Tensors`] (any device, any dtype) |
//! |---|---|---|
//! | [`attention::attend`] | [`crate::kernels::attention`], blocked, mask as spans | `q·kᵀ`, additive mask, softmax, `·v` |
//! | [`rotary::RotaryTables::rotate`] | in place, one pass | candle's `rope` |
//! | [`softcap::softcap`] | one parallel pass | three tensor ops |
//! | [`finite::nonfinite_rows`] | a scan of the values | `h − h` summed per row |
//! | [`mask::Mask`] | [`mask::Mask::spans`] | [`mask::Mask::additive`] |
//! | `lens::reduce::cells` | `lens::stats::cell_stats` per row | tensor reductions per chunk |
//!
//! A kernel runs where [`Backend::Kernels`] meets f32 values; any other dtype takes the
//! tensor implementation, so that choice, too, is made here and nowhere else. Each
//! operation's result has one layout whatever the path, so operations compose freely.
//! docs/ARCHITECTURE.md says how a backward pass (vector-Jacobian products) and a KV cache
//! plug into the same functions.

pub(crate) mod attention;
pub(crate) mod finite;
pub(crate) mod mask;
pub(crate) mod rotary;
pub(crate) mod softcap;

pub(crate) use crate::compute::Backend;

use anyhow::Result;
use candle_core::Tensor;

/// Runs `f` on a contiguous f32 CPU tensor's values without copying them (a chunk of logits,
/// a layer's values), or on a copy for any other storage.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&v[a..b]));
        }
    }
    Ok(f(&t.flatten_all()?.to_vec1::<f32>()?))
}

/// Deterministic values in about [-2, 2) for the equality tests of the operations.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}
