//! The annotated heatmap: one row per shown layer (embeddings at the bottom,
//! the model's output at the top), one column per input position. Each cell is
//! coloured by one statistic (the entropy unless told otherwise) and labelled
//! with its argmax token, as in the usual logit-lens plot.
//!
//! Everything is drawn by hand on a plotters drawing area (no chart
//! builder), so the cell grid, labels and colour bar line up to the pixel and
//! the PNG and SVG share one layout. Text uses the bundled DejaVu Sans, so
//! the output does not depend on the machine's fonts, except for the characters
//! it lacks (CJK, Hangul, …), which come from a font of the machine that has
//! them, or show as their code point in a box (`fonts.rs`).
//!
//! Legibility: each column is as wide as its widest label (input token or
//! cell) within [`MIN_CELL_W`]..=[`MAX_CELL_W`] px, so words are shown whole
//! rather than cut at a fixed width; leading and trailing spaces show as a
//! thin `·` (" the" reads `·the`, and an input token "↵   " reads `↵···`);
//! a no-break space shows as `⍽`, and zero-width, bidirectional and unusual
//! space characters as `\u{200B}`-style escapes, so no token is a blank
//! cell. The colour scale is fixed with [`HeatmapOptions::color_range`], so
//! that several figures can be compared.

mod bearing;
mod colour;
mod draw;
mod fonts;
mod layout;
mod metric;
#[cfg(test)]
mod tests;
mod text;

use std::ops::Range;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::Report;
use crate::session::display_name;
pub(crate) use colour::{text_color, viridis, Scale, HATCH, INK, MUTED, NO_VALUE};
use draw::Plot;
use layout::Layout;
pub use layout::{
    image_height, parse_positions, shown_layers, shown_rows, width_bounds, Window, MAX_CELL_W,
    MIN_CELL_W,
};
pub use metric::Metric;
pub(crate) use text::{fit, register_font, text_width, visible, Pen};

/// Image encodings the heatmap can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Svg,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }

    /// From a path's extension (case-insensitive "png" / "svg"); an error
    /// message naming the extension and the choices otherwise.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Self::Png),
            Some("svg") => Ok(Self::Svg),
            Some(other) => bail!(
                "cannot write a heatmap as .{other} ({}): use a .png or .svg file",
                path.display()
            ),
            None => bail!(
                "{} has no extension: the heatmap must be a .png or .svg file",
                path.display()
            ),
        }
    }
}

/// How to draw.
#[derive(Debug, Clone)]
pub struct HeatmapOptions {
    /// Show every `layer_step`-th layer (plus the output layer); 0 acts as 1.
    pub layer_step: usize,
    /// Longest cell / axis label in chars, `…` included; 0 acts as 1. A label
    /// is also cut when it does not fit [`MAX_CELL_W`] at the smallest font.
    pub max_label_chars: usize,
    /// The statistic that colours the cells and titles the colour bar (with its unit).
    pub metric: Metric,
    /// The values of the metric at the two ends of the colour scale, in its units; values
    /// outside take the end colours. `None`: 0 to the largest value shown, rounded up to a
    /// tick (0 to 1 for probabilities, 1 to a power of 10 for ranks).
    pub color_range: Option<(f32, f32)>,
    /// The positions shown; a prompt too long for one image shows the last that fit.
    pub window: Window,
    /// The model's name in the title; `None`: `display_name` of the report's `model`.
    pub model: Option<String>,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        Self {
            layer_step: 1,
            max_label_chars: 24,
            metric: Metric::Entropy,
            color_range: None,
            window: Window::All,
            model: None,
        }
    }
}

/// Parses a colour range written `MIN..MAX` (e.g. `0..10`, `0.5..8.25`).
pub fn parse_color_range(text: &str) -> Result<(f32, f32)> {
    let (min, max) = text
        .split_once("..")
        .with_context(|| format!("{text:?} is not a range; write it as MIN..MAX, e.g. 0..10"))?;
    let number = |s: &str| {
        s.trim()
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .with_context(|| {
                format!("{s:?} in {text:?} is not a number; write MIN..MAX, e.g. 0..10")
            })
    };
    let range = (number(min)?, number(max)?);
    check_color_range(range)?;
    Ok(range)
}

/// Checks that a colour range is finite and not empty.
pub fn check_color_range((min, max): (f32, f32)) -> Result<()> {
    if !(min.is_finite() && max.is_finite() && min < max) {
        bail!("the colour range {min}..{max} is empty or not finite; give MIN < MAX, e.g. 0..10");
    }
    Ok(())
}

/// A rendered heatmap: the image file's bytes, and which positions it shows.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// The positions shown.
    pub shown: Range<usize>,
    /// The positions asked for (all, or the `--positions` / `--last` window); `shown` is
    /// their end when they do not fit in one image.
    pub requested: Range<usize>,
}

impl Rendered {
    /// A warning that the positions asked for did not fit and which are shown; `None`
    /// when all are.
    pub fn note(&self) -> Option<crate::error::Error> {
        if self.shown == self.requested {
            return None;
        }
        let (a, b) = (self.requested.start, self.requested.end.saturating_sub(1));
        let (c, d) = (self.shown.start, self.shown.end.saturating_sub(1));
        Some(crate::error::Error::PositionsDoNotFit {
            requested: (a, b),
            shown: (c, d),
            shown_len: self.shown.len(),
        })
    }
}

/// Renders the report to bytes in the given format (pure: no file I/O); see [`draw`].
pub fn render(report: &Report, opts: &HeatmapOptions, format: ImageFormat) -> Result<Vec<u8>> {
    draw(report, opts, format).map(|r| r.bytes)
}

/// Draws the report in the given format (pure: no file I/O).
///
/// The colour scale runs from 0 to the largest finite value of the metric among the shown
/// cells (for KL, a high percentile of those outside the embedding row:
/// [`crate::output::stats::Colouring::extent`]), rounded up to a tick (so the bar ends on a
/// labelled value); larger, NaN or infinite values are drawn at the top of the scale.
/// Positions that do not fit in one image are left out from the start: [`Rendered::note`]
/// says so.
pub fn draw(report: &Report, opts: &HeatmapOptions, format: ImageFormat) -> Result<Rendered> {
    if report.tokens.is_empty() {
        bail!("cannot draw a heatmap of an empty prompt: there are no tokens");
    }
    if report.layers.is_empty() {
        bail!("cannot draw a heatmap without layers");
    }
    if let Some(range) = opts.color_range {
        check_color_range(range)?;
        opts.metric.check_range(range)?;
    }
    opts.metric.check(report)?;
    register_font();
    let layout = Layout::new(report, opts)?;
    let (shown, requested) = (layout.columns.clone(), layout.requested.clone());
    let plot = Plot::new(report, opts, layout, format);
    let bytes = encode(&plot, format)?;
    Ok(Rendered {
        bytes,
        shown,
        requested,
    })
}

/// Draws the reports of one prompt under several lenses (`--compare-lenses`: the logit
/// lens, then the tuned lens) side by side in one image, left to right, each panel titled
/// with its lens. The panels share one colour scale (sized to the values shown in all of
/// them, unless `opts` fixes a range), so that equal colours mean equal values, and show
/// the same positions.
pub fn draw_side_by_side(
    reports: &[&Report],
    opts: &HeatmapOptions,
    format: ImageFormat,
) -> Result<Rendered> {
    let [first, ..] = reports else {
        bail!("cannot draw a heatmap of no reports");
    };
    if reports.len() == 1 {
        return draw(first, opts, format);
    }
    if let Some(range) = opts.color_range {
        check_color_range(range)?;
        opts.metric.check_range(range)?;
    }
    for report in reports {
        if report.tokens.is_empty() {
            bail!("cannot draw a heatmap of an empty prompt: there are no tokens");
        }
        if report.layers.is_empty() {
            bail!("cannot draw a heatmap without layers");
        }
        opts.metric.check(report)?;
    }
    register_font();
    let panels = u32::try_from(reports.len()).unwrap_or(u32::MAX);
    let mut layouts = reports
        .iter()
        .map(|r| Layout::panel(r, opts, panels))
        .collect::<Result<Vec<_>>>()?;
    // Every panel shows the positions the narrowest window of them shows.
    let start = layouts.iter().map(|l| l.columns.start).max().unwrap_or(0);
    layouts.iter_mut().for_each(|l| l.trim_to(start));
    let (shown, requested) = (layouts[0].columns.clone(), layouts[0].requested.clone());
    let cells = reports
        .iter()
        .zip(&layouts)
        .flat_map(|(r, l)| draw::cells(r, opts.metric, &l.rows, &l.columns))
        .collect();
    let scale = draw::scale(opts, cells);
    let plots = reports
        .iter()
        .zip(layouts)
        .map(|(r, layout)| {
            let mut plot = Plot::new(r, opts, layout, format);
            plot.scale = scale.clone();
            plot.lens = Some(r.lens_kind);
            plot
        })
        .collect();
    let bytes = encode(&SideBySide { plots }, format)?;
    Ok(Rendered {
        bytes,
        shown,
        requested,
    })
}

/// Heatmap panels drawn left to right in one image.
struct SideBySide<'a> {
    plots: Vec<Plot<'a>>,
}

impl Figure for SideBySide<'_> {
    fn size(&self) -> (u32, u32) {
        let w = self.plots.iter().map(|p| p.size.0).sum();
        let h = self.plots.iter().map(|p| p.size.1).max().unwrap_or(0);
        (w, h)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let breaks: Vec<i32> = self
            .plots
            .iter()
            .scan(0, |x, p| {
                *x += p.size.0 as i32;
                Some(*x)
            })
            .collect();
        let areas = root.split_by_breakpoints(&breaks[..breaks.len() - 1], &[] as &[i32]);
        for (plot, area) in self.plots.iter().zip(&areas) {
            plot.draw(area)?;
        }
        Ok(())
    }
}

/// The image size in pixels of a report's heatmap (so tests can check a PNG's size): the
/// height follows the shown rows, the width the labels; (0, 0) when it cannot be drawn.
pub fn image_size(report: &Report, opts: &HeatmapOptions) -> (u32, u32) {
    register_font();
    Layout::new(report, opts).map_or((0, 0), |l| l.size)
}

/// The pixels the cell of row `layer` (an index into `report.layers`) at `position` covers
/// in the image [`draw`] makes with `opts`: left, top, right and bottom, the last two
/// exclusive; `None` when the row or position is not shown. For tests and overlays.
pub fn cell_box(
    report: &Report,
    opts: &HeatmapOptions,
    layer: usize,
    position: usize,
) -> Result<Option<(i32, i32, i32, i32)>> {
    register_font();
    let plot = Plot::new(report, opts, Layout::new(report, opts)?, ImageFormat::Png);
    Ok(plot.cell_box(layer, position))
}

/// A drawing of a known size, for either backend.
pub(crate) trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws everything onto `root`, which is white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws `figure` and encodes it in `format`.
pub(crate) fn encode<F: Figure>(figure: &F, format: ImageFormat) -> Result<Vec<u8>> {
    let (w, h) = figure.size();
    match format {
        ImageFormat::Png => {
            let len =
                usize::try_from(u64::from(w) * u64::from(h) * 3).context("image too large")?;
            let mut rgb = vec![255u8; len];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                figure.draw(&root)?;
                root.present().map_err(draw_error)?;
            }
            encode_png(&rgb, w, h)
        }
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                figure.draw(&root)?;
                root.present().map_err(draw_error)?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// Encodes 8-bit RGB pixels as a PNG file's bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the heatmap PNG")?;
    writer
        .write_image_data(rgb)
        .context("encoding the heatmap PNG")?;
    writer.finish().context("encoding the heatmap PNG")?;
    Ok(out)
}

/// Plotters' errors borrow the backend's type; flatten them for anyhow.
pub(crate) fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the heatmap: {e}")
}
