//! The interactive HTML report (`--out report.html`, `--out-dir DIR --image-format html`):
//! one self-contained page per file, holding the run's `--format json` document and the
//! code that draws it.
//!
//! This module is the [`Sink`]: it decides which reports go into which file and writes
//! each file atomically. [`view`] computes what the page shows beside the document (metrics,
//! scales, palette, row labels, token glyphs, summary curves), and [`page`] assembles one
//! page from the static assets under `assets/` (the HTML template, the CSS, and the scripts:
//! `data.js` reads the document and the view, `grid.js` draws, `main.js` wires the
//! controls), which are compiled in with `include_str!`.

mod page;
pub mod view;

use std::path::Path;

use anyhow::Result;

pub use page::page;

use super::images::{stem, PerPrompt, Target};
use super::{json, Report, RunContext, Sink};
use crate::atomic;
use crate::session::display_name;

/// The file extension of a report.
pub const EXTENSION: &str = "html";

/// The top-k K of a run with a report and no `--top-k`: what each tooltip lists.
pub const DEFAULT_TOP_K: usize = 10;

/// Whether `path` names an HTML report (`.html` or `.htm`, any case).
pub fn is_html(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| e == "html" || e == "htm")
}

/// Writes HTML reports: with a [`Target::File`], one page holding every report of the run
/// (written at the end, when all are known); with a [`Target::Dir`], one page per report
/// as soon as it is ready.
#[derive(Debug)]
pub struct Html {
    target: Target,
    /// Whether the run's JSON document is one object rather than an array (one `--prompt`).
    single: bool,
    /// The reports of a [`Target::File`] page, until the end.
    held: Vec<Report>,
    /// The reports of a [`Target::Dir`] page: the prompt's, one per lens.
    lenses: PerPrompt,
    /// The model's name in the heading and the title, as the heatmap's title has it
    /// ([`RunContext::title`]); `None`: the `display_name` of the reports' `model`.
    model: Option<String>,
}

impl Html {
    /// Reports to `target`; `single` as for the JSON printer, so that the page embeds
    /// exactly the document `--format json` prints for the same run.
    pub fn new(target: Target, single: bool) -> Self {
        Self {
            target,
            single,
            held: Vec::new(),
            lenses: PerPrompt::new(1),
            model: None,
        }
    }

    /// Each prompt comes as `lenses` reports in a row, one per lens (`--compare-lenses`),
    /// which an `--out-dir` page holds together (the page shows their grids side by side).
    pub fn lenses(mut self, lenses: usize) -> Self {
        self.lenses = PerPrompt::new(lenses);
        self
    }
}

impl Sink for Html {
    /// Takes the model's name for the page, the same as the heatmap's title.
    fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.model = Some(ctx.title.clone());
        Ok(())
    }

    fn report(&mut self, report: &Report) -> Result<()> {
        match &self.target {
            Target::File(_) => self.held.push(report.clone()),
            Target::Dir { dir, total } => {
                if let Some(held) = self.lenses.add(report) {
                    let stem = stem(report.prompt_id.as_deref(), report.prompt_index, *total);
                    let path = dir.join(format!("{stem}.{EXTENSION}"));
                    write(&path, true, &held, self.model.as_deref())?;
                }
            }
        }
        Ok(())
    }

    /// Writes the one page of a [`Target::File`]; nothing when every prompt failed.
    fn finish(&mut self) -> Result<()> {
        match &self.target {
            Target::File(path) if !self.held.is_empty() => {
                write(path, self.single, &self.held, self.model.as_deref())
            }
            _ => Ok(()),
        }
    }
}

/// Writes the page of `reports` to `path` atomically, naming the model `model` (else as
/// the heatmap names a report's model without a session: its `display_name`).
fn write(path: &Path, single: bool, reports: &[Report], model: Option<&str>) -> Result<()> {
    let mut document = Vec::new();
    json::write_document(&mut document, single, reports, false)?;
    let document = String::from_utf8(document)?;
    let view = serde_json::to_string(&view::view(reports))?;
    let model = match (model, reports.first()) {
        (Some(model), _) => model.to_string(),
        (None, Some(first)) => display_name(&first.model),
        (None, None) => String::new(),
    };
    let page = page(&document, &view, &title(reports, &model), &model);
    atomic::write(path, page.as_bytes())
}

/// The page title: the model's name and the prompt, or the number of prompts.
fn title(reports: &[Report], model: &str) -> String {
    let Some(first) = reports.first() else {
        return "logitlens".to_string();
    };
    let mut prompts: Vec<usize> = reports.iter().map(|r| r.prompt_index).collect();
    prompts.dedup();
    let lenses = match reports.iter().any(|r| r.lens_kind != first.lens_kind) {
        true => " (logit and tuned lens)",
        false => "",
    };
    match prompts.len() {
        1 => format!("logitlens: {model}: {}{lenses}", first.prompt),
        n => format!("logitlens: {model}: {n} prompts{lenses}"),
    }
}
