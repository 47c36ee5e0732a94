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
        write_document(&mut self.out, self.single, &self.reports)?;
        Ok(self.out.flush()?)
    }
}

/// Writes the `--format json` document of `reports`: the one report's object with
/// `single` (nothing when it failed), else an array; pretty, with a final newline. The
/// HTML report embeds exactly this document.
pub fn write_document(out: &mut impl Write, single: bool, reports: &[Report]) -> Result<()> {
    match (single, reports) {
        (true, [one]) => write_pretty(out, one),
        (true, []) => Ok(()),
        (_, all) => write_pretty(out, all),
    }
}

/// Writes a report or a list of reports as pretty JSON and a newline.
fn write_pretty<T: serde::Serialize + ?Sized>(out: &mut impl Write, value: &T) -> Result<()> {
    // As an io::Error, so a closed stdout reads as a broken pipe.
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}
