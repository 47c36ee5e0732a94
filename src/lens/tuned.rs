//! The tuned lens (Belrose et al., 2023), as the tuned-lens package's `TunedLens` applies it:
//! one affine translator per layer before the output, added residually, then the model's
//! final norm and head:
//!
//! `logits_i = head(final_norm(h_i + W_i h_i + b_i))` for i < L; row L (the model's output)
//! has no translator.
//!
//! Pure computation: the translators come in as tensors ([`crate::loading::tuned_lens`]
//! reads them from disk). Each translator is applied to its row as the forward pass visits
//! it, so the lens holds nothing but the translators.

use anyhow::{bail, ensure, Result};
use candle_core::{CpuStorage, DType, Storage, Tensor};

use super::{Lens, Site};
use crate::kernels;
use crate::loading::tuned_lens::check_fit;
use crate::loading::tuned_lens::LayerParams;
use crate::models::LensModel;

/// One layer's translator: `x ↦ x·Wᵀ + b`, `W` being `[out, in]` = `[D, D]` as
/// `nn.Linear` stores it.
#[derive(Debug, Clone)]
pub struct Translator {
    /// `[D, D]`, f32, f16 or bf16 (half weights stay half and are widened as they are
    /// multiplied).
    pub weight: Tensor,
    /// `[D]`, when the lens has biases.
    pub bias: Option<Tensor>,
}

impl From<LayerParams> for Translator {
    fn from(p: LayerParams) -> Self {
        Self {
            weight: p.weight,
            bias: p.bias,
        }
    }
}

impl Translator {
    /// This translator converted to `dtype` on `device` (the generic path's placement).
    pub fn to(&self, dtype: DType, device: &candle_core::Device) -> Result<Self> {
        let place = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(device)?) };
        Ok(Self {
            weight: place(&self.weight)?,
            bias: self.bias.as_ref().map(place).transpose()?,
        })
    }

    /// `x·Wᵀ + b` for a `(T, D)` f32 `x`, in f32.
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (t, d) = x.dims2()?;
        let y = match self.weight.dtype() {
            DType::F16 | DType::BF16 => half_matmul(x, &self.weight, t, d)?,
            _ => x.matmul(&self.weight.to_dtype(DType::F32)?.t()?)?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(DType::F32)?)?,
            None => y,
        })
    }
}

/// `x (t×d) · Wᵀ` with W in f16/bf16, read in place by [`kernels::matmul`].
fn half_matmul(x: &Tensor, w: &Tensor, t: usize, d: usize) -> Result<Tensor> {
    let x = x.contiguous()?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    let Some((a, b)) = layout.contiguous_offsets() else {
        bail!("translator weight is not contiguous");
    };
    let n = w.dim(0)?;
    let out = match &*storage {
        Storage::Cpu(CpuStorage::F16(v)) => kernels::matmul(&xs, &v[a..b], t, d, n),
        Storage::Cpu(CpuStorage::BF16(v)) => kernels::matmul(&xs, &v[a..b], t, d, n),
        _ => bail!("translator weight is not a half-precision CPU tensor"),
    };
    Ok(Tensor::from_vec(out, (t, n), x.device())?)
}

/// A tuned lens: translators for layers 0..L-1.
#[derive(Debug, Clone)]
pub struct TunedLens {
    translators: Vec<Translator>,
    d_model: usize,
    /// What the provenance calls it: "tuned lens", or with where it came from.
    name: String,
}

impl TunedLens {
    /// A lens from its translators, layer 0 first; each weight `[D, D]`, each bias `[D]`.
    pub fn new(translators: Vec<Translator>) -> Result<Self> {
        ensure!(!translators.is_empty(), "a tuned lens needs translators");
        let d_model = translators[0].weight.dim(1)?;
        for (i, t) in translators.iter().enumerate() {
            let shape = t.weight.dims();
            ensure!(
                shape == [d_model, d_model],
                "translator {i}'s weight has shape {shape:?}; expected [{d_model}, {d_model}]"
            );
            if let Some(b) = &t.bias {
                ensure!(
                    b.dims() == [d_model],
                    "translator {i}'s bias has shape {:?}; expected [{d_model}]",
                    b.dims()
                );
            }
        }
        Ok(Self {
            translators,
            d_model,
            name: "tuned lens".to_string(),
        })
    }

    /// The lens under another name (e.g. naming where it came from).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The residual width the translators take.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// How many translators: the number of layers of the model it was made for.
    pub fn num_layers(&self) -> usize {
        self.translators.len()
    }

    /// Bytes the translators hold.
    pub fn size_in_bytes(&self) -> usize {
        let bytes = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        self.translators
            .iter()
            .map(|t| bytes(&t.weight) + t.bias.as_ref().map_or(0, bytes))
            .sum()
    }

    /// Refuses a model this lens was not made for, in one line naming both shapes.
    pub fn check_model(&self, hidden_size: usize, num_layers: usize) -> Result<()> {
        check_fit(self.d_model, self.num_layers(), hidden_size, num_layers)
    }
}

impl Lens for TunedLens {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "tuned"
    }

    fn final_norm(&self) -> bool {
        true
    }

    fn check_site(&self, site: Site) -> Result<()> {
        match site {
            Site::ResidMid => Err(crate::error::Error::SublayersTuned.into()),
            _ => Ok(()),
        }
    }

    fn transform_hidden(
        &self,
        model: &dyn LensModel,
        layer: usize,
        site: Site,
        hidden: &Tensor,
    ) -> Result<Tensor> {
        self.check_site(site)?;
        if layer >= model.info().num_layers {
            return model.final_norm(hidden);
        }
        let Some(translator) = self.translators.get(layer) else {
            bail!("the tuned lens has no translator for layer {layer}");
        };
        let x = hidden.to_dtype(DType::F32)?;
        let translated = (&x + translator.apply(&x)?)?.to_dtype(hidden.dtype())?;
        model.final_norm(&translated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn translator(w: &[f32], b: Option<&[f32]>, d: usize, dtype: DType) -> Translator {
        Translator {
            weight: Tensor::from_slice(w, (d, d), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
            bias: b.map(|b| Tensor::from_slice(b, d, &Device::Cpu).unwrap()),
        }
    }

    #[test]
    fn translators_map_rows_by_out_in_weights_in_every_dtype() {
        // W = [[1, 2], [0, 3]] (out × in), b = [0.5, -1]; x = [1, 1]: W x = [3, 3].
        let x = Tensor::from_slice(&[1f32, 1.0], (1, 2), &Device::Cpu).unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let t = translator(&[1.0, 2.0, 0.0, 3.0], Some(&[0.5, -1.0]), 2, dtype);
            let y = t.apply(&x).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(y, vec![vec![3.5, 2.0]], "{dtype:?}");
        }
    }

    #[test]
    fn shapes_are_checked_and_sites_refused() {
        let square = translator(&[0.0; 4], None, 2, DType::F32);
        let lens = TunedLens::new(vec![square.clone(), square.clone()]).unwrap();
        assert_eq!((lens.d_model(), lens.num_layers()), (2, 2));
        assert_eq!(lens.size_in_bytes(), 32);
        lens.check_model(2, 2).unwrap();
        let msg = lens.check_model(576, 30).unwrap_err().to_string();
        assert_eq!(msg, "the tuned lens has d_model 2 and 2 layers, but the model has hidden size 576 and 30 layers; use the lens trained for this model");
        let msg = lens.check_site(Site::ResidMid).unwrap_err().to_string();
        assert_eq!(
            msg,
            "the resid_mid site needs a translator, and a tuned lens has none"
        );
        let bad = Translator {
            bias: Some(Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()),
            ..square
        };
        assert!(TunedLens::new(vec![bad]).is_err());
    }
}
