//! Long tables for spreadsheets and pandas: one row per (prompt, layer, position), as CSV or
//! TSV. Quoting is the csv crate's, so tokens with tabs, commas, quotes or newlines survive.
//!
//! The first line is a comment holding the run's provenance as JSON,
//! `# logitlens provenance: {...}`, then comes the header. Readers skip it with
//! `pandas.read_csv(path, skiprows=1)`, or read it with `json.loads(line[24:])`.
//!
//! Token columns come in threes: `*_token` is the readable text, `*_text` the exact text and
//! `*_bytes` the exact bytes in hex when they are not valid UTF-8 (else empty).
//!
//! After the statistics come `site`, then, with `--top-k K`, `top1_id`, `top1_token`,
//! `top1_prob` … `topK_prob`, then, with targets, `target1_id`, `target1_token`,
//! `target1_prob`, `target1_logprob`, `target1_rank` … for the most targets any prompt
//! tracks (empty where a prompt tracks fewer). `next_logprob` and `next_rank` are empty at
//! the last position. With `--allow-nonfinite`, a `nonfinite` column follows `site` (and
//! `lens`): `true` in a cell whose values are not finite, every statistic of it empty.

use std::io::Write;

use anyhow::Result;

use super::{Report, RunContext, Sink, STATS};

/// The columns that place a cell, before one column per statistic.
const PLACE: [&str; 8] = [
    "prompt_index",
    "prompt_id",
    "layer",
    "position",
    "input_id",
    "input_token",
    "input_text",
    "input_bytes",
];

/// How many top-k and target column groups a table has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    pub top_k: usize,
    pub targets: usize,
    /// A `lens` column after `site` ("logit" or "tuned"), for `--compare-lenses`.
    pub lens: bool,
    /// A `nonfinite` column next ("true" where the cell's values are not finite, its other
    /// fields then empty), for `--allow-nonfinite`.
    pub nonfinite: bool,
}

/// Column names, in order: where the cell is, every statistic's column, the site (and the
/// lens, when asked), then the top-k and target groups.
pub fn columns(groups: Columns) -> Vec<String> {
    let mut names: Vec<String> = PLACE
        .into_iter()
        .chain(STATS.iter().map(|d| d.column))
        .chain(["site"])
        .chain(groups.lens.then_some("lens"))
        .chain(groups.nonfinite.then_some("nonfinite"))
        .map(String::from)
        .collect();
    for k in 1..=groups.top_k {
        names.extend(["id", "token", "prob"].map(|f| format!("top{k}_{f}")));
    }
    for t in 1..=groups.targets {
        names.extend(["id", "token", "prob", "logprob", "rank"].map(|f| format!("target{t}_{f}")));
    }
    names
}

/// A CSV or TSV printer: the provenance comment and the header first, then each report's
/// rows as soon as it is ready.
pub struct Delimited<W: Write> {
    /// The destination until the header is written.
    out: Option<W>,
    delimiter: u8,
    /// The provenance line, once [`Sink::begin`] has told it.
    comment: Option<String>,
    groups: Columns,
    inner: Option<csv::Writer<W>>,
}

impl<W: Write> Delimited<W> {
    /// `delimiter` is `b','` for CSV and `b'\t'` for TSV. [`Sink::begin`] sets the first
    /// line (the provenance) and the target columns (the most targets any prompt tracks).
    pub fn new(out: W, delimiter: u8, groups: Columns) -> Self {
        Self {
            out: Some(out),
            delimiter,
            comment: None,
            groups,
            inner: None,
        }
    }

    /// The csv writer, after the header.
    fn writer(&mut self) -> Result<&mut csv::Writer<W>> {
        self.header()?;
        Ok(self.inner.as_mut().expect("the header is written"))
    }

    /// Writes the provenance line (when known) and the header, once.
    fn header(&mut self) -> Result<()> {
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        if let Some(comment) = &self.comment {
            writeln!(out, "{comment}")?;
        }
        let mut inner = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .from_writer(out);
        inner.write_record(columns(self.groups))?;
        self.inner = Some(inner);
        Ok(())
    }
}

impl<W: Write> Sink for Delimited<W> {
    fn begin(&mut self, ctx: &RunContext) -> Result<()> {
        self.comment = Some(ctx.provenance.comment_line());
        self.groups.targets = ctx.targets;
        self.header()
    }

    /// Appends every (layer, position) row of one report and flushes (so a broken pipe
    /// surfaces here, not in a destructor).
    fn report(&mut self, report: &Report) -> Result<()> {
        let id = report.prompt_id.as_deref().unwrap_or_default();
        let index = report.prompt_index.to_string();
        let groups = self.groups;
        let inner = self.writer()?;
        for layer in &report.layers {
            let number = layer.layer.to_string();
            let site = layer.site.name().to_string();
            for (pos, (p, input)) in layer.positions.iter().zip(&report.tokens).enumerate() {
                let place = [
                    index.clone(),
                    id.to_string(),
                    number.clone(),
                    pos.to_string(),
                    input.id.to_string(),
                    input.display.clone(),
                    input.text.clone(),
                    input.bytes.clone().unwrap_or_default(),
                ];
                let stats = STATS.iter().map(|d| p.value(d.stat).to_string());
                let mut record: Vec<String> = place.into_iter().chain(stats).collect();
                record.push(site.clone());
                if groups.lens {
                    record.push(report.lens_kind.to_string());
                }
                if groups.nonfinite {
                    record.push(p.nonfinite.to_string());
                }
                let shown = |i| (!p.nonfinite).then_some(i);
                for k in 0..groups.top_k {
                    match shown(k).and_then(|k| p.topk.get(k)) {
                        Some(t) => {
                            record.extend([t.id.to_string(), t.token.clone(), t.prob.to_string()])
                        }
                        None => record.extend(std::iter::repeat_n(String::new(), 3)),
                    }
                }
                for t in 0..groups.targets {
                    match (
                        report.targets.get(t),
                        shown(t).and_then(|t| p.targets.get(t)),
                    ) {
                        (Some(token), Some(s)) => record.extend([
                            token.id.to_string(),
                            token.token.clone(),
                            s.prob.to_string(),
                            s.logprob.to_string(),
                            s.rank.to_string(),
                        ]),
                        _ => record.extend(std::iter::repeat_n(String::new(), 5)),
                    }
                }
                inner.write_record(record)?;
            }
        }
        Ok(inner.flush()?)
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.writer()?.flush()?)
    }
}
