//! JSON output: one document per run, pretty-printed.

use std::io::{self, Write};

use anyhow::Result;

use super::{Report, Sink};

/// The JSON printer: holds every report and writes them at the end, as one object for a
/// single `--prompt`, else as an array.
pub struct Json<W: Write> {
    out: W,
    single: bool,
    reports: Vec<Report>,
}

impl<W: Write> Json<W> {
    /// With `single`, the document is the one report's object (nothing if it failed).
    pub fn new(out: W, single: bool) -> Self {
        Self {
            out,
            single,
            reports: Vec::new(),
        }
    }
}

impl<W: Write> Sink for Json<W> {
    fn report(&mut self, report: &Report) -> Result<()> {
        self.reports.push(report.clone());
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        write_document(&mut self.out, self.single, &self.reports, true)?;
        Ok(self.out.flush()?)
    }
}

/// Writes the `--format json` document of `reports`: the one report's object with
/// `single` (nothing when it failed), else an array, and a final newline; pretty with
/// `pretty`, else compact (the HTML report embeds this document compact: the same value in
/// less than half the bytes).
pub fn write_document(
    out: &mut impl Write,
    single: bool,
    reports: &[Report],
    pretty: bool,
) -> Result<()> {
    match (single, reports) {
        (true, [one]) => write_value(out, one, pretty),
        (true, []) => Ok(()),
        (_, all) => write_value(out, all, pretty),
    }
}

/// Writes a report or a list of reports as JSON and a newline.
fn write_value<T: serde::Serialize + ?Sized>(
    out: &mut impl Write,
    value: &T,
    pretty: bool,
) -> Result<()> {
    // As an io::Error, so a closed stdout reads as a broken pipe.
    match pretty {
        true => serde_json::to_writer_pretty(&mut *out, value),
        false => serde_json::to_writer(&mut *out, value),
    }
    .map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}
