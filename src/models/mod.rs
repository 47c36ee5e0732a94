//! Model architectures: one decoder built from shared components, driven by a resolved spec
//! that each architecture's file translates from its config.json, and chosen through one
//! registry by config.json's `model_type` (or a GGUF file's architecture).
//!
//! The lens and the printers only see [`LensModel`]: the layers' hidden states, the final
//! norm and the head.

pub(crate) mod components;
pub(crate) mod decoder;
pub(crate) mod gemma;
pub(crate) mod gemma2;
pub(crate) mod gemma3;
pub(crate) mod gguf;
pub(crate) mod gpt2;
pub(crate) mod gpt_neox;
pub(crate) mod llama;
pub(crate) mod olmo2;
pub(crate) mod phi;
pub(crate) mod phi3;
pub(crate) mod qwen2;
pub(crate) mod registry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Tensor};

use self::components::rotary::divide;
use self::components::Vars;
use self::decoder::{Decoder, DecoderSpec, Names};
use crate::compute::Compute;
use crate::error::one_line;
use crate::loading::gguf::GgufFile;
use crate::loading::gguf_weights::GgufWeights;
use crate::loading::store::WeightSource;
use crate::loading::weights::Weights;

pub use crate::loading::ModelFiles;
pub use registry::SUPPORTED;

/// Facts about a loaded model that callers need.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// config.json's `model_type`.
    pub model_type: String,
    /// Number of transformer blocks L; the lens has L+1 rows.
    pub num_layers: usize,
    /// Width of the residual stream (d_model).
    pub hidden_size: usize,
    /// Longest input the model accepts.
    pub max_positions: usize,
    /// Rows of the embedding and the head.
    pub vocab_size: usize,
    /// config.json's `bos_token_id`, when it names one.
    pub bos_token_id: Option<u32>,
}

/// Where in the network a hidden state is read: the rows of the lens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// The embeddings (layer 0).
    Embed,
    /// Inside block l: the residual stream after the attention output is added, before
    /// the MLP's is (TransformerLens's `resid_mid`).
    ResidMid,
    /// Block l's output (for the last block, the model's output row).
    ResidPost,
}

impl Site {
    /// The name the outputs use: "embed", "resid_mid", "resid_post".
    pub fn name(self) -> &'static str {
        match self {
            Site::Embed => "embed",
            Site::ResidMid => "resid_mid",
            Site::ResidPost => "resid_post",
        }
    }
}

impl serde::Serialize for Site {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A causal LM seen through the lens.
pub trait LensModel {
    /// Shape and identity of the model.
    fn info(&self) -> &ModelInfo;

    /// Runs one forward pass over `ids` and calls `visit(layer, site, hidden)` with the
    /// `(T, D)` hidden state of each row in order: the embeddings (layer 0, [`Site::Embed`]),
    /// then for each block l = 1..=L its raw output ([`Site::ResidPost`], before the final
    /// norm), preceded, with `sublayers`, by its [`Site::ResidMid`]. Visiting rather than
    /// returning keeps memory flat.
    fn forward_sites(
        &self,
        ids: &[u32],
        sublayers: bool,
        visit: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
    ) -> Result<()>;

    /// [`LensModel::forward_sites`] over several prompts in one pass: `visit` gets each
    /// row's `(ΣT, D)` hidden states, the prompts' positions one after the other, each
    /// prompt computed as if it ran alone (its own positions, attending only to itself).
    /// One pass reads the weights once for all of them. The default runs the prompts one
    /// by one (`forward_one_by_one`).
    fn forward_packed(
        &self,
        prompts: &[&[u32]],
        sublayers: bool,
        visit: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
    ) -> Result<()> {
        forward_one_by_one(self, prompts, sublayers, visit)
    }

    /// [`LensModel::forward_sites`] without sublayers: `visit(layer, hidden)` for layers
    /// 0..=L.
    fn forward_layers(
        &self,
        ids: &[u32],
        visit: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<()> {
        self.forward_sites(ids, false, &mut |layer, _, hidden| visit(layer, hidden))
    }

    /// Whether [`LensModel::forward_sites`] can give `site`; an error saying why not
    /// otherwise.
    fn check_site(&self, site: Site) -> Result<()> {
        let _ = site;
        Ok(())
    }

    /// The final norm applied before the head.
    fn final_norm(&self, hidden: &Tensor) -> Result<Tensor>;

    /// The head: `(T, D)` → `(T, vocab)` logits.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor>;

    /// How the model computes ([`crate::compute::Backend`]); the lens reduces the head's
    /// logits to statistics the same way (`lens::reduce`): on the host with the CPU
    /// kernels, or on the model's device with tensor ops.
    fn backend(&self) -> crate::compute::Backend {
        crate::compute::Backend::Kernels
    }

    /// Waits until the model's device has finished the work queued so far (timings); the
    /// CPU computes synchronously.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

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

/// [`LensModel::forward_packed`] by one forward pass per prompt, each row's states
/// concatenated over the prompts before it is visited.
pub(crate) fn forward_one_by_one<M: LensModel + ?Sized>(
    model: &M,
    prompts: &[&[u32]],
    sublayers: bool,
    visit: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
) -> Result<()> {
    if let [ids] = prompts {
        return model.forward_sites(ids, sublayers, visit);
    }
    let mut rows: Vec<(usize, Site, Vec<Tensor>)> = Vec::new();
    for (p, ids) in prompts.iter().enumerate() {
        let mut row = 0;
        model.forward_sites(ids, sublayers, &mut |layer, site, hidden| {
            if p == 0 {
                rows.push((layer, site, Vec::new()));
            }
            rows[row].2.push(hidden.clone());
            row += 1;
            Ok(())
        })?;
    }
    for (layer, site, parts) in rows {
        visit(layer, site, &Tensor::cat(&parts, 0)?)?;
    }
    Ok(())
}

/// Reads and parses config.json, returning its `model_type` and the whole document.
pub(crate) fn read_config(path: &Path) -> Result<(String, serde_json::Value)> {
    let json = crate::loading::read_json(path, "restore the model's config.json")?;
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
    if registry::is_mixture_of_experts(&model_type) {
        bail!(
            "model_type \"{model_type}\" in {} is a mixture-of-experts model, which logitlens does not support; supported: {}",
            path.display(),
            SUPPORTED.join(", ")
        );
    }
    if !SUPPORTED.contains(&model_type.as_str()) {
        bail!(
            "unsupported model_type \"{model_type}\" in {}; supported: {}",
            path.display(),
            SUPPORTED.join(", ")
        );
    }
    Ok((model_type, json))
}

/// Size fields and the most any of them may be. Per-layer and per-channel settings are
/// allocated from these before the weights are checked, so an absurd value (a corrupt or
/// hand-edited config) must become an error here, not an out-of-memory abort.
const SIZE_LIMITS: &[(&str, u64)] = &[
    ("num_hidden_layers", 1 << 12),
    ("n_layer", 1 << 12),
    ("hidden_size", 1 << 20),
    ("n_embd", 1 << 20),
    ("intermediate_size", 1 << 22),
    ("n_inner", 1 << 22),
    ("num_attention_heads", 1 << 14),
    ("n_head", 1 << 14),
    ("num_key_value_heads", 1 << 14),
    ("head_dim", 1 << 16),
    ("vocab_size", 1 << 26),
];

/// Refuses a size field beyond [`SIZE_LIMITS`], at the top level or in `text_config`.
fn check_sizes(json: &serde_json::Value) -> Result<()> {
    let levels = [Some(json), json.get("text_config")];
    for level in levels.into_iter().flatten() {
        for &(key, max) in SIZE_LIMITS {
            if let Some(n) = level.get(key).and_then(serde_json::Value::as_u64) {
                if n > max {
                    bail!("{key} is {n}, more than any model has (at most {max}); restore the model's config.json");
                }
            }
        }
    }
    Ok(())
}

/// Loads the architecture that config.json names, with memory-mapped weights.
pub fn load(files: &ModelFiles, dtype: DType, compute: &Compute) -> Result<Box<dyn LensModel>> {
    let (model_type, json) = read_config(&files.config)?;
    let arch = registry::for_model_type(&model_type)
        .ok_or_else(|| anyhow!("model_type \"{model_type}\" has no registry row"))?;
    check_sizes(&json).map_err(|e| anyhow!("{}: {e}", files.config.display()))?;
    let weights = Arc::new(Weights::open(&files.weights)?);
    let source: Arc<dyn WeightSource> = Arc::new(weights.clone());
    let names = (arch.names)(&Vars::new(source.clone(), dtype, compute, true));
    let built = (arch.spec)(json).and_then(|spec| {
        spec.check()?;
        build(spec, arch.names, source, dtype, compute)
    });
    let model = built.map_err(|e| weights_error(&files.weights, e))?;
    if !compute.backend().resident_weights() {
        weights.prefault_in_background(&[names.root, names.head]);
    }
    Ok(model)
}

/// Loads a GGUF file through its architecture's registry row: the metadata becomes the
/// config.json the row translates, and the file serves the tensors under Hugging Face names.
pub fn load_gguf(
    file: &mut GgufFile,
    dtype: DType,
    compute: &Compute,
) -> Result<Box<dyn LensModel>> {
    let (arch, gguf) = registry::for_gguf(file)?;
    gguf::check_block_count(file)?;
    let config = (gguf.config)(file)?;
    check_sizes(&config.json).map_err(|e| anyhow!("{}: {e}", file.path().display()))?;
    // The translator and the check word their errors for config.json, which here is the
    // file's metadata.
    let in_metadata = |e: anyhow::Error| {
        let msg = one_line(&format!("{e:#}"));
        let msg = msg.strip_prefix("config.json: ").unwrap_or(&msg);
        anyhow!(
            "{}: the metadata does not describe a model: {msg}",
            file.path().display()
        )
    };
    let mut spec = (arch.spec)(config.json).map_err(in_metadata)?;
    (gguf.stored)(&mut spec);
    let rotary_key = format!("{}.rope.dimension_count", file.architecture()?);
    if let (Some(want), Some(rotary)) = (file.opt_usize(&rotary_key)?, &spec.rotary) {
        if rotary.dim != want {
            bail!(
                "{}: {rotary_key} is {want}, but the metadata gives {} rotating channels per head",
                file.path().display(),
                rotary.dim
            );
        }
    }
    if let (Some(divisors), Some(rotary)) = (&config.rope_divisors, &mut spec.rotary) {
        for table in &mut rotary.tables {
            *table = divide(table, divisors)?;
        }
    }
    spec.check().map_err(in_metadata)?;
    let source = GgufWeights::read(file, gguf.names, spec.attention.head_dim)?;
    build(spec, arch.names, Arc::new(source), dtype, compute)
}

/// Validates every weight's name and shape against the spec, then builds for real.
fn build(
    spec: DecoderSpec,
    names: fn(&Vars) -> Names,
    source: Arc<dyn WeightSource>,
    dtype: DType,
    compute: &Compute,
) -> Result<Box<dyn LensModel>> {
    let real = Vars::new(source.clone(), dtype, compute, false);
    let names = names(&real);
    let dry = Vars::new(source, dtype, compute, true);
    Decoder::new(spec.clone(), names, &dry)?.check_blocks()?;
    Ok(Box::new(Decoder::new(spec, names, &real)?))
}

/// A small config.json (vocab 8, hidden 16, MLP 8, 2 layers, 2 heads of 8 channels) with
/// `extra`'s keys merged in, for architectures' unit tests.
#[cfg(test)]
pub(crate) fn test_config(extra: serde_json::Value) -> serde_json::Value {
    let mut json = serde_json::json!({"vocab_size": 8, "hidden_size": 16,
        "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2});
    let extra = extra.as_object().expect("extra keys as a JSON object");
    json.as_object_mut().unwrap().extend(extra.clone());
    json
}

/// Parses an architecture's config, naming the field at fault.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> Result<T> {
    serde_json::from_value(json).map_err(|e| {
        anyhow!("config.json does not describe this architecture: {e}; fix or replace config.json")
    })
}

/// `json` with each of `defaults`' keys that it lacks added: for a config class whose
/// defaults differ from those of the shared serde struct it is parsed into.
pub(crate) fn with_defaults(
    mut json: serde_json::Value,
    defaults: serde_json::Value,
) -> serde_json::Value {
    if let (Some(obj), Some(defaults)) = (json.as_object_mut(), defaults.as_object()) {
        for (k, v) in defaults {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    json
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
