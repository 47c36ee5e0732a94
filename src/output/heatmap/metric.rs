//! What colours the cells (`--metric`): each metric's value in a cell, its title and unit,
//! and the kind of colour scale it gets.

use crate::output::{Prediction, Report};

/// The statistic that colours the heatmap's cells. The annotation is always the argmax token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// The entropy of the row's next-token distribution, in nats.
    #[default]
    Entropy,
    /// The argmax token's probability.
    Prob,
}

/// How a metric's values map onto the colour bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScaleKind {
    /// Linear from 0 to the largest value shown, rounded up to a tick.
    FromZero,
    /// Linear from 0 to 1 (probabilities).
    Unit,
    /// Logarithmic from 1 to the largest value shown, rounded up to a power of 10 (ranks).
    #[allow(dead_code)]
    Log,
}

impl Metric {
    /// The `--metric` name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Entropy => "entropy",
            Metric::Prob => "prob",
        }
    }

    /// The unit of the metric's values, as the colour bar says it.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Entropy => "nats",
            Metric::Prob => "probability",
        }
    }

    /// The colour bar's title: the statistic and its unit.
    pub fn title(self, _report: &Report) -> String {
        match self {
            Metric::Entropy => "entropy (nats)".to_string(),
            Metric::Prob => "argmax probability".to_string(),
        }
    }

    /// The metric's value in one cell; `None` where the cell has none.
    pub fn value(self, _report: &Report, pred: &Prediction) -> Option<f64> {
        let v = match self {
            Metric::Entropy => pred.stat.entropy,
            Metric::Prob => pred.stat.prob,
        };
        Some(f64::from(v))
    }

    /// What the legend calls a cell without a value.
    pub(super) fn missing(self) -> &'static str {
        "no next token"
    }

    /// How values map onto colours.
    pub(super) fn scale_kind(self) -> ScaleKind {
        match self {
            Metric::Entropy => ScaleKind::FromZero,
            Metric::Prob => ScaleKind::Unit,
        }
    }

    /// The colour range the figures of one batch share when none is given, so that their
    /// colours compare: 0 to ln(vocabulary size) for entropy, the largest possible; 0..1
    /// for probabilities.
    pub fn batch_range(self, vocab_size: usize) -> Option<(f32, f32)> {
        match self.scale_kind() {
            ScaleKind::FromZero => Some((0.0, (vocab_size.max(2) as f32).ln())),
            ScaleKind::Unit => Some((0.0, 1.0)),
            ScaleKind::Log => Some((1.0, vocab_size.max(10) as f32)),
        }
    }

    /// Refuses a `--color-range` this metric's scale cannot show.
    pub fn check_range(self, (_min, _max): (f32, f32)) -> anyhow::Result<()> {
        Ok(())
    }
}
