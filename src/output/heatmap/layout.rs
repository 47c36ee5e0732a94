//! Where everything goes: the rows and columns shown, each column's width, the margins
//! and the image size.

use anyhow::{bail, Result};

use super::text::{label, text_width};
use super::HeatmapOptions;
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

/// Each column's width: its widest label (the input token at the tick font,
/// the shown cells at the cell font) plus padding, within
/// [`MIN_CELL_W`]..=[`MAX_CELL_W`]; a narrow grid is widened evenly to its
/// minimum.
pub(super) fn column_widths(report: &Report, opts: &HeatmapOptions, rows: &[usize]) -> Vec<u32> {
    let max_chars = opts.max_label_chars.max(1);
    let mut widths: Vec<u32> = (0..report.tokens.len())
        .map(|c| {
            let axis = text_width(&label(&report.tokens[c].display, max_chars), TICK_FONT);
            let cells = rows
                .iter()
                .filter_map(|&l| report.layers[l].positions.get(c))
                .map(|p| text_width(&label(&p.token, max_chars), CELL_FONT))
                .fold(0.0, f64::max);
            let want = (axis.max(cells) + CELL_PAD).ceil();
            (want as u32).clamp(MIN_CELL_W, MAX_CELL_W)
        })
        .collect();
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

/// Refuses images too big to allocate or view.
pub(super) fn check_size(w: u32, h: u32, report: &Report, rows: &[usize]) -> Result<()> {
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        bail!(
            "the heatmap of {} tokens × {} layers would be {w}×{h} px, \
             over the {MAX_SIDE} px limit: use a shorter prompt or a larger layer step",
            report.tokens.len(),
            rows.len()
        );
    }
    Ok(())
}
