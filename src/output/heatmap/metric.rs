//! What colours the cells (`--metric`): each metric's value in a cell, its title and unit,
//! and the kind of colour scale it gets.

use anyhow::{bail, Result};

use super::text::visible;
use crate::output::{Prediction, Report};

/// The statistic that colours the heatmap's cells. The annotation is always the argmax token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// The entropy of the row's next-token distribution, in nats.
    #[default]
    Entropy,
    /// The argmax token's probability.
    Prob,
    /// KL(p_out ‖ p_row) in nats: how far the row is from the model's output.
    Kl,
    /// Next-token cross-entropy, −log p(x_{t+1}), in nats; none at the last position.
    Ce,
    /// The rank of the actual next token (1 = the argmax), on a log scale; none at the last
    /// position.
    Rank,
    /// The probability of the report's first tracked token (`--target`).
    Target,
}

/// How a metric's values map onto the colour bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScaleKind {
    /// Linear from 0 to the largest value shown, rounded up to a tick.
    FromZero,
    /// Linear from 0 to 1 (probabilities).
    Unit,
    /// Logarithmic from 1 to the largest value shown, rounded up to a power of 10 (ranks).
    Log,
}

impl Metric {
    /// Every metric, in `--metric`'s order.
    pub const ALL: [Metric; 6] = [
        Metric::Entropy,
        Metric::Prob,
        Metric::Kl,
        Metric::Ce,
        Metric::Rank,
        Metric::Target,
    ];

    /// The `--metric` name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Entropy => "entropy",
            Metric::Prob => "prob",
            Metric::Kl => "kl",
            Metric::Ce => "ce",
            Metric::Rank => "rank",
            Metric::Target => "target",
        }
    }

    /// One line on what the metric shows, for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Metric::Entropy => "Entropy of the next-token distribution (nats)",
            Metric::Prob => "The argmax token's probability",
            Metric::Kl => "KL from the model's output to the row (nats)",
            Metric::Ce => {
                "Next-token cross-entropy, -log p(next input token) (nats); none at the last position"
            }
            Metric::Rank => {
                "Rank of the next input token (1 = argmax), log colour scale; none at the last position"
            }
            Metric::Target => "Probability of the first target (--target, --target-id, JSONL \"target\")",
        }
    }

    /// The unit of the metric's values, as `--color-range` takes them.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Entropy | Metric::Kl | Metric::Ce => "nats",
            Metric::Prob | Metric::Target => "probability",
            Metric::Rank => "rank",
        }
    }

    /// The colour bar's title: the statistic and its unit.
    pub fn title(self, report: &Report) -> String {
        match self {
            Metric::Entropy => "entropy (nats)".to_string(),
            Metric::Prob => "argmax probability".to_string(),
            Metric::Kl => "KL to the output (nats)".to_string(),
            Metric::Ce => "next-token cross-entropy (nats)".to_string(),
            Metric::Rank => "next-token rank (log scale)".to_string(),
            Metric::Target => match report.targets.first() {
                Some(t) => format!("probability of “{}”", visible(&t.token)),
                None => "target probability".to_string(),
            },
        }
    }

    /// The metric's value in one cell; `None` where the cell has none (the next token's
    /// cross-entropy and rank at the last position, a target the cell does not track).
    pub fn value(self, pred: &Prediction) -> Option<f64> {
        let s = &pred.stat;
        let v = match self {
            Metric::Entropy => s.entropy,
            Metric::Prob => s.prob,
            Metric::Kl => s.kl,
            Metric::Ce => -s.next_logprob?,
            Metric::Rank => return s.next_rank.map(f64::from),
            Metric::Target => pred.targets.first()?.prob,
        };
        Some(f64::from(v))
    }

    /// What the legend calls a cell without a value.
    pub(super) fn missing(self) -> &'static str {
        match self {
            Metric::Target => "no target",
            _ => "no next token",
        }
    }

    /// How values map onto colours.
    pub(super) fn scale_kind(self) -> ScaleKind {
        match self {
            Metric::Entropy | Metric::Kl | Metric::Ce => ScaleKind::FromZero,
            Metric::Prob | Metric::Target => ScaleKind::Unit,
            Metric::Rank => ScaleKind::Log,
        }
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
            bail!("--metric rank takes a range of ranks from 1 up (a log scale), e.g. 1..1000");
        }
        Ok(())
    }

    /// Refuses a report this metric cannot colour: `target` needs a tracked token.
    pub fn check(self, report: &Report) -> Result<()> {
        if self == Metric::Target && report.targets.is_empty() {
            bail!(
                "--metric target colours by the first target's probability, and there is no \
                 target; add --target TEXT or --target-id N"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lens::{TargetStat, TokenStat};

    fn cell(stat: TokenStat, targets: Vec<TargetStat>) -> Prediction {
        Prediction {
            token: " a".into(),
            exact: crate::tokens::exact_text(b" a"),
            stat,
            topk: Vec::new(),
            targets,
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
