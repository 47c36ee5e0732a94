//! Causal scaled dot-product attention in f32, by blocks of queries.
//!
//! Each rayon task takes one head of one sequence and [`QUERY_BLOCK`] consecutive queries:
//! it computes their scores against only the keys some query of the block may see (the
//! causal upper triangle is skipped except on the diagonal block), applies the scale, the
//! optional soft-cap and a softmax over each query's own span of keys, and multiplies by the
//! values straight into the output. The score tensor that a plain implementation holds
//! (heads × T × T floats, 512 MiB for 32 heads at 2048 tokens) never exists: each thread
//! holds one block of scores, `QUERY_BLOCK × T` floats.
//!
//! Which keys a query sees is one contiguous span per query ([`Span`]): causal attention is
//! `0..=i`, a sliding window `i+1-w..=i`, and prompts packed into one sequence each see only
//! their own segment. Both products go through `gemm` (f32, the same kernel as the linear
//! layers); the softmax is [`super::elementwise::softmax`].

use rayon::prelude::*;

use super::elementwise::{all_finite, softmax};
use super::{gemm_into, OutPtr};

/// Queries per task: a block of scores is at most `QUERY_BLOCK × T` floats (512 KiB at
/// 2048 tokens), which stays in L2.
pub const QUERY_BLOCK: usize = 64;

/// The keys one query sees: `lo..hi` (positions in the sequence).
pub type Span = (u32, u32);

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Sequences.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` reads kv head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// Positions per sequence.
    pub seq: usize,
    /// Channels per head.
    pub head_dim: usize,
}

/// How scores are formed: `cap · tanh(scale · q·kᵀ / cap)`, or without the cap.
#[derive(Debug, Clone, Copy)]
pub struct Scores {
    /// The factor on `q·kᵀ`.
    pub scale: f32,
    /// The soft-cap (Gemma 2), if any.
    pub cap: Option<f32>,
}

/// `softmax(scale · q·kᵀ, capped, over each query's span) · v`.
///
/// `q` is `(batch, seq, heads, head_dim)`, `k` and `v` are `(batch, seq, kv_heads,
/// head_dim)`, all contiguous (the projections' own layout: no split into heads is
/// copied); `spans` has one entry per position (the same for every sequence and head).
/// Returns `(batch, seq, heads·head_dim)`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: Shape,
    spans: &[Span],
    sc: Scores,
) -> Vec<f32> {
    let (t, hd) = (s.seq, s.head_dim);
    assert_eq!(spans.len(), t, "one span per position");
    assert_eq!(q.len(), s.batch * s.heads * t * hd);
    assert_eq!(k.len(), s.batch * s.kv_heads * t * hd);
    assert_eq!(v.len(), k.len());
    assert!(spans.iter().all(|&(lo, hi)| lo < hi && hi as usize <= t));
    let mut out = vec![0f32; s.batch * t * s.heads * hd];
    if out.is_empty() {
        return out;
    }
    // A NaN or an infinity among the values: each query then multiplies only the values it
    // sees, since the block's zero weights on the others would give 0·NaN.
    let clean = all_finite(v);
    let blocks = t.div_ceil(QUERY_BLOCK);
    let groups = s.heads / s.kv_heads;
    let dst = OutPtr(out.as_mut_ptr());
    // Later blocks see more keys: hand them out first so the tail of the run is short tasks.
    (0..s.batch * s.heads * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |scores: &mut Vec<f32>, task| {
            let block = blocks - 1 - task / (s.batch * s.heads);
            let (b, h) = ((task % (s.batch * s.heads)) / s.heads, task % s.heads);
            let q0 = block * QUERY_BLOCK;
            let rows = &spans[q0..(q0 + QUERY_BLOCK).min(t)];
            let klo = rows.iter().map(|r| r.0).min().expect("a block has rows") as usize;
            let khi = rows.iter().map(|r| r.1).max().expect("a block has rows") as usize;
            let (m, nk) = (rows.len(), khi - klo);
            scores.resize(m * nk, 0.0);
            let (qw, kw) = (s.heads * hd, s.kv_heads * hd);
            let qh = &q[(b * t + q0) * qw + h * hd..];
            let kv = (b * t + klo) * kw + (h / groups) * hd;
            // SAFETY: scores holds m×nk floats; the q rows q0..q0+m and the k/v rows
            // klo..khi of this head lie inside their slices (spans are checked above).
            // Every task writes only rows q0..q0+m, columns h·hd..(h+1)·hd of sequence b of
            // `out`, which no other task touches.
            unsafe {
                gemm_into(
                    (m, nk, hd),
                    (scores.as_mut_ptr(), nk),
                    (qh.as_ptr(), qw),
                    (k[kv..].as_ptr(), kw as isize, 1),
                    sc.scale,
                );
                for (row, &(lo, hi)) in scores.chunks_mut(nk).zip(rows) {
                    softmax_span(row, lo as usize - klo, hi as usize - klo, sc.cap);
                }
                let width = s.heads * hd;
                if clean {
                    gemm_into(
                        (m, hd, nk),
                        (dst.get().add((b * t + q0) * width + h * hd), width),
                        (scores.as_ptr(), nk),
                        (v[kv..].as_ptr(), 1, kw as isize),
                        1.0,
                    );
                } else {
                    for (i, &(lo, hi)) in rows.iter().enumerate() {
                        let (lo, hi) = (lo as usize, hi as usize);
                        gemm_into(
                            (1, hd, hi - lo),
                            (dst.get().add((b * t + q0 + i) * width + h * hd), width),
                            (scores.as_ptr().add(i * nk + lo - klo), nk),
                            (v[kv + (lo - klo) * kw..].as_ptr(), 1, kw as isize),
                            1.0,
                        );
                    }
                }
            }
        });
    out
}

/// Soft-caps `row[lo..hi]`, replaces it by its softmax, and zeroes the rest of the row.
fn softmax_span(row: &mut [f32], lo: usize, hi: usize, cap: Option<f32>) {
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
    let span = &mut row[lo..hi];
    if let Some(cap) = cap {
        span.iter_mut().for_each(|x| *x = (*x / cap).tanh() * cap);
    }
    softmax(span);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain dense attention in f64 over an explicit mask, the reference.
    fn reference([q, k, v]: [&[f32]; 3], s: Shape, spans: &[Span], sc: Scores) -> Vec<f32> {
        let (scale, cap) = (sc.scale, sc.cap);
        let (t, hd) = (s.seq, s.head_dim);
        let mut out = vec![0f32; s.batch * t * s.heads * hd];
        for b in 0..s.batch {
            for h in 0..s.heads {
                let kh = h / (s.heads / s.kv_heads);
                let at = |x: &[f32], n: usize, hh: usize, i: usize| {
                    x[((b * t + i) * n + hh) * hd..][..hd].to_vec()
                };
                for i in 0..t {
                    let qi = at(q, s.heads, h, i);
                    let (lo, hi) = (spans[i].0 as usize, spans[i].1 as usize);
                    let scores: Vec<f64> = (lo..hi)
                        .map(|j| {
                            let kj = at(k, s.kv_heads, kh, j);
                            let d: f64 =
                                qi.iter().zip(&kj).map(|(a, b)| *a as f64 * *b as f64).sum();
                            let d = d * scale as f64;
                            cap.map_or(d, |c| (d / c as f64).tanh() * c as f64)
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..hd {
                        let o: f64 = (lo..hi)
                            .zip(&e)
                            .map(|(j, p)| p / sum * at(v, s.kv_heads, kh, j)[c] as f64)
                            .sum();
                        out[((b * t + i) * s.heads + h) * hd + c] = o as f32;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0) * 1.5)
            .collect()
    }

    #[test]
    fn matches_dense_attention_for_causal_windowed_and_packed_spans() {
        let s = Shape {
            batch: 2,
            heads: 4,
            kv_heads: 2,
            seq: 150,
            head_dim: 8,
        };
        let causal: Vec<Span> = (0..150).map(|i| (0, i + 1)).collect();
        let window: Vec<Span> = (0..150u32).map(|i| (i.saturating_sub(9), i + 1)).collect();
        // Three prompts packed into one sequence: 0..70, 70..71, 71..150.
        let packed: Vec<Span> = (0..150u32)
            .map(|i| match i {
                0..70 => (0, i + 1),
                70 => (70, 71),
                _ => (71, i + 1),
            })
            .collect();
        let q = values(2 * 4 * 150 * 8, 1);
        let k = values(2 * 2 * 150 * 8, 2);
        let v = values(2 * 2 * 150 * 8, 3);
        for spans in [&causal, &window, &packed] {
            for cap in [None, Some(3.0)] {
                let sc = Scores { scale: 0.35, cap };
                let got = attention(&q, &k, &v, s, spans, sc);
                let want = reference([&q, &k, &v], s, spans, sc);
                let worst = super::super::max_abs_diff(&got, &want);
                assert!(worst < 1e-5, "{worst}");
            }
        }
    }
}
