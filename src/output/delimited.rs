//! Long tables for spreadsheets and pandas: one row per (prompt, layer, position), as CSV or
//! TSV. Quoting is the csv crate's, so tokens with tabs, commas, quotes or newlines survive.

use std::io::Write;

use anyhow::Result;

use super::{Report, Sink};
use crate::lens::STATS;

/// The columns that place a cell, before one column per statistic.
const PLACE: [&str; 6] = [
    "prompt_index",
    "prompt_id",
    "layer",
    "position",
    "input_id",
    "input_token",
];

/// Column names, in order: where the cell is, then every statistic's column.
pub fn columns() -> Vec<&'static str> {
    PLACE
        .into_iter()
        .chain(STATS.iter().map(|s| s.column()))
        .collect()
}

/// A CSV or TSV printer: the header first, then each report's rows as soon as it is ready.
pub struct Delimited<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> Delimited<W> {
    /// `delimiter` is `b','` for CSV and `b'\t'` for TSV.
    pub fn new(out: W, delimiter: u8) -> Self {
        let inner = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        Self { inner }
    }
}

impl<W: Write> Sink for Delimited<W> {
    fn begin(&mut self) -> Result<()> {
        Ok(self.inner.write_record(columns())?)
    }

    /// Appends every (layer, position) row of one report and flushes (so a broken pipe
    /// surfaces here, not in a destructor).
    fn report(&mut self, report: &Report) -> Result<()> {
        let id = report.prompt_id.as_deref().unwrap_or_default();
        let index = report.prompt_index.to_string();
        for layer in &report.layers {
            let number = layer.layer.to_string();
            for (pos, (p, input)) in layer.positions.iter().zip(&report.tokens).enumerate() {
                let place = [
                    index.clone(),
                    id.to_string(),
                    number.clone(),
                    pos.to_string(),
                    input.id.to_string(),
                    input.text.clone(),
                ];
                let stats = STATS.iter().map(|&s| p.value(s).to_string());
                self.inner.write_record(place.into_iter().chain(stats))?;
            }
        }
        Ok(self.inner.flush()?)
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.inner.flush()?)
    }
}
