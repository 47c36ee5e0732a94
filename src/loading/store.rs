//! The one interface models load weights through: a [`WeightSource`] serves tensors by their
//! Hugging Face names, whatever the file (safetensors, GGUF) calls or stores them as.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::weights::Mapped;
use crate::compute::{Backend, Compute};

/// How a source hands out matrices, chosen once per model from the device and dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// f32 compute with the CPU's own kernels: matrices stored in f16/bf16 stay in the mapped file and are
    /// multiplied there ([`Matrix::MappedHalf`]); anything else is converted.
    MappedHalf,
    /// Every matrix is converted to the compute dtype.
    Dense,
}

impl Strategy {
    /// The strategy for computing in `dtype` on `compute`: mapped halves only for f32 with
    /// the CPU's own kernels.
    pub(crate) fn choose(dtype: DType, compute: &Compute) -> Self {
        match (dtype, compute.backend()) {
            (DType::F32, Backend::Kernels) => Self::MappedHalf,
            _ => Self::Dense,
        }
    }
}

/// A matrix as a source serves it.
#[derive(Clone)]
pub(crate) enum Matrix {
    /// A tensor in the compute dtype.
    Dense(Tensor),
    /// A half-precision matrix left in the mapped file.
    MappedHalf(Mapped),
}

/// Tensors by Hugging Face name, with shapes known before anything is read.
pub(crate) trait WeightSource: Send + Sync {
    /// The stored shape of `name` (rows first), if the source has it.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;

    /// Checks that `name` exists with shape `want`; the error names the file and tensor.
    fn check(&self, name: &str, want: &[usize]) -> Result<()>;

    /// Loads `name` converted to `dtype`.
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor>;

    /// Loads a matrix the way `strategy` asks; sources without mapped storage convert.
    fn matrix(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
        strategy: Strategy,
    ) -> Result<Matrix> {
        let _ = strategy;
        Ok(Matrix::Dense(self.load(name, dtype, device)?))
    }

    /// Called before the tensors under `prefix` (one block) are loaded one by one, so that
    /// a source can ready them together (a GGUF file dequantizes them in parallel).
    fn prepare(&self, prefix: &str, dtype: DType, device: &Device) -> Result<()> {
        let _ = (prefix, dtype, device);
        Ok(())
    }
}
