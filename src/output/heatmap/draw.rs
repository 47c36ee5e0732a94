//! Drawing: the title, the annotated cells, the axes and the colour bar, on any plotters
//! backend.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use super::bearing;
use super::colour::{text_color, viridis, Scale, INK, MISSING, MUTED};
use super::layout::*;
use super::text::{fit, label, text_width, truncate, visible, FONT};
use super::{draw_error, HeatmapOptions, ImageFormat};
use crate::lens::Stat;
use crate::output::{Prediction, Report};

/// Everything needed to draw, computed once for both backends.
pub(super) struct Plot<'a> {
    pub(super) report: &'a Report,
    pub(super) max_chars: usize,
    /// Shown layer indices, ascending (drawn bottom to top).
    pub(super) rows: Vec<usize>,
    pub(super) size: (u32, u32),
    /// The x of every column edge, left to right (one more than columns).
    pub(super) col_edges: Vec<i32>,
    pub(super) grid_x: i32,
    pub(super) grid_y: i32,
    pub(super) grid_w: i32,
    pub(super) grid_h: i32,
    pub(super) scale: Scale,
    pub(super) format: ImageFormat,
    /// The statistic that colours the cells.
    pub(super) color: Stat,
}

impl<'a> Plot<'a> {
    pub(super) fn new(
        report: &'a Report,
        opts: &HeatmapOptions,
        rows: Vec<usize>,
        widths: Vec<u32>,
        format: ImageFormat,
    ) -> Self {
        let size = (width_of(&widths), image_height(rows.len()));
        let grid_x = MARGIN_LEFT as i32;
        let col_edges: Vec<i32> = std::iter::once(grid_x)
            .chain(widths.iter().scan(grid_x, |x, &w| {
                *x += w as i32;
                Some(*x)
            }))
            .collect();
        let grid_w = col_edges.last().copied().unwrap_or(grid_x) - grid_x;
        let grid_h = (size.1 - MARGIN_TOP - MARGIN_BOTTOM) as i32;
        let scale = match opts.color_range {
            Some((min, max)) => Scale::fixed(min, max),
            None => Scale::new(
                rows.iter()
                    .flat_map(|&l| &report.layers[l].positions)
                    .filter_map(|p| p.value(opts.color).number())
                    .filter(|e| e.is_finite())
                    .fold(0.0, f64::max),
            ),
        };
        Self {
            report,
            max_chars: opts.max_label_chars.max(1),
            rows,
            size,
            col_edges,
            grid_x,
            grid_y: MARGIN_TOP as i32,
            grid_w,
            grid_h,
            scale,
            format,
            color: opts.color,
        }
    }

    /// A cell's colour statistic as a number (NaN for text, drawn at the top of the scale).
    pub(super) fn number(&self, pred: &Prediction) -> f64 {
        pred.value(self.color).number().unwrap_or(f64::NAN)
    }

    pub(super) fn columns(&self) -> usize {
        self.report.tokens.len()
    }

    /// Left and right x of column `c` (cells share edges).
    pub(super) fn col_span(&self, c: usize) -> (i32, i32) {
        (self.col_edges[c], self.col_edges[c + 1])
    }

    /// Top and bottom y of display row `r`, counted from the top.
    pub(super) fn row_span(&self, r: usize) -> (i32, i32) {
        let n = self.rows.len() as i64;
        let edge = |i: usize| self.grid_y + (i as i64 * i64::from(self.grid_h) / n) as i32;
        (edge(r), edge(r + 1))
    }

    /// Draws the whole figure.
    pub(super) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        self.draw_title(root)?;
        self.draw_cells(root)?;
        self.draw_layer_axis(root)?;
        self.draw_token_axis(root)?;
        self.draw_colorbar(root)
    }

    /// Draws `text` with its cap height centred on `cy`.
    pub(super) fn text<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: &str,
        at: (i32, i32),
        size: f64,
        color: &RGBColor,
        h: HPos,
    ) -> Result<()> {
        self.run(root, text, at, size, color, h, false)
    }

    /// Draws `text` reading bottom to top, centred on `(cx, cy)`.
    pub(super) fn vertical_text<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: &str,
        centre: (i32, i32),
        size: f64,
        color: &RGBColor,
    ) -> Result<()> {
        self.run(root, text, centre, size, color, HPos::Center, true)
    }

    /// Draws a line of text, anchored at `h` along it and centred across it.
    ///
    /// SVG text is left to the viewer's layout. Bitmap text goes one char at
    /// a time, each shifted by its left side bearing, because plotters'
    /// ab_glyph renderer drops bearings and spaces glyphs unevenly ("th e").
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        text: &str,
        (x, y): (i32, i32),
        size: f64,
        color: &RGBColor,
        h: HPos,
        vertical: bool,
    ) -> Result<()> {
        let rise = (self.rise() * size).round() as i32;
        let style = TextStyle::from((FONT, size).into_font())
            .color(color)
            .transform(if vertical {
                FontTransform::Rotate270
            } else {
                FontTransform::None
            });
        // Rotate270 maps the text's x to screen -y.
        let place = |along: i32| {
            if vertical {
                (x - rise, y - along)
            } else {
                (x + along, y - rise)
            }
        };
        if self.format == ImageFormat::Svg {
            let style = style.pos(Pos::new(h, VPos::Top));
            return root.draw_text(text, &style, place(0)).map_err(draw_error);
        }
        let style = style.pos(Pos::new(HPos::Left, VPos::Top));
        let width = text_width(text, size) as i32;
        let start = match h {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        for (i, c) in text.char_indices().filter(|(_, c)| !c.is_whitespace()) {
            let pen = start + text_width(&text[..i], size) as i32;
            let glyph = &text[i..i + c.len_utf8()];
            root.draw_text(glyph, &style, place(pen + bearing::left(c, size)))
                .map_err(draw_error)?;
        }
        Ok(())
    }

    /// How far above the wanted cap-height centre a top-anchored text's
    /// origin sits, per font pixel: the backends place baselines differently.
    pub(super) fn rise(&self) -> f64 {
        match self.format {
            // ab_glyph puts the baseline half a font size below the origin.
            ImageFormat::Png => 0.19,
            // SVG uses dy="0.76em" with font-size = size / 1.24.
            ImageFormat::Svg => 0.32,
        }
    }

    /// Model on the first line, the prompt (quoted, ↵ for newlines) below.
    pub(super) fn draw_title<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let width = f64::from(self.size.0) - 24.0;
        let cx = self.size.0 as i32 / 2;
        let model = visible(&truncate(&self.report.model, 200));
        let (model, size) = fit(&model, TITLE_FONT, 12.0, width);
        self.text(root, &model, (cx, 22), size, &INK, HPos::Center)?;
        // Cut long prompts by chars first, so fitting measures little text.
        let prompt = format!("“{}”", visible(&truncate(&self.report.prompt, 300)));
        let prompt = fit(&prompt, SUBTITLE_FONT, SUBTITLE_FONT, width).0;
        self.text(root, &prompt, (cx, 46), SUBTITLE_FONT, &MUTED, HPos::Center)
    }

    /// One coloured, annotated cell per shown layer and position.
    pub(super) fn draw_cells<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        for (r, &layer) in self.rows.iter().rev().enumerate() {
            let (y0, y1) = self.row_span(r);
            let positions = &self.report.layers[layer].positions;
            for c in 0..self.columns() {
                let (x0, x1) = self.col_span(c);
                // A 1 px white seam on the right and bottom separates cells.
                let rect = [(x0, y0), (x1 - 1, y1 - 1)];
                let Some(pred) = positions.get(c) else {
                    root.draw(&Rectangle::new(rect, MISSING.filled()))
                        .map_err(draw_error)?;
                    continue;
                };
                let fill = viridis(self.scale.fraction(self.number(pred)));
                root.draw(&Rectangle::new(rect, fill.filled()))
                    .map_err(draw_error)?;
                let label = label(&pred.token, self.max_chars);
                let room = f64::from(x1 - x0 - 8);
                let (label, size) = fit(&label, CELL_FONT, CELL_FONT_MIN, room);
                let centre = ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2);
                self.text(root, &label, centre, size, &text_color(fill), HPos::Center)?;
            }
        }
        Ok(())
    }

    /// Layer numbers left of the rows ("emb 0" at the bottom, "out L" on top)
    /// and the axis title.
    pub(super) fn draw_layer_axis<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let last = self.report.layers.len() - 1;
        for (r, &layer) in self.rows.iter().rev().enumerate() {
            let (y0, y1) = self.row_span(r);
            let number = self.report.layers[layer].layer;
            let label = match layer {
                0 => format!("emb {number}"),
                l if l == last => format!("out {number}"),
                _ => number.to_string(),
            };
            let at = (self.grid_x - 8, (y0 + y1 - 1) / 2);
            self.text(root, &label, at, TICK_FONT, &INK, HPos::Right)?;
        }
        let centre = (16, self.grid_y + self.grid_h / 2);
        self.vertical_text(root, "layer", centre, AXIS_FONT, &MUTED)
    }

    /// Input tokens under the columns, their positions below, then the axis title.
    pub(super) fn draw_token_axis<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let y = self.grid_y + self.grid_h;
        for (c, token) in self.report.tokens.iter().enumerate() {
            let (x0, x1) = self.col_span(c);
            let cx = (x0 + x1 - 1) / 2;
            let label = label(&token.display, self.max_chars);
            let (label, size) = fit(&label, TICK_FONT, CELL_FONT_MIN, f64::from(x1 - x0 - 4));
            self.text(root, &label, (cx, y + 14), size, &INK, HPos::Center)?;
            self.text(
                root,
                &c.to_string(),
                (cx, y + 31),
                10.0,
                &MUTED,
                HPos::Center,
            )?;
        }
        let centre = (self.grid_x + self.grid_w / 2, y + 52);
        self.text(
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
            let t = (value - self.scale.min) / (self.scale.max - self.scale.min);
            let y = bottom - (t * span).round() as i32;
            root.draw(&PathElement::new(
                [(x1, y), (x1 + 4, y)],
                MUTED.stroke_width(1),
            ))
            .map_err(draw_error)?;
            let label = self.scale.label(value);
            widest = widest.max(text_width(&label, TICK_FONT));
            self.text(root, &label, (x1 + 8, y), TICK_FONT, &INK, HPos::Left)?;
        }
        let cx = x1 + 8 + widest.ceil() as i32 + 14;
        let centre = (cx, (top + bottom) / 2);
        self.vertical_text(root, &self.color.title(), centre, AXIS_FONT, &MUTED)
    }
}
