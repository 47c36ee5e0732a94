//! Drawing: the title, the annotated cells, the axes and the colour bar, on any plotters
//! backend.

use std::ops::Range;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::colour::{text_color, viridis, Scale, HATCH, INK, MISSING, MUTED, NO_VALUE};
use super::layout::*;
use super::metric::Metric;
use super::text::{fit, label, text_width, truncate, visible, Pen};
use super::{display_name, draw_error, Figure, HeatmapOptions, ImageFormat};
use crate::lens::Site;
use crate::output::{Prediction, Report};

/// Everything needed to draw, computed once for both backends.
pub(super) struct Plot<'a> {
    pub(super) report: &'a Report,
    pub(super) max_chars: usize,
    /// Shown layer indices, ascending (drawn bottom to top).
    pub(super) rows: Vec<usize>,
    /// The positions shown, one column each.
    pub(super) columns: Range<usize>,
    pub(super) size: (u32, u32),
    /// The x of every column edge, left to right (one more than columns).
    pub(super) col_edges: Vec<i32>,
    pub(super) grid_x: i32,
    pub(super) grid_y: i32,
    pub(super) grid_w: i32,
    pub(super) grid_h: i32,
    pub(super) scale: Scale,
    /// Draws text as the format needs.
    pub(super) pen: Pen,
    /// What colours the cells.
    pub(super) metric: Metric,
    /// The model as a person knows it.
    pub(super) model: String,
    /// The lens, named in the title when the figure is one panel of several
    /// (`--compare-lenses`).
    pub(super) lens: Option<&'static str>,
}

impl<'a> Plot<'a> {
    pub(super) fn new(
        report: &'a Report,
        opts: &HeatmapOptions,
        layout: Layout,
        format: ImageFormat,
    ) -> Self {
        let Layout {
            rows,
            columns,
            widths,
            size,
            ..
        } = layout;
        let grid_x = MARGIN_LEFT as i32;
        let col_edges: Vec<i32> = std::iter::once(grid_x)
            .chain(widths.iter().scan(grid_x, |x, &w| {
                *x += w as i32;
                Some(*x)
            }))
            .collect();
        let grid_w = col_edges.last().copied().unwrap_or(grid_x) - grid_x;
        let grid_h = (size.1 - MARGIN_TOP - MARGIN_BOTTOM) as i32;
        let metric = opts.metric;
        let scale = scale(opts, cells(report, metric, &rows, &columns));
        Self {
            report,
            max_chars: opts.max_label_chars.max(1),
            rows,
            columns,
            size,
            col_edges,
            grid_x,
            grid_y: MARGIN_TOP as i32,
            grid_w,
            grid_h,
            scale,
            pen: Pen { format },
            metric,
            model: opts
                .model
                .clone()
                .unwrap_or_else(|| display_name(&report.model)),
            lens: None,
        }
    }

    /// A cell's metric; `None` where it has none (drawn hatched). NaN is drawn at the top of
    /// the scale.
    pub(super) fn number(&self, pred: &Prediction) -> Option<f64> {
        self.metric.value(pred)
    }

    /// Whether the cell's argmax is the input token that follows its position: the lens
    /// predicts the actual next token there (transformer-utils' "next token hit").
    pub(super) fn hit(&self, position: usize, pred: &Prediction) -> bool {
        self.report
            .tokens
            .get(position + 1)
            .is_some_and(|next| !pred.nonfinite && next.id == pred.stat.id)
    }

    /// Left and right x of the `i`-th shown column (cells share edges).
    pub(super) fn col_span(&self, i: usize) -> (i32, i32) {
        (self.col_edges[i], self.col_edges[i + 1])
    }

    /// Top and bottom y of display row `r`, counted from the top.
    pub(super) fn row_span(&self, r: usize) -> (i32, i32) {
        let n = self.rows.len() as i64;
        let edge = |i: usize| self.grid_y + (i as i64 * i64::from(self.grid_h) / n) as i32;
        (edge(r), edge(r + 1))
    }

    /// The pixels the cell of `layer` (an index into the report's rows) at `position` covers:
    /// left, top, right and bottom, the last two exclusive; `None` when it is not shown.
    pub(super) fn cell_box(&self, layer: usize, position: usize) -> Option<(i32, i32, i32, i32)> {
        let shown = self.rows.iter().position(|&l| l == layer)?;
        let i = position.checked_sub(self.columns.start)?;
        if i >= self.columns.len() {
            return None;
        }
        let (x0, x1) = self.col_span(i);
        let (y0, y1) = self.row_span(self.rows.len() - 1 - shown);
        Some((x0, y0, x1 - 1, y1 - 1))
    }

    /// Whether any shown cell has no value of the metric (the legend then explains the
    /// hatching).
    fn any_missing(&self) -> bool {
        self.rows.iter().any(|&l| {
            let positions = &self.report.layers[l].positions;
            self.columns
                .clone()
                .any(|c| positions.get(c).is_some_and(|p| self.number(p).is_none()))
        })
    }
}

/// The cells of `rows` at `columns`, as [`Colouring::extent`] takes them: whether the row is
/// the embeddings', and the cell's value of `metric`.
///
/// [`Colouring::extent`]: crate::output::stats::Colouring::extent
pub(super) fn cells(
    report: &Report,
    metric: Metric,
    rows: &[usize],
    columns: &Range<usize>,
) -> Vec<(bool, Option<f64>)> {
    rows.iter()
        .map(|&l| &report.layers[l])
        .flat_map(|l| {
            let embedding = l.site == Site::Embed;
            let shown = l.positions.get(columns.clone()).unwrap_or_default();
            shown.iter().map(move |p| (embedding, metric.value(p)))
        })
        .collect()
}

/// The colour scale of `opts`' metric: `--color-range` when given, else 0..1 for
/// probabilities, else sized to the cells shown ([`Colouring::extent`]), saturated when a
/// value lies above it.
///
/// [`Colouring::extent`]: crate::output::stats::Colouring::extent
pub(super) fn scale(opts: &HeatmapOptions, cells: Vec<(bool, Option<f64>)>) -> Scale {
    let colouring = opts.metric.colouring();
    Scale::sized(colouring.scale, opts.color_range, colouring.extent(cells))
}

impl Figure for Plot<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Draws the whole figure.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        self.draw_title(root)?;
        self.draw_cells(root)?;
        self.draw_layer_axis(root)?;
        self.draw_token_axis(root)?;
        self.draw_colorbar(root)?;
        self.draw_legend(root)
    }
}

impl Plot<'_> {
    /// The first title line: the model and the statistic shown ("SmolLM2-135M · entropy
    /// (nats)").
    pub(super) fn title(&self) -> String {
        let lens = self
            .lens
            .map(|l| format!("{l} lens · "))
            .unwrap_or_default();
        format!(
            "{lens}{} · {}",
            visible(&truncate(&self.model, 200)),
            self.metric.title(self.report)
        )
    }

    /// The second title line: which positions are shown when not all are ("positions
    /// 100–199 of 2048 · "), then the prompt, quoted, ↵ for newlines.
    pub(super) fn subtitle(&self) -> String {
        let total = self.report.tokens.len();
        let window = match self.columns.len() < total {
            true => {
                let (first, last) = (self.columns.start, self.columns.end.saturating_sub(1));
                format!("positions {first}–{last} of {total} · ")
            }
            false => String::new(),
        };
        // Cut long prompts by chars first, so fitting measures little text.
        format!("{window}“{}”", visible(&truncate(&self.report.prompt, 300)))
    }

    /// The title on the first line, the window and the prompt below.
    pub(super) fn draw_title<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let width = f64::from(self.size.0) - 24.0;
        let cx = self.size.0 as i32 / 2;
        let (title, size) = fit(&self.title(), TITLE_FONT, 12.0, width);
        self.pen
            .text(root, &title, (cx, 22), size, &INK, HPos::Center)?;
        let (subtitle, size) = fit(&self.subtitle(), SUBTITLE_FONT, 11.0, width);
        self.pen
            .text(root, &subtitle, (cx, 46), size, &MUTED, HPos::Center)
    }

    /// One coloured, annotated cell per shown layer and position: hatched where the metric
    /// has no value, framed where the argmax is the next input token.
    pub(super) fn draw_cells<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        for (r, &layer) in self.rows.iter().rev().enumerate() {
            let (y0, y1) = self.row_span(r);
            let positions = &self.report.layers[layer].positions;
            for (i, c) in self.columns.clone().enumerate() {
                let (x0, x1) = self.col_span(i);
                // A white seam on the right and bottom separates cells.
                let cell = (x0, y0, x1 - 1, y1 - 1);
                let Some(pred) = positions.get(c) else {
                    fill(root, cell, MISSING)?;
                    continue;
                };
                let background = match self.number(pred) {
                    Some(value) => {
                        let colour = viridis(self.scale.fraction(value));
                        fill(root, cell, colour)?;
                        colour
                    }
                    None => {
                        hatch(root, cell)?;
                        NO_VALUE
                    }
                };
                if self.hit(c, pred) {
                    hit_frame(root, cell)?;
                }
                let label = label(&pred.token, self.max_chars);
                let room = f64::from(x1 - x0 - 8);
                let (label, size) = fit(&label, CELL_FONT, CELL_FONT_MIN, room);
                let centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2);
                let ink = text_color(background);
                self.pen
                    .text(root, &label, centre, size, &ink, HPos::Center)?;
            }
        }
        Ok(())
    }

    /// Row labels left of the rows, as the table has them ("0 emb" at the bottom, "3 attn"
    /// for a `--sublayers` row, "L out" on top), and the axis title.
    pub(super) fn draw_layer_axis<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let last = self.report.layers.last().map_or(0, |l| l.layer);
        for (r, &layer) in self.rows.iter().rev().enumerate() {
            let (y0, y1) = self.row_span(r);
            let label = self.report.layers[layer].label(last);
            let at = (self.grid_x - 8, (y0 + y1 - 1) / 2);
            self.pen
                .text(root, &label, at, TICK_FONT, &INK, HPos::Right)?;
        }
        let centre = (16, self.grid_y + self.grid_h / 2);
        self.pen
            .vertical_text(root, "layer", centre, AXIS_FONT, &MUTED)
    }

    /// Input tokens under the columns, their positions below, then the axis title.
    pub(super) fn draw_token_axis<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let y = self.grid_y + self.grid_h;
        for (i, c) in self.columns.clone().enumerate() {
            let token = &self.report.tokens[c];
            let (x0, x1) = self.col_span(i);
            let cx = (x0 + x1 - 1) / 2;
            let label = label(&token.display, self.max_chars);
            let (label, size) = fit(&label, TICK_FONT, CELL_FONT_MIN, f64::from(x1 - x0 - 4));
            self.pen
                .text(root, &label, (cx, y + 14), size, &INK, HPos::Center)?;
            self.pen.text(
                root,
                &c.to_string(),
                (cx, y + 31),
                10.0,
                &MUTED,
                HPos::Center,
            )?;
        }
        let centre = (self.grid_x + self.grid_w / 2, y + 52);
        self.pen.text(
            root,
            "input token (position)",
            centre,
            AXIS_FONT,
            &MUTED,
            HPos::Center,
        )
    }

    /// The gradient, its ticks and the colour statistic's title ("entropy (nats)"), right
    /// of the grid.
    pub(super) fn draw_colorbar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let x0 = self.grid_x + self.grid_w + COLORBAR_GAP;
        let x1 = x0 + COLORBAR_W;
        let (top, bottom) = (self.grid_y, self.grid_y + self.grid_h - 1);
        let span = f64::from((bottom - top).max(1));
        // One 2 px band per step keeps the SVG small and the gradient smooth.
        for y in (top..bottom).step_by(2) {
            let t = f64::from(bottom - y) / span;
            let band = [(x0, y), (x1, (y + 2).min(bottom))];
            root.draw(&Rectangle::new(band, viridis(t).filled()))
                .map_err(draw_error)?;
        }
        root.draw(&Rectangle::new(
            [(x0, top), (x1, bottom)],
            MUTED.stroke_width(1),
        ))
        .map_err(draw_error)?;
        let mut widest = 0.0f64;
        for value in self.scale.ticks() {
            let t = self.scale.fraction(value);
            let y = bottom - (t * span).round() as i32;
            root.draw(&PathElement::new(
                [(x1, y), (x1 + 4, y)],
                MUTED.stroke_width(1),
            ))
            .map_err(draw_error)?;
            let label = self.scale.label(value);
            widest = widest.max(text_width(&label, TICK_FONT));
            self.pen
                .text(root, &label, (x1 + 8, y), TICK_FONT, &INK, HPos::Left)?;
        }
        let cx = x1 + 8 + widest.ceil() as i32 + 14;
        let centre = (cx, (top + bottom) / 2);
        let title = self.metric.title(self.report);
        self.pen
            .vertical_text(root, &title, centre, AXIS_FONT, &MUTED)
    }

    /// Below the colour bar: the hit frame ("next token") and, when some cell has no value,
    /// the hatching ("no next token").
    pub(super) fn draw_legend<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let x0 = self.grid_x + self.grid_w + COLORBAR_GAP;
        let y = self.grid_y + self.grid_h;
        let room = f64::from(self.size.0 as i32 - x0 - LEGEND_SWATCH_W - 10);
        let mut entries = vec![(true, "next-token hit")];
        if self.any_missing() {
            entries.push((false, self.metric.missing()));
        }
        for (k, (is_hit, text)) in entries.into_iter().enumerate() {
            let cy = y + 14 + 17 * k as i32;
            let swatch = (x0, cy - 6, x0 + LEGEND_SWATCH_W - 1, cy + 6);
            match is_hit {
                true => {
                    fill(root, swatch, MISSING)?;
                    hit_frame(root, swatch)?;
                }
                false => hatch(root, swatch)?,
            }
            let (text, size) = fit(text, LEGEND_FONT, CELL_FONT_MIN, room);
            let at = (x0 + LEGEND_SWATCH_W + 5, cy);
            self.pen.text(root, &text, at, size, &INK, HPos::Left)?;
        }
        Ok(())
    }
}

/// Fills the pixels `x0..x1` × `y0..y1` (plotters leaves a filled rectangle's far edges out).
fn fill<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x0, y0, x1, y1): (i32, i32, i32, i32),
    colour: RGBColor,
) -> Result<()> {
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], colour.filled()))
        .map_err(draw_error)
}

/// The mark of a next-token hit, readable on any colour and in black and white: a 2 px black
/// frame just inside the cell with a 2 px white frame inside that.
pub(super) fn hit_frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x0, y0, x1, y1): (i32, i32, i32, i32),
) -> Result<()> {
    for (inset, w, colour) in [(0, 2, BLACK), (2, 2, WHITE)] {
        let (a0, b0, a1, b1) = (x0 + inset, y0 + inset, x1 - inset, y1 - inset);
        fill(root, (a0, b0, a1, b0 + w), colour)?;
        fill(root, (a0, b1 - w, a1, b1), colour)?;
        fill(root, (a0, b0, a0 + w, b1), colour)?;
        fill(root, (a1 - w, b0, a1, b1), colour)?;
    }
    Ok(())
}

/// A cell with no value: light grey with grey diagonal lines every [`HATCH_GAP`] px.
pub(super) fn hatch<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x0, y0, x1, y1): (i32, i32, i32, i32),
) -> Result<()> {
    fill(root, (x0, y0, x1, y1), NO_VALUE)?;
    // Lines x + y = k, clipped to the cell.
    let (x1, y1) = (x1 - 1, y1 - 1);
    for k in ((x0 + y0 + 2)..(x1 + y1)).step_by(HATCH_GAP) {
        let (a, b) = ((k - y1).max(x0), (k - y0).min(x1));
        if a < b {
            root.draw(&PathElement::new(
                [(a, k - a), (b, k - b)],
                HATCH.stroke_width(1),
            ))
            .map_err(draw_error)?;
        }
    }
    Ok(())
}
