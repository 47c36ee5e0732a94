//! Outputs: one module per format, each a self-contained [`Sink`] fed the same [`Report`]s,
//! and [`Printer`], the choice of stdout format.

pub mod delimited;
pub mod heatmap;
pub mod images;
pub mod json;
pub mod jsonl;
pub mod report;
pub mod stats;
pub mod summary;
pub mod summary_plot;
pub mod table;

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::lens::{
    block_outputs, first_appearance, settling, settling_layer, Cell, Lens, LensOptions, Row, Site,
    TargetStat, TokenStat,
};
use crate::provenance::Provenance;
use crate::tokens::{TokenText, Vocab};
pub use stats::{Stat, Value, STATS};

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
    /// Which lens: "logit" or "tuned".
    #[serde(rename = "lens")]
    pub lens_kind: &'static str,
    /// The first layer whose argmax at the last position is the output's argmax there
    /// (it may still change afterwards); null without layers.
    pub first_layer: Option<usize>,
    /// The first layer from which the output's argmax at the last position stays the
    /// argmax through the output; null without layers.
    pub settled_layer: Option<usize>,
    /// How many of each cell's most likely tokens `topk` lists (0: no `topk`).
    pub top_k: usize,
    /// The input tokens.
    pub tokens: Vec<InputToken>,
    /// The tracked tokens; each cell's `targets` follows this order.
    pub targets: Vec<Target>,
    /// The rows: layer 0 (embeddings) to layer L (the model's output), with each block's
    /// resid_mid before its output under `--sublayers`.
    pub layers: Vec<Layer>,
    /// Where the result came from (set by [`crate::Session`]; left out when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// One input token: its id, exact text ([`TokenText`]) and readable text.
#[derive(Debug, Clone, Serialize)]
pub struct InputToken {
    pub id: u32,
    /// The exact text (lossy only when `bytes` is present).
    pub text: String,
    /// The exact bytes in hex, only when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    /// The readable text ([`crate::tokens::printable`]).
    pub display: String,
}

impl InputToken {
    /// Token `id` of `vocab`.
    pub fn new(id: u32, vocab: &Vocab) -> Self {
        let TokenText { text, bytes } = vocab.exact(id);
        Self {
            id,
            text,
            bytes,
            display: vocab.display(id),
        }
    }
}

/// A token named by id and readable text: a tracked token, or one of a cell's top-k.
#[derive(Debug, Clone, Serialize)]
pub struct Token {
    pub id: u32,
    /// The readable text ([`crate::tokens::printable`]).
    pub token: String,
}

/// A tracked token, and where it settles at the last position.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub id: u32,
    /// The readable text ([`crate::tokens::printable`]).
    pub token: String,
    /// The first layer at which it is the argmax (rank 1) at the last position; null if
    /// never (block outputs only, as the report's own `first_layer`).
    pub first_layer: Option<usize>,
    /// The first layer from which it stays rank 1 through the output; null unless the
    /// output ranks it first.
    pub settled_layer: Option<usize>,
}

impl Token {
    /// Token `id` of `vocab`.
    pub fn new(id: u32, vocab: &Vocab) -> Self {
        Self {
            id,
            token: vocab.display(id),
        }
    }
}

/// One of a cell's most likely tokens.
#[derive(Debug, Clone, Serialize)]
pub struct TopToken {
    pub id: u32,
    pub token: String,
    pub prob: f32,
}

/// One lens row.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// The block number (0: embeddings).
    pub layer: usize,
    /// Where in the block the row reads the residual stream.
    pub site: Site,
    pub positions: Vec<Prediction>,
}

impl Layer {
    /// How the table and the plots label the row: "0 emb", "3 attn", "3", "L out".
    pub fn label(&self, last: usize) -> String {
        match (self.site, self.layer) {
            (Site::Embed, l) => format!("{l} emb"),
            (Site::ResidMid, l) => format!("{l} attn"),
            (Site::ResidPost, l) if l == last => format!("{l} out"),
            (Site::ResidPost, l) => l.to_string(),
        }
    }
}

/// The lens's prediction at one position of one layer: its statistics and the argmax
/// token's texts. It serializes as one object holding every statistic of [`STATS`], in
/// order, leaving out absent ones (`bytes` of a token whose text is exact), then `topk`
/// (when asked for) and `targets`.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The argmax token's readable text.
    pub token: String,
    /// The argmax token's exact text.
    pub exact: TokenText,
    /// The row's statistics.
    pub stat: TokenStat,
    /// The most likely tokens, most likely first.
    pub topk: Vec<TopToken>,
    /// The tracked tokens' standing, in the report's `targets` order.
    pub targets: Vec<TargetStat>,
}

impl Prediction {
    /// The argmax of `stat`, with its texts from `vocab`, and nothing else.
    pub fn new(stat: TokenStat, vocab: &Vocab) -> Self {
        Self {
            token: vocab.display(stat.id),
            exact: vocab.exact(stat.id),
            stat,
            topk: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Everything in `cell`, with token texts from `vocab`.
    pub fn of_cell(cell: &Cell, vocab: &Vocab) -> Self {
        Self {
            topk: cell
                .topk
                .iter()
                .map(|r| TopToken {
                    id: r.id,
                    token: vocab.display(r.id),
                    prob: r.prob,
                })
                .collect(),
            targets: cell.targets.clone(),
            ..Self::new(cell.stat, vocab)
        }
    }

    /// The value of `stat` in this cell.
    pub fn value(&self, stat: Stat) -> Value<'_> {
        stat.value(&self.stat, &self.token, &self.exact)
    }
}

impl Serialize for Prediction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for d in &STATS {
            let value = self.value(d.stat);
            if value != Value::Absent {
                map.serialize_entry(d.key, &value)?;
            }
        }
        if !self.topk.is_empty() {
            map.serialize_entry("topk", &self.topk)?;
        }
        map.serialize_entry("targets", &self.targets)?;
        map.end()
    }
}

/// The lens as the JSON has always shown it: whether rows 0..L-1 went through the final norm.
fn through_final_norm<S: Serializer>(lens: &Arc<dyn Lens>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(lens.final_norm())
}

impl Report {
    /// Attaches token text to the rows the lens of `opts` read off `ids`.
    pub fn new(
        model: &str,
        prompt: &str,
        opts: &LensOptions,
        ids: &[u32],
        rows: &[Row],
        vocab: &Vocab,
    ) -> Self {
        let lens = opts.lens.clone();
        let tokens = ids.iter().map(|&id| InputToken::new(id, vocab)).collect();
        let layers = rows
            .iter()
            .map(|row| Layer {
                layer: row.layer,
                site: row.site,
                positions: row
                    .cells
                    .iter()
                    .map(|c| Prediction::of_cell(c, vocab))
                    .collect(),
            })
            .collect();
        // Settling is judged on block outputs only, so the numbers keep their meaning
        // under --sublayers.
        let outputs: Vec<&Row> = block_outputs(rows).collect();
        let stats: Vec<Vec<TokenStat>> = outputs
            .iter()
            .map(|r| r.cells.iter().map(|c| c.stat).collect())
            .collect();
        let last = ids.len().checked_sub(1);
        let targets = opts
            .targets
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                // Whether the target is rank 1 at the last position, per block output.
                let top: Vec<bool> = outputs
                    .iter()
                    .filter_map(|r| Some(r.cells.last()?.targets.get(j)?.rank == 1))
                    .collect();
                let (first_layer, settled_layer) = settling(&top);
                Target {
                    id,
                    token: vocab.display(id),
                    first_layer,
                    settled_layer,
                }
            })
            .collect();
        Self {
            model: model.to_string(),
            prompt: prompt.to_string(),
            prompt_index: 0,
            prompt_id: None,
            lens_kind: lens.kind(),
            lens,
            first_layer: last.and_then(|last| first_appearance(&stats, last)),
            settled_layer: last.and_then(|last| settling_layer(&stats, last)),
            top_k: opts.top_k,
            tokens,
            targets,
            layers,
            provenance: None,
        }
    }
}

impl Report {
    /// The report with its provenance.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = Some(provenance);
        self
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

    /// The JSON shape: issue 14's keys in their order, then issue 15's additions
    /// (`first_layer`, `settled_layer`, each token's exact `text`, `bytes` only when not
    /// UTF-8, `display`, and `provenance` when known), then issue 8's (`lens`, `top_k`,
    /// `targets`, each row's `site`, each cell's `kl`, `next_logprob`, `next_rank` —
    /// null at the last position —, `topk` when asked for and `targets`).
    #[test]
    fn json_shape() {
        let cell = |id, text: &[u8], display: &str, next: Option<(f32, u32)>| Prediction {
            token: display.into(),
            exact: crate::tokens::exact_text(text),
            stat: TokenStat {
                id,
                prob: 0.1,
                entropy: 2.5,
                kl: 0.25,
                next_logprob: next.map(|n| n.0),
                next_rank: next.map(|n| n.1),
            },
            topk: vec![TopToken {
                id,
                token: display.into(),
                prob: 0.1,
            }],
            targets: vec![TargetStat {
                prob: 0.5,
                logprob: -0.75,
                rank: 2,
            }],
        };
        let report = Report {
            model: "m".into(),
            prompt: "p".into(),
            prompt_index: 1,
            prompt_id: None,
            lens: Arc::new(LogitLens { final_norm: false }),
            lens_kind: "logit",
            first_layer: Some(0),
            settled_layer: Some(0),
            top_k: 1,
            tokens: vec![InputToken {
                id: 5,
                text: "p".into(),
                bytes: None,
                display: "p".into(),
            }],
            targets: vec![Target {
                id: 9,
                token: " q".into(),
                first_layer: None,
                settled_layer: None,
            }],
            layers: vec![Layer {
                layer: 0,
                site: Site::Embed,
                positions: vec![
                    cell(9, b" q", " q", Some((-1.5, 3))),
                    cell(7, b"\xE2", "\\xE2", None),
                ],
            }],
            provenance: None,
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"model":"m","prompt":"p","prompt_index":1,"prompt_id":null,"final_norm":false,"lens":"logit","first_layer":0,"settled_layer":0,"top_k":1,"tokens":[{"id":5,"text":"p","display":"p"}],"targets":[{"id":9,"token":" q","first_layer":null,"settled_layer":null}],"layers":[{"layer":0,"site":"embed","positions":[{"id":9,"token":" q","text":" q","prob":0.1,"entropy":2.5,"kl":0.25,"next_logprob":-1.5,"next_rank":3,"topk":[{"id":9,"token":" q","prob":0.1}],"targets":[{"prob":0.5,"logprob":-0.75,"rank":2}]},{"id":7,"token":"\\xE2","text":"�","bytes":"e2","prob":0.1,"entropy":2.5,"kl":0.25,"next_logprob":null,"next_rank":null,"topk":[{"id":7,"token":"\\xE2","prob":0.1}],"targets":[{"prob":0.5,"logprob":-0.75,"rank":2}]}]}]}"#
        );
    }
}
