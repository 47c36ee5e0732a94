//! The projection: run the model once, pass every layer's hidden state through a lens and
//! reduce each logits row to its [`TokenStat`] as soon as it is computed.
//!
//! The head runs over all layers' rows in chunks, so memory stays at one chunk of logits
//! however long the prompt and however many layers.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Tensor};

use super::stats::{rows_stats, TokenStat};
use super::{Lens, LogitLens, Site};
use crate::models::LensModel;

/// Options of the projection.
#[derive(Debug, Clone)]
pub struct LensOptions {
    /// The lens that turns each layer's hidden state into what the head reads.
    pub lens: Arc<dyn Lens>,
    /// Most bytes of f32 logits held at once; sets how many rows go through the head
    /// per matmul.
    pub logits_budget: usize,
}

impl Default for LensOptions {
    fn default() -> Self {
        Self::new(LogitLens::default())
    }
}

impl LensOptions {
    /// `lens` with the default logits budget (64 MiB).
    pub fn new(lens: impl Lens + 'static) -> Self {
        Self {
            lens: Arc::new(lens),
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

/// Runs the model once on `ids` and returns `[layer][position]` stats for layers 0..=L.
pub fn logit_lens(
    model: &dyn LensModel,
    ids: &[u32],
    opts: &LensOptions,
) -> Result<Vec<Vec<TokenStat>>> {
    Ok(logit_lens_timed(model, ids, opts)?.0)
}

/// [`logit_lens`], also reporting where the time went.
///
/// The forward pass keeps each layer's hidden state as the lens transforms it, `(L+1)×T×D`
/// floats; the head then runs over all rows of all layers in chunks, so the head's weights
/// are read once per chunk rather than once per layer, and only one chunk of logits exists
/// at a time.
pub fn logit_lens_timed(
    model: &dyn LensModel,
    ids: &[u32],
    opts: &LensOptions,
) -> Result<(Vec<Vec<TokenStat>>, Timings)> {
    let start = std::time::Instant::now();
    let mut inputs = Vec::with_capacity(model.info().num_layers + 1);
    model.forward_layers(ids, &mut |layer, hidden| {
        inputs.push(
            opts.lens
                .transform_hidden(model, layer, Site::BlockOutput, hidden)?,
        );
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
