//! Heatmap files: one image per report, to one `--out` file or into an `--out-dir`.

use std::path::PathBuf;

use anyhow::Result;

use super::heatmap::{self, HeatmapOptions, ImageFormat};
use super::{Report, RunContext, Sink};
use crate::error::{Words, NEUTRAL};
use crate::{atomic, prompts};

/// Where the images go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One file, for a run of one prompt.
    File(PathBuf),
    /// A directory; each prompt's file is named by [`stem`] among `total` prompts.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// How many prompts the run has (sets the width of index names).
        total: usize,
    },
}

/// Writes each report's heatmap atomically as soon as the report is ready.
#[derive(Debug, Clone)]
pub(crate) struct Images {
    target: Target,
    format: ImageFormat,
    options: HeatmapOptions,
    /// Say on stderr, in these words, when a prompt's positions do not fit in one image.
    warn: Option<Words>,
    /// Each prompt's reports, one per lens, drawn side by side in one image.
    lenses: PerPrompt,
}

/// Gathers each prompt's reports, one per lens (`--compare-lenses` hands a prompt's logit
/// report, then its tuned report), until the prompt has all of them.
#[derive(Debug, Clone)]
pub(crate) struct PerPrompt {
    /// How many reports each prompt has (2 under `--compare-lenses`, else 1).
    lenses: usize,
    /// The reports of the prompt being gathered.
    held: Vec<Report>,
}

impl PerPrompt {
    /// Prompts of `lenses` reports each (at least 1).
    pub(crate) fn new(lenses: usize) -> Self {
        Self {
            lenses: lenses.max(1),
            held: Vec::new(),
        }
    }

    /// Adds `report`; all of its prompt's reports once it is the last of them. A prompt
    /// left incomplete (another prompt's report comes first) is dropped.
    pub(crate) fn add(&mut self, report: &Report) -> Option<Vec<Report>> {
        if self
            .held
            .first()
            .is_some_and(|h| h.prompt_index != report.prompt_index)
        {
            self.held.clear();
        }
        self.held.push(report.clone());
        match self.held.len() >= self.lenses {
            true => Some(std::mem::take(&mut self.held)),
            false => None,
        }
    }
}

impl Images {
    /// Images in `format`, drawn with `options`.
    pub(crate) fn new(target: Target, format: ImageFormat, options: HeatmapOptions) -> Self {
        Self {
            target,
            format,
            options,
            warn: Some(NEUTRAL),
            lenses: PerPrompt::new(1),
        }
    }

    /// Each prompt comes as `lenses` reports in a row, one per lens (`--compare-lenses`:
    /// the logit lens's, then the tuned lens's), drawn side by side in one image.
    pub(crate) fn lenses(mut self, lenses: usize) -> Self {
        self.lenses = PerPrompt::new(lenses);
        self
    }

    /// Whether to say on stderr, and in which words, when a prompt's positions do not fit
    /// in one image (one line per such prompt; on by default, in neutral words).
    pub(crate) fn warn(mut self, warn: Option<Words>) -> Self {
        self.warn = warn;
        self
    }
}

impl Sink for Images {
    /// Fits the images to the loaded model: titles name it by the context's title, and the
    /// figures of an `--out-dir` share the metric's whole range for its vocabulary
    /// ([`heatmap::Metric::batch_range`]) unless a range was set, so that they compare.
    fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.options.model = Some(ctx.title.clone());
        if matches!(self.target, Target::Dir { .. }) && self.options.color_range.is_none() {
            self.options.color_range = self.options.metric.batch_range(ctx.vocab_size);
        }
        Ok(())
    }

    /// A `--positions` window must lie inside the prompt, and `--metric target` needs a
    /// target.
    fn check(&self, report: &Report) -> Result<()> {
        self.options.metric.check(report)?;
        self.options.window.resolve(report.tokens.len()).map(drop)
    }

    fn report(&mut self, report: &Report) -> Result<()> {
        if self.lenses.lenses == 1 {
            return self.write(&[report]);
        }
        match self.lenses.add(report) {
            Some(held) => self.write(&held.iter().collect::<Vec<_>>()),
            None => Ok(()),
        }
    }
}

impl Images {
    /// Writes the image of one prompt's `reports` (one per lens, side by side).
    fn write(&self, reports: &[&Report]) -> Result<()> {
        let report = reports[0];
        let path = match &self.target {
            Target::File(path) => path.clone(),
            Target::Dir { dir, total } => {
                let stem = stem(report.prompt_id.as_deref(), report.prompt_index, *total);
                dir.join(format!("{stem}.{}", self.format.extension()))
            }
        };
        let image = heatmap::draw_side_by_side(reports, &self.options, self.format)?;
        if let (Some(words), Some(note)) = (&self.warn, image.note()) {
            eprintln!(
                "logitlens: warning: {}: {}",
                prompts::label(report.prompt_index, report.prompt_id.as_deref()),
                note.worded(words)
            );
        }
        atomic::write(&path, &image.bytes)
    }
}

/// The file stem of a prompt's image: its id made file-safe, else its index zero-padded to
/// the width of the largest of `total` indices (at least 3 digits).
pub(crate) fn stem(id: Option<&str>, index: usize, total: usize) -> String {
    match id {
        Some(id) => id
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "-_.".contains(c) {
                true => c,
                false => '_',
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string(),
        None => format!(
            "{index:0width$}",
            width = total.saturating_sub(1).to_string().len().max(3)
        ),
    }
}
