//! The logit lens: project every layer's hidden state onto the vocabulary and keep, per
//! position, only the argmax and the entropy.
//!
//! Rows are reduced as soon as they are computed, a chunk of positions at a time, so memory
//! stays at one chunk of logits however long the prompt and however many layers.

use anyhow::Result;
use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use crate::models::LensModel;

/// What one logits row says about the next token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TokenStat {
    /// The argmax id (the first one on ties, as `torch.argmax`).
    pub id: u32,
    /// Its softmax probability.
    pub prob: f32,
    /// Entropy of the softmax in nats, exact (no clamping).
    pub entropy: f32,
}

/// Options of the projection.
#[derive(Debug, Clone, Copy)]
pub struct LensOptions {
    /// Apply the model's final norm before the head (rows 0..L-1). Row L always is.
    pub final_norm: bool,
    /// Most bytes of f32 logits held at once; sets how many rows go through the head
    /// per matmul.
    pub logits_budget: usize,
}

impl Default for LensOptions {
    fn default() -> Self {
        Self {
            final_norm: true,
            logits_budget: 64 << 20,
        }
    }
}

/// Where the time of one lens run went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// The forward pass, final norms included.
    pub forward: std::time::Duration,
    /// Head projections and the reduction to stats.
    pub lens: std::time::Duration,
}

/// Argmax, probability and entropy of one logits row, in one pass after the max.
///
/// With `m = max z`, `s = Σ e^(z-m)` and `t = Σ e^(z-m)(z-m)`, the entropy is
/// `ln s − t/s` and the argmax probability `1/s`. Sums run in f64.
pub fn row_stats(logits: &[f32]) -> TokenStat {
    let (mut id, mut max) = (0usize, f32::NEG_INFINITY);
    for (i, &z) in logits.iter().enumerate() {
        if z > max {
            (id, max) = (i, z);
        }
    }
    let (mut s, mut t) = (0f64, 0f64);
    for &z in logits {
        let d = (z - max) as f64;
        let e = d.exp();
        s += e;
        t += e * d;
    }
    TokenStat {
        id: id as u32,
        prob: (1.0 / s) as f32,
        entropy: (s.ln() - t / s) as f32,
    }
}

/// Stats of every row of a `(rows, vocab)` f32 buffer, in parallel.
pub fn rows_stats(logits: &[f32], vocab: usize) -> Vec<TokenStat> {
    logits.par_chunks(vocab).map(row_stats).collect()
}

/// Runs the model once on `ids` and returns `[layer][position]` stats for layers 0..=L.
pub fn logit_lens(
    model: &dyn LensModel,
    ids: &[u32],
    opts: LensOptions,
) -> Result<Vec<Vec<TokenStat>>> {
    Ok(logit_lens_timed(model, ids, opts)?.0)
}

/// [`logit_lens`], also reporting where the time went.
///
/// The forward pass keeps each layer's (normed) hidden state, `(L+1)×T×D` floats; the
/// head then runs over all rows of all layers in chunks, so the head's weights are read
/// once per chunk rather than once per layer, and only one chunk of logits exists at a time.
pub fn logit_lens_timed(
    model: &dyn LensModel,
    ids: &[u32],
    opts: LensOptions,
) -> Result<(Vec<Vec<TokenStat>>, Timings)> {
    let last = model.info().num_layers;
    let start = std::time::Instant::now();
    let mut inputs = Vec::with_capacity(last + 1);
    model.forward_layers(ids, &mut |layer, hidden| {
        inputs.push(match opts.final_norm || layer == last {
            true => model.final_norm(hidden)?,
            false => hidden.clone(),
        });
        Ok(())
    })?;
    let forward = start.elapsed();
    let rows_per_chunk = (opts.logits_budget / (4 * model.info().vocab_size.max(1))).max(1);
    let stats = project(model, &inputs, rows_per_chunk)?;
    let rows = stats
        .chunks(ids.len().max(1))
        .map(<[TokenStat]>::to_vec)
        .collect();
    let lens = start.elapsed() - forward;
    Ok((rows, Timings { forward, lens }))
}

/// Stats of every row of every `(T, D)` input, `chunk` rows per head matmul.
fn project(model: &dyn LensModel, inputs: &[Tensor], chunk: usize) -> Result<Vec<TokenStat>> {
    let total: usize = inputs
        .iter()
        .map(|t| t.dim(0))
        .sum::<candle_core::Result<usize>>()?;
    let mut stats = Vec::with_capacity(total);
    for start in (0..total).step_by(chunk) {
        let rows = gather_rows(inputs, start, chunk.min(total - start))?;
        let logits = model.lm_head(&rows)?.to_dtype(DType::F32)?.contiguous()?;
        let vocab = logits.dim(1)?;
        stats.extend(with_f32(&logits, |flat| rows_stats(flat, vocab))?);
    }
    Ok(stats)
}

/// Runs `f` on a contiguous f32 CPU tensor's values without copying them (a 225×51200
/// logits chunk is 46 MB), or on a copy for any other storage.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
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

/// Rows `start..start+len` of the inputs stacked end to end, as one `(len, D)` tensor.
fn gather_rows(inputs: &[Tensor], mut start: usize, mut len: usize) -> Result<Tensor> {
    let mut parts = Vec::new();
    for t in inputs {
        let n = t.dim(0)?;
        if start >= n {
            start -= n;
            continue;
        }
        let take = len.min(n - start);
        parts.push(t.narrow(0, start, take)?);
        (start, len) = (0, len - take);
        if len == 0 {
            break;
        }
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// The first layer from which the output's argmax stays the argmax at `position`.
pub fn settling_layer(rows: &[Vec<TokenStat>], position: usize) -> Option<usize> {
    let target = rows.last()?.get(position)?.id;
    let mut first = rows.len() - 1;
    for (layer, row) in rows.iter().enumerate().rev() {
        if row[position].id != target {
            break;
        }
        first = layer;
    }
    Some(first)
}

/// The first layer at which the output's argmax is the argmax at `position` at all.
pub fn first_appearance(rows: &[Vec<TokenStat>], position: usize) -> Option<usize> {
    let target = rows.last()?.get(position)?.id;
    rows.iter().position(|row| row[position].id == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(logits: &[f32]) -> (f64, f64) {
        let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + logits
            .iter()
            .map(|&z| (z as f64 - m).exp())
            .sum::<f64>()
            .ln();
        let h = -logits
            .iter()
            .map(|&z| {
                let lp = z as f64 - lse;
                lp.exp() * lp
            })
            .sum::<f64>();
        ((m - lse).exp(), h)
    }

    #[test]
    fn uniform_row_has_log_v_entropy() {
        let s = row_stats(&[0.5; 1000]);
        assert_eq!(s.id, 0);
        assert!((s.entropy as f64 - (1000f64).ln()).abs() < 1e-6);
        assert!((s.prob - 1e-3).abs() < 1e-9);
    }

    #[test]
    fn matches_log_softmax_definition() {
        let logits: Vec<f32> = (0..513)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let s = row_stats(&logits);
        let (p, h) = reference(&logits);
        assert!((s.entropy as f64 - h).abs() < 1e-6, "{} vs {h}", s.entropy);
        assert!((s.prob as f64 - p).abs() < 1e-7);
        assert_eq!(
            logits[s.id as usize],
            logits.iter().cloned().fold(f32::MIN, f32::max)
        );
    }

    #[test]
    fn one_hot_row_has_zero_entropy() {
        let mut logits = vec![-1e4f32; 50];
        logits[7] = 0.0;
        let s = row_stats(&logits);
        assert_eq!(s.id, 7);
        assert!(s.entropy.abs() < 1e-6);
        assert!((s.prob - 1.0).abs() < 1e-6);
    }

    #[test]
    fn settling_and_first_appearance() {
        let st = |id| TokenStat {
            id,
            prob: 0.5,
            entropy: 1.0,
        };
        let rows = vec![
            vec![st(1)],
            vec![st(9)],
            vec![st(2)],
            vec![st(9)],
            vec![st(9)],
        ];
        assert_eq!(settling_layer(&rows, 0), Some(3));
        assert_eq!(first_appearance(&rows, 0), Some(1));
    }
}
