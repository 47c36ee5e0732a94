//! The default stdout format: one line per layer, argmax tokens in aligned columns.

use std::io::{self, Write};

use anyhow::Result;
use unicode_width::UnicodeWidthStr;

use super::heatmap::shown_rows;
use super::{Report, Sink, Stat};
use crate::tokens::printable;

/// Widest a column gets; longer tokens are cut with `…`.
const MAX_WIDTH: usize = 16;

/// The table printer: each report as soon as it is ready, under a `# prompt` line when
/// the run has several prompts.
pub struct Table<W: Write> {
    out: W,
    stats: Vec<Stat>,
    many: bool,
    /// Name the lens in each report's `# prompt` line (`--compare-lenses`).
    lens_labels: bool,
    /// `--layer-step`: show every `layer_step`-th layer and the output row.
    layer_step: usize,
    printed: usize,
}

impl<W: Write> Table<W> {
    /// Cells show the argmax token, then each of `stats`; `many` heads each report with
    /// its prompt.
    pub fn new(out: W, stats: Vec<Stat>, many: bool) -> Self {
        Self {
            out,
            stats,
            many,
            lens_labels: false,
            layer_step: 1,
            printed: 0,
        }
    }

    /// Shows every `step`-th layer and the output row, as the heatmap does
    /// ([`shown_rows`]); 1 (the default) shows every row.
    pub fn with_layer_step(mut self, step: usize) -> Self {
        self.layer_step = step;
        self
    }

    /// Heads every report with its prompt and its lens: `# prompt 0 (tuned lens): …`.
    pub fn with_lens_labels(mut self) -> Self {
        self.many = true;
        self.lens_labels = true;
        self
    }
}

impl<W: Write> Sink for Table<W> {
    fn report(&mut self, report: &Report) -> Result<()> {
        if self.many {
            if self.printed > 0 {
                writeln!(self.out)?;
            }
            let label = match &report.prompt_id {
                Some(id) => id.clone(),
                None => report.prompt_index.to_string(),
            };
            let prompt = printable(report.prompt.as_bytes());
            let lens = match self.lens_labels {
                true => format!(" ({} lens)", report.lens_kind),
                false => String::new(),
            };
            writeln!(self.out, "# prompt {label}{lens}: {prompt}")?;
        }
        let rows = shown_rows(report, self.layer_step);
        write(&mut self.out, report, &rows, &self.stats)?;
        self.out.flush()?;
        self.printed += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// Writes the header (input tokens) and one line per row of `rows` (indices into the
/// report's layers, ascending), layer 0 first, then the footer and, when the report has
/// top-k lists or targets, what each of those rows says at the last position. Each cell
/// shows the argmax token, then each of `stats` as [`Stat::cell`] shows it.
pub fn write(
    out: &mut dyn Write,
    report: &Report,
    rows: &[usize],
    stats: &[Stat],
) -> io::Result<()> {
    let last = report.layers.last().map_or(0, |l| l.layer);
    let cell = |p: &super::Prediction| {
        let mut cell = cut(&p.token, MAX_WIDTH);
        if p.nonfinite {
            return cell;
        }
        for &stat in stats {
            cell.push(' ');
            cell.push_str(&stat.cell(p.value(stat)));
        }
        cell
    };
    let header: Vec<String> = report
        .tokens
        .iter()
        .map(|t| cut(&t.display, MAX_WIDTH))
        .collect();
    let shown = rows;
    let rows: Vec<(String, Vec<String>)> = shown
        .iter()
        .map(|&i| &report.layers[i])
        .map(|l| (l.label(last), l.positions.iter().map(cell).collect()))
        .collect();
    let widths = column_widths(&header, rows.iter().map(|(_, cells)| cells));
    let first = rows
        .iter()
        .map(|(l, _)| l.width())
        .chain(["layer".width()])
        .max()
        .unwrap_or(5);
    write_line(out, "layer", first, &header, &widths)?;
    for (label, cells) in &rows {
        write_line(out, label, first, cells, &widths)?;
    }
    if let Some(line) = footer(report) {
        writeln!(out, "{line}")?;
    }
    write_last_position(out, report, shown, first)
}

/// With top-k or targets: one line per row for the last position, the top-k tokens with
/// their probabilities, then each target's probability and rank.
fn write_last_position(
    out: &mut dyn Write,
    report: &Report,
    shown: &[usize],
    first: usize,
) -> io::Result<()> {
    if report.top_k == 0 && report.targets.is_empty() {
        return Ok(());
    }
    let Some(input) = report.tokens.last() else {
        return Ok(());
    };
    let last = report.layers.last().map_or(0, |l| l.layer);
    writeln!(out, "at the last position ({:?}):", input.display)?;
    let mut header = Vec::new();
    if report.top_k > 0 {
        header.push(format!("top-{}", report.top_k));
    }
    header.extend(
        report
            .targets
            .iter()
            .map(|t| format!("{:?} p, rank", t.token)),
    );
    let rows: Vec<(String, Vec<String>)> = shown
        .iter()
        .map(|&i| &report.layers[i])
        .filter_map(|l| Some((l.label(last), l.positions.last()?)))
        .map(|(label, p)| {
            let mut cells = Vec::new();
            if p.nonfinite {
                cells.push(crate::report::NONFINITE.to_string());
                return (label, cells);
            }
            if report.top_k > 0 {
                let top: Vec<String> = p
                    .topk
                    .iter()
                    .map(|t| format!("{} {:.2}", cut(&t.token, MAX_WIDTH), t.prob))
                    .collect();
                cells.push(top.join(", "));
            }
            cells.extend(
                p.targets
                    .iter()
                    .map(|t| format!("{:>8} {:>6}", probability(t.prob), t.rank)),
            );
            (label, cells)
        })
        .collect();
    let widths = column_widths(&header, rows.iter().map(|(_, cells)| cells));
    write_line(out, "layer", first, &header, &widths)?;
    for (label, cells) in &rows {
        write_line(out, label, first, cells, &widths)?;
    }
    Ok(())
}

/// A probability in a few characters: three decimals, or two significant digits in
/// scientific notation below 0.01.
fn probability(p: f32) -> String {
    match p >= 0.01 || p == 0.0 {
        true => format!("{p:.3}"),
        false => format!("{p:.1e}"),
    }
}

/// The line under the table: the output's argmax at the last position, the first layer
/// where it is the argmax there, and the layer from which it stays so.
pub fn footer(report: &Report) -> Option<String> {
    let output = report.layers.last()?.positions.last()?;
    Some(format!(
        "final {:?}: first argmax at layer {}, settled from layer {}",
        output.token, report.first_layer?, report.settled_layer?
    ))
}

fn column_widths<'a>(header: &[String], rows: impl Iterator<Item = &'a Vec<String>>) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for cells in rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.width());
        }
    }
    widths
}

fn write_line(
    out: &mut dyn Write,
    label: &str,
    first: usize,
    cells: &[String],
    widths: &[usize],
) -> io::Result<()> {
    write!(out, "{}", pad(label, first))?;
    for (c, &w) in cells.iter().zip(widths) {
        write!(out, " │ {}", pad(c, w))?;
    }
    writeln!(out)
}

/// Pads to a display width (CJK and emoji count double).
fn pad(s: &str, width: usize) -> String {
    format!("{s}{}", " ".repeat(width.saturating_sub(s.width())))
}

/// Cuts to at most `max` display columns, ending with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if out.width() + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) + 1 > max {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_display_width() {
        assert_eq!(cut("short", 8), "short");
        assert_eq!(cut("abcdefghij", 5), "abcd…");
        assert_eq!(cut("日本語日本語", 5), "日本…");
    }
}
