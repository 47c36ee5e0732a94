//! The annotated heatmap: one row per shown layer (embeddings at the bottom,
//! the model's output at the top), one column per input position. Each cell is
//! coloured by one statistic (the entropy unless told otherwise) and labelled
//! with its argmax token, as in the usual logit-lens plot.
//!
//! Everything is drawn by hand on a plotters drawing area (no chart
//! builder), so the cell grid, labels and colour bar line up to the pixel and
//! the PNG and SVG share one layout. Text uses the bundled DejaVu Sans, so
//! the output does not depend on the machine's fonts.
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
mod layout;
#[cfg(test)]
mod tests;
mod text;

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;

use super::Report;
use crate::lens::Stat;
use draw::Plot;
use layout::{check_size, column_widths, width_of};
pub use layout::{image_height, shown_layers, width_bounds, MAX_CELL_W, MIN_CELL_W};
use text::register_font;

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
    pub color: Stat,
    /// The values of the colour statistic at the two ends of the colour
    /// scale; values outside take the end colours. `None`: 0 to the largest
    /// value shown, rounded up to a tick.
    pub color_range: Option<(f32, f32)>,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        Self {
            layer_step: 1,
            max_label_chars: 24,
            color: Stat::Entropy,
            color_range: None,
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

/// Renders the report to bytes in the given format (pure: no file I/O).
///
/// The colour scale runs from 0 to the largest finite value of the colour
/// statistic among the shown rows, rounded up to a tick (so the bar ends on a
/// labelled value); NaN or infinite values are drawn at the top of the scale.
pub fn render(report: &Report, opts: &HeatmapOptions, format: ImageFormat) -> Result<Vec<u8>> {
    if report.tokens.is_empty() {
        bail!("cannot draw a heatmap of an empty prompt: there are no tokens");
    }
    if report.layers.is_empty() {
        bail!("cannot draw a heatmap without layers");
    }
    if let Some(range) = opts.color_range {
        check_color_range(range)?;
    }
    let rows = shown_layers(report.layers.len(), opts.layer_step);
    check_size(
        width_bounds(report.tokens.len()).0,
        image_height(rows.len()),
        report,
        &rows,
    )?;
    register_font();
    let widths = column_widths(report, opts, &rows);
    let (w, h) = (width_of(&widths), image_height(rows.len()));
    check_size(w, h, report, &rows)?;
    let plot = Plot::new(report, opts, rows, widths, format);
    match format {
        ImageFormat::Png => render_png(&plot),
        ImageFormat::Svg => render_svg(&plot),
    }
}

/// The image size in pixels of a report's heatmap (so tests can check a
/// PNG's size): the height follows the shown rows, the width the labels.
pub fn image_size(report: &Report, opts: &HeatmapOptions) -> (u32, u32) {
    register_font();
    let rows = shown_layers(report.layers.len(), opts.layer_step);
    (
        width_of(&column_widths(report, opts, &rows)),
        image_height(rows.len()),
    )
}

/// Draws into an RGB buffer and encodes it as PNG.
fn render_png(plot: &Plot) -> Result<Vec<u8>> {
    let (w, h) = plot.size;
    let len = usize::try_from(u64::from(w) * u64::from(h) * 3).context("heatmap too large")?;
    let mut rgb = vec![255u8; len];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        plot.draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    encode_png(&rgb, w, h)
}

/// Draws into an SVG document of the same size as the PNG.
fn render_svg(plot: &Plot) -> Result<Vec<u8>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size).into_drawing_area();
        plot.draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg.into_bytes())
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
pub(super) fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the heatmap: {e}")
}
