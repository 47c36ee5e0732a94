//! JSON Lines: one compact object per prompt, the same schema as `--format json`.

use std::io::{self, Write};

use anyhow::Result;
use serde::Deserialize;

use super::{Report, Sink};
use crate::lens::summary::{RowView, Summary};
use crate::lens::{Site, TargetStat, TokenStat};

/// The JSON Lines printer: each report on one line as soon as it is ready.
pub(crate) struct Jsonl<W: Write> {
    out: W,
}

impl<W: Write> Jsonl<W> {
    /// Writes to `out`.
    pub(crate) fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write> Sink for Jsonl<W> {
    fn report(&mut self, report: &Report) -> Result<()> {
        // As an io::Error, so a closed stdout reads as a broken pipe.
        serde_json::to_writer(&mut self.out, report).map_err(io::Error::from)?;
        writeln!(self.out)?;
        Ok(self.out.flush()?)
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// A prompt's report as a JSONL line holds it, read back from a finished `--output` file
/// (`--resume`): where it belongs, and what a summary needs of it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Finished {
    pub model: String,
    pub prompt: String,
    pub prompt_index: usize,
    pub prompt_id: Option<String>,
    pub final_norm: bool,
    /// "logit" or "tuned".
    pub lens: String,
    tokens: Vec<FinishedToken>,
    layers: Vec<FinishedLayer>,
}

#[derive(Debug, Clone, Deserialize)]
struct FinishedToken {
    id: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct FinishedLayer {
    layer: usize,
    site: String,
    positions: Vec<FinishedCell>,
}

/// A cell; a non-finite one (`--allow-nonfinite`) has every statistic null and
/// `"nonfinite": true`, and a finite one compared with a non-finite output has a null `kl`:
/// the summary leaves both out.
#[derive(Debug, Clone, Deserialize)]
struct FinishedCell {
    id: Option<u32>,
    prob: Option<f32>,
    entropy: Option<f32>,
    kl: Option<f32>,
    next_logprob: Option<f32>,
    next_rank: Option<u32>,
    targets: Option<Vec<FinishedTarget>>,
    #[serde(default)]
    nonfinite: bool,
}

impl FinishedCell {
    /// Whether the line holds every statistic a finite cell has.
    fn whole(&self) -> bool {
        self.nonfinite
            || (self.id.is_some()
                && self.prob.is_some()
                && self.entropy.is_some()
                && self.targets.is_some())
    }
}

#[derive(Debug, Clone, Deserialize)]
struct FinishedTarget {
    prob: f32,
    logprob: f32,
    rank: u32,
}

impl Finished {
    /// Reads one line of a JSONL output; `None` when it is not a whole report (a line torn
    /// by an interrupted write, or something else).
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let finished: Self = serde_json::from_str(line).ok()?;
        let known = ["logit", "tuned"].contains(&finished.lens.as_str())
            && finished.layers.iter().all(|l| site(&l.site).is_some())
            && finished
                .layers
                .iter()
                .all(|l| l.positions.iter().all(FinishedCell::whole));
        known.then_some(finished)
    }

    /// The lens's name as reports give it.
    pub(crate) fn lens_kind(&self) -> &'static str {
        match self.lens.as_str() {
            "tuned" => "tuned",
            _ => "logit",
        }
    }

    /// Adds this report to `summary`, as [`super::summary::add_report`] adds a computed
    /// one: the same numbers (JSON keeps every f32 exactly), so the same sums.
    pub(crate) fn add_to(&self, summary: &mut Summary) {
        let ids: Vec<u32> = self.tokens.iter().map(|t| t.id).collect();
        let stats: Vec<Vec<TokenStat>> = self
            .layers
            .iter()
            .map(|l| {
                l.positions
                    .iter()
                    .map(|c| TokenStat {
                        id: c.id.unwrap_or(0),
                        prob: c.prob.unwrap_or(f32::NAN),
                        entropy: c.entropy.unwrap_or(f32::NAN),
                        kl: c.kl.unwrap_or(f32::NAN),
                        next_logprob: c.next_logprob,
                        next_rank: c.next_rank,
                    })
                    .collect()
            })
            .collect();
        let targets: Vec<Vec<TargetStat>> = self
            .layers
            .iter()
            .map(|l| {
                l.positions.last().map_or(Vec::new(), |c| {
                    c.targets
                        .iter()
                        .flatten()
                        .map(|t| TargetStat {
                            prob: t.prob,
                            logprob: t.logprob,
                            rank: t.rank,
                        })
                        .collect()
                })
            })
            .collect();
        let nonfinite: Vec<Vec<bool>> = self
            .layers
            .iter()
            .map(|l| l.positions.iter().map(|c| c.nonfinite).collect())
            .collect();
        let views: Vec<RowView> = self
            .layers
            .iter()
            .zip(stats.iter().zip(&targets).zip(&nonfinite))
            .map(|(l, ((stats, targets), nonfinite))| RowView {
                site: site(&l.site).expect("checked by parse"),
                layer: l.layer,
                stats,
                last_targets: targets,
                nonfinite,
            })
            .collect();
        summary.add(self.lens_kind(), &ids, &views);
    }
}

/// A row's site from its JSON name.
fn site(name: &str) -> Option<Site> {
    [Site::Embed, Site::ResidMid, Site::ResidPost]
        .into_iter()
        .find(|s| s.name() == name)
}
