//! Printers: one module per output format, all fed the same [`Report`].

pub mod delimited;
pub mod heatmap;
pub mod json;
pub mod jsonl;
pub mod table;

use serde::Serialize;

use crate::lens::TokenStat;
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
    /// Whether rows 0..L-1 went through the final norm.
    pub final_norm: bool,
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

/// The lens's prediction at one position of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub id: u32,
    pub token: String,
    pub prob: f32,
    pub entropy: f32,
}

impl Report {
    /// Attaches token text to the lens's `[layer][position]` stats.
    pub fn new(
        model: &str,
        prompt: &str,
        final_norm: bool,
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
                    .map(|s| Prediction {
                        id: s.id,
                        token: vocab.display(s.id),
                        prob: s.prob,
                        entropy: s.entropy,
                    })
                    .collect(),
            })
            .collect();
        Self {
            model: model.to_string(),
            prompt: prompt.to_string(),
            prompt_index: 0,
            prompt_id: None,
            final_norm,
            tokens,
            layers,
        }
    }
}
