//! `--summary FILE`: the per-row aggregates of a batch ([`crate::lens::summary`]) written
//! once, after the last prompt, as JSON or CSV (by the file's extension), through a
//! temporary file and a rename.
//!
//! JSON: `{"prompts", "model", "lens", "final_norm", "provenance", "rows": [...]}`; each
//! row names its `lens`, and under `--compare-lenses` the rows of both lenses are there
//! (`"lens": "logit+tuned"` at the top).
//! CSV: a header, then one line per row (the provenance goes to `--provenance`'s file).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::jsonl::Finished;
use super::{Report, RunContext, Sink};
use crate::atomic;
use crate::error::Error;
use crate::lens::summary::{Record, RowView, Summary};
use crate::lens::TokenStat;
use crate::provenance::Provenance;

/// The summary's file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SummaryFormat {
    Json,
    Csv,
}

impl SummaryFormat {
    /// From the path's extension, or a one-line error naming the choices.
    pub(crate) fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        match ext.as_deref() {
            Some("json") => Ok(Self::Json),
            Some("csv") => Ok(Self::Csv),
            _ => Err(Error::SummaryFormat {
                path: path.display().to_string(),
            }
            .into()),
        }
    }
}

/// The summary sink: adds each report, writes the file at the end.
#[derive(Debug)]
pub(crate) struct SummaryFile {
    path: PathBuf,
    format: SummaryFormat,
    summary: Summary,
    /// The first report's identity, for the file's header.
    head: Option<Head>,
    provenance: Option<Provenance>,
}

/// What the summary says about the run besides its rows.
#[derive(Debug, Clone, Serialize)]
struct Head {
    model: String,
    /// "logit", "tuned", or "logit+tuned" under `--compare-lenses`.
    lens: String,
    final_norm: bool,
}

#[derive(Serialize)]
struct Document<'a> {
    prompts: usize,
    #[serde(flatten)]
    head: Option<&'a Head>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a Provenance>,
    rows: Vec<Record>,
}

impl SummaryFile {
    /// The format a summary at `path` is written in, once `path` is checked: its
    /// extension, and a directory where it can be created.
    pub(crate) fn check(path: &Path) -> Result<SummaryFormat> {
        let format = SummaryFormat::from_path(path)?;
        atomic::check_can_create(path).map_err(|e| Error::SummaryPath {
            problem: e.to_string(),
        })?;
        Ok(format)
    }

    /// A summary to be written to `path` in `format` (see [`SummaryFile::check`]); the
    /// provenance written with it comes in [`Sink::begin`].
    pub(crate) fn new(path: &Path, format: SummaryFormat) -> Self {
        Self {
            path: path.to_path_buf(),
            format,
            summary: Summary::new(),
            head: None,
            provenance: None,
        }
    }

    /// The file's bytes.
    pub(crate) fn render(&self) -> Result<Vec<u8>> {
        let rows = self.summary.records();
        match self.format {
            SummaryFormat::Json => {
                let doc = Document {
                    prompts: self.summary.prompts(),
                    head: self.head.as_ref(),
                    provenance: self.provenance.as_ref(),
                    rows,
                };
                let mut out = serde_json::to_vec_pretty(&doc)?;
                out.push(b'\n');
                Ok(out)
            }
            SummaryFormat::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                for row in rows {
                    w.serialize(row)?;
                }
                Ok(w.into_inner().map_err(|e| e.into_error())?)
            }
        }
    }
}

impl SummaryFile {
    /// Notes the model and lens of a report: the first report's, each lens named once.
    fn head(&mut self, model: &str, lens: &str, final_norm: bool) {
        match &mut self.head {
            None => {
                self.head = Some(Head {
                    model: model.to_string(),
                    lens: lens.to_string(),
                    final_norm,
                })
            }
            Some(head) => {
                if !head.lens.split('+').any(|k| k == lens) {
                    head.lens = format!("{}+{lens}", head.lens);
                }
            }
        }
    }
}

/// Writes `bytes()` to `path` atomically once `summary` holds a prompt; nothing when no
/// prompt succeeded.
pub(crate) fn write_if_any(
    summary: &Summary,
    path: &Path,
    bytes: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<()> {
    match summary.prompts() {
        0 => Ok(()),
        _ => atomic::write(path, &bytes()?),
    }
}

/// Adds `report` to `summary`.
pub(crate) fn add_report(summary: &mut Summary, report: &Report) {
    let ids: Vec<u32> = report.tokens.iter().map(|t| t.id).collect();
    let nonfinite: Vec<Vec<bool>> = report
        .layers
        .iter()
        .map(|l| l.positions.iter().map(|p| p.nonfinite).collect())
        .collect();
    let stats: Vec<Vec<TokenStat>> = report
        .layers
        .iter()
        .map(|l| l.positions.iter().map(|p| p.stat).collect())
        .collect();
    let views: Vec<RowView> = report
        .layers
        .iter()
        .zip(&stats)
        .zip(&nonfinite)
        .map(|((l, stats), nonfinite)| RowView {
            site: l.site,
            layer: l.layer,
            stats,
            last_targets: l.positions.last().map_or(&[], |p| p.targets.as_slice()),
            nonfinite,
        })
        .collect();
    summary.add(report.lens_kind, &ids, &views);
}

impl Sink for SummaryFile {
    fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.provenance = Some(ctx.provenance.clone());
        Ok(())
    }

    fn report(&mut self, report: &Report) -> Result<()> {
        self.head(&report.model, report.lens_kind, report.lens.final_norm());
        add_report(&mut self.summary, report);
        Ok(())
    }

    fn resumed(&mut self, finished: &Finished) -> Result<()> {
        self.head(&finished.model, finished.lens_kind(), finished.final_norm);
        finished.add_to(&mut self.summary);
        Ok(())
    }

    /// Writes the file (nothing when no prompt succeeded).
    fn finish(&mut self) -> Result<()> {
        write_if_any(&self.summary, &self.path, || self.render())
    }
}
