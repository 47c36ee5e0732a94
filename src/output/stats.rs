//! How the outputs present the lens's statistics: one descriptor table.
//!
//! [`STATS`] holds every per-cell statistic as the printers write it: its JSON key, CSV
//! column, unit and table cell. [`METRICS`] holds every `--metric` as the heatmap and the
//! HTML report colour by it: its name, help, title, unit, kind of colour scale and the
//! statistic it reads ([`Read`]). The table, JSON/JSONL and CSV/TSV printers, the heatmap
//! and the report's view data all read these two tables; [`crate::lens::stats`] only
//! computes the numbers.

use serde::{Serialize, Serializer};

use crate::lens::TokenStat;
use crate::tokens::TokenText;

/// One per-cell statistic of the lens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// The argmax token id.
    Id,
    /// The argmax token's readable text ([`crate::tokens::printable`]).
    Token,
    /// The argmax token's exact text ([`crate::tokens::exact_text`]).
    Text,
    /// The argmax token's bytes in hex, only when they are not valid UTF-8.
    Bytes,
    /// The argmax token's probability.
    Prob,
    /// The entropy of the next-token distribution.
    Entropy,
    /// KL(p_out ‖ p_row), nats.
    Kl,
    /// log p of the actual next input token (null at the last position).
    NextLogprob,
    /// Rank of the actual next input token (null at the last position).
    NextRank,
}

/// How the printers present one statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    pub stat: Stat,
    /// The JSON key (and the statistic's name).
    pub key: &'static str,
    /// The CSV/TSV column.
    pub column: &'static str,
    /// The unit, if the statistic has one.
    pub unit: Option<&'static str>,
    /// Decimals of a real value in a table cell.
    pub decimals: usize,
}

/// Every statistic, in output order (JSON keys, CSV columns).
pub const STATS: [Descriptor; 9] = [
    stat(Stat::Id, "id", "predicted_id", None),
    stat(Stat::Token, "token", "predicted_token", None),
    stat(Stat::Text, "text", "predicted_text", None),
    stat(Stat::Bytes, "bytes", "predicted_bytes", None),
    stat(Stat::Prob, "prob", "prob", None),
    stat(Stat::Entropy, "entropy", "entropy", Some("nats")),
    stat(Stat::Kl, "kl", "kl", Some("nats")),
    stat(
        Stat::NextLogprob,
        "next_logprob",
        "next_logprob",
        Some("nats"),
    ),
    stat(Stat::NextRank, "next_rank", "next_rank", None),
];

/// A row of [`STATS`]: reals show two decimals in the table.
const fn stat(
    stat: Stat,
    key: &'static str,
    column: &'static str,
    unit: Option<&'static str>,
) -> Descriptor {
    Descriptor {
        stat,
        key,
        column,
        unit,
        decimals: 2,
    }
}

impl Stat {
    /// Its row of [`STATS`].
    pub fn descriptor(self) -> &'static Descriptor {
        STATS
            .iter()
            .find(|d| d.stat == self)
            .expect("every statistic has a row in STATS")
    }

    /// The name: the JSON key.
    pub fn name(self) -> &'static str {
        self.descriptor().key
    }

    /// The CSV/TSV column.
    pub fn column(self) -> &'static str {
        self.descriptor().column
    }

    /// The unit, if the statistic has one.
    pub fn unit(self) -> Option<&'static str> {
        self.descriptor().unit
    }

    /// The name with its unit, as a plot labels an axis: "entropy (nats)".
    pub fn title(self) -> String {
        match self.unit() {
            Some(unit) => format!("{} ({unit})", self.name()),
            None => self.name().to_string(),
        }
    }

    /// This statistic of a cell whose argmax token reads `token` and is exactly `exact`.
    pub fn value<'a>(self, stat: &TokenStat, token: &'a str, exact: &'a TokenText) -> Value<'a> {
        match self {
            Stat::Id => Value::Int(stat.id),
            Stat::Token => Value::Text(token),
            Stat::Text => Value::Text(&exact.text),
            Stat::Bytes => match &exact.bytes {
                Some(hex) => Value::Text(hex),
                None => Value::Absent,
            },
            Stat::Prob => Value::real(stat.prob),
            Stat::Entropy => Value::real(stat.entropy),
            Stat::Kl => Value::real(stat.kl),
            Stat::NextLogprob => stat.next_logprob.map_or(Value::Null, Value::real),
            Stat::NextRank => stat.next_rank.map_or(Value::Null, Value::Int),
        }
    }

    /// The value as a table cell shows it (after the token): reals with the row's decimals.
    pub fn cell(self, value: Value<'_>) -> String {
        match value {
            Value::Real(x) => format!("{x:.*}", self.descriptor().decimals),
            Value::Null => "-".to_string(),
            Value::NonFinite => crate::report::NONFINITE.to_string(),
            other => other.to_string(),
        }
    }
}

/// One statistic's value in one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A token id.
    Int(u32),
    /// Text.
    Text(&'a str),
    /// A real number, kept in f32 so printing gives its shortest round-trip digits.
    Real(f32),
    /// Nothing to say (a token's `bytes` when its text is exact): left out of JSON, an
    /// empty CSV field.
    Absent,
    /// No value here (the next token's statistics at the last position): JSON null, an
    /// empty CSV field, `-` in the table.
    Null,
    /// A NaN or an infinity, never shown as a number: JSON null (the cell then says
    /// `"nonfinite": true`), an empty CSV field, [`crate::report::NONFINITE`] in the table.
    NonFinite,
}

impl Value<'_> {
    /// A real statistic: [`Value::NonFinite`] unless it is finite (KL against an output
    /// row that is not).
    pub fn real(x: f32) -> Self {
        match x.is_finite() {
            true => Value::Real(x),
            false => Value::NonFinite,
        }
    }

    /// The value as a number for colour scales; `None` for text.
    pub fn number(self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(f64::from(i)),
            Value::Text(_) | Value::Absent | Value::Null | Value::NonFinite => None,
            Value::Real(x) => Some(f64::from(x)),
        }
    }
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => i.fmt(f),
            Value::Text(s) => f.write_str(s),
            Value::Real(x) => x.fmt(f),
            Value::Absent | Value::Null | Value::NonFinite => Ok(()),
        }
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::Int(i) => s.serialize_u32(i),
            Value::Text(t) => s.serialize_str(t),
            Value::Real(x) => s.serialize_f32(x),
            Value::Absent | Value::Null | Value::NonFinite => s.serialize_none(),
        }
    }
}

/// The statistic that colours the heatmap's cells (`--metric`). The annotation is always
/// the argmax token.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleKind {
    /// Linear from 0 to the largest value shown, rounded up to a tick.
    FromZero,
    /// Linear from 0 to 1 (probabilities).
    Unit,
    /// Logarithmic from 1 to the largest value shown, rounded up to a power of 10 (ranks).
    Log,
    /// Linear from 0 to a robust top, rounded up to a tick: the [`ROBUST_PERCENTILE`]th
    /// percentile of the values shown outside the embedding row (KL: the embeddings' row
    /// is 100 nats or more from the output and would leave every other cell dark). Larger
    /// values are drawn at the top colour, and the colour bar's top reads "≥ top".
    Robust,
}

/// The percentile of the values outside the embedding row that a [`ScaleKind::Robust`]
/// scale spans.
pub const ROBUST_PERCENTILE: f64 = 99.0;

/// What a colour scale is sized to: `top` (the value its upper end is rounded up from) and
/// the largest value shown (above the scale's end, cells are drawn saturated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    pub top: f64,
    pub largest: f64,
}

/// Where a metric's value comes from in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A statistic of the cell, negated when `negate` (cross-entropy from a log-probability).
    Stat { stat: Stat, negate: bool },
    /// The probability of the report's tracked token `i` (its `targets[i]`).
    TargetProb(usize),
    /// The rank of the report's tracked token `i` (1 = the argmax).
    TargetRank(usize),
}

impl Read {
    /// The tracked token it reads, if any.
    pub fn target(self) -> Option<usize> {
        match self {
            Read::Stat { .. } => None,
            Read::TargetProb(i) | Read::TargetRank(i) => Some(i),
        }
    }
}

/// How the heatmap and the report colour the cells by one value: a `--metric`'s (its
/// [`METRICS`] row), or a tracked token's probability or rank, which the report's menu offers
/// for every target ([`Colouring::targets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colouring {
    /// The `--metric` name, or a target's rank's (`target-rank`).
    pub name: &'static str,
    /// The colour bar's title (a target's names the token: [`Colouring::title`]).
    pub title: &'static str,
    /// The unit of its values, as `--color-range` takes them.
    pub unit: &'static str,
    pub scale: ScaleKind,
    pub read: Read,
    /// What the legend calls a cell without a value.
    pub missing: &'static str,
}

/// How the heatmap and the report present one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    pub metric: Metric,
    /// One line on what the metric shows, for `--help`.
    pub help: &'static str,
    pub colouring: Colouring,
}

/// Every metric, in `--metric`'s order.
pub const METRICS: [MetricInfo; 6] = [
    MetricInfo {
        metric: Metric::Entropy,
        help: "Entropy of the next-token distribution (nats)",
        colouring: Colouring {
            name: "entropy",
            title: "entropy (nats)",
            unit: "nats",
            scale: ScaleKind::FromZero,
            read: Read::Stat {
                stat: Stat::Entropy,
                negate: false,
            },
            missing: "no next token",
        },
    },
    MetricInfo {
        metric: Metric::Prob,
        help: "The argmax token's probability",
        colouring: Colouring {
            name: "prob",
            title: "argmax probability",
            unit: "probability",
            scale: ScaleKind::Unit,
            read: Read::Stat {
                stat: Stat::Prob,
                negate: false,
            },
            missing: "no next token",
        },
    },
    MetricInfo {
        metric: Metric::Kl,
        help: "KL from the model's output to the row (nats)",
        colouring: Colouring {
            name: "kl",
            title: "KL to the output (nats)",
            unit: "nats",
            scale: ScaleKind::Robust,
            read: Read::Stat {
                stat: Stat::Kl,
                negate: false,
            },
            missing: "no next token",
        },
    },
    MetricInfo {
        metric: Metric::Ce,
        help:
            "Next-token cross-entropy, -log p(next input token) (nats); none at the last position",
        colouring: Colouring {
            name: "ce",
            title: "next-token cross-entropy (nats)",
            unit: "nats",
            scale: ScaleKind::FromZero,
            read: Read::Stat {
                stat: Stat::NextLogprob,
                negate: true,
            },
            missing: "no next token",
        },
    },
    MetricInfo {
        metric: Metric::Rank,
        help:
            "Rank of the next input token (1 = argmax), log colour scale; none at the last position",
        colouring: Colouring {
            name: "rank",
            title: "next-token rank (log scale)",
            unit: "rank",
            scale: ScaleKind::Log,
            read: Read::Stat {
                stat: Stat::NextRank,
                negate: false,
            },
            missing: "no next token",
        },
    },
    MetricInfo {
        metric: Metric::Target,
        help: "Probability of the first target (--target, --target-id, JSONL \"target\")",
        colouring: Colouring {
            name: "target",
            title: "target probability",
            unit: "probability",
            scale: ScaleKind::Unit,
            read: Read::TargetProb(0),
            missing: "no target",
        },
    },
];

/// A tracked token's rank, on a log scale (as `--metric rank` shows the next token's): the
/// report's menu offers it beside each target's probability.
const TARGET_RANK: Colouring = Colouring {
    name: "target-rank",
    title: "target rank (log scale)",
    unit: "rank",
    scale: ScaleKind::Log,
    read: Read::TargetRank(0),
    missing: "no target",
};

impl Colouring {
    /// Every colouring of a report tracking `targets` tokens, as its menu lists them:
    /// `--metric`'s, with `target` (the first target's probability) replaced by each
    /// target's probability and rank, in the targets' order.
    pub fn all(targets: usize) -> Vec<Colouring> {
        let mut all = Vec::new();
        for m in &METRICS {
            match m.metric {
                Metric::Target => all.extend(Colouring::targets(targets)),
                _ => all.push(m.colouring),
            }
        }
        all
    }

    /// Each of `targets` tracked tokens' probability (target 0's is `--metric target`) and
    /// rank, in order.
    pub fn targets(targets: usize) -> impl Iterator<Item = Colouring> {
        let prob = Metric::Target.colouring();
        (0..targets).flat_map(move |i| {
            [
                Colouring {
                    read: Read::TargetProb(i),
                    ..prob
                },
                Colouring {
                    read: Read::TargetRank(i),
                    ..TARGET_RANK
                },
            ]
        })
    }

    /// What its colour scale is sized to, from the cells shown: each cell's value (`None`
    /// where it has none) and whether its row is the embeddings'. The top is the largest
    /// finite value (0 when none), or for [`ScaleKind::Robust`] the
    /// [`ROBUST_PERCENTILE`]th percentile (nearest rank) of the finite values outside the
    /// embedding row (of all of them when there are none outside it). The heatmap and the
    /// HTML report both size their scales here.
    pub fn extent(&self, cells: impl IntoIterator<Item = (bool, Option<f64>)>) -> Extent {
        let (mut largest, mut outside) = (0.0f64, Vec::new());
        let mut inside = Vec::new();
        for (embedding, value) in cells {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            largest = largest.max(v);
            if self.scale == ScaleKind::Robust {
                match embedding {
                    true => inside.push(v),
                    false => outside.push(v),
                }
            }
        }
        if self.scale != ScaleKind::Robust {
            return Extent {
                top: largest,
                largest,
            };
        }
        let mut values = if outside.is_empty() { inside } else { outside };
        values.sort_by(f64::total_cmp);
        let rank = (ROBUST_PERCENTILE / 100.0 * values.len() as f64).ceil() as usize;
        let top = values.get(rank.saturating_sub(1)).copied().unwrap_or(0.0);
        Extent { top, largest }
    }

    /// Its key in the report's menu: the name, and after the first target the target's
    /// number (`target`, `target-rank`, `target-2`, `target-rank-2`).
    pub fn key(&self) -> String {
        match self.read.target() {
            Some(i) if i > 0 => format!("{}-{}", self.name, i + 1),
            _ => self.name.to_string(),
        }
    }
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

    /// Its row of [`METRICS`].
    pub fn info(self) -> &'static MetricInfo {
        METRICS
            .iter()
            .find(|m| m.metric == self)
            .expect("every metric has a row in METRICS")
    }

    /// How it colours the cells.
    pub fn colouring(self) -> Colouring {
        self.info().colouring
    }

    /// The `--metric` name.
    pub fn name(self) -> &'static str {
        self.colouring().name
    }

    /// One line on what the metric shows, for `--help`.
    pub fn help(self) -> &'static str {
        self.info().help
    }

    /// The unit of the metric's values, as `--color-range` takes them.
    pub fn unit(self) -> &'static str {
        self.colouring().unit
    }

    /// How values map onto colours.
    pub fn scale_kind(self) -> ScaleKind {
        self.colouring().scale
    }

    /// What the legend calls a cell without a value.
    pub fn missing(self) -> &'static str {
        self.colouring().missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statistic_and_metric_has_one_row() {
        for (i, d) in STATS.iter().enumerate() {
            assert_eq!(d.stat.descriptor(), d, "row {i}");
            assert_eq!(STATS.iter().filter(|o| o.key == d.key).count(), 1);
        }
        let all: Vec<Metric> = METRICS.iter().map(|m| m.metric).collect();
        assert_eq!(all, Metric::ALL);
    }

    #[test]
    fn kl_extent_leaves_the_embedding_row_out() {
        let kl = Metric::Kl.colouring();
        // 100 cells outside the embeddings (0, 0.1, …, 9.9), two inside, one without a value.
        let cells = (0..100).map(|i| (false, Some(f64::from(i) / 10.0))).chain([
            (true, Some(110.0)),
            (true, Some(120.0)),
            (false, None),
        ]);
        let top = |e: Extent| (e.top, e.largest);
        // The 99th percentile (nearest rank) of the 100: the 99th smallest.
        assert_eq!(top(kl.extent(cells.clone())), (9.8, 120.0));
        assert_eq!(
            top(Metric::Entropy.colouring().extent(cells)),
            (120.0, 120.0)
        );
        // Only the embedding row: its own percentile; nothing: 0.
        assert_eq!(
            top(kl.extent([(true, Some(7.0)), (true, Some(f64::NAN))])),
            (7.0, 7.0)
        );
        assert_eq!(top(kl.extent([])), (0.0, 0.0));
    }

    #[test]
    fn values_print_as_their_types_do() {
        let s = TokenStat {
            id: 7,
            prob: 0.1,
            entropy: 1.5,
            kl: 0.5,
            next_logprob: None,
            next_rank: Some(4),
        };
        let exact = crate::tokens::exact_text(b"x\xE2");
        let shown: Vec<String> = STATS
            .iter()
            .map(|d| d.stat.value(&s, "x\\xE2", &exact).to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "7",
                "x\\xE2",
                "x\u{FFFD}",
                "78e2",
                "0.1",
                "1.5",
                "0.5",
                "",
                "4"
            ]
        );
        assert_eq!(Stat::NextLogprob.cell(Value::Null), "-");
        let plain = crate::tokens::exact_text(b"x");
        assert_eq!(Stat::Bytes.value(&s, "x", &plain), Value::Absent);
        assert_eq!(Stat::Bytes.value(&s, "x", &plain).to_string(), "");
        assert_eq!(
            Stat::Entropy.cell(Stat::Entropy.value(&s, "x", &plain)),
            "1.50"
        );
        assert_eq!(Stat::Entropy.title(), "entropy (nats)");
        assert_eq!(
            serde_json::to_string(&Stat::Prob.value(&s, "x", &plain)).unwrap(),
            "0.1"
        );
    }
}
