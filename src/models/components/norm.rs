//! Normalisations: LayerNorm, RMSNorm, and Gemma's RMSNorm that scales by `1 + w`.

use anyhow::Result;
use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, RmsNorm};

use super::vars::Vars;

/// Which normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NormKind {
    /// `(x − mean) / sqrt(var + eps) · w + b`.
    LayerNorm,
    /// `x / sqrt(mean(x²) + eps) · w`.
    Rms,
    /// `x / sqrt(mean(x²) + eps) · (1 + w)` (Gemma stores the weight offset by one).
    RmsPlusOne,
    /// Gemma's norm as llama.cpp's GGUF files store it: the one is already added to the
    /// weight, so it is `x / sqrt(mean(x²) + eps) · w`, computed in float32 as
    /// [`NormKind::RmsPlusOne`] is.
    RmsPlusOneAdded,
}

/// A normalisation and its epsilon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NormSpec {
    /// Which normalisation.
    pub kind: NormKind,
    /// Added to the variance.
    pub eps: f64,
}

impl NormSpec {
    /// A `kind` normalisation adding `eps` to the variance.
    pub(crate) fn new(kind: NormKind, eps: f64) -> Self {
        Self { kind, eps }
    }
}

/// A loaded normalisation over the last dimension.
#[derive(Debug, Clone)]
pub(crate) enum Norm {
    /// With weight and bias.
    Layer(LayerNorm),
    /// With a weight.
    Rms(RmsNorm),
    /// Gemma's: computed in float32 with the float32 weight plus one, then cast back
    /// (`(x.float() · rsqrt(mean(x²) + eps) · (1 + w.float())).type_as(x)`).
    RmsPlusOne(RmsNorm),
}

impl Norm {
    /// Loads the norm's `weight` (and a LayerNorm's `bias`) of length `size` under `vb`.
    pub(crate) fn new(spec: NormSpec, size: usize, vb: &Vars) -> Result<Self> {
        let weight = vb.get(&[size], "weight")?;
        Ok(match spec.kind {
            NormKind::LayerNorm => {
                Self::Layer(LayerNorm::new(weight, vb.get(&[size], "bias")?, spec.eps))
            }
            NormKind::Rms => Self::Rms(RmsNorm::new(weight, spec.eps)),
            NormKind::RmsPlusOne => {
                let weight = (weight.to_dtype(DType::F32)? + 1.0)?;
                Self::RmsPlusOne(RmsNorm::new(weight, spec.eps))
            }
            NormKind::RmsPlusOneAdded => {
                Self::RmsPlusOne(RmsNorm::new(weight.to_dtype(DType::F32)?, spec.eps))
            }
        })
    }

    /// Normalises `xs` over its last dimension.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Layer(n) => n.forward(xs)?,
            Self::Rms(n) => n.forward(xs)?,
            Self::RmsPlusOne(n) => n.forward(&xs.to_dtype(DType::F32)?)?.to_dtype(xs.dtype())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::components::testing::vars;

    /// x = (1, 3): mean(x²) = 5, so x/√5 scaled by (1 + w) = (2, 0.5); half-precision input
    /// is normalised in float32 and comes back in its own dtype.
    #[test]
    fn rms_plus_one_scales_by_one_plus_weight() {
        let vb = vars(&[("n.weight", vec![1.0, -0.5], vec![2])]);
        let spec = NormSpec {
            kind: NormKind::RmsPlusOne,
            eps: 0.0,
        };
        let norm = Norm::new(spec, 2, &vb.pp("n")).unwrap();
        let x = Tensor::new(&[[1f32, 3.0]], vb.device()).unwrap();
        let s = 5f32.sqrt();
        let want = [2.0 / s, 0.5 * 3.0 / s];
        for (dtype, tol) in [(DType::F32, 1e-6), (DType::BF16, 1e-2)] {
            let y = norm.forward(&x.to_dtype(dtype).unwrap()).unwrap();
            assert_eq!(y.dtype(), dtype);
            let y = y.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
            let got: Vec<f32> = y.to_vec1().unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < tol, "{dtype:?}: {got:?} vs {want:?}");
            }
        }
    }
}
