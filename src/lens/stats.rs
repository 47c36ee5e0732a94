//! Per-cell statistics, declared once.
//!
//! A statistic is one [`Stat`]: its name (the JSON key), its CSV column, its unit, how the
//! table shows it and how to read its [`Value`] from a cell. The row reducer
//! ([`row_stats`]) computes every statistic of one logits row in one pass. The printers and
//! the heatmap iterate over [`STATS`], so adding a statistic is a field of [`TokenStat`]
//! filled by the reducer, plus one variant here with its entries in each `match`.

use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::tokens::TokenText;

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
}

/// Every statistic, in output order (JSON keys, CSV columns).
pub const STATS: [Stat; 6] = [
    Stat::Id,
    Stat::Token,
    Stat::Text,
    Stat::Bytes,
    Stat::Prob,
    Stat::Entropy,
];

impl Stat {
    /// The name: the JSON key and the heatmap's colour-bar title.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Id => "id",
            Stat::Token => "token",
            Stat::Text => "text",
            Stat::Bytes => "bytes",
            Stat::Prob => "prob",
            Stat::Entropy => "entropy",
        }
    }

    /// The CSV/TSV column.
    pub fn column(self) -> &'static str {
        match self {
            Stat::Id => "predicted_id",
            Stat::Token => "predicted_token",
            Stat::Text => "predicted_text",
            Stat::Bytes => "predicted_bytes",
            Stat::Prob => "prob",
            Stat::Entropy => "entropy",
        }
    }

    /// The unit, if the statistic has one.
    pub fn unit(self) -> Option<&'static str> {
        match self {
            Stat::Entropy => Some("nats"),
            Stat::Id | Stat::Token | Stat::Text | Stat::Bytes | Stat::Prob => None,
        }
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
            Stat::Prob => Value::Real(stat.prob),
            Stat::Entropy => Value::Real(stat.entropy),
        }
    }

    /// The value as a table cell shows it (after the token): two decimals for reals.
    pub fn cell(self, value: Value<'_>) -> String {
        match value {
            Value::Real(x) => format!("{x:.2}"),
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
}

impl Value<'_> {
    /// The value as a number for colour scales; `None` for text.
    pub fn number(self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(f64::from(i)),
            Value::Text(_) | Value::Absent => None,
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
            Value::Absent => Ok(()),
        }
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::Int(i) => s.serialize_u32(i),
            Value::Text(t) => s.serialize_str(t),
            Value::Real(x) => s.serialize_f32(x),
            Value::Absent => s.serialize_none(),
        }
    }
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

    #[test]
    fn values_print_as_their_types_do() {
        let s = TokenStat {
            id: 7,
            prob: 0.1,
            entropy: 1.5,
        };
        let exact = crate::tokens::exact_text(b"x\xE2");
        let shown: Vec<String> = STATS
            .iter()
            .map(|st| st.value(&s, "x\\xE2", &exact).to_string())
            .collect();
        assert_eq!(shown, ["7", "x\\xE2", "x\u{FFFD}", "78e2", "0.1", "1.5"]);
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
