//! JSON output: one document per run.

use std::io::{self, Write};

use super::Report;

/// Writes one report as a JSON object, or several as an array, then a newline.
pub fn write(out: &mut dyn Write, reports: &[Report]) -> io::Result<()> {
    match reports {
        [one] => serde_json::to_writer_pretty(&mut *out, one)?,
        many => serde_json::to_writer_pretty(&mut *out, many)?,
    }
    writeln!(out)
}
