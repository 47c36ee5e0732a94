//! Where everything goes: the rows and columns shown, each column's width, the margins
//! and the image size.

use std::ops::Range;

use anyhow::{anyhow, bail, Result};

use super::text::{label, text_width};
use super::HeatmapOptions;
use crate::error::Error;
use crate::lens::Site;
use crate::output::Report;

/// The narrowest and widest a column gets; between them it follows its labels.
pub const MIN_CELL_W: u32 = 44;
pub const MAX_CELL_W: u32 = 180;
/// Room around a cell's label, left and right together.
pub(super) const CELL_PAD: f64 = 12.0;
pub(super) const CELL_H: u32 = 30;
/// Small reports get bigger cells rather than a cramped title and colour bar.
pub(super) const MIN_GRID_W: u32 = 168;
pub(super) const MIN_GRID_H: u32 = 160;
/// Room for the y-axis title and the layer labels.
pub(super) const MARGIN_LEFT: u32 = 86;
/// Room for the two title lines.
pub(super) const MARGIN_TOP: u32 = 66;
/// Room for the token labels, positions and the x-axis title.
pub(super) const MARGIN_BOTTOM: u32 = 66;
/// Room for the colour bar, its tick labels and its title.
pub(super) const MARGIN_RIGHT: u32 = 124;
/// Larger images are refused: viewers choke, and the RGB buffer gets huge.
pub(super) const MAX_SIDE: u32 = 32_000;
pub(super) const MAX_PIXELS: u64 = 120_000_000;

pub(super) const COLORBAR_GAP: i32 = 20;
pub(super) const COLORBAR_W: i32 = 16;
/// The legend's swatches, below the colour bar, and its font.
pub(super) const LEGEND_SWATCH_W: i32 = 22;
pub(super) const LEGEND_FONT: f64 = 11.0;
/// The distance between a hatched cell's lines.
pub(super) const HATCH_GAP: usize = 6;

pub(super) const CELL_FONT: f64 = 13.0;
pub(super) const CELL_FONT_MIN: f64 = 9.0;
pub(super) const TICK_FONT: f64 = 12.0;
pub(super) const AXIS_FONT: f64 = 13.0;
pub(super) const TITLE_FONT: f64 = 18.0;
pub(super) const SUBTITLE_FONT: f64 = 14.0;

/// The rows shown: every `step`-th layer from 0, always including the last
/// (output) layer. Returns layer indices ascending; a `step` of 0 acts as 1.
pub fn shown_layers(num_rows: usize, step: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..num_rows).step_by(step.max(1)).collect();
    if let Some(last) = num_rows.checked_sub(1) {
        if rows.last() != Some(&last) {
            rows.push(last);
        }
    }
    rows
}

/// The rows of `report` shown with `--layer-step step`: as [`shown_layers`] when every row is
/// a block output, else every row of every `step`-th block (both sites of a `--sublayers`
/// block) and the output row.
pub fn shown_rows(report: &Report, step: usize) -> Vec<usize> {
    let layers = &report.layers;
    if layers.iter().all(|l| l.site != Site::ResidMid) {
        return shown_layers(layers.len(), step);
    }
    let last = layers.len().saturating_sub(1);
    (0..layers.len())
        .filter(|&i| i == last || layers[i].layer.is_multiple_of(step.max(1)))
        .collect()
}

/// The image height for `rows` shown rows. Saturates instead of overflowing.
pub fn image_height(rows: usize) -> u32 {
    let grid_h = u32::try_from(rows)
        .unwrap_or(u32::MAX)
        .saturating_mul(CELL_H)
        .max(MIN_GRID_H);
    MARGIN_TOP
        .saturating_add(grid_h)
        .saturating_add(MARGIN_BOTTOM)
}

/// The narrowest and widest the image can be for `columns` tokens: every
/// column at [`MIN_CELL_W`], or at [`MAX_CELL_W`].
pub fn width_bounds(columns: usize) -> (u32, u32) {
    let n = u32::try_from(columns).unwrap_or(u32::MAX);
    let grid = |cell: u32| n.saturating_mul(cell).max(MIN_GRID_W);
    let side = |grid: u32| {
        MARGIN_LEFT
            .saturating_add(grid)
            .saturating_add(MARGIN_RIGHT)
    };
    (side(grid(MIN_CELL_W)), side(grid(MAX_CELL_W)))
}

/// The image width for these column widths.
pub(super) fn width_of(widths: &[u32]) -> u32 {
    let grid = widths
        .iter()
        .fold(0u32, |sum, &w| sum.saturating_add(w))
        .max(MIN_GRID_W);
    MARGIN_LEFT
        .saturating_add(grid)
        .saturating_add(MARGIN_RIGHT)
}

/// Column `c`'s width: its widest label (the input token at the tick font, the shown cells
/// at the cell font) plus padding, within [`MIN_CELL_W`]..=[`MAX_CELL_W`].
fn column_width(report: &Report, rows: &[usize], c: usize, max_chars: usize) -> u32 {
    let axis = text_width(&label(&report.tokens[c].display, max_chars), TICK_FONT);
    let cells = rows
        .iter()
        .filter_map(|&l| report.layers[l].positions.get(c))
        .map(|p| text_width(&label(&p.token, max_chars), CELL_FONT))
        .fold(0.0, f64::max);
    let want = (axis.max(cells) + CELL_PAD).ceil();
    (want as u32).clamp(MIN_CELL_W, MAX_CELL_W)
}

/// A narrow grid widened evenly to its minimum width.
fn widen(mut widths: Vec<u32>) -> Vec<u32> {
    let total: u32 = widths.iter().sum();
    if total < MIN_GRID_W && !widths.is_empty() {
        let n = widths.len() as u32;
        let extra = MIN_GRID_W - total;
        for (i, w) in widths.iter_mut().enumerate() {
            *w += extra / n + u32::from((i as u32) < extra % n);
        }
    }
    widths
}

/// The widths of `columns` ([`column_width`]), a narrow grid widened evenly to its minimum.
#[cfg(test)]
pub(super) fn column_widths(
    report: &Report,
    opts: &HeatmapOptions,
    rows: &[usize],
    columns: Range<usize>,
) -> Vec<u32> {
    let max_chars = opts.max_label_chars.max(1);
    widen(
        columns
            .map(|c| column_width(report, rows, c, max_chars))
            .collect(),
    )
}

/// Which input positions (columns) a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// Every position (the last ones that fit, for a prompt too long for one image).
    #[default]
    All,
    /// Positions `start..end`, 0-based and half-open as Python's `[start:end]`; `end`
    /// `None` runs to the last position.
    Range { start: usize, end: Option<usize> },
    /// The last N positions (all of a shorter prompt).
    Last(usize),
}

impl Window {
    /// The positions this window picks from a prompt of `len` tokens; an error naming the
    /// prompt's length when a `--positions` range is not inside it.
    pub fn resolve(self, len: usize) -> Result<Range<usize>> {
        match self {
            Window::All => Ok(0..len),
            Window::Last(n) => Ok(len.saturating_sub(n)..len),
            Window::Range { start, end } => {
                let end_ok = end.is_none_or(|e| e <= len);
                if start >= len || !end_ok {
                    bail!(Error::PositionsOutside {
                        window: self.to_string(),
                        len
                    });
                }
                Ok(start..end.unwrap_or(len))
            }
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::All => f.write_str(".."),
            Window::Range { start, end: None } => write!(f, "{start}.."),
            Window::Range {
                start,
                end: Some(end),
            } => write!(f, "{start}..{end}"),
            Window::Last(n) => write!(f, "last {n}"),
        }
    }
}

/// Parses `--positions A..B` (positions A to B−1, 0-based), `A..` (A to the end) or `..B`
/// (0 to B−1); an empty or reversed range is an error.
pub fn parse_positions(text: &str) -> Result<Window> {
    let how = "write A..B for positions A to B-1 (0-based), A.. or ..B, e.g. 0..10";
    let Some((a, b)) = text.split_once("..") else {
        bail!("{text:?} is not a range of positions; {how}");
    };
    let number = |s: &str| -> Result<Option<usize>> {
        match s.trim() {
            "" => Ok(None),
            n => n
                .parse::<usize>()
                .map(Some)
                .map_err(|_| anyhow!("{n:?} in {text:?} is not a position; {how}")),
        }
    };
    let (start, end) = (number(a)?.unwrap_or(0), number(b)?);
    if end.is_some_and(|e| e <= start) {
        bail!(Error::PositionsEmpty {
            text: text.to_string(),
            how
        });
    }
    Ok(Window::Range { start, end })
}

/// Where everything goes: the rows and columns shown, their widths, the image size.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layout {
    /// Shown layer indices, ascending (drawn bottom to top).
    pub(super) rows: Vec<usize>,
    /// The positions shown, one column each.
    pub(super) columns: Range<usize>,
    /// The positions asked for; `columns` is their end when they do not fit.
    pub(super) requested: Range<usize>,
    /// Each shown column's width.
    pub(super) widths: Vec<u32>,
    /// The image's width and height.
    pub(super) size: (u32, u32),
}

impl Layout {
    /// The layout of `report` as `opts` asks. Columns are measured from the window's end
    /// leftwards and stop where the image would pass [`MAX_SIDE`] or [`MAX_PIXELS`], so a
    /// prompt too long for one image shows its last positions that fit. An error when the
    /// rows alone are too tall, or the window is outside the prompt.
    pub(super) fn new(report: &Report, opts: &HeatmapOptions) -> Result<Self> {
        Self::panel(report, opts, 1)
    }

    /// The layout of one of `panels` figures drawn side by side in one image: each gets
    /// `1/panels` of the limits on width and pixels.
    pub(super) fn panel(report: &Report, opts: &HeatmapOptions, panels: u32) -> Result<Self> {
        let rows = shown_rows(report, opts.layer_step);
        let height = image_height(rows.len());
        let panels = panels.max(1);
        let max_w = (MAX_SIDE / panels)
            .min(u32::try_from(MAX_PIXELS / u64::from(panels) / u64::from(height)).unwrap_or(0));
        let room = max_w.saturating_sub(MARGIN_LEFT + MARGIN_RIGHT);
        if height > MAX_SIDE || room < MAX_CELL_W {
            bail!(
                "the heatmap of {} layers would be {height} px high, over the {MAX_SIDE} px \
                 limit: use a larger layer step",
                rows.len()
            );
        }
        let requested = opts.window.resolve(report.tokens.len())?;
        let max_chars = opts.max_label_chars.max(1);
        let mut widths = Vec::new();
        let mut total = 0u32;
        for c in requested.clone().rev() {
            let w = column_width(report, &rows, c, max_chars);
            if total + w > room {
                break;
            }
            total += w;
            widths.push(w);
        }
        widths.reverse();
        let widths = widen(widths);
        let columns = requested.end - widths.len()..requested.end;
        Ok(Self {
            size: (width_of(&widths), height),
            rows,
            columns,
            requested,
            widths,
        })
    }
}

impl Layout {
    /// Leaves out the shown columns before `start` (none when the layout starts there or
    /// later).
    pub(super) fn trim_to(&mut self, start: usize) {
        let drop = start
            .saturating_sub(self.columns.start)
            .min(self.widths.len());
        if drop > 0 {
            self.widths.drain(..drop);
            self.columns.start += drop;
            self.size.0 = width_of(&self.widths);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_half_open_ranges() {
        let range = |start, end| Window::Range { start, end };
        assert_eq!(parse_positions("2..5").unwrap(), range(2, Some(5)));
        assert_eq!(parse_positions(" 2 .. 5 ").unwrap(), range(2, Some(5)));
        assert_eq!(parse_positions("7..").unwrap(), range(7, None));
        assert_eq!(parse_positions("..3").unwrap(), range(0, Some(3)));
        for bad in ["5..2", "3..3", "a..4", "-1..4", "4", "1...4", ""] {
            assert!(parse_positions(bad).is_err(), "{bad}");
        }
        let err = parse_positions("5..2").unwrap_err().to_string();
        assert!(err.contains("reversed") && err.contains("A..B"), "{err}");
    }

    #[test]
    fn windows_pick_positions_inside_the_prompt() {
        assert_eq!(Window::All.resolve(9).unwrap(), 0..9);
        assert_eq!(Window::Last(3).resolve(9).unwrap(), 6..9);
        assert_eq!(Window::Last(30).resolve(9).unwrap(), 0..9);
        let range = |start, end| Window::Range { start, end };
        assert_eq!(range(2, Some(5)).resolve(9).unwrap(), 2..5);
        assert_eq!(range(2, None).resolve(9).unwrap(), 2..9);
        assert_eq!(range(0, Some(9)).resolve(9).unwrap(), 0..9);
        for outside in [range(9, None), range(2, Some(10)), range(20, Some(30))] {
            let err = outside.resolve(9).unwrap_err().to_string();
            assert!(
                err.contains("9 tokens") && err.starts_with("positions "),
                "{err}"
            );
        }
    }

    #[test]
    fn widen_spreads_the_missing_width() {
        assert_eq!(widen(vec![50, 50]), vec![84, 84]);
        assert_eq!(widen(vec![50, 50, 50]), vec![56, 56, 56]);
        assert_eq!(widen(vec![100, 100]), vec![100, 100]);
        assert_eq!(widen(vec![]), Vec::<u32>::new());
        assert_eq!(width_of(&[]), MARGIN_LEFT + MIN_GRID_W + MARGIN_RIGHT);
    }
}
