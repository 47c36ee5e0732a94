//! What colours the cells (`--metric`): each metric's value in a cell (where its
//! [`crate::output::stats::METRICS`] row's `read` points), its colour-bar title for a report,
//! its range across a batch and the inputs it refuses. Its name, help, unit and kind of scale
//! are that row's.

use anyhow::{bail, Result};

use super::text::visible;
use crate::error::Error;
pub use crate::output::stats::Metric;
use crate::output::stats::{Colouring, Read};
use crate::output::{Prediction, Report};

impl Colouring {
    /// The colour bar's title: the statistic and its unit, or the tracked token it reads.
    pub fn title(&self, report: &Report) -> String {
        let token = |i: usize| report.targets.get(i).map(|t| visible(&t.token));
        match self.read {
            Read::TargetProb(i) => token(i).map(|t| format!("probability of “{t}”")),
            Read::TargetRank(i) => token(i).map(|t| format!("rank of “{t}” (log scale)")),
            Read::Stat { .. } => None,
        }
        .unwrap_or_else(|| self.title.to_string())
    }

    /// Its value in one cell; `None` where the cell has none (the next token's
    /// cross-entropy and rank at the last position, a target the cell does not track).
    pub fn value(&self, pred: &Prediction) -> Option<f64> {
        match self.read {
            Read::Stat { stat, negate } => {
                let v = pred.value(stat).number()?;
                Some(if negate { -v } else { v })
            }
            Read::TargetProb(i) => Some(f64::from(pred.targets.get(i)?.prob)),
            Read::TargetRank(i) => Some(f64::from(pred.targets.get(i)?.rank)),
        }
    }

    /// Whether it can colour `report`: a target's needs the report to track that token.
    pub fn shows(&self, report: &Report) -> bool {
        self.read.target().is_none_or(|i| i < report.targets.len())
    }
}

impl Metric {
    /// The colour bar's title: the statistic and its unit.
    pub fn title(self, report: &Report) -> String {
        self.colouring().title(report)
    }

    /// The metric's value in one cell; `None` where the cell has none (the next token's
    /// cross-entropy and rank at the last position, a target the cell does not track).
    pub fn value(self, pred: &Prediction) -> Option<f64> {
        self.colouring().value(pred)
    }

    /// The colour range the figures of one batch share when none is given, so that their
    /// colours compare: the metric's whole range for a vocabulary of `vocab_size` (0 to
    /// ln(vocabulary size) for entropy, 0..1 for probabilities, 1 to the vocabulary size for
    /// ranks); `None` for KL and cross-entropy, which have no upper bound (each figure then
    /// has its own scale; give `--color-range` to compare them).
    pub fn batch_range(self, vocab_size: usize) -> Option<(f32, f32)> {
        match self {
            Metric::Entropy => Some((0.0, (vocab_size.max(2) as f32).ln())),
            Metric::Prob | Metric::Target => Some((0.0, 1.0)),
            Metric::Rank => Some((1.0, vocab_size.max(10) as f32)),
            Metric::Kl | Metric::Ce => None,
        }
    }

    /// Refuses a `--color-range` this metric's scale cannot show: a rank range must start
    /// at 1 or more (the scale is logarithmic).
    pub fn check_range(self, (min, _max): (f32, f32)) -> Result<()> {
        if self == Metric::Rank && min < 1.0 {
            bail!(Error::RankRange);
        }
        Ok(())
    }

    /// Refuses a report this metric cannot colour: `target` needs a tracked token.
    pub fn check(self, report: &Report) -> Result<()> {
        if !self.colouring().shows(report) {
            bail!(Error::NoTargetToColour);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lens::{TargetStat, TokenStat};
    use crate::output::stats::ScaleKind;

    fn cell(stat: TokenStat, targets: Vec<TargetStat>) -> Prediction {
        Prediction {
            token: " a".into(),
            exact: crate::tokens::exact_text(b" a"),
            stat,
            topk: Vec::new(),
            targets,
            nonfinite: false,
        }
    }

    #[test]
    fn each_metric_reads_its_field() {
        let stat = TokenStat {
            id: 3,
            prob: 0.25,
            entropy: 2.5,
            kl: 0.75,
            next_logprob: Some(-1.5),
            next_rank: Some(40),
        };
        let target = TargetStat {
            prob: 0.125,
            logprob: -2.0794415,
            rank: 7,
        };
        let p = cell(stat, vec![target]);
        let values: Vec<_> = Metric::ALL.iter().map(|m| m.value(&p)).collect();
        assert_eq!(
            values,
            [
                Some(2.5),
                Some(0.25),
                Some(0.75),
                Some(1.5),
                Some(40.0),
                Some(0.125)
            ]
        );
        // The last position has no next token; a cell without targets has no target.
        let last = cell(
            TokenStat {
                next_logprob: None,
                next_rank: None,
                ..stat
            },
            vec![],
        );
        assert_eq!(Metric::Ce.value(&last), None);
        assert_eq!(Metric::Rank.value(&last), None);
        assert_eq!(Metric::Target.value(&last), None);
        assert_eq!(Metric::Kl.value(&last), Some(0.75));
        // Each target's probability and rank, in order; none where a cell lacks it.
        let second = TargetStat {
            prob: 0.5,
            logprob: -std::f32::consts::LN_2,
            rank: 2,
        };
        let two = cell(stat, vec![target, second]);
        let values: Vec<_> = Colouring::targets(2).map(|c| c.value(&two)).collect();
        assert_eq!(values, [Some(0.125), Some(7.0), Some(0.5), Some(2.0)]);
        let values: Vec<_> = Colouring::targets(2).map(|c| c.value(&p)).collect();
        assert_eq!(values, [Some(0.125), Some(7.0), None, None]);
        assert_eq!(
            Colouring::targets(1).next(),
            Some(Metric::Target.colouring())
        );
    }

    #[test]
    fn units_and_ranges() {
        assert_eq!(Metric::Ce.unit(), "nats");
        assert_eq!(Metric::Rank.unit(), "rank");
        assert_eq!(Metric::Target.unit(), "probability");
        assert_eq!(Metric::Rank.scale_kind(), ScaleKind::Log);
        assert_eq!(Metric::Rank.batch_range(49152), Some((1.0, 49152.0)));
        assert_eq!(Metric::Prob.batch_range(49152), Some((0.0, 1.0)));
        assert_eq!(Metric::Kl.batch_range(49152), None);
        let (_, top) = Metric::Entropy.batch_range(49152).unwrap();
        assert!((top - 49152f32.ln()).abs() < 1e-6);
        assert!(Metric::Rank.check_range((0.0, 100.0)).is_err());
        assert!(Metric::Rank.check_range((1.0, 100.0)).is_ok());
        assert!(Metric::Entropy.check_range((0.0, 100.0)).is_ok());
    }
}
