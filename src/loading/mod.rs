//! Where weights and tokenizers come from: model files on disk or on the Hub, memory-mapped
//! safetensors, GGUF files, and the `store::WeightSource` trait through which the models
//! ask any of them for tensors by their Hugging Face names; and tuned lenses
//! ([`tuned_lens`]: a directory, or the Space that publishes them).
//!
//! Nothing here knows an architecture: what a GGUF file's tensors are called in Hugging Face
//! terms is handed in as plain data by the caller (the models' registry).

pub mod gguf;
pub mod gguf_tokenizer;
pub(crate) mod gguf_weights;
pub mod source;
pub(crate) mod store;
pub(crate) mod torch_zip;
pub mod tuned_lens;
pub mod weights;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

/// Reads and parses the JSON file at `path`; when it is not valid JSON the message ends
/// with `fix`, what to do about it.
pub fn read_json(path: &Path, fix: &str) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not valid JSON ({e}); {fix}", path.display()))
}

/// The files a Hugging Face model directory holds.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// config.json.
    pub config: PathBuf,
    /// tokenizer.json.
    pub tokenizer: PathBuf,
    /// model.safetensors, or every shard of model.safetensors.index.json.
    pub weights: Vec<PathBuf>,
}
