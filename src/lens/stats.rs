//! Per-cell statistics, computed: the row reducer ([`row_stats`], [`cell_stats`]) fills
//! every field of [`TokenStat`] from one logits row. How the outputs name and show each
//! statistic (JSON key, CSV column, unit, table cell) is `output::stats`'s table, not here.

use rayon::prelude::*;
use serde::Serialize;

use crate::kernels::rows;

/// What one logits row says about the next token: its argmax, and how the row compares
/// with the model's output and the actual next token.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TokenStat {
    /// The argmax id (the first one on ties, as `torch.argmax`).
    pub id: u32,
    /// Its softmax probability.
    pub prob: f32,
    /// Entropy of the softmax in nats, exact (no clamping).
    pub entropy: f32,
    /// KL(p_out ‖ p_row) in nats, p_out being the output row's distribution at the same
    /// position (tuned-lens's "forward KL"); exactly 0 on the output row.
    pub kl: f32,
    /// log p(x_{t+1}) of the actual next input token; `None` at the last position.
    pub next_logprob: Option<f32>,
    /// 1 + the number of tokens with a strictly greater logit than x_{t+1}; `None` at the
    /// last position.
    pub next_rank: Option<u32>,
}

/// One of a row's K most likely tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ranked {
    pub id: u32,
    pub prob: f32,
}

/// A tracked token's standing in one row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetStat {
    pub prob: f32,
    pub logprob: f32,
    /// 1 + the number of tokens with a strictly greater logit.
    pub rank: u32,
}

/// Everything the lens says about one cell (row, position).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    /// The scalar statistics.
    pub stat: TokenStat,
    /// The K most likely tokens, most likely first, ties broken by lower id.
    pub topk: Vec<Ranked>,
    /// One entry per tracked token, in the order asked.
    pub targets: Vec<TargetStat>,
    /// The row held a NaN or an infinity (in its logits or in the hidden state it was
    /// read from): its numbers mean nothing and are never shown as results.
    pub nonfinite: bool,
}

/// What to compute for a cell beyond the argmax statistics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// The actual next input token, if there is one.
    pub next: Option<u32>,
    /// Tracked token ids.
    pub targets: &'a [u32],
    /// How many of the most likely tokens to list.
    pub top_k: usize,
}

impl Query<'_> {
    /// The tokens whose logit, log-probability and rank a cell reports: the next token
    /// (where there is one), then each target.
    pub fn tracked(&self) -> Vec<u32> {
        self.next.iter().chain(self.targets).copied().collect()
    }
}

impl Cell {
    /// A cell from its reductions, as both reducers finish one: the argmax statistics and
    /// KL (`stat`), the row's log-sum-exp, each [`Query::tracked`] token's logit (`levels`)
    /// and count of strictly greater logits (`above`), and the top K `(id, logit)` pairs.
    pub fn assemble(
        mut stat: TokenStat,
        lse: f64,
        query: &Query,
        levels: &[f32],
        above: &[u32],
        top: impl IntoIterator<Item = (u32, f32)>,
    ) -> Self {
        // A NaN or an infinity among the row's logits makes its log-sum-exp or its entropy
        // non-finite: found for free. (KL is not asked: it is non-finite too where only the
        // output row it is compared with is.)
        let nonfinite = !(lse.is_finite() && stat.entropy.is_finite());
        let logprob = |i: usize| (levels[i] as f64 - lse) as f32;
        let mut at = 0;
        if query.next.is_some() {
            stat.next_logprob = Some(logprob(0));
            stat.next_rank = Some(above[0] + 1);
            at = 1;
        }
        let targets = (at..levels.len())
            .map(|i| {
                let lp = logprob(i);
                TargetStat {
                    prob: lp.exp(),
                    logprob: lp,
                    rank: above[i] + 1,
                }
            })
            .collect();
        let topk = top
            .into_iter()
            .map(|(id, z)| Ranked {
                id,
                prob: (z as f64 - lse).exp() as f32,
            })
            .collect();
        Self {
            stat,
            topk,
            targets,
            nonfinite,
        }
    }
}

/// The output row at one position, as every row at that position is compared with it.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Its log-sum-exp.
    lse: f64,
    /// Its softmax, in f64.
    p: Vec<f64>,
}

impl Reference {
    /// The reference distribution of the output row `logits`.
    pub fn new(logits: &[f32]) -> Self {
        // The same log-sum-exp as the row's own (first_pass), so that the output row's
        // KL terms cancel exactly.
        let lse = first_pass(logits).1;
        let mut p = vec![0f64; logits.len()];
        rows::exp_shifted(logits, lse, &mut p);
        Self { lse, p }
    }
}

/// Argmax, probability and entropy of one logits row, in one pass after the max.
///
/// With `m = max z`, `s = Σ e^(z-m)` and `t = Σ e^(z-m)(z-m)`, the entropy is
/// `ln s − t/s` and the argmax probability `1/s`. Sums run in f64.
pub fn row_stats(logits: &[f32]) -> TokenStat {
    first_pass(logits).0
}

/// [`row_stats`] and the row's log-sum-exp.
fn first_pass(logits: &[f32]) -> (TokenStat, f64) {
    let (id, max, s, t) = rows::softmax_sums(logits);
    let stat = TokenStat {
        id: id as u32,
        prob: (1.0 / s) as f32,
        entropy: (s.ln() - t / s) as f32,
        ..TokenStat::default()
    };
    (stat, max as f64 + s.ln())
}

/// Every statistic of one logits row `logits`, compared with the output row `output` at
/// the same position (whose [`Reference`] is `reference`), in two passes: the first for
/// the argmax, entropy and log-sum-exp, the second for KL, ranks and top-k together.
///
/// KL sums `p_out(v)·(log p_out(v) − log p_row(v))` term by term in f64, so a row equal to
/// the output row has KL exactly 0.
pub fn cell_stats(logits: &[f32], output: &[f32], reference: &Reference, query: &Query) -> Cell {
    let (mut stat, lse) = first_pass(logits);
    // The logits whose strict-excess counts give ranks: the next token's, then each target's.
    let levels: Vec<f32> = query
        .tracked()
        .iter()
        .map(|&id| logits.get(id as usize).copied().unwrap_or(f32::INFINITY))
        .collect();
    let above: Vec<u32> = levels
        .iter()
        .map(|&level| rows::count_above(logits, level))
        .collect();
    let mut top = TopK::new(query.top_k);
    top.offer_row(logits);
    stat.kl = rows::kl_sum(logits, lse, output, &reference.p, reference.lse) as f32;
    Cell::assemble(stat, lse, query, &levels, &above, top.finish(logits))
}

/// The K largest logits of a row seen in id order, largest first, ties to the lower id.
struct TopK {
    k: usize,
    /// (logit, id), sorted; used while K is small.
    best: Vec<(f32, u32)>,
}

/// Above this K a sort of the whole row is cheaper than insertion.
const INSERTION_K: usize = 64;

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            best: Vec::with_capacity(k.min(INSERTION_K) + 1),
        }
    }

    /// Offers every value of a row in id order, skipping the blocks of
    /// [`rows::BLOCK`] values whose max could not enter (the same result as offering each).
    fn offer_row(&mut self, logits: &[f32]) {
        if self.k == 0 || self.k > INSERTION_K {
            return;
        }
        let mut maxima = vec![0f32; logits.len().div_ceil(rows::BLOCK)];
        rows::block_maxima(logits, &mut maxima);
        for (b, (&max, block)) in maxima.iter().zip(logits.chunks(rows::BLOCK)).enumerate() {
            let full = self.best.len() == self.k;
            // A full list takes only values strictly above its last.
            if full
                && max.partial_cmp(&self.best[self.k - 1].0) != Some(std::cmp::Ordering::Greater)
            {
                continue;
            }
            for (i, &z) in block.iter().enumerate() {
                self.offer((b * rows::BLOCK + i) as u32, z);
            }
        }
    }

    #[inline]
    fn offer(&mut self, id: u32, z: f32) {
        if self.k == 0 || self.k > INSERTION_K {
            return;
        }
        if self.best.len() == self.k {
            // Strictly greater: an equal logit seen later has a higher id and loses.
            if z.partial_cmp(&self.best[self.k - 1].0) != Some(std::cmp::Ordering::Greater) {
                return;
            }
            self.best.pop();
        }
        // After every entry at least as large, so earlier (lower) ids stay first.
        let at = self.best.partition_point(|&(b, _)| b >= z);
        self.best.insert(at, (z, id));
    }

    fn finish(self, logits: &[f32]) -> Vec<(u32, f32)> {
        if self.k <= INSERTION_K {
            return self.best.into_iter().map(|(z, id)| (id, z)).collect();
        }
        let order = |a: &u32, b: &u32| {
            let (za, zb) = (logits[*a as usize], logits[*b as usize]);
            zb.total_cmp(&za).then(a.cmp(b))
        };
        let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
        let k = self.k.min(ids.len());
        if k < ids.len() {
            ids.select_nth_unstable_by(k, order);
            ids.truncate(k);
        }
        ids.sort_unstable_by(order);
        ids.into_iter()
            .map(|id| (id, logits[id as usize]))
            .collect()
    }
}

/// Stats of every row of a `(rows, vocab)` f32 buffer, in parallel.
pub fn rows_stats(logits: &[f32], vocab: usize) -> Vec<TokenStat> {
    logits.par_chunks(vocab).map(row_stats).collect()
}

/// Where a prediction forms along the rows, given whether it holds at each row: the first
/// row where it holds, and the first row from which it holds through the last (`None`
/// unless it holds at the last row).
pub fn settling(hits: &[bool]) -> (Option<usize>, Option<usize>) {
    let first = hits.iter().position(|&h| h);
    let holding = hits.iter().rev().take_while(|&&h| h).count();
    (first, (holding > 0).then(|| hits.len() - holding))
}

/// Whether each row's argmax at `position` is the output row's (the last row's).
fn output_hits(rows: &[Vec<TokenStat>], position: usize) -> Option<Vec<bool>> {
    let target = rows.last()?.get(position)?.id;
    Some(rows.iter().map(|row| row[position].id == target).collect())
}

/// The first layer from which the output's argmax stays the argmax at `position`.
pub fn settling_layer(rows: &[Vec<TokenStat>], position: usize) -> Option<usize> {
    settling(&output_hits(rows, position)?).1
}

/// The first layer at which the output's argmax is the argmax at `position` at all.
pub fn first_appearance(rows: &[Vec<TokenStat>], position: usize) -> Option<usize> {
    settling(&output_hits(rows, position)?).0
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

    fn logsoftmax(z: &[f32]) -> Vec<f64> {
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + z.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        z.iter().map(|&x| x as f64 - lse).collect()
    }

    fn row(seed: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 1009) as f32 - 500.0) / 97.0)
            .collect()
    }

    /// KL, next-token and target log-probabilities and ranks, and top-k, against their
    /// definitions computed naively in f64.
    #[test]
    fn cell_stats_match_their_definitions() {
        let (z, out) = (row(1, 777), row(2, 777));
        let (lp, lpo) = (logsoftmax(&z), logsoftmax(&out));
        let kl: f64 = lpo.iter().zip(&lp).map(|(&o, &r)| o.exp() * (o - r)).sum();
        let rank = |id: usize| 1 + z.iter().filter(|&&x| x > z[id]).count() as u32;
        let mut order: Vec<usize> = (0..z.len()).collect();
        order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
        for k in [0, 1, 5, 64, 65, 300, 777] {
            let query = Query {
                next: Some(17),
                targets: &[3, 500, 17],
                top_k: k,
            };
            let c = cell_stats(&z, &out, &Reference::new(&out), &query);
            assert!(
                (c.stat.kl as f64 - kl).abs() < 1e-6,
                "{} vs {kl}",
                c.stat.kl
            );
            assert!((c.stat.next_logprob.unwrap() as f64 - lp[17]).abs() < 1e-6);
            assert_eq!(c.stat.next_rank, Some(rank(17)));
            let targets: Vec<(u32, f64)> = [3, 500, 17].iter().map(|&t| (rank(t), lp[t])).collect();
            assert_eq!(c.targets.len(), 3);
            for (got, (r, l)) in c.targets.iter().zip(&targets) {
                assert_eq!(got.rank, *r);
                assert!((got.logprob as f64 - l).abs() < 1e-6);
                assert!((got.prob as f64 - l.exp()).abs() < 1e-7);
            }
            let ids: Vec<u32> = c.topk.iter().map(|r| r.id).collect();
            let want: Vec<u32> = order[..k].iter().map(|&i| i as u32).collect();
            assert_eq!(ids, want, "k = {k}");
            for r in &c.topk {
                assert!((r.prob as f64 - lp[r.id as usize].exp()).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn topk_breaks_ties_by_lower_id_and_ranks_count_strictly_greater() {
        let z = [1.0f32, 3.0, 2.0, 3.0, 3.0, 0.0];
        for k in [3, 4] {
            let q = Query {
                next: Some(4),
                targets: &[2, 5],
                top_k: k,
            };
            let c = cell_stats(&z, &z, &Reference::new(&z), &q);
            let ids: Vec<u32> = c.topk.iter().map(|r| r.id).collect();
            assert_eq!(ids, [1, 3, 4, 2][..k]);
            // Three tokens tie at the top: each has rank 1.
            assert_eq!(c.stat.next_rank, Some(1));
            assert_eq!(c.targets.iter().map(|t| t.rank).collect::<Vec<_>>(), [4, 6]);
            // The argmax is the first of the tied ids.
            assert_eq!(c.stat.id, 1);
        }
        let wide = cell_stats(
            &z,
            &z,
            &Reference::new(&z),
            &Query {
                top_k: 100,
                ..Query::default()
            },
        );
        assert_eq!(
            wide.topk.iter().map(|r| r.id).collect::<Vec<_>>(),
            [1, 3, 4, 2, 0, 5]
        );
    }

    /// The output row compared with itself has KL exactly 0, whatever the logits.
    #[test]
    fn kl_of_the_output_row_is_exactly_zero() {
        for seed in 0..20 {
            let z = row(seed, 513);
            let c = cell_stats(&z, &z, &Reference::new(&z), &Query::default());
            assert_eq!(c.stat.kl, 0.0);
            assert!(c.stat.next_logprob.is_none() && c.stat.next_rank.is_none());
            assert!(c.topk.is_empty() && c.targets.is_empty());
        }
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
    fn settling_of_hits() {
        assert_eq!(
            settling(&[false, true, false, true, true]),
            (Some(1), Some(3))
        );
        assert_eq!(settling(&[false, true, true, false]), (Some(1), None));
        assert_eq!(settling(&[false, false]), (None, None));
        assert_eq!(settling(&[]), (None, None));
    }

    #[test]
    fn settling_and_first_appearance() {
        let st = |id| TokenStat {
            id,
            prob: 0.5,
            entropy: 1.0,
            ..TokenStat::default()
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
