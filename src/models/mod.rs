//! Model architectures behind one small trait, chosen by config.json's `model_type`.
//!
//! Each architecture lives in its own file and only has to expose its layers' hidden
//! states, its final norm and its head; the lens and the printers never look further.

pub mod gguf_llama;
pub mod gpt2;
pub mod layers;
pub mod llama;
pub mod phi;
pub mod qwen2;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::tokens::one_line;
use crate::weights::Weights;

/// Architectures this build can run, as config.json spells them.
pub const SUPPORTED: &[&str] = &["phi", "llama", "mistral", "qwen2", "gpt2"];

/// Facts about a loaded model that callers need.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// config.json's `model_type`.
    pub model_type: String,
    /// Number of transformer blocks L; the lens has L+1 rows.
    pub num_layers: usize,
    /// Longest input the model accepts.
    pub max_positions: usize,
    /// Rows of the embedding and the head.
    pub vocab_size: usize,
    /// config.json's `bos_token_id`, when it names one.
    pub bos_token_id: Option<u32>,
}

/// A causal LM seen through the lens.
pub trait LensModel {
    /// Shape and identity of the model.
    fn info(&self) -> &ModelInfo;

    /// Runs one forward pass over `ids` and calls `visit(layer, hidden)` with the `(T, D)`
    /// hidden state of each layer 0..=L in order: the embeddings, then each block's raw
    /// output (before the final norm). Visiting rather than returning keeps memory flat.
    fn forward_layers(
        &self,
        ids: &[u32],
        visit: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<()>;

    /// The final norm applied before the head.
    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor>;

    /// The head: `(T, D)` → `(T, vocab)` logits.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor>;

    /// Every layer's hidden state, for tests and for callers that want them all.
    fn hidden_states(&self, ids: &[u32]) -> Result<Vec<Tensor>> {
        let mut all = Vec::new();
        self.forward_layers(ids, &mut |_, h| {
            all.push(h.clone());
            Ok(())
        })?;
        Ok(all)
    }
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

/// What each architecture file provides on top of [`LensModel`].
///
/// `new` builds only what every row needs (embeddings, final norm, head) and keeps the
/// `VarBuilder`; blocks are built one at a time during the forward pass and dropped after
/// use, so the converted checkpoint is never held whole.
pub trait Architecture: LensModel + Sized + 'static {
    /// The config.json fields it reads.
    type Config: serde::de::DeserializeOwned;

    /// Builds the model around `vb`.
    fn new(cfg: &Self::Config, vb: VarBuilder<'static>) -> Result<Self>;

    /// Builds every block once; with a shape-checking `VarBuilder` this validates the
    /// checkpoint against config.json without reading weights.
    fn check_blocks(&self) -> Result<()>;
}

/// Reads and parses config.json, returning its `model_type` and the whole document.
pub fn read_config(path: &Path) -> Result<(String, serde_json::Value)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{} is not valid JSON ({e}); restore the model's config.json",
            path.display()
        )
    })?;
    let model_type = json
        .get("model_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            anyhow!(
                "{} has no \"model_type\"; it must name an architecture ({})",
                path.display(),
                SUPPORTED.join(", ")
            )
        })?
        .to_string();
    if !SUPPORTED.contains(&model_type.as_str()) {
        bail!(
            "unsupported model_type \"{model_type}\" in {}; supported: {}",
            path.display(),
            SUPPORTED.join(", ")
        );
    }
    Ok((model_type, json))
}

/// Loads the architecture that config.json names, with memory-mapped weights.
pub fn load(files: &ModelFiles, dtype: DType, device: &Device) -> Result<Box<dyn LensModel>> {
    let (model_type, json) = read_config(&files.config)?;
    let weights = Arc::new(Weights::open(&files.weights)?);
    let built = match model_type.as_str() {
        "phi" => build::<phi::Phi>(json, &weights, dtype, device),
        "llama" | "mistral" => build::<llama::Llama>(json, &weights, dtype, device),
        "qwen2" => build::<qwen2::Qwen2>(json, &weights, dtype, device),
        "gpt2" => build::<gpt2::Gpt2>(json, &weights, dtype, device),
        _ => unreachable!("read_config checked against SUPPORTED"),
    };
    let model = built.map_err(|e| weights_error(&files.weights, e))?;
    weights.prefault_in_background();
    Ok(model)
}

/// Parses the config, validates every weight's name and shape, then builds for real.
fn build<A: Architecture>(
    json: serde_json::Value,
    weights: &Arc<Weights>,
    dtype: DType,
    device: &Device,
) -> Result<Box<dyn LensModel>> {
    let cfg: A::Config = parse_config(json)?;
    A::new(&cfg, weights.shape_checker(dtype, device))?.check_blocks()?;
    Ok(Box::new(A::new(&cfg, weights.var_builder(dtype, device))?))
}

/// Parses an architecture's config, naming the field at fault.
pub fn parse_config<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> Result<T> {
    serde_json::from_value(json).map_err(|e| {
        anyhow!("config.json does not describe this architecture: {e}; fix or replace config.json")
    })
}

fn weights_error(weights: &[PathBuf], e: anyhow::Error) -> anyhow::Error {
    let msg = one_line(&format!("{e:#}"));
    if msg.contains("config.json") && !msg.contains("tensor ") {
        return anyhow!(msg);
    }
    anyhow!(
        "the weights in {} do not fit config.json: {msg}; use the config.json that came with these weights",
        display_paths(weights)
    )
}

fn display_paths(paths: &[PathBuf]) -> String {
    match paths {
        [one] => one.display().to_string(),
        many => format!(
            "{} shards in {}",
            many.len(),
            many[0]
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    }
}

/// The loop every architecture shares: visit the embeddings, then run each block in turn
/// and visit its output. A leading batch dimension of 1 is dropped before visiting.
pub fn visit_blocks(
    mut xs: Tensor,
    blocks: usize,
    visit: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    mut block: impl FnMut(usize, &Tensor) -> Result<Tensor>,
) -> Result<()> {
    let unbatched = |t: &Tensor| -> Result<Tensor> {
        Ok(match t.rank() {
            3 => t.squeeze(0)?,
            _ => t.clone(),
        })
    };
    visit(0, &unbatched(&xs)?)?;
    for i in 0..blocks {
        xs = block(i, &xs)?;
        visit(i + 1, &unbatched(&xs)?)?;
    }
    Ok(())
}

/// A lower-triangular additive mask: 0 on and below the diagonal, −∞ above.
pub fn causal_mask(seq_len: usize, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..seq_len)
        .flat_map(|i| (0..seq_len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (seq_len, seq_len), device)?.to_dtype(dtype)
}
