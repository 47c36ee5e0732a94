//! Outputs: one module per format, each a self-contained [`Sink`] fed the same [`Report`]s,
//! and [`Printer`], the choice of stdout format.

pub mod delimited;
pub mod heatmap;
pub mod images;
pub mod json;
pub mod jsonl;
pub mod table;

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::lens::{Lens, Stat, TokenStat, Value, STATS};
use crate::tokens::Vocab;

/// One prompt's lens, with token text resolved: the shape of the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The `--model` argument.
    pub model: String,
    /// The prompt as given.
    pub prompt: String,
    /// 0-based position of the prompt in the run.
    pub prompt_index: usize,
    /// The prompt's id from a JSONL file, else null.
    pub prompt_id: Option<String>,
    /// The lens that read the rows; the JSON says only whether rows 0..L-1 went through
    /// the final norm, as `"final_norm"`.
    #[serde(rename = "final_norm", serialize_with = "through_final_norm")]
    pub lens: Arc<dyn Lens>,
    /// The input tokens.
    pub tokens: Vec<InputToken>,
    /// Layer 0 (embeddings) to layer L (the model's output).
    pub layers: Vec<Layer>,
}

/// One input token.
#[derive(Debug, Clone, Serialize)]
pub struct InputToken {
    pub id: u32,
    pub text: String,
}

/// One lens row.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    pub layer: usize,
    pub positions: Vec<Prediction>,
}

/// The lens's prediction at one position of one layer: its statistics and the argmax
/// token's text. It serializes as one object holding every statistic of [`STATS`], in order.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The argmax token's text.
    pub token: String,
    /// The row's statistics.
    pub stat: TokenStat,
}

impl Prediction {
    /// The value of `stat` in this cell.
    pub fn value(&self, stat: Stat) -> Value<'_> {
        stat.value(&self.stat, &self.token)
    }
}

impl Serialize for Prediction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(STATS.len()))?;
        for stat in STATS {
            map.serialize_entry(stat.name(), &self.value(stat))?;
        }
        map.end()
    }
}

/// The lens as the JSON has always shown it: whether rows 0..L-1 went through the final norm.
fn through_final_norm<S: Serializer>(lens: &Arc<dyn Lens>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(lens.final_norm())
}

impl Report {
    /// Attaches token text to the lens's `[layer][position]` stats.
    pub fn new(
        model: &str,
        prompt: &str,
        lens: Arc<dyn Lens>,
        ids: &[u32],
        rows: &[Vec<TokenStat>],
        vocab: &Vocab,
    ) -> Self {
        let tokens = ids
            .iter()
            .map(|&id| InputToken {
                id,
                text: vocab.display(id),
            })
            .collect();
        let layers = rows
            .iter()
            .enumerate()
            .map(|(layer, row)| Layer {
                layer,
                positions: row
                    .iter()
                    .map(|&stat| Prediction {
                        token: vocab.display(stat.id),
                        stat,
                    })
                    .collect(),
            })
            .collect();
        Self {
            model: model.to_string(),
            prompt: prompt.to_string(),
            prompt_index: 0,
            prompt_id: None,
            lens,
            tokens,
            layers,
        }
    }
}

/// Where reports go: begun once before the first report, given each report as soon as it
/// is ready, finished once after the last.
pub trait Sink {
    /// Writes what comes before any report (a header).
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }

    /// Takes one prompt's report.
    fn report(&mut self, report: &Report) -> Result<()>;

    /// Writes what comes after all reports and flushes.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The stdout printers, one per `--format`.
pub enum Printer<W: Write> {
    /// Aligned columns of argmax tokens.
    Table(table::Table<W>),
    /// One JSON document.
    Json(json::Json<W>),
    /// One JSON object per line.
    Jsonl(jsonl::Jsonl<W>),
    /// CSV or TSV rows (boxed: the csv writer is large).
    Delimited(Box<delimited::Delimited<W>>),
}

impl<W: Write> Printer<W> {
    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            Printer::Table(p) => p,
            Printer::Json(p) => p,
            Printer::Jsonl(p) => p,
            Printer::Delimited(p) => p.as_mut(),
        }
    }
}

impl<W: Write> Sink for Printer<W> {
    fn begin(&mut self) -> Result<()> {
        self.sink().begin()
    }

    fn report(&mut self, report: &Report) -> Result<()> {
        self.sink().report(report)
    }

    fn finish(&mut self) -> Result<()> {
        self.sink().finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lens::LogitLens;

    #[test]
    fn json_shape_is_unchanged() {
        let report = Report {
            model: "m".into(),
            prompt: "p".into(),
            prompt_index: 1,
            prompt_id: None,
            lens: Arc::new(LogitLens { final_norm: false }),
            tokens: vec![InputToken {
                id: 5,
                text: "p".into(),
            }],
            layers: vec![Layer {
                layer: 0,
                positions: vec![Prediction {
                    token: " q".into(),
                    stat: TokenStat {
                        id: 9,
                        prob: 0.1,
                        entropy: 2.5,
                    },
                }],
            }],
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"model":"m","prompt":"p","prompt_index":1,"prompt_id":null,"final_norm":false,"tokens":[{"id":5,"text":"p"}],"layers":[{"layer":0,"positions":[{"id":9,"token":" q","prob":0.1,"entropy":2.5}]}]}"#
        );
    }
}
