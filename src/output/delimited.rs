//! Long tables for spreadsheets and pandas: one row per (prompt, layer, position), as CSV or
//! TSV. Quoting is the csv crate's, so tokens with tabs, commas, quotes or newlines survive.
//!
//! The first line is the header, so any CSV reader (pandas, R, csvkit, duckdb) reads the
//! file as it is; the run's provenance goes to a sidecar JSON file (`--provenance`).
//! Reals are written in their shortest round-trip form ([`real`]).
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

use super::{Report, RunContext, Sink, Value, STATS};

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

/// A CSV or TSV printer: the header first, then each report's rows as soon as it is ready.
pub struct Delimited<W: Write> {
    /// The destination until the header is written.
    out: Option<W>,
    delimiter: u8,
    groups: Columns,
    inner: Option<csv::Writer<W>>,
}

impl<W: Write> Delimited<W> {
    /// `delimiter` is `b','` for CSV and `b'\t'` for TSV. [`Sink::begin`] sets the target
    /// columns (the most targets any prompt tracks).
    pub fn new(out: W, delimiter: u8, groups: Columns) -> Self {
        Self {
            out: Some(out),
            delimiter,
            groups,
            inner: None,
        }
    }

    /// The csv writer, after the header.
    fn writer(&mut self) -> Result<&mut csv::Writer<W>> {
        self.header()?;
        Ok(self.inner.as_mut().expect("the header is written"))
    }

    /// Writes the header, once.
    fn header(&mut self) -> Result<()> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
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
                let stats = STATS.iter().map(|d| match p.value(d.stat) {
                    Value::Real(x) => real(x),
                    other => other.to_string(),
                });
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
                        Some(t) => record.extend([t.id.to_string(), t.token.clone(), real(t.prob)]),
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
                            real(s.prob),
                            real(s.logprob),
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

/// A real in its shortest round-trip form: Rust's plain digits (`0.054008678`), or its
/// scientific form (`7.4e-38`) where that is shorter. Either reads back as the same f32.
pub(crate) fn real(x: f32) -> String {
    let (plain, scientific) = (x.to_string(), format!("{x:e}"));
    match scientific.len() < plain.len() {
        true => scientific,
        false => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::real;

    #[test]
    fn reals_take_their_shortest_round_trip_form() {
        let tiny = 7.4e-38_f32;
        assert_eq!(real(tiny), "7.4e-38");
        assert_eq!(real(0.054008678), "0.054008678");
        assert_eq!(real(-16.740824), "-16.740824");
        assert_eq!(real(1.0), "1");
        assert_eq!(real(0.0), "0");
        assert_eq!(real(1e-5), "1e-5");
        assert_eq!(real(123456790.0), "123456790");
        assert_eq!(real(1e10), "1e10");
        for x in [
            tiny,
            1e-45,
            f32::MIN_POSITIVE,
            0.1,
            1.5,
            -3.25e-9,
            6.02e23,
            f32::MAX,
        ] {
            let shown = real(x);
            assert_eq!(shown.parse::<f32>().unwrap(), x, "{shown}");
            assert!(shown.len() <= x.to_string().len(), "{shown}");
        }
    }
}
