//! JSON Lines: one compact object per prompt, the same schema as `--format json`.

use std::io::{self, Write};

use anyhow::Result;

use super::{Report, Sink};

/// The JSON Lines printer: each report on one line as soon as it is ready.
pub(crate) struct Jsonl<W: Write> {
    out: W,
}

impl<W: Write> Jsonl<W> {
    /// Writes to `out`.
    pub(crate) fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write> Sink for Jsonl<W> {
    fn report(&mut self, report: &Report) -> Result<()> {
        // As an io::Error, so a closed stdout reads as a broken pipe.
        serde_json::to_writer(&mut self.out, report).map_err(io::Error::from)?;
        writeln!(self.out)?;
        Ok(self.out.flush()?)
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}
