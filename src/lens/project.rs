//! The projection: run the model once, pass every row's hidden state through a lens and
//! reduce each logits row to its [`Cell`] as soon as it is computed.
//!
//! The head runs over the rows in chunks of whole positions (every row at each position of
//! the chunk), so that the output row each row is compared with (KL) is in the same chunk:
//! the statistics come from the one pass of the logits through the head, and memory stays at
//! one chunk of logits however long the prompt and however many rows.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::Tensor;

use super::reduce;
use super::stats::{Cell, Query, TokenStat};
use super::{Lens, LogitLens, Site};
use crate::models::LensModel;
use crate::ops::finite::nonfinite_rows;

/// The default [`LensOptions::logits_budget`]: 256 MiB, 1,310 rows of a 51,200-token
/// vocabulary. The head is a matmul of a chunk of rows against the whole unembedding; below
/// about a thousand rows, packing the rows for the kernel costs a growing share of it (on
/// phi-1_5's head, 325 rows ran at 84 % of the kernel's square-matrix rate, 1,300 rows at
/// 100 %).
pub const LOGITS_BUDGET: usize = 256 << 20;

/// Options of the projection.
#[derive(Debug, Clone)]
pub struct LensOptions {
    /// The lens that turns each layer's hidden state into what the head reads.
    pub lens: Arc<dyn Lens>,
    /// Most bytes of f32 logits held at once; sets how many rows go through the head
    /// per matmul.
    pub logits_budget: usize,
    /// How many of each cell's most likely tokens to list.
    pub top_k: usize,
    /// Token ids whose probability and rank every cell reports.
    pub targets: Vec<u32>,
    /// Also read each block's residual stream after attention ([`Site::ResidMid`]).
    pub sublayers: bool,
}

impl Default for LensOptions {
    fn default() -> Self {
        Self::new(LogitLens::default())
    }
}

impl LensOptions {
    /// `lens` with the default logits budget ([`LOGITS_BUDGET`]), no top-k, no targets, no
    /// sublayers.
    pub fn new(lens: impl Lens + 'static) -> Self {
        Self {
            lens: Arc::new(lens),
            logits_budget: LOGITS_BUDGET,
            top_k: 0,
            targets: Vec::new(),
            sublayers: false,
        }
    }
}

/// Where the time of one lens run went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// The forward pass, final norms included.
    pub forward: std::time::Duration,
    /// Head projections and the reduction to stats.
    pub lens: std::time::Duration,
}

/// One row of the lens: a site of a layer, one [`Cell`] per position.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The block number (0 for the embeddings; L for the model's output).
    pub layer: usize,
    /// Where in the layer the row reads the residual stream.
    pub site: Site,
    /// One cell per input position.
    pub cells: Vec<Cell>,
}

/// Runs the model once on `ids` and returns the argmax stats `[layer][position]` of layers
/// 0..=L (block outputs; `sublayers` rows are left out).
pub fn logit_lens(
    model: &dyn LensModel,
    ids: &[u32],
    opts: &LensOptions,
) -> Result<Vec<Vec<TokenStat>>> {
    let rows = lens_rows(model, ids, opts)?.0;
    Ok(block_outputs(&rows)
        .map(|r| r.cells.iter().map(|c| c.stat).collect())
        .collect())
}

/// The rows that read block outputs (and the embeddings), leaving out `resid_mid` rows:
/// the rows whose numbers mean the same with and without `--sublayers`.
pub fn block_outputs(rows: &[Row]) -> impl Iterator<Item = &Row> {
    rows.iter().filter(|r| r.site != Site::ResidMid)
}

/// Runs the model once on `ids` and returns every row of the lens, in order (embeddings,
/// then for each block its resid_mid when asked and its output), and where the time went.
pub fn lens_rows(
    model: &dyn LensModel,
    ids: &[u32],
    opts: &LensOptions,
) -> Result<(Vec<Row>, Timings)> {
    let (mut rows, timings) = lens_rows_multi(model, ids, std::slice::from_ref(&opts.lens), opts)?;
    Ok((rows.pop().unwrap_or_default(), timings))
}

/// [`lens_rows`] for several lenses over one forward pass: the rows of each lens of
/// `lenses`, in that order (`opts.lens` is not used; every other option applies to all).
///
/// The forward pass keeps each row's hidden state as each lens transforms it, as the pass
/// visits the row: `lenses×rows×T×D` floats; the head then runs over one lens's rows at a
/// time in chunks of whole positions, so the head's weights are read once per chunk rather
/// than once per row, and only one chunk of logits exists at a time.
pub fn lens_rows_multi(
    model: &dyn LensModel,
    ids: &[u32],
    lenses: &[Arc<dyn Lens>],
    opts: &LensOptions,
) -> Result<(Vec<Vec<Row>>, Timings)> {
    let mut all = lens_rows_packed(model, &[(ids, opts)], lenses)?;
    Ok(all.pop().expect("one prompt in, one out"))
}

/// Most positions [`lens_rows_batch`] packs into one forward pass: the rows' hidden states
/// of a pack, `lenses × rows × PACK_TOKENS × D` floats, are what it holds (100 MiB per lens
/// for phi-1_5).
pub const PACK_TOKENS: usize = 512;

/// [`lens_rows_multi`] for each prompt of a batch, each with its own options (targets,
/// top-k): consecutive prompts of up to [`PACK_TOKENS`] positions together share one
/// forward pass ([`LensModel::forward_packed`]), so the weights are read once per pack
/// rather than once per prompt; a longer prompt runs alone. Every prompt's rows are those
/// it gets alone. All options must agree on `sublayers`. The forward time of a pack is
/// shared among its prompts by their positions.
pub fn lens_rows_batch(
    model: &dyn LensModel,
    prompts: &[(&[u32], &LensOptions)],
    lenses: &[Arc<dyn Lens>],
) -> Result<Vec<(Vec<Vec<Row>>, Timings)>> {
    let mut out = Vec::with_capacity(prompts.len());
    let mut rest = prompts;
    while !rest.is_empty() {
        let mut take = 1;
        let mut tokens = rest[0].0.len();
        while take < rest.len() && tokens + rest[take].0.len() <= PACK_TOKENS {
            tokens += rest[take].0.len();
            take += 1;
        }
        out.extend(lens_rows_packed(model, &rest[..take], lenses)?);
        rest = &rest[take..];
    }
    Ok(out)
}

/// One forward pass over `prompts` packed, then each prompt's rows of each lens through the
/// head.
fn lens_rows_packed(
    model: &dyn LensModel,
    prompts: &[(&[u32], &LensOptions)],
    lenses: &[Arc<dyn Lens>],
) -> Result<Vec<(Vec<Vec<Row>>, Timings)>> {
    let info = model.info();
    let sublayers = prompts.first().expect("at least one prompt").1.sublayers;
    if sublayers {
        model.check_site(Site::ResidMid)?;
        for lens in lenses {
            lens.check_site(Site::ResidMid)?;
        }
    }
    for (_, o) in prompts {
        if o.sublayers != sublayers {
            return Err(crate::error::Error::SublayersDisagree.into());
        }
        if let Some(&bad) = o.targets.iter().find(|&&t| t as usize >= info.vocab_size) {
            bail!(
                "target id {bad} is outside the model's vocabulary of {} tokens",
                info.vocab_size
            );
        }
    }
    let start = std::time::Instant::now();
    let mut places = Vec::new();
    // Per row: which packed positions of its hidden state are not finite.
    let mut nonfinite = Vec::new();
    let mut inputs: Vec<Vec<Tensor>> = vec![Vec::new(); lenses.len()];
    let ids: Vec<&[u32]> = prompts.iter().map(|p| p.0).collect();
    model.forward_packed(&ids, sublayers, &mut |layer, site, hidden| {
        places.push((layer, site));
        nonfinite.push(nonfinite_rows(model.backend(), hidden)?);
        for (lens, inputs) in lenses.iter().zip(&mut inputs) {
            inputs.push(lens.transform_hidden(model, layer, site, hidden)?);
        }
        Ok(())
    })?;
    // A device queues its work: wait for it, so that the forward time is the forward's.
    model.synchronize()?;
    let forward = start.elapsed();
    let total: usize = ids.iter().map(|p| p.len()).sum();
    let start = std::time::Instant::now();
    // Per lens, per prompt: its rows.
    let mut per_lens = Vec::with_capacity(lenses.len());
    for inputs in &inputs {
        per_lens.push(head_rows(model, &places, &nonfinite, inputs, prompts)?);
    }
    let lens = start.elapsed();
    let mut out: Vec<(Vec<Vec<Row>>, Timings)> = prompts
        .iter()
        .map(|(ids, _)| {
            let share = ids.len() as f64 / total.max(1) as f64;
            let timings = Timings {
                forward: forward.mul_f64(share),
                lens: lens.mul_f64(share),
            };
            (Vec::with_capacity(lenses.len()), timings)
        })
        .collect();
    for rows in per_lens {
        for ((all, _), mine) in out.iter_mut().zip(rows) {
            all.push(mine);
        }
    }
    Ok(out)
}

/// Every prompt's rows (one `Vec<Row>` per prompt): the head over `inputs` (one `(T, D)`
/// state per row, at `places`, the prompts' positions packed one after another) in chunks
/// of whole positions. A chunk may span prompts, so the head's weights are read once per
/// chunk of the pack, not once per prompt. A cell is non-finite where its logits are or
/// where the hidden state it was read from is (`nonfinite`, per row and packed position).
fn head_rows(
    model: &dyn LensModel,
    places: &[(usize, Site)],
    nonfinite: &[Vec<bool>],
    inputs: &[Tensor],
    prompts: &[(&[u32], &LensOptions)],
) -> Result<Vec<Vec<Row>>> {
    let info = model.info();
    let budget = prompts.iter().map(|p| p.1.logits_budget).min().unwrap_or(0);
    let rows_per_chunk = (budget / (4 * info.vocab_size.max(1))).max(1);
    let positions_per_chunk = (rows_per_chunk / places.len().max(1)).max(1);
    // Which prompt, and which of its positions, each packed position is.
    let owners: Vec<(usize, usize)> = prompts
        .iter()
        .enumerate()
        .flat_map(|(p, (ids, _))| (0..ids.len()).map(move |j| (p, j)))
        .collect();
    let mut rows: Vec<Vec<Row>> = prompts
        .iter()
        .map(|(ids, _)| {
            places
                .iter()
                .map(|&(layer, site)| Row {
                    layer,
                    site,
                    cells: Vec::with_capacity(ids.len()),
                })
                .collect()
        })
        .collect();
    for first in (0..owners.len()).step_by(positions_per_chunk) {
        let owners = &owners[first..(first + positions_per_chunk).min(owners.len())];
        let queries: Vec<Query> = owners
            .iter()
            .map(|&(p, j)| {
                let (ids, opts) = prompts[p];
                Query {
                    next: ids.get(j + 1).copied(),
                    targets: &opts.targets,
                    top_k: opts.top_k,
                }
            })
            .collect();
        let cells = project(model, inputs, first, &queries)?;
        for (i, mut cell) in cells.into_iter().enumerate() {
            let (row, j) = (i / owners.len(), i % owners.len());
            cell.nonfinite |= nonfinite[row][first + j];
            rows[owners[j].0][row].cells.push(cell);
        }
    }
    Ok(rows)
}

/// The cells of packed positions `first..first+queries.len()` of every row: the head over
/// those rows of all inputs in one matmul, each row compared with the last input's (the
/// output's) row at the same position. Returned row-major: the chunk's cells of input 0,
/// then of input 1, ….
fn project(
    model: &dyn LensModel,
    inputs: &[Tensor],
    first: usize,
    queries: &[Query],
) -> Result<Vec<Cell>> {
    let count = queries.len();
    let parts = inputs
        .iter()
        .map(|t| t.narrow(0, first, count))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let logits = model.lm_head(&Tensor::cat(&parts, 0)?)?;
    reduce::cells(model.backend(), &logits, inputs.len(), count, queries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelInfo;

    /// A lens with no translator for resid_mid (as a tuned lens has none).
    #[derive(Debug)]
    struct BlockOutputsOnly;

    impl Lens for BlockOutputsOnly {
        fn name(&self) -> &str {
            "block outputs only"
        }
        fn kind(&self) -> &'static str {
            "test"
        }
        fn final_norm(&self) -> bool {
            true
        }
        fn check_site(&self, site: Site) -> Result<()> {
            match site {
                Site::ResidMid => bail!("this lens cannot read {}", site.name()),
                _ => Ok(()),
            }
        }
        fn transform_hidden(
            &self,
            _: &dyn LensModel,
            _: usize,
            _: Site,
            h: &Tensor,
        ) -> Result<Tensor> {
            Ok(h.clone())
        }
    }

    /// A model that is never run: the site checks come first.
    struct Unrunnable(ModelInfo);

    impl LensModel for Unrunnable {
        fn info(&self) -> &ModelInfo {
            &self.0
        }
        fn forward_sites(
            &self,
            _: &[u32],
            _: bool,
            _: &mut dyn FnMut(usize, Site, &Tensor) -> Result<()>,
        ) -> Result<()> {
            unreachable!("the checks refuse before the forward pass")
        }
        fn check_site(&self, site: Site) -> Result<()> {
            match self.0.model_type.as_str() {
                "no-mid" => bail!("{} blocks have no {} site", self.0.model_type, site.name()),
                _ => Ok(()),
            }
        }
        fn final_norm(&self, h: &Tensor) -> Result<Tensor> {
            Ok(h.clone())
        }
        fn lm_head(&self, h: &Tensor) -> Result<Tensor> {
            Ok(h.clone())
        }
    }

    fn model(model_type: &str) -> Unrunnable {
        Unrunnable(ModelInfo {
            model_type: model_type.into(),
            num_layers: 1,
            hidden_size: 4,
            max_positions: 8,
            vocab_size: 4,
            bos_token_id: None,
        })
    }

    #[test]
    fn sublayers_are_refused_where_the_model_or_the_lens_has_no_site() {
        let mut opts = LensOptions::new(LogitLens::default());
        opts.sublayers = true;
        let err = lens_rows(&model("no-mid"), &[1], &opts).unwrap_err();
        assert_eq!(err.to_string(), "no-mid blocks have no resid_mid site");
        let mut opts = LensOptions::new(BlockOutputsOnly);
        opts.sublayers = true;
        let err = lens_rows(&model("llama"), &[1], &opts).unwrap_err();
        assert_eq!(err.to_string(), "this lens cannot read resid_mid");
        opts.sublayers = false;
        opts.targets = vec![4];
        let err = lens_rows(&model("llama"), &[1], &opts).unwrap_err();
        assert!(
            err.to_string().starts_with("target id 4 is outside"),
            "{err}"
        );
    }
}
