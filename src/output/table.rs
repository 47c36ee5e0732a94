//! The default stdout format: one line per layer, argmax tokens in aligned columns.

use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

use super::Report;

/// Widest a column gets; longer tokens are cut with `…`.
const MAX_WIDTH: usize = 16;

/// Writes the header (input tokens) and one line per layer, layer 0 first.
/// With `entropy`, each cell also shows the entropy in nats.
pub fn write(out: &mut dyn Write, report: &Report, entropy: bool) -> io::Result<()> {
    let last = report.layers.len().saturating_sub(1);
    let label = |l: usize| match l {
        0 => "0 emb".to_string(),
        l if l == last => format!("{l} out"),
        l => l.to_string(),
    };
    let cell = |token: &str, h: f32| match entropy {
        true => format!("{} {h:.2}", cut(token, MAX_WIDTH)),
        false => cut(token, MAX_WIDTH),
    };
    let header: Vec<String> = report
        .tokens
        .iter()
        .map(|t| cut(&t.text, MAX_WIDTH))
        .collect();
    let rows: Vec<(String, Vec<String>)> = report
        .layers
        .iter()
        .map(|l| {
            (
                label(l.layer),
                l.positions
                    .iter()
                    .map(|p| cell(&p.token, p.entropy))
                    .collect(),
            )
        })
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
    Ok(())
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
