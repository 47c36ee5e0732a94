//! JSON output: one document per run, pretty-printed.

use std::io::{self, Write};

use super::Report;

/// Writes one report as a JSON object.
pub fn write_one(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// Writes several reports as a JSON array.
pub fn write_many(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, reports)?;
    writeln!(out)
}
