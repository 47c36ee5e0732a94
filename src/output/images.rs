//! Heatmap files: one image per report, to one `--out` file or into an `--out-dir`.

use std::path::PathBuf;

use anyhow::Result;

use super::heatmap::{self, HeatmapOptions, ImageFormat};
use super::{Report, Sink};
use crate::atomic;

/// Where the images go.
#[derive(Debug, Clone)]
pub enum Target {
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
pub struct Images {
    target: Target,
    format: ImageFormat,
    options: HeatmapOptions,
}

impl Images {
    /// Images in `format`, drawn with `options`.
    pub fn new(target: Target, format: ImageFormat, options: HeatmapOptions) -> Self {
        Self {
            target,
            format,
            options,
        }
    }
}

impl Images {
    /// Gives the figures of an `--out-dir` the colour range `range` unless one was set:
    /// one scale for the whole batch, so that its figures compare.
    pub fn share_range(&mut self, range: (f32, f32)) {
        if matches!(self.target, Target::Dir { .. }) && self.options.color_range.is_none() {
            self.options.color_range = Some(range);
        }
    }
}

impl Sink for Images {
    fn report(&mut self, report: &Report) -> Result<()> {
        let path = match &self.target {
            Target::File(path) => path.clone(),
            Target::Dir { dir, total } => {
                let stem = stem(report.prompt_id.as_deref(), report.prompt_index, *total);
                dir.join(format!("{stem}.{}", self.format.extension()))
            }
        };
        atomic::write(&path, &heatmap::render(report, &self.options, self.format)?)
    }
}

/// The file stem of a prompt's image: its id made file-safe, else its index zero-padded to
/// the width of the largest of `total` indices (at least 3 digits).
pub fn stem(id: Option<&str>, index: usize, total: usize) -> String {
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
