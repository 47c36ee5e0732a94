//! JSON Lines: one compact object per prompt, the same schema as `--format json`.

use std::io::{self, Write};

use super::Report;

/// Writes one report on one line.
pub fn write(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report)?;
    writeln!(out)
}
