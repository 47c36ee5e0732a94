//! The lens: turn each layer's hidden state into next-token logits and reduce every logits
//! row to the per-cell statistics of `stats`.
//!
//! A [`Lens`] is an object, as in tuned-lens's `nn/lenses.py`: [`Lens::transform_hidden`]
//! maps a hidden state to what the model's head reads, and [`Lens::forward`] applies the
//! head. The logit lens ([`LogitLens`]) is the first implementation; the tuned lens
//! ([`TunedLens`]) adds a per-layer translator in `transform_hidden`. `project` runs one
//! or several lenses over a whole prompt, on one forward pass.
//!
//! Everything here is pure computation: no I/O, no printing.

use std::fmt::Debug;

use anyhow::Result;
use candle_core::Tensor;

use crate::models::LensModel;

pub(crate) mod project;
pub(crate) mod reduce;
pub(crate) mod stats;
pub(crate) mod summary;
pub(crate) mod tuned;

pub use crate::models::Site;
pub use project::{
    block_outputs, lens_rows, lens_rows_batch, lens_rows_multi, logit_lens, LensOptions, Row,
    Timings, LOGITS_BUDGET, PACK_TOKENS,
};
pub use stats::{
    cell_stats, first_appearance, row_stats, rows_stats, settling, settling_layer, Cell, Query,
    Ranked, Reference, TargetStat, TokenStat,
};
pub use tuned::{Translator, TunedLens};

/// A way to read next-token logits off an intermediate hidden state.
pub trait Lens: Debug + Send + Sync {
    /// A short name for the lens, e.g. "logit lens".
    fn name(&self) -> &str;

    /// What the JSON calls the lens: `"logit"` or `"tuned"`.
    fn kind(&self) -> &'static str;

    /// Whether the hidden states of layers before the output go through the model's final
    /// norm (the output layer's always do). The JSON reports it as `"final_norm"`.
    fn final_norm(&self) -> bool;

    /// Whether the lens can read `site`; an error saying why not otherwise.
    fn check_site(&self, site: Site) -> Result<()> {
        let _ = site;
        Ok(())
    }

    /// Maps the `(T, D)` hidden state at `layer` (0 = embeddings, `num_layers` = the
    /// output) and `site` to the `(T, D)` state the model's head reads.
    fn transform_hidden(
        &self,
        model: &dyn LensModel,
        layer: usize,
        site: Site,
        hidden: &Tensor,
    ) -> Result<Tensor>;

    /// The `(T, vocab)` logits the lens reads at `layer` and `site`: the head applied to
    /// [`Lens::transform_hidden`]. `project` batches the head over layers instead, so an
    /// implementation changes `transform_hidden`, never this.
    fn forward(
        &self,
        model: &dyn LensModel,
        layer: usize,
        site: Site,
        hidden: &Tensor,
    ) -> Result<Tensor> {
        model.lm_head(&self.transform_hidden(model, layer, site, hidden)?)
    }
}

/// The logit lens: the model's own head on every layer's hidden state, through the final
/// norm or not. The output layer always goes through the final norm, which makes its row
/// the model's own logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogitLens {
    /// Apply the final norm to layers 0..L-1 too.
    pub final_norm: bool,
}

impl Default for LogitLens {
    fn default() -> Self {
        Self { final_norm: true }
    }
}

impl Lens for LogitLens {
    fn name(&self) -> &str {
        match self.final_norm {
            true => "logit lens",
            false => "logit lens without final norm",
        }
    }

    fn kind(&self) -> &'static str {
        "logit"
    }

    fn final_norm(&self) -> bool {
        self.final_norm
    }

    fn transform_hidden(
        &self,
        model: &dyn LensModel,
        layer: usize,
        _site: Site,
        hidden: &Tensor,
    ) -> Result<Tensor> {
        match self.final_norm || layer == model.info().num_layers {
            true => model.final_norm(hidden),
            false => Ok(hidden.clone()),
        }
    }
}
