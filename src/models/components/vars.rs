//! [`Vars`]: what components load their weights through, a prefixed view of a
//! [`WeightSource`] (candle's `VarBuilder`, cut down to what the models use).
//!
//! A dry view checks names and shapes and reads nothing: building a model with it validates
//! the checkpoint against config.json at load time.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use crate::compute::{Backend, Compute};
use crate::loading::store::{Matrix, Strategy, WeightSource};

/// A prefixed, typed view of a weight source.
#[derive(Clone)]
pub(crate) struct Vars {
    source: Arc<dyn WeightSource>,
    prefix: String,
    dtype: DType,
    compute: Compute,
    strategy: Strategy,
    dry: bool,
}

impl Vars {
    /// A view at the root of `source`; the weight strategy follows from `dtype` and
    /// `compute`. `dry` views only check shapes.
    pub(crate) fn new(
        source: Arc<dyn WeightSource>,
        dtype: DType,
        compute: &Compute,
        dry: bool,
    ) -> Self {
        Self {
            source,
            prefix: String::new(),
            dtype,
            compute: compute.clone(),
            strategy: Strategy::choose(dtype, compute),
            dry,
        }
    }

    /// The view under `name` (`a.pp("b")` reads `a.b.*`); an empty name stays here.
    pub(crate) fn pp(&self, name: impl std::fmt::Display) -> Self {
        let name = name.to_string();
        let prefix = match (self.prefix.is_empty(), name.is_empty()) {
            (_, true) => self.prefix.clone(),
            (true, false) => name,
            (false, false) => format!("{}.{name}", self.prefix),
        };
        Self {
            prefix,
            ..self.clone()
        }
    }

    /// The full name of `name` under this view.
    pub(crate) fn path(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_string(),
            false => format!("{}.{name}", self.prefix),
        }
    }

    /// The compute dtype.
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    /// The compute device.
    pub(crate) fn device(&self) -> &Device {
        self.compute.device()
    }

    /// The device and the path the model runs on.
    pub(crate) fn compute(&self) -> &Compute {
        &self.compute
    }

    /// How the compute seam's operations run ([`Compute::backend`]).
    pub(crate) fn backend(&self) -> Backend {
        self.compute.backend()
    }

    /// Whether this view only checks shapes.
    pub(crate) fn is_dry(&self) -> bool {
        self.dry
    }

    /// Whether the source has `name` under this view.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.source.shape(&self.path(name)).is_some()
    }

    /// `name` of shape `shape`, in the compute dtype (a broadcast zero when dry).
    pub(crate) fn get(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        let path = self.path(name);
        self.source.check(&path, shape)?;
        match self.dry {
            true => Ok(Tensor::zeros((), self.dtype, self.compute.device())?.broadcast_as(shape)?),
            false => self.source.load(&path, self.dtype, self.compute.device()),
        }
    }

    /// The `(out, in)` matrix `name`, as the weight strategy serves it.
    pub(crate) fn matrix(&self, out_dim: usize, in_dim: usize, name: &str) -> Result<Matrix> {
        if self.dry {
            return Ok(Matrix::Dense(self.get(&[out_dim, in_dim], name)?));
        }
        let path = self.path(name);
        self.source.check(&path, &[out_dim, in_dim])?;
        self.source
            .matrix(&path, self.dtype, self.compute.device(), self.strategy)
    }

    /// Lets the source ready everything under this view at once (a no-op when dry).
    pub(crate) fn prepare(&self) -> Result<()> {
        match self.dry {
            true => Ok(()),
            false => self
                .source
                .prepare(&self.prefix, self.dtype, self.compute.device()),
        }
    }
}
