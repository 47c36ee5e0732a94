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
//! llama.cpp's converter permutes the rows of `attn_q`/`attn_k` so that rotary pairs are
//! adjacent (GPT-J's interleaved layout); [`Rows::Unpermute`] undoes that on dequantization,
//! so the decoder's rotate-half rotary applies unchanged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::gguf::GgufFile;
use super::store::WeightSource;

/// What to do with a tensor's rows on dequantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Served as stored.
    AsStored,
    /// Undo llama.cpp's per-head q/k row permutation (heads of the source's head size).
    Unpermute,
}

/// One entry of a name map: a Hugging Face name and the GGUF name it is stored under, both
/// without the `.weight`/`.bias` suffix; `{}` stands for the block index.
#[derive(Debug, Clone, Copy)]
pub struct GgufName {
    /// e.g. `model.layers.{}.self_attn.q_proj`.
    pub hf: &'static str,
    /// e.g. `blk.{}.attn_q`.
    pub gguf: &'static str,
    /// Row treatment.
    pub rows: Rows,
}

/// Every tensor of a GGUF file, quantized as stored, served under Hugging Face names.
pub struct GgufWeights {
    path: PathBuf,
    arch: String,
    names: &'static [GgufName],
    head_dim: usize,
    tensors: HashMap<String, Arc<QTensor>>,
    /// Tensors [`WeightSource::prepare`] dequantized ahead, by Hugging Face name.
    ready: Mutex<HashMap<String, Tensor>>,
}

impl GgufWeights {
    /// Reads every tensor of `file` (quantized, as stored). `names` maps the Hugging Face
    /// names onto the file's; `head_dim` is the head size q/k rows are permuted in.
    pub fn read(file: &mut GgufFile, names: &'static [GgufName], head_dim: usize) -> Result<Self> {
        let mut tensors = HashMap::new();
        for name in file.tensor_names() {
            let shape = file.shape(&name).unwrap_or_default().to_vec();
            let t = file.tensor(&name, &shape, &Device::Cpu)?;
            tensors.insert(name, Arc::new(t));
        }
        Ok(Self {
            path: file.path().to_path_buf(),
            arch: file.architecture()?,
            names,
            head_dim,
            tensors,
            ready: Mutex::new(HashMap::new()),
        })
    }

    /// The GGUF name serving Hugging Face name `hf`, and how to treat its rows.
    fn gguf_name(&self, hf: &str) -> Option<(String, Rows)> {
        let (base, suffix) = hf.rsplit_once('.')?;
        self.names.iter().find_map(|n| {
            let gguf = match n.hf.split_once("{}") {
                None => (n.hf == base).then(|| n.gguf.to_string())?,
                Some((pre, post)) => {
                    let index = base.strip_prefix(pre)?.strip_suffix(post)?;
                    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    n.gguf.replace("{}", index)
                }
            };
            Some((format!("{gguf}.{suffix}"), n.rows))
        })
    }

    /// The stored tensor behind `hf`, or a one-line error naming the file.
    fn stored(&self, hf: &str) -> Result<(&Arc<QTensor>, String, Rows)> {
        let (gguf, rows) = self.gguf_name(hf).ok_or_else(|| {
            anyhow!(
                "{}: no GGUF tensor stands for {hf}; this {} GGUF file is not supported",
                self.path.display(),
                self.arch
            )
        })?;
        match self.tensors.get(&gguf) {
            Some(t) => Ok((t, gguf, rows)),
            None => bail!(
                "{} has no tensor {gguf}; it is not a complete {} GGUF model",
                self.path.display(),
                self.arch
            ),
        }
    }

    /// Dequantizes `hf` to `dtype`, undoing the row permutation where the map says so.
    fn dequantize(&self, hf: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let (q, _, rows) = self.stored(hf)?;
        let t = q.dequantize(device)?.to_dtype(dtype)?;
        match rows {
            Rows::AsStored => Ok(t),
            Rows::Unpermute => unpermute(&t, self.head_dim),
        }
    }
}

/// Inverse of llama.cpp's `permute(w, n_head)`, which views the rows of each head as
/// `(2, head_dim/2)` and swaps the two axes.
fn unpermute(w: &Tensor, head_dim: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if head_dim == 0 || !head_dim.is_multiple_of(2) || !rows.is_multiple_of(head_dim) {
        bail!("cannot undo the q/k row permutation: {rows} rows in heads of {head_dim}");
    }
    Ok(w.reshape((rows / head_dim, head_dim / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

impl WeightSource for GgufWeights {
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let (t, _, _) = self.stored(name).ok()?;
        Some(t.shape().dims().to_vec())
    }

    fn check(&self, name: &str, want: &[usize]) -> Result<()> {
        let (t, gguf, _) = self.stored(name)?;
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
        let hf_names: Vec<String> = self
            .names
            .iter()
            .filter_map(|n| {
                let (pre, post) = n.hf.split_once("{}")?;
                let index = format!("{prefix}.")
                    .strip_prefix(pre)?
                    .strip_suffix('.')?
                    .to_string();
                Some(format!("{pre}{index}{post}"))
            })
            .flat_map(|base| ["weight", "bias"].map(|s| format!("{base}.{s}")))
            .filter(|hf| self.stored(hf).is_ok())
            .collect();
        let done: Vec<(String, Tensor)> = hf_names
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

    /// llama.cpp's permute on a head of 4 rows: rows (0, 1, 2, 3) are stored as (0, 2, 1, 3).
    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let stored = Tensor::new(
            &[[0f32], [2.], [1.], [3.], [4.], [6.], [5.], [7.]],
            &Device::Cpu,
        )
        .unwrap();
        let rows: Vec<Vec<f32>> = unpermute(&stored, 4).unwrap().to_vec2().unwrap();
        let want: Vec<Vec<f32>> = (0..8).map(|i| vec![i as f32]).collect();
        assert_eq!(rows, want);
    }
}
