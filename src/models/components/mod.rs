//! The pieces every decoder is built from, one file per family, each a struct with
//! `new(spec, vb)` and `forward` in the manner of candle-transformers' model files.
//! Architectures never define their own: they describe a
//! [`DecoderSpec`](crate::models::decoder::DecoderSpec) and name their tensors. Where an
//! operation has a CPU kernel and a tensor form, a component calls the compute seam
//! ([`crate::ops`]) and never chooses between them itself.

pub(crate) mod attention;
pub(crate) mod block;
pub(crate) mod embedding;
pub(crate) mod linear;
pub(crate) mod mlp;
pub(crate) mod norm;
pub(crate) mod rotary;
pub(crate) mod vars;

pub(crate) use attention::{Attention, AttentionSpec, QkNorm};
pub(crate) use block::{Block, Layout};
pub(crate) use embedding::Embedding;
pub(crate) use linear::{Linear, WeightLayout};
pub(crate) use mlp::{Mlp, MlpKind, MlpSpec};
pub(crate) use norm::{Norm, NormKind, NormSpec};
pub(crate) use rotary::RotarySpec;
pub(crate) use vars::Vars;

/// Components built over in-memory tensors, for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::sync::Arc;

    use anyhow::{anyhow, Result};
    use candle_core::{DType, Device, Tensor};

    use super::Vars;
    use crate::loading::store::WeightSource;

    struct InMemory(HashMap<String, Tensor>);

    impl WeightSource for InMemory {
        fn shape(&self, name: &str) -> Option<Vec<usize>> {
            self.0.get(name).map(|t| t.dims().to_vec())
        }

        fn check(&self, name: &str, want: &[usize]) -> Result<()> {
            match self.shape(name) {
                Some(s) if s == want => Ok(()),
                other => Err(anyhow!("{name}: {other:?} is not {want:?}")),
            }
        }

        fn load(&self, name: &str, dtype: DType, _: &Device) -> Result<Tensor> {
            Ok(self.0[name].to_dtype(dtype)?)
        }
    }

    /// f32 vars over `(name, values, shape)` triples.
    pub fn vars(tensors: &[(&str, Vec<f32>, Vec<usize>)]) -> Vars {
        vars_in(DType::F32, tensors)
    }

    /// [`vars`] computing in `dtype`.
    pub fn vars_in(dtype: DType, tensors: &[(&str, Vec<f32>, Vec<usize>)]) -> Vars {
        let map = tensors
            .iter()
            .map(|(n, v, s)| {
                let t = Tensor::from_vec(v.clone(), s.as_slice(), &Device::Cpu).unwrap();
                (n.to_string(), t)
            })
            .collect();
        Vars::new(
            Arc::new(InMemory(map)),
            dtype,
            &crate::compute::Compute::cpu(),
            false,
        )
    }
}
