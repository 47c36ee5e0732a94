//! The reduction operation of the compute seam ([`crate::ops`]): the per-cell statistics of
//! a chunk of logits, [`cells`]. It lives with the lens, whose [`Cell`] and [`Query`] it
//! produces and reads.
//!
//! [`Backend::Kernels`] reduces each row on the host with the row reducer
//! [`super::stats::cell_stats`], in parallel over the rows ([`kernels`]).
//! [`Backend::Tensors`] reduces where the logits are, with candle tensor ops, so only the
//! few numbers of each cell come back to the host, never a logits row ([`tensors`]).
//!
//! The tensor form computes what [`super::stats::cell_stats`] computes, the same way:
//! the argmax is the lowest id among the maxima; `d = z − max` is taken in f32 and the sums
//! `s = Σ eᵈ`, `t = Σ eᵈ·d` run in f64 (f32 on Metal, which has no f64), giving the entropy
//! `ln s − t/s`, the argmax probability `1/s` and `lse = max + ln s`; KL sums
//! `p_out·((z_out − lse_out) − (z − lse))` in f64, so the output row's is exactly 0; ranks
//! count the f32 logits strictly above the tracked token's; the top K are taken one by one
//! by that same argmax, each then masked out, as many as the position's query that asks
//! for most (each position keeps its own query's first K).

use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

use super::stats::{cell_stats, Cell, Query, Reference, TokenStat};
use crate::ops::{with_f32, Backend};

/// The cells of a `(inputs·count, V)` chunk of logits: `inputs` groups of `count` rows (one
/// row per position), the last group the output rows the others are compared with. `queries`
/// has one entry per position (its own next token, targets and top-k). Returned in row
/// order, as `logits`.
pub(crate) fn cells(
    backend: Backend,
    logits: &Tensor,
    inputs: usize,
    count: usize,
    queries: &[Query],
) -> Result<Vec<Cell>> {
    let rows = logits.dim(0)?;
    ensure!(
        rows == inputs * count && queries.len() == count && inputs > 0,
        "a chunk of {rows} logits rows is not {inputs} inputs of {count} positions"
    );
    match backend {
        Backend::Kernels => kernels(logits, inputs, count, queries),
        Backend::Tensors => tensors(logits, inputs, count, queries),
    }
}

/// The kernel: each row through [`cell_stats`] on the host, against the output row's
/// [`Reference`] at its position, in parallel.
fn kernels(logits: &Tensor, inputs: usize, count: usize, queries: &[Query]) -> Result<Vec<Cell>> {
    let logits = logits.to_dtype(DType::F32)?.contiguous()?;
    let vocab = logits.dim(1)?;
    with_f32(&logits, |flat| {
        let output = &flat[(inputs - 1) * count * vocab..];
        let references: Vec<Reference> = output.par_chunks(vocab).map(Reference::new).collect();
        flat.par_chunks(vocab)
            .enumerate()
            .map(|(i, row)| {
                let j = i % count;
                let out = &output[j * vocab..(j + 1) * vocab];
                cell_stats(row, out, &references[j], &queries[j])
            })
            .collect()
    })
}

/// The tensor form: every statistic of the chunk as reductions over the vocabulary.
fn tensors(logits: &Tensor, inputs: usize, count: usize, queries: &[Query]) -> Result<Vec<Cell>> {
    let (rows, vocab) = logits.dims2()?;
    let device = logits.device();
    let acc = match device.is_metal() {
        true => DType::F32,
        false => DType::F64,
    };
    let z = logits.to_dtype(DType::F32)?.contiguous()?;
    let ids = Tensor::arange(0u32, vocab as u32, device)?;

    // First pass: argmax, entropy, probability, log-sum-exp.
    let max = z.max_keepdim(D::Minus1)?;
    let argmax = lowest_id_where(&z.broadcast_eq(&max)?, &ids, vocab)?;
    let d = z.broadcast_sub(&max)?.to_dtype(acc)?;
    let e = d.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    let t = (&e * &d)?.sum_keepdim(D::Minus1)?;
    let ln_s = s.log()?;
    let entropy = (&ln_s - (&t / &s)?)?;
    let prob = s.recip()?;
    let lse = (max.to_dtype(acc)? + &ln_s)?;

    // KL(p_out ‖ p_row): log-probabilities as (z − lse), each row against the output row
    // at its position.
    let logp = z.to_dtype(acc)?.broadcast_sub(&lse)?;
    let logp3 = logp.reshape((inputs, count, vocab))?;
    let out_logp = logp3.narrow(0, inputs - 1, 1)?;
    let p_out = out_logp.exp()?;
    let kl = p_out
        .broadcast_mul(&out_logp.broadcast_sub(&logp3)?)?
        .sum(D::Minus1)?
        .reshape(rows)?;

    // Tracked tokens per position: the next token (where there is one), then the targets.
    let tracked: Vec<Vec<u32>> = queries.iter().map(Query::tracked).collect();
    let width = tracked.iter().map(Vec::len).max().unwrap_or(0);
    let (levels, above) = match width {
        0 => (Vec::new(), Vec::new()),
        _ => ranks(&z, &tracked, inputs, width, device)?,
    };
    // The most any position asks for; each position keeps its own query's first K.
    let top_k = queries
        .iter()
        .map(|q| q.top_k)
        .max()
        .unwrap_or(0)
        .min(vocab);
    let topk = match top_k {
        0 => Vec::new(),
        k => top(&z, &ids, k, vocab)?,
    };

    let host =
        |t: &Tensor| -> Result<Vec<f64>> { Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?) };
    let (argmax, entropy, prob, lse, kl) = (
        argmax.flatten_all()?.to_vec1::<u32>()?,
        host(&entropy)?,
        host(&prob)?,
        host(&lse)?,
        host(&kl)?,
    );
    Ok((0..rows)
        .map(|r| {
            let j = r % count;
            let stat = TokenStat {
                id: argmax[r],
                prob: prob[r] as f32,
                entropy: entropy[r] as f32,
                kl: kl[r] as f32,
                ..TokenStat::default()
            };
            let used = tracked[j].len();
            let mine = queries[j].top_k.min(vocab);
            let top = topk.get(r * top_k..r * top_k + mine).unwrap_or_default();
            Cell::assemble(
                stat,
                lse[r],
                &queries[j],
                &levels[r * width..r * width + used],
                &above[r * width..r * width + used],
                top.iter().copied(),
            )
        })
        .collect())
}

/// Per row, the lowest id where `mask` (u8, `(rows, V)`) is set.
fn lowest_id_where(mask: &Tensor, ids: &Tensor, vocab: usize) -> Result<Tensor> {
    let none = Tensor::full(vocab as u32, ids.shape(), ids.device())?;
    let candidates = mask.where_cond(
        &ids.broadcast_as(mask.shape())?,
        &none.broadcast_as(mask.shape())?,
    )?;
    // A row of NaN matches nowhere: id 0 there (the row is non-finite, no result).
    let lowest = candidates.min_keepdim(D::Minus1)?;
    Ok(lowest
        .ne(vocab as u32)?
        .where_cond(&lowest, &lowest.zeros_like()?)?)
}

/// For every row and tracked column: the tracked token's f32 logit, and how many logits of
/// the row are strictly greater. Columns a position does not use repeat token 0 and are
/// never read.
fn ranks(
    z: &Tensor,
    tracked: &[Vec<u32>],
    inputs: usize,
    width: usize,
    device: &Device,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let count = tracked.len();
    let mut index = Vec::with_capacity(inputs * count * width);
    for _ in 0..inputs {
        for ids in tracked {
            index.extend((0..width).map(|i| ids.get(i).copied().unwrap_or(0)));
        }
    }
    let index = Tensor::from_vec(index, (inputs * count, width), device)?;
    let levels = z.gather(&index, D::Minus1)?;
    let mut above = Vec::with_capacity(width);
    for i in 0..width {
        let level = levels.narrow(1, i, 1)?;
        let greater = z.broadcast_gt(&level)?.to_dtype(DType::U32)?;
        above.push(greater.sum_keepdim(D::Minus1)?);
    }
    let above = Tensor::cat(&above, 1)?;
    Ok((
        levels.flatten_all()?.to_vec1::<f32>()?,
        above.flatten_all()?.to_vec1::<u32>()?,
    ))
}

/// The K largest logits of every row, largest first, ties to the lower id: `rows·K`
/// `(id, logit)` pairs, row-major.
fn top(z: &Tensor, ids: &Tensor, k: usize, vocab: usize) -> Result<Vec<(u32, f32)>> {
    let rows = z.dim(0)?;
    let gone = Tensor::full(f32::NEG_INFINITY, z.shape(), z.device())?;
    let mut rest = z.clone();
    let (mut picked, mut values) = (Vec::with_capacity(k), Vec::with_capacity(k));
    for _ in 0..k {
        let max = rest.max_keepdim(D::Minus1)?;
        // Among maxima of −∞ (a row with fewer than K finite logits) the lowest id left.
        let id = lowest_id_where(&rest.broadcast_eq(&max)?, ids, vocab)?;
        picked.push(id.clone());
        values.push(z.gather(&id, D::Minus1)?);
        let hit = ids.broadcast_as(z.shape())?.broadcast_eq(&id)?;
        rest = hit.where_cond(&gone, &rest)?;
    }
    let ids = Tensor::cat(&picked, 1)?.flatten_all()?.to_vec1::<u32>()?;
    let values = Tensor::cat(&values, 1)?.flatten_all()?.to_vec1::<f32>()?;
    debug_assert_eq!(ids.len(), rows * k);
    Ok(ids.into_iter().zip(values).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tensor reduction equals the host's cell by cell, ties included, with each
    /// position's own next token, targets and top-k (a chunk may span prompts that asked
    /// for different ones).
    #[test]
    fn both_backends_reduce_alike() {
        let (inputs, count, vocab) = (3, 4, 37);
        let mut values: Vec<f32> = (0..inputs * count * vocab)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.173)
            .collect();
        // A tie for the maximum in one row, and one at the K-th place in another.
        values[5] = 20.0;
        values[9] = 20.0;
        values[vocab + 3] = 8.0;
        values[vocab + 30] = 8.0;
        let logits =
            Tensor::from_vec(values.clone(), (inputs * count, vocab), &Device::Cpu).unwrap();
        let targets: [&[u32]; 4] = [&[3, 30, 0], &[], &[36], &[3, 30, 0]];
        let next = [Some(7u32), Some(3), Some(36), None];
        let top_k = [5, 0, 2, 40];
        let queries: Vec<Query> = (0..count)
            .map(|j| Query {
                next: next[j],
                targets: targets[j],
                top_k: top_k[j],
            })
            .collect();
        let got = cells(Backend::Tensors, &logits, inputs, count, &queries).unwrap();
        let host = cells(Backend::Kernels, &logits, inputs, count, &queries).unwrap();
        assert_eq!(got.len(), inputs * count);
        for (r, (cell, want)) in got.iter().zip(&host).enumerate() {
            let j = r % count;
            assert_eq!(cell.stat.id, want.stat.id, "row {r}");
            assert_eq!(cell.stat.next_rank, want.stat.next_rank, "row {r}");
            assert_eq!(cell.stat.next_logprob, want.stat.next_logprob, "row {r}");
            for (a, b) in [
                (cell.stat.entropy, want.stat.entropy),
                (cell.stat.prob, want.stat.prob),
                (cell.stat.kl, want.stat.kl),
            ] {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                    "row {r}: {a} vs {b}"
                );
            }
            assert_eq!(cell.targets, want.targets, "row {r}");
            assert_eq!(cell.targets.len(), targets[j].len(), "row {r}");
            assert_eq!(cell.topk, want.topk, "row {r}");
            assert_eq!(cell.topk.len(), top_k[j].min(vocab), "row {r}");
            if r >= (inputs - 1) * count {
                assert_eq!(cell.stat.kl, 0.0, "output row {r}");
            }
        }
        assert_eq!(got[0].stat.id, 5, "the lower of two tied maxima");
        assert_eq!(host[0].stat.id, 5, "the lower of two tied maxima");
    }

    /// The row reducer's own numbers, on a row small enough to work out: logits (0, ln 3)
    /// give p = (1/4, 3/4).
    #[test]
    fn both_backends_give_the_worked_example() {
        let logits = Tensor::new(&[[0f32, 3f32.ln()]], &Device::Cpu).unwrap();
        let query = Query {
            next: Some(0),
            targets: &[1],
            top_k: 1,
        };
        for backend in [Backend::Kernels, Backend::Tensors] {
            let c = &cells(backend, &logits, 1, 1, &[query]).unwrap()[0];
            let entropy = -(0.25f32 * 0.25f32.ln() + 0.75 * 0.75f32.ln());
            assert_eq!(c.stat.id, 1, "{backend:?}");
            assert!((c.stat.prob - 0.75).abs() < 1e-6, "{backend:?}");
            assert!((c.stat.entropy - entropy).abs() < 1e-6, "{backend:?}");
            assert_eq!(c.stat.kl, 0.0, "{backend:?}");
            assert_eq!(c.stat.next_rank, Some(2), "{backend:?}");
            assert!((c.stat.next_logprob.unwrap() - 0.25f32.ln()).abs() < 1e-6);
            assert_eq!(c.targets[0].rank, 1, "{backend:?}");
            assert_eq!(c.topk.len(), 1, "{backend:?}");
            assert!((c.topk[0].prob - 0.75).abs() < 1e-6, "{backend:?}");
        }
        let err = cells(Backend::Kernels, &logits, 2, 1, &[query]).unwrap_err();
        assert!(err.to_string().contains("is not 2 inputs"), "{err}");
    }

    /// A row holding NaN, +∞ or −∞ is non-finite on both paths, and only that row: the
    /// rows before it at the same position stay finite even where the output row is not.
    #[test]
    fn both_backends_find_the_nonfinite_rows() {
        let (inputs, count, vocab) = (3, 3, 40);
        let mut values: Vec<f32> = (0..inputs * count * vocab)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.173)
            .collect();
        // Input 1: NaN at position 0, −∞ at position 1, +∞ at position 2 (in the output).
        values[count * vocab + 3] = f32::NAN;
        values[(count + 1) * vocab + 17] = f32::NEG_INFINITY;
        values[(2 * count + 2) * vocab + 39] = f32::INFINITY;
        let logits = Tensor::from_vec(values, (inputs * count, vocab), &Device::Cpu).unwrap();
        let query = Query {
            next: Some(1),
            targets: &[2],
            top_k: 3,
        };
        let want = [false, false, false, true, true, false, false, false, true];
        for backend in [Backend::Kernels, Backend::Tensors] {
            let got = cells(backend, &logits, inputs, count, &[query; 3]).unwrap();
            let flags: Vec<bool> = got.iter().map(|c| c.nonfinite).collect();
            assert_eq!(flags, want, "{backend:?}");
        }
    }
}
