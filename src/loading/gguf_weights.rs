//! A GGUF file as a [`WeightSource`]: it serves the Hugging Face tensor names a decoder asks
//! for, through a name map the caller supplies (llama.cpp's `blk.N.attn_q` is
//! `model.layers.N.self_attn.q_proj`), so a GGUF model runs through the same decoder as a
//! Hugging Face directory.
//!
//! The matrices stay quantized in memory, as the file stores them. A block's tensors are
//! dequantized to the compute dtype together, in parallel, when the forward pass reaches the
//! block ([`WeightSource::prepare`]), and dropped with it: the activations meet exactly the
//! weights transformers computes with (it dequantizes GGUF files on load), while memory stays
//! at the file's size plus one block. Tensors outside the blocks (the embedding table, the
//! head) are dequantized when the model asks for them, once, at load.
//!
//! For the llama architecture only, llama.cpp's converter permutes the rows of
//! `attn_q`/`attn_k` so that rotary pairs are adjacent (GPT-J's interleaved layout);
//! [`Rows::Unpermute`], set per name in the architecture's name map, puts the quantized rows
//! back at load, so the decoder's rotate-half rotary applies unchanged. Other architectures'
//! maps (qwen2, qwen3) serve every tensor as stored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::gguf::GgufFile;
use super::store::WeightSource;

/// What to do with a tensor's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Served as stored.
    AsStored,
    /// Undo llama.cpp's per-head q/k row permutation (done once, at load).
    Unpermute,
}

/// One entry of a name map: a Hugging Face name and the GGUF name it is stored under, both
/// without the `.weight`/`.bias` suffix; `{}` stands for the block index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GgufName {
    /// e.g. `model.layers.{}.self_attn.q_proj`.
    pub hf: &'static str,
    /// e.g. `blk.{}.attn_q`.
    pub gguf: &'static str,
    /// Row treatment.
    pub rows: Rows,
}

/// Every tensor of a GGUF file, quantized as stored, served under Hugging Face names.
pub(crate) struct GgufWeights {
    path: PathBuf,
    arch: String,
    names: &'static [GgufName],
    tensors: HashMap<String, Arc<QTensor>>,
    /// Tensors [`WeightSource::prepare`] dequantized ahead, by Hugging Face name.
    ready: Mutex<HashMap<String, Tensor>>,
}

impl GgufWeights {
    /// Reads every tensor of `file` (quantized, as stored; q/k rows put back in
    /// Hugging Face order). `names` maps the Hugging Face names onto the file's; `head_dim`
    /// is the head size q/k rows are permuted in.
    pub(crate) fn read(
        file: &mut GgufFile,
        names: &'static [GgufName],
        head_dim: usize,
    ) -> Result<Self> {
        let mut tensors = HashMap::new();
        for name in file.tensor_names() {
            let shape = file.shape(&name).unwrap_or_default().to_vec();
            let mut t = file.tensor(&name, &shape, &Device::Cpu)?;
            let permuted = names
                .iter()
                .any(|n| n.rows == Rows::Unpermute && rename(&name, n.gguf, n.hf).is_some());
            if permuted {
                t = unpermute(&t, head_dim)
                    .map_err(|e| anyhow!("{}: tensor {name}: {e}", file.path().display()))?;
            }
            tensors.insert(name, Arc::new(t));
        }
        Ok(Self {
            path: file.path().to_path_buf(),
            arch: file.architecture()?,
            names,
            tensors,
            ready: Mutex::new(HashMap::new()),
        })
    }

    /// The stored tensor behind `hf` and its GGUF name, or a one-line error naming the file.
    fn stored(&self, hf: &str) -> Result<(&Arc<QTensor>, String)> {
        let gguf = self
            .names
            .iter()
            .find_map(|n| rename(hf, n.hf, n.gguf))
            .ok_or_else(|| {
                anyhow!(
                    "{}: no GGUF tensor stands for {hf}; this {} GGUF file is not supported",
                    self.path.display(),
                    self.arch
                )
            })?;
        match self.tensors.get(&gguf) {
            Some(t) => Ok((t, gguf)),
            None => bail!(
                "{} has no tensor {gguf}; it is not a complete {} GGUF model",
                self.path.display(),
                self.arch
            ),
        }
    }

    /// Dequantizes `hf` to `dtype`.
    fn dequantize(&self, hf: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let (q, _) = self.stored(hf)?;
        Ok(q.dequantize(device)?.to_dtype(dtype)?)
    }
}

/// `name` (with a `.weight`/`.bias` suffix) renamed from pattern `from` to pattern `to`,
/// `{}` standing for a block index in both; `None` if `name` does not fit `from`.
fn rename(name: &str, from: &str, to: &str) -> Option<String> {
    let (base, suffix) = name.rsplit_once('.')?;
    let renamed = match from.split_once("{}") {
        None => (from == base).then(|| to.to_string())?,
        Some((pre, post)) => {
            let index = base.strip_prefix(pre)?.strip_suffix(post)?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            to.replace("{}", index)
        }
    };
    Some(format!("{renamed}.{suffix}"))
}

/// Inverse of llama.cpp's `permute(w, n_head)`, which views the rows of each head as
/// `(2, head_dim/2)` and swaps the two axes: row `2j + a` of a head goes back to
/// `a·head_dim/2 + j`. Quantized rows are whole blocks, so the bytes move as they are.
fn unpermute(q: &QTensor, head_dim: usize) -> Result<QTensor> {
    let dims = q.shape().dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    let data = q.data()?;
    let fits = head_dim > 0 && head_dim.is_multiple_of(2) && rows > 0;
    if !fits || !rows.is_multiple_of(head_dim) || !data.len().is_multiple_of(rows) {
        bail!("cannot undo the q/k row permutation of {rows} rows in heads of {head_dim}");
    }
    let row_bytes = data.len() / rows;
    let half = head_dim / 2;
    let mut out = vec![0u8; data.len()];
    for (new, chunk) in out.chunks_exact_mut(row_bytes).enumerate() {
        let (head, within) = (new / head_dim, new % head_dim);
        let old = head * head_dim + 2 * (within % half) + within / half;
        chunk.copy_from_slice(&data[old * row_bytes..(old + 1) * row_bytes]);
    }
    Ok(qtensor_from_ggml(q.dtype(), &out, dims, &Device::Cpu)?)
}

impl WeightSource for GgufWeights {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let (t, _) = self.stored(name).ok()?;
        Some(t.shape().dims().to_vec())
    }

    fn check(&self, name: &str, want: &[usize]) -> Result<()> {
        let (t, gguf) = self.stored(name)?;
        let found = t.shape().dims();
        if found != want {
            bail!(
                "{}: tensor {gguf} has shape {found:?} but the metadata implies {want:?}; the file is inconsistent",
                self.path.display()
            );
        }
        Ok(())
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let early = self
            .ready
            .lock()
            .map_err(|_| anyhow!("weights poisoned"))?
            .remove(name);
        match early {
            Some(t) => Ok(t),
            None => self.dequantize(name, dtype, device),
        }
    }

    /// Dequantizes every tensor of the block at `prefix` (e.g. `model.layers.3`) in
    /// parallel; [`WeightSource::load`] then hands them out.
    fn prepare(&self, prefix: &str, dtype: DType, device: &Device) -> Result<()> {
        let mut block: Vec<String> = self
            .names
            .iter()
            .filter_map(|n| {
                let (pre, _) = n.hf.split_once("{}")?;
                let index = prefix.strip_prefix(pre)?;
                Some(n.hf.replace("{}", index))
            })
            .flat_map(|base| ["weight", "bias"].map(|s| format!("{base}.{s}")))
            .filter(|hf| self.stored(hf).is_ok())
            .collect();
        // A map may list a name twice, the first entry winning (Gemma 2's norms).
        block.sort();
        block.dedup();
        let done: Vec<(String, Tensor)> = block
            .into_par_iter()
            .map(|hf| Ok((hf.clone(), self.dequantize(&hf, dtype, device)?)))
            .collect::<Result<_>>()?;
        let mut ready = self.ready.lock().map_err(|_| anyhow!("weights poisoned"))?;
        ready.clear();
        ready.extend(done);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    /// llama.cpp's permute on a head of 4 rows: rows (0, 1, 2, 3) are stored as (0, 2, 1, 3).
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let rows = [0f32, 2., 1., 3., 4., 6., 5., 7.];
        let stored = Tensor::new(&rows, &Device::Cpu)
            .unwrap()
            .reshape((8, 1))
            .unwrap();
        let q = QTensor::quantize(&stored, GgmlDType::F32).unwrap();
        let back = unpermute(&q, 4).unwrap().dequantize(&Device::Cpu).unwrap();
        let got: Vec<f32> = back.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, [0., 1., 2., 3., 4., 5., 6., 7.]);
    }

    #[test]
    fn names_map_both_ways() {
        let (hf_q, gguf_q) = ("model.layers.{}.self_attn.q_proj", "blk.{}.attn_q");
        let hf = "model.layers.12.self_attn.q_proj.weight";
        let gguf = rename(hf, hf_q, gguf_q).unwrap();
        assert_eq!(gguf, "blk.12.attn_q.weight");
        assert_eq!(rename(&gguf, gguf_q, hf_q).unwrap(), hf);
        let norm = rename("model.norm.weight", "model.norm", "output_norm");
        assert_eq!(norm.unwrap(), "output_norm.weight");
        assert!(rename("model.layers.x.self_attn.q_proj.weight", hf_q, gguf_q).is_none());
    }
}
