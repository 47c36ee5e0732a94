//! Long tables for spreadsheets and pandas: one row per (prompt, layer, position), as CSV or
//! TSV. Quoting is the csv crate's, so tokens with tabs, commas, quotes or newlines survive.

use std::io::Write;

use anyhow::Result;

use super::Report;

/// Column names, in order.
pub const COLUMNS: &[&str] = &[
    "prompt_index",
    "prompt_id",
    "layer",
    "position",
    "input_id",
    "input_token",
    "predicted_id",
    "predicted_token",
    "prob",
    "entropy",
];

/// A CSV or TSV writer that prints the header once, before the first report.
pub struct Delimited<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> Delimited<W> {
    /// `delimiter` is `b','` for CSV and `b'\t'` for TSV.
    pub fn new(out: W, delimiter: u8) -> Result<Self> {
        let mut inner = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        inner.write_record(COLUMNS)?;
        Ok(Self { inner })
    }

    /// Appends every (layer, position) row of one report.
    pub fn write(&mut self, report: &Report) -> Result<()> {
        let id = report.prompt_id.clone().unwrap_or_default();
        for layer in &report.layers {
            for (pos, (p, input)) in layer.positions.iter().zip(&report.tokens).enumerate() {
                self.inner.write_record([
                    report.prompt_index.to_string(),
                    id.clone(),
                    layer.layer.to_string(),
                    pos.to_string(),
                    input.id.to_string(),
                    input.text.clone(),
                    p.id.to_string(),
                    p.token.clone(),
                    p.prob.to_string(),
                    p.entropy.to_string(),
                ])?;
            }
        }
        Ok(())
    }

    /// Flushes buffered rows (so a broken pipe surfaces here, not in a destructor).
    pub fn flush(&mut self) -> Result<()> {
        self.inner.flush()?;
        Ok(())
    }
}
