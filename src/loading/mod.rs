//! Where weights and tokenizers come from: model files on disk or on the Hub, memory-mapped
//! safetensors, GGUF files, and the [`store::WeightSource`] trait through which the models
//! ask any of them for tensors by their Hugging Face names; and tuned lenses
//! ([`tuned_lens`]: a directory, or the Space that publishes them).
//!
//! Nothing here knows an architecture: what a GGUF file's tensors are called in Hugging Face
//! terms is handed in as plain data by the caller (the models' registry).

pub mod gguf;
pub mod gguf_tokenizer;
pub mod gguf_weights;
pub mod source;
pub mod store;
pub mod tuned_lens;
pub mod weights;

use std::path::PathBuf;

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
