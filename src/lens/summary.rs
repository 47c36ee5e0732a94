//! Summaries over a batch: one record per row (lens, site, layer), aggregated over every prompt
//! and position added, in constant memory (sums, not cells).
//!
//! Per row: the number of cells, mean entropy and KL to the output, the mean next-token
//! cross-entropy and top-1 accuracy over positions that have a next token, the fraction of
//! cells whose argmax is the output row's, and, when targets are tracked, the mean target
//! probability and rank at each prompt's last position (over every (prompt, target) pair).
//! Non-finite cells (`--allow-nonfinite`) are left out of every mean and counted apart.

use serde::Serialize;

use super::stats::{TargetStat, TokenStat};
use super::Site;

/// One prompt's row, as the summary reads it.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    pub site: Site,
    pub layer: usize,
    /// One per position.
    pub stats: &'a [TokenStat],
    /// The tracked tokens at the last position.
    pub last_targets: &'a [TargetStat],
    /// Per position, whether the cell is non-finite (`--allow-nonfinite`); empty when
    /// none is.
    pub nonfinite: &'a [bool],
}

/// Running sums of one row.
#[derive(Debug, Clone, Default)]
struct Sums {
    cells: u64,
    entropy: f64,
    kl: f64,
    next_cells: u64,
    next_ce: f64,
    next_hits: u64,
    agree: u64,
    target_cells: u64,
    target_prob: f64,
    target_rank: f64,
    nonfinite: u64,
}

/// Per-row aggregates of a batch, kept per lens (`--compare-lenses` adds each prompt once
/// per lens).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    prompts: usize,
    /// The lens of the first prompt added: prompts are counted by its additions.
    first_lens: Option<&'static str>,
    rows: Vec<((&'static str, Site, usize), Sums)>,
}

/// One row of the summary, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub site: Site,
    pub layer: usize,
    /// Cells aggregated: prompts × positions.
    pub cells: u64,
    /// Mean entropy, nats.
    pub mean_entropy: f64,
    /// Mean KL(p_out ‖ p_row), nats.
    pub mean_kl: f64,
    /// Cells with a next token (all but each prompt's last position).
    pub next_cells: u64,
    /// Mean −log p(next token), nats, over `next_cells`; null when there are none.
    pub mean_next_ce: Option<f64>,
    /// Fraction of `next_cells` whose argmax is the next token; null when there are none.
    pub next_top1: Option<f64>,
    /// Fraction of cells whose argmax is the output row's argmax at the same position.
    pub output_agreement: f64,
    /// (prompt, target) pairs at the prompts' last positions.
    pub target_cells: u64,
    /// Mean target probability over `target_cells`; null when there are none.
    pub mean_target_prob: Option<f64>,
    /// Mean target rank over `target_cells`; null when there are none.
    pub mean_target_rank: Option<f64>,
    /// The lens that read the row: "logit" or "tuned" (last, so that CSV columns keep
    /// their places).
    pub lens: &'static str,
    /// Cells left out of every mean: non-finite ones, and those whose position's output
    /// row is (`--allow-nonfinite`); not counted in `cells`.
    pub nonfinite_cells: u64,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many prompts were added.
    pub fn prompts(&self) -> usize {
        self.prompts
    }

    /// Adds one prompt's rows as `lens` read them; `ids` are its input tokens. The last
    /// row is the output row.
    pub fn add(&mut self, lens: &'static str, ids: &[u32], rows: &[RowView]) {
        let Some(output) = rows.last() else {
            return;
        };
        if *self.first_lens.get_or_insert(lens) == lens {
            self.prompts += 1;
        }
        for row in rows {
            let key = (lens, row.site, row.layer);
            let at = match self.rows.iter().position(|(k, _)| *k == key) {
                Some(at) => at,
                None => {
                    self.rows.push((key, Sums::default()));
                    self.rows.len() - 1
                }
            };
            let sums = &mut self.rows[at].1;
            let bad = |view: &RowView, t: usize| view.nonfinite.get(t).copied().unwrap_or(false);
            for (t, (stat, out)) in row.stats.iter().zip(output.stats).enumerate() {
                if bad(row, t) || bad(output, t) {
                    sums.nonfinite += 1;
                    continue;
                }
                sums.cells += 1;
                sums.entropy += f64::from(stat.entropy);
                sums.kl += f64::from(stat.kl);
                sums.agree += u64::from(stat.id == out.id);
                if let (Some(lp), Some(&next)) = (stat.next_logprob, ids.get(t + 1)) {
                    sums.next_cells += 1;
                    sums.next_ce -= f64::from(lp);
                    sums.next_hits += u64::from(stat.id == next);
                }
            }
            for target in row.last_targets {
                sums.target_cells += 1;
                sums.target_prob += f64::from(target.prob);
                sums.target_rank += f64::from(target.rank);
            }
        }
    }

    /// The records, in the order rows were first seen.
    pub fn records(&self) -> Vec<Record> {
        let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        self.rows
            .iter()
            .map(|&((lens, site, layer), ref s)| Record {
                site,
                layer,
                cells: s.cells,
                mean_entropy: mean(s.entropy, s.cells).unwrap_or(f64::NAN),
                mean_kl: mean(s.kl, s.cells).unwrap_or(f64::NAN),
                next_cells: s.next_cells,
                mean_next_ce: mean(s.next_ce, s.next_cells),
                next_top1: mean(s.next_hits as f64, s.next_cells),
                output_agreement: mean(s.agree as f64, s.cells).unwrap_or(f64::NAN),
                target_cells: s.target_cells,
                mean_target_prob: mean(s.target_prob, s.target_cells),
                mean_target_rank: mean(s.target_rank, s.target_cells),
                lens,
                nonfinite_cells: s.nonfinite,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(id: u32, entropy: f32, kl: f32, next_logprob: Option<f32>) -> TokenStat {
        TokenStat {
            id,
            prob: 0.5,
            entropy,
            kl,
            next_logprob,
            next_rank: next_logprob.map(|_| 1),
        }
    }

    #[test]
    fn sums_over_prompts_and_positions() {
        let mut s = Summary::new();
        // Prompt 1: ids [5, 7]; row 0 predicts 7 then 1, the output row 7 then 2.
        let r0 = [stat(7, 1.0, 0.5, Some(-0.25)), stat(1, 3.0, 1.5, None)];
        let out = [stat(7, 0.5, 0.0, Some(-0.5)), stat(2, 0.5, 0.0, None)];
        let t = [TargetStat {
            prob: 0.25,
            logprob: -1.386,
            rank: 3,
        }];
        let view = |site, layer, stats: &'static [TokenStat]| RowView {
            site,
            layer,
            stats,
            last_targets: &[],
            nonfinite: &[],
        };
        let r0: &'static [TokenStat] = Box::leak(Box::new(r0));
        let out: &'static [TokenStat] = Box::leak(Box::new(out));
        let mut rows = [view(Site::Embed, 0, r0), view(Site::ResidPost, 1, out)];
        rows[0].last_targets = &t;
        s.add("logit", &[5, 7], &rows);
        // Prompt 2: one position, no next token.
        let r0b: &'static [TokenStat] = Box::leak(Box::new([stat(9, 2.0, 0.5, None)]));
        let outb: &'static [TokenStat] = Box::leak(Box::new([stat(9, 1.0, 0.0, None)]));
        s.add(
            "logit",
            &[3],
            &[view(Site::Embed, 0, r0b), view(Site::ResidPost, 1, outb)],
        );
        // The same prompt through another lens: rows of its own, no new prompt.
        s.add(
            "tuned",
            &[3],
            &[view(Site::Embed, 0, outb), view(Site::ResidPost, 1, outb)],
        );
        let recs = s.records();
        assert_eq!(s.prompts(), 2);
        assert_eq!(recs.len(), 4);
        assert_eq!(
            (recs[2].lens, recs[2].cells, recs[2].mean_entropy),
            ("tuned", 1, 1.0)
        );
        let r = &recs[0];
        assert_eq!(
            (r.site, r.layer, r.cells, r.next_cells),
            (Site::Embed, 0, 3, 1)
        );
        assert_eq!(r.mean_entropy, 2.0);
        assert_eq!(r.mean_kl, 2.5 / 3.0);
        assert_eq!(r.mean_next_ce, Some(0.25));
        assert_eq!(r.next_top1, Some(1.0));
        assert_eq!(r.output_agreement, 2.0 / 3.0);
        assert_eq!((r.target_cells, r.mean_target_prob), (1, Some(0.25)));
        assert_eq!(r.mean_target_rank, Some(3.0));
        let o = &recs[1];
        assert_eq!((o.output_agreement, o.mean_kl), (1.0, 0.0));
        assert_eq!((o.target_cells, o.mean_target_prob), (0, None));
    }
}
