//! What one prompt's lens run says, with token text resolved: [`Report`] and its parts.
//!
//! The session builds reports ([`crate::Session::run`]); every output reads them
//! ([`crate::output`], which also gives a [`Prediction`] its JSON form). This module sits
//! below both, so that the session needs nothing of the outputs.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::lens::{
    block_outputs, first_appearance, settling, settling_layer, Cell, Lens, LensOptions, Row, Site,
    TargetStat, TokenStat,
};
use crate::provenance::Provenance;
use crate::tokens::{TokenText, Vocab};

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

/// How a non-finite cell reads where its argmax token would be (the table, the heatmap,
/// the HTML report).
pub const NONFINITE: &str = "non-finite";

/// The lens's prediction at one position of one layer: its statistics and the argmax
/// token's texts. Its JSON form (every statistic of [`crate::output::STATS`], then `topk`
/// and `targets`) is the outputs' ([`crate::output`]), as is [`Prediction::value`].
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
    /// The row held a NaN or an infinity (`--allow-nonfinite` kept it): none of its
    /// numbers is a result, and the outputs show none of them.
    pub nonfinite: bool,
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
            nonfinite: false,
        }
    }

    /// Everything in `cell`, with token texts from `vocab`.
    pub fn of_cell(cell: &Cell, vocab: &Vocab) -> Self {
        if cell.nonfinite {
            // Nothing of it is a result: no argmax, no top-k, no targets.
            return Self {
                token: NONFINITE.to_string(),
                nonfinite: true,
                ..Self::new(TokenStat::default(), vocab)
            };
        }
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
        // A non-finite cell never holds the output's argmax (an id no token has), and a
        // non-finite output has none to settle.
        let stats: Vec<Vec<TokenStat>> = outputs
            .iter()
            .map(|r| {
                r.cells
                    .iter()
                    .map(|c| match c.nonfinite {
                        true => TokenStat {
                            id: u32::MAX,
                            ..c.stat
                        },
                        false => c.stat,
                    })
                    .collect()
            })
            .collect();
        let last = ids.len().checked_sub(1).filter(|&last| {
            outputs
                .last()
                .is_none_or(|r| r.cells.get(last).is_none_or(|c| !c.nonfinite))
        });
        let targets = opts
            .targets
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                // Whether the target is rank 1 at the last position, per block output.
                let top: Vec<bool> = outputs
                    .iter()
                    .filter_map(|r| {
                        let cell = r.cells.last()?;
                        Some(!cell.nonfinite && cell.targets.get(j)?.rank == 1)
                    })
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
